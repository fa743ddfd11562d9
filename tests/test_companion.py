"""``coordinator mcp``, the companion: a real stdio subprocess driven by the MCP SDK's own
client, against a real ``coordinator serve`` on a real Redis."""

from __future__ import annotations

import itertools
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters
from mcp_types import CallToolResult, TextContent

from coordinator import routes
from tests.helpers import Service, bearer
from tests.servers import free_port

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def companion(url: str, api_key: str | None) -> AsyncIterator[Client]:
    """The companion as an agent starts it, and the SDK's client talking to it."""
    env = {"COORDINATOR_CONFIG": "/nonexistent/bridge.json"}
    if api_key is not None:
        env["COORDINATOR_API_KEY"] = api_key
    command = ["-m", "coordinator", "mcp", "--url", url, "--timeout", "5"]
    params = StdioServerParameters(command=sys.executable, args=command, env=env)
    async with Client(params) as client:
        yield client


def text_of(result: CallToolResult) -> str:
    [content] = result.content
    assert isinstance(content, TextContent)
    return content.text


async def hook(client: Client, **fields: str) -> dict[str, Any]:
    """A Codex hook event through the companion, as Codex's ``mcp_tool`` hook sends it."""
    result = await client.call_tool("hook", fields)
    assert not result.is_error, text_of(result)
    answer: dict[str, Any] = json.loads(text_of(result))
    return answer


def patch_of(*paths: str) -> str:
    return "".join(
        ["*** Begin Patch\n", *(f"*** Add File: {p}\n+x\n" for p in paths), "*** End Patch\n"]
    )


CALLS = itertools.count(1)


