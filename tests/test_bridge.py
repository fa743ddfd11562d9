"""``coordinator hook``: the real bridge command, fed on stdin, against a real service."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from coordinator.bridge import post, slim
from coordinator.routes import REQUEST, RESERVATIONS, RESERVE, SESSIONS, hook_url, of_workspace
from tests.helpers import Service, bearer
from tests.servers import free_port

PATCH = "*** Begin Patch\n*** Update File: src/a.ts\n@@\n-old line\n+new line\n*** End Patch\n"


def bridge(
    payload: Any, *args: str, key: str = "", url: str = "", cwd: Path | None = None
) -> dict[str, Any]:
    """Run the bridge as an agent would; its stdout must be one JSON object, exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATOR_")}
    env.update(COORDINATOR_API_KEY=key, COORDINATOR_URL=url, COORDINATOR_CONFIG="/nonexistent")
    stdin = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    done = subprocess.run(
        [sys.executable, "-m", "coordinator", "hook", *args],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def claude(event: str, session: str, **fields: Any) -> dict[str, Any]:
    return {"session_id": session, "hook_event_name": event, "cwd": "/home/a/repo", **fields}


def cursor_write(conversation: str, path: str) -> dict[str, Any]:
    return {
        "conversation_id": conversation,
        "hook_event_name": "preToolUse",
        "tool_name": "Write",
        "tool_input": {"file_path": path, "content": "x" * 100_000},
        "workspace_roots": ["/home/b/repo"],
    }


def test_session_start_briefing_through_the_bridge(service: Service) -> None:
    answer = bridge(
        claude("SessionStart", "s1", source="startup"),
        "--agent",
        "claude-code",
        key=service.dev_a,
        url=service.url,
    )
    output = answer["hookSpecificOutput"]
    assert output["hookEventName"] == "SessionStart"
    assert output["additionalContext"].startswith("Team briefing:\n\nActive agents:")


def test_cursor_is_denied_a_file_codex_holds(service: Service) -> None:
    patch = {
        "session_id": "codex-1",
        "turn_id": "t1",
        "model": "gpt-5.5",
        "hook_event_name": "PreToolUse",
        "cwd": "/srv/c/repo",
        "tool_name": "apply_patch",
        "tool_input": {"command": PATCH},
    }
    assert bridge(patch, "--agent", "codex", key=service.dev_b, url=service.url) == {}
    for path, allowed in (("src/a.ts", False), ("src/b.ts", True)):
        answer = bridge(
            cursor_write("cur-1", f"/home/b/repo/{path}"),
            "--agent",
            "cursor",
            key=service.dev_a,
            url=service.url,
        )
        if allowed:
            assert answer == {"permission": "allow"}
        else:
            assert answer["permission"] == "deny"
            assert answer["agent_message"].startswith(f"File {path} is reserved by Developer B")


def test_cursor_with_the_companion_hears_what_to_do_and_who_waits(service: Service) -> None:
    codex = {"conversation_id": "codex-1", "cwd": "/srv/c/repo", "agent_type": "codex"}
    reserved = httpx.post(
        service.url + RESERVE, json={**codex, "paths": ["src/api/"]}, headers=bearer(service.dev_b)
    )
    assert reserved.status_code == 200, reserved.text
    cursor = ("--agent", "cursor", "--mcp")
    denied = bridge(cursor_write("cur-1", "/home/b/repo/src/api/x.ts"), *cursor,
                    key=service.dev_a, url=service.url)  # fmt: skip
    assert denied["permission"] == "deny"
    assert denied["agent_message"].endswith(
        "as part of src/api/). Work on something else, or call request_file to be next in line."
    )
    assert bridge(cursor_write("cur-1", "/home/b/repo/src/c.ts"), *cursor,
                  key=service.dev_a, url=service.url) == {"permission": "allow"}  # fmt: skip
    asked = httpx.post(
        service.url + REQUEST, json={**codex, "path": "src/c.ts"}, headers=bearer(service.dev_b)
    )
    assert asked.status_code == 200, asked.text
    after = {**cursor_write("cur-1", "/home/b/repo/src/c.ts"), "hook_event_name": "postToolUse"}
    told = bridge(after, *cursor, key=service.dev_a, url=service.url)
    assert told["additional_context"].startswith(
        "Developer B (Codex) is waiting for src/c.ts. When you are done with it, call "
        'release(["src/c.ts"])'
    )


def test_the_bridge_adds_the_git_branch(service: Service, tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/feature/jwt\n")
    (tmp_path / "src").mkdir()
    event = claude("SessionStart", "s-branch", cwd=str(tmp_path / "src"))
    bridge(event, "--agent", "claude-code", key=service.dev_a, url=service.url, cwd=tmp_path)
    sessions = httpx.get(
        service.url + of_workspace(SESSIONS, "acme"),
        headers={"Authorization": f"Bearer {service.dev_a}"},
    ).json()
    assert [s["branch"] for s in sessions] == ["feature/jwt"]


@pytest.mark.parametrize(
    ("agent", "payload", "expected"),
    [
        ("cursor", cursor_write("c", "/r/a.ts"), {"permission": "allow"}),
        (
            "cursor",
            {"hook_event_name": "beforeSubmitPrompt", "conversation_id": "c"},
            {"continue": True},
        ),
        ("cursor", {"hook_event_name": "sessionStart", "conversation_id": "c"}, {}),
        ("claude-code", claude("PreToolUse", "s"), {}),
        ("codex", claude("PreToolUse", "s", turn_id="t"), {}),
    ],
)
def test_it_fails_open_against_a_closed_port(
    agent: str, payload: dict[str, Any], expected: dict[str, Any]
) -> None:
    started = time.monotonic()
    answer = bridge(payload, "--agent", agent, key="ek_x", url=f"http://127.0.0.1:{free_port()}")
    assert time.monotonic() - started < 10
    warning = answer.pop("user_message", None) or answer.pop("systemMessage", None)
    assert answer == expected
    if agent != "cursor" or payload["hook_event_name"] == "preToolUse":
        assert warning is not None and "cannot reach the service" in warning


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    yield listener.getsockname()[1]
    listener.close()


def test_it_gives_up_on_a_hung_server_within_its_timeout(hung_port: int) -> None:
    started = time.monotonic()
    answer = bridge(
        claude("PreToolUse", "s"),
        "--agent",
        "claude-code",
        "--timeout",
        "0.5",
        key="ek_x",
        url=f"http://127.0.0.1:{hung_port}",
    )
    elapsed = time.monotonic() - started
    assert "timed out" in answer["systemMessage"]
    assert elapsed < 5  # python start-up plus the 0.5 s timeout, on a loaded machine


def test_fail_closed_denies_writes_but_not_session_starts(hung_port: int) -> None:
    url = f"http://127.0.0.1:{hung_port}"
    args = ("--fail-closed", "--timeout", "0.3")
    denied = bridge(claude("PreToolUse", "s"), "--agent", "claude-code", *args, key="k", url=url)
    assert denied["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert "--fail-closed" in denied["hookSpecificOutput"]["permissionDecisionReason"]
    cursor = bridge(cursor_write("c", "/r/a.ts"), "--agent", "cursor", *args, key="k", url=url)
    assert cursor["permission"] == "deny"
    start = bridge(claude("SessionStart", "s"), "--agent", "claude-code", *args, key="k", url=url)
    assert "hookSpecificOutput" not in start and "systemMessage" in start


def test_errors_from_the_service_fail_open_with_their_reason(service: Service) -> None:
    answer = bridge(
        claude("PreToolUse", "s"), "--agent", "claude-code", key="ek_wrong", url=service.url
    )
    assert "401: unauthorized: unknown API key" in answer["systemMessage"]


@pytest.mark.parametrize("stdin", [b"", b"not json", b"[1, 2]", b"\xff\xfe"])
def test_garbage_on_stdin_still_prints_valid_json(stdin: bytes) -> None:
    assert bridge(stdin, "--agent", "cursor") == {}


def test_slim_drops_bulky_fields_and_keeps_patch_headers() -> None:
    payload = {
        "hook_event_name": "PreToolUse",
        "tool_name": "apply_patch",
        "cwd": "/nonexistent",
        "tool_response": "x" * 1000,
        "transcript": "…",
        "tool_input": {"command": PATCH, "content": "y" * 1000},
    }
    sent = slim(payload, "codex")
    assert sent == {
        "hook_event_name": "PreToolUse",
        "tool_name": "apply_patch",
        "cwd": "/nonexistent",
        "tool_input": {"command": "*** Begin Patch\n*** Update File: src/a.ts\n*** End Patch"},
    }
    edit = slim(
        {
            "tool_name": "Edit",
            "cwd": "/nonexistent",
            "tool_input": {"file_path": "a", "old_string": "o", "new_string": "n"},
        },
        "claude-code",
    )
    assert edit["tool_input"] == {"file_path": "a"}


class Chunked(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for part in (b'{"permission":', b' "allow"}'):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_post_reads_chunked_answers() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Chunked)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook?agent=cursor"
        status, body = post(url, b"{}", {"Content-Type": "application/json"}, 2.0)
    finally:
        server.shutdown()
        server.server_close()
    assert (status, json.loads(body)) == (200, {"permission": "allow"})


def test_claude_codes_http_hooks_key_a_file_as_the_other_agents_do(
    service: Service, tmp_path: Path, real_redis_sync: Any
) -> None:
    """Claude Code runs in a subfolder of its checkout; its http hooks name no root, but
    its SessionStart went through the bridge, which found the git root."""
    repo = tmp_path / "a" / "Repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src" / "auth").mkdir(parents=True)
    cwd = str(repo / "src")
    cursor = cursor_write("cursor-1", "/home/b/repo/src/auth/login.ts")
    allowed = bridge(cursor, "--agent", "cursor", key=service.dev_b, url=service.url)
    assert allowed == {"permission": "allow"}
    start = claude("SessionStart", "claude-1", cwd=cwd, source="startup")
    started = bridge(start, "--agent", "claude-code", key=service.dev_a, url=service.url)
    assert "src/auth/login.ts (Developer B)" in started["hookSpecificOutput"]["additionalContext"]

    def edit(path: str) -> Any:
        """PreToolUse as Claude Code's http hook posts it: no bridge, no roots."""
        body = claude("PreToolUse", "claude-1", cwd=cwd, tool_name="Edit",
                      tool_input={"file_path": path})  # fmt: skip
        url = hook_url(service.url, "claude-code")
        headers = {"Authorization": f"Bearer {service.dev_a}"}
        answer = httpx.post(url, json=body, headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json().get("hookSpecificOutput", {})

    for path in (f"{cwd}/auth/login.ts", f"{cwd}/AUTH/Login.ts", "auth/login.ts"):
        denied = edit(path)
        assert denied["permissionDecision"] == "deny", path
        assert "reserved by Developer B" in denied["permissionDecisionReason"]
    assert "permissionDecision" not in edit(f"{cwd}/auth/token.ts")
    # The session goes idle (its TTL ran out); the roots its start named still hold.
    real_redis_sync.delete(*real_redis_sync.keys("coord:{acme}:session:*"))
    assert edit(f"{cwd}/auth/login.ts")["permissionDecision"] == "deny"
    listed = httpx.get(service.url + of_workspace(RESERVATIONS, "acme"),
                       headers={"Authorization": f"Bearer {service.dev_b}"}).json()  # fmt: skip
    assert sorted(r["file_path"] for r in listed) == ["src/auth/login.ts", "src/auth/token.ts"]