async def write(client: Client, session: str, repo: Path, *paths: str) -> dict[str, Any]:
    return await hook(
        client,
        hook_event_name="PreToolUse",
        session_id=session,
        cwd=str(repo),
        tool_name="apply_patch",
        command=patch_of(*paths),
        tool_use_id=f"call_{next(CALLS)}",  # each write a new tool call, as Codex's are
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    return tmp_path / "repo"


async def test_it_offers_its_tools(service: Service) -> None:
    async with companion(service.url, service.dev_a) as client:
        listed = await client.list_tools()
    assert {tool.name for tool in listed.tools} == {
        "team_status",
        "decide",
        "reserve",
        "release",
        "request_file",
        "hook",
    }


async def call(client: Client, tool: str, **arguments: Any) -> tuple[bool, str]:
    """A tool's call: whether it failed, and its text."""
    result = await client.call_tool(tool, arguments)
    return result.is_error, text_of(result)


async def test_reserve_request_and_release_through_it(service: Service, repo: Path) -> None:
    async with (
        companion(service.url, service.dev_a) as holder,
        companion(service.url, service.dev_b) as other,
    ):
        # Each learns its conversation from the hook it forwarded (Codex's SessionStart).
        for client, session in ((holder, "conv-a"), (other, "conv-b")):
            await hook(client, hook_event_name="SessionStart", session_id=session, cwd=str(repo))
        failed, reserved = await call(holder, "reserve", paths=["src/api/"], task="Rework")
        assert not failed and reserved.startswith("Reserved for you until at least ")
        assert "src/api/." in reserved
        denied = await write(other, "conv-b", repo, "src/api/h.py")
        reason = denied["hookSpecificOutput"]["permissionDecisionReason"]
        assert reason == (
            "File src/api/h.py is reserved by Developer A — 'Rework' (10 min remaining, as "
            "part of src/api/). Work on something else, or call request_file to be next in line."
        )
        failed, queued = await call(other, "request_file", path="src/api/h.py", note="tests")
        assert not failed
        assert queued.startswith(
            "You are number 1 in line for src/api/h.py (held by Developer A as part of src/api/)"
        )
        mine = await call(holder, "team_status")
        assert "- Developer B wait(s) for src/api/h.py, which you hold: " in mine[1]
        theirs = await call(other, "team_status")
        assert "- you wait for src/api/h.py (number 1 in line; held by Developer A)" in theirs[1]
        assert await call(holder, "release") == (
            False,
            "Released: src/api/. Anyone waiting for them is told.",
        )
        assert await call(holder, "release") == (False, "You held nothing to release.")
        assert await write(other, "conv-b", repo, "src/api/h.py") == {}


BAD_CLAIMS: list[tuple[str, dict[str, Any], str]] = [
    ("reserve", {"paths": ["src/{a,b}.py"]}, "brace alternatives are not supported"),
    ("reserve", {"paths": ["src/[ab.py"]}, "never closes"),
    ("reserve", {"paths": [f"f{i}.py" for i in range(101)]}, "at most 100 paths"),
    ("reserve", {"paths": []}, "paths is empty"),
    ("reserve", {"paths": ["../../etc/passwd"]}, "is outside every root"),
    ("release", {"paths": ["src/x.py"]}, "you do not hold src/x.py"),
    ("request_file", {"path": "src/free.py"}, "Nobody holds src/free.py: nothing to request"),
    ("request_file", {"path": "src/"}, "request_file takes one file"),
    ("request_file", {"path": " "}, "path is empty"),
]


async def test_a_bad_claim_is_a_clear_tool_error(service: Service, repo: Path) -> None:
    async with companion(service.url, service.dev_a) as client:
        failed, said = await call(client, "reserve", paths=["a.py"])
        assert failed and "this agent's session is not known yet" in said
        await hook(client, hook_event_name="SessionStart", session_id="conv-a", cwd=str(repo))
        for tool, arguments, message in BAD_CLAIMS:
            failed, said = await call(client, tool, **arguments)
            assert failed, (tool, arguments)
            assert message in said, (tool, said)
            assert "Traceback" not in said


async def test_a_codex_hook_through_it_is_denied_a_file_another_conversation_holds(
    service: Service, repo: Path
) -> None:
    async with (
        companion(service.url, service.dev_a) as holder,
        companion(service.url, service.dev_b) as other,
    ):
        assert await write(holder, "conv-a", repo, "src/app.py") == {}
        denied = await write(other, "conv-b", repo, "src/app.py", "src/new.py")
        output = denied["hookSpecificOutput"]
        assert output["hookEventName"] == "PreToolUse"
        assert output["permissionDecision"] == "deny"
        assert "File src/app.py is reserved by Developer A" in output["permissionDecisionReason"]
        started = await hook(
            other, hook_event_name="SessionStart", session_id="conv-b", cwd=str(repo)
        )
    briefing = started["hookSpecificOutput"]["additionalContext"]
    assert "src/app.py (Developer A)" in briefing
    listed = httpx.get(
        service.url + routes.of_workspace(routes.RESERVATIONS, "acme"),
        headers=bearer(service.dev_a),
    ).json()
    # All-or-nothing: the denied patch claimed neither of its files.
    assert [(r["file_path"], r["user_name"]) for r in listed] == [("src/app.py", "Developer A")]


async def test_a_decision_is_recorded_with_its_kind_and_briefed_to_the_next_session(
    service: Service, repo: Path
) -> None:
    async with companion(service.url, service.dev_a) as client:
        result = await client.call_tool(
            "decide", {"text": "Auth uses  JWT,\nnot sessions", "kind": "architecture"}
        )
        assert not result.is_error, text_of(result)
        assert (
            text_of(result) == "Recorded for team acme: [architecture] Auth uses JWT, not sessions"
        )
    async with companion(service.url, service.dev_b) as client:
        started = await hook(
            client, hook_event_name="SessionStart", session_id="conv-b", cwd=str(repo)
        )
    assert "[architecture] Auth uses JWT, not sessions" in json.dumps(started)


BAD_DECISIONS = [
    ({"text": "Use tabs", "kind": "style"}, "kind 'style' is not one of architecture,"),
    ({"text": " \n "}, "text is empty"),
    ({"text": "x" * 600}, "at most 500 are kept"),
    ({}, "text"),  # the schema's own refusal
]


async def test_a_bad_decision_is_a_clear_tool_error(service: Service) -> None:
    async with companion(service.url, service.dev_a) as client:
        for arguments, message in BAD_DECISIONS:
            result = await client.call_tool("decide", arguments)
            assert result.is_error, arguments
            assert message in text_of(result)
            assert "Traceback" not in text_of(result)
        status = await client.call_tool("team_status", {})
    assert "No decisions recorded yet." in text_of(status)


async def test_team_status_groups_the_teams_files_and_says_what_i_hold(
    service: Service, repo: Path
) -> None:
    async with (
        companion(service.url, service.dev_a) as mine,
        companion(service.url, service.dev_b) as theirs,
    ):
        await hook(
            theirs,
            hook_event_name="UserPromptSubmit",
            session_id="conv-b",
            cwd=str(repo),
            prompt="Build the JWT auth flow\nwith refresh tokens",
        )
        auth = [f"src/auth/{name}.py" for name in ("login", "jwt", "tokens", "util", "views")]
        await write(theirs, "conv-b", repo, *auth, "README.md")
        await write(mine, "conv-a", repo, "src/app.py")
        await mine.call_tool("decide", {"text": "Errors are JSON objects", "kind": "convention"})
        status = text_of(await mine.call_tool("team_status", {}))
    lines = status.splitlines()
    assert lines[0] == "Team acme · you are Developer A · 2 agents active · 7 files reserved"
    # This companion learnt its session from the hook it forwarded: the list is the others.
    assert (
        "- Developer B (codex) — 'Build the JWT auth flow' — on src/auth/login.py — seen just now"
        in lines
    )
    assert (
        "- Developer B ('Build the JWT auth flow'): src/auth/ (5 files: jwt.py, login.py, "
        "tokens.py, …), README.md" in lines
    )
    assert "You hold: src/app.py (10 min left)" in lines
    assert "- [convention] Errors are JSON objects — Developer A, just now" in lines


async def test_without_an_api_key_it_starts_and_says_what_to_set(service: Service) -> None:
    async with companion(service.url, None) as client:
        status = await client.call_tool("team_status", {})
        answer = await hook(client, hook_event_name="PreToolUse", session_id="c", cwd="/tmp")
    assert status.is_error
    assert "no API key: set COORDINATOR_API_KEY" in text_of(status)
    # A hook fails open, as the bridge does: go ahead, with a visible warning.
    assert "no API key" in answer["systemMessage"]
    assert "hookSpecificOutput" not in answer


async def test_when_the_service_is_down_tools_fail_clearly_and_hooks_fail_open() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with companion(url, "ek_whatever") as client:
        status = await client.call_tool("team_status", {})
        answer = await hook(client, hook_event_name="PreToolUse", session_id="c", cwd="/tmp")
    assert status.is_error
    assert f"cannot reach the service at {url}" in text_of(status)
    assert "Traceback" not in text_of(status)
    assert f"cannot reach the service at {url}" in answer["systemMessage"]


async def test_a_refused_key_is_named_in_the_tool_error(service: Service) -> None:
    async with companion(service.url, "ek_not-a-key") as client:
        result = await client.call_tool("decide", {"text": "Use tabs"})
    assert result.is_error
    assert "coordinator: " in text_of(result)
    assert "key" in text_of(result).lower()


async def test_a_codex_subagents_turn_is_known_from_its_start(service: Service, repo: Path) -> None:
    """Codex's hooks cannot name ``${agent_id}`` (a parent's events lack it): a subagent's
    events name their turn, which its SubagentStart told the companion."""
    async with companion(service.url, service.dev_a) as client:
        start = {"hook_event_name": "SubagentStart", "session_id": "conv-a", "cwd": str(repo)}
        assert (
            await hook(client, **start, agent_id="kid-1", agent_type="worker", turn_id="t-9") == {}
        )

        async def write_in(turn: str) -> dict[str, Any]:
            return await hook(
                client,
                hook_event_name="PreToolUse",
                session_id="conv-a",
                cwd=str(repo),
                tool_name="apply_patch",
                command=patch_of("src/app.py"),
                tool_use_id="call_1",
                turn_id=turn,
            )

        assert await write_in("t-9") == {}  # the subagent's turn: the subagent claims it
        denied = await write_in("t-1")  # the parent's own turn: denied while the child runs
        reason = denied["hookSpecificOutput"]["permissionDecisionReason"]
        assert 'reserved by Developer A\'s subagent "worker"' in reason


CALLS = itertools.count(1)
SOURCE = "def refresh_token(u):\n    return u\n\n\ndef revoke_token(u):\n    return None\n"


async def claude_edit(client: Client, session: str, repo: Path, old: str, new: str) -> Any:
    """Claude Code's Edit through the companion, as its mcp_tool hook sends it."""
    tool_input = {"file_path": str(repo / "tokens.py"), "old_string": old, "new_string": new}
    return await hook(
        client,
        hook_event_name="PreToolUse",
        session_id=session,
        cwd=str(repo),
        tool_name="Edit",
        tool_input=json.dumps(tool_input),
        tool_use_id=f"toolu_{next(CALLS)}",  # each edit a tool call of its own
        agent="claude-code",
    )


async def test_claude_code_edits_through_it_claim_symbols(service: Service, repo: Path) -> None:
    (repo / "tokens.py").write_text(SOURCE)
    async with (
        companion(service.url, service.dev_a) as a,
        companion(service.url, service.dev_b) as b,
    ):
        assert await claude_edit(a, "conv-a", repo, "return u", "return u + 1") == {}
        assert await claude_edit(b, "conv-b", repo, "return None", "return 0") == {}
        denied = await claude_edit(b, "conv-b", repo, "return u", "return u - 1")
        reason = denied["hookSpecificOutput"]["permissionDecisionReason"]
        assert reason.startswith("Function refresh_token in tokens.py is reserved by Developer A")
        bad = await a.call_tool(
            "hook", {"hook_event_name": "PreToolUse", "session_id": "c", "agent": "gpt"}
        )
        assert bad.is_error and "not one of" in text_of(bad)
    listed = httpx.get(
        service.url + routes.of_workspace(routes.RESERVATIONS, "acme"),
        headers=bearer(service.dev_a),
    ).json()
    assert sorted((r["symbol"], r["user_name"]) for r in listed) == [
        ("refresh_token", "Developer A"),
        ("revoke_token", "Developer B"),
    ]
