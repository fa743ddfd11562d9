"""``coordinator status``: on fakeredis and a real Redis in-process, and as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from coordinator import cli
from coordinator.admin import Admin
from coordinator.app import create_app
from coordinator.config import Settings
from coordinator.errors import UsageError
from coordinator.models import digest_of, session_id_for
from coordinator.routes import DECIDE, HOOK
from coordinator.status import (
    CLEAR,
    SESSION_COLUMNS,
    Status,
    as_json,
    as_table,
    cut,
    duration,
    snapshot,
    table,
)
from coordinator.store import Store
from tests.helpers import bearer, coordinator
from tests.servers import free_port

TASK = "Build JWT auth flow"
FILE = "src/auth/deeply/nested/folders/login.ts"
HEADER = "coordinator status ·"


async def populate(redis: Redis, settings: Settings) -> list[str]:
    """Workspaces 'acme' and 'other'; in acme, through the service's hook route: B starts
    a session with a task and claims FILE, A is denied FILE, B records a decision.
    Returns the API keys made."""
    admin = Admin(redis, settings)
    await admin.create_workspace("acme", "Acme Inc")
    await admin.create_workspace("other")
    dev_a, _ = await admin.create_key("acme", "Developer A")
    dev_b, _ = await admin.create_key("acme", "Developer B")
    outsider, _ = await admin.create_key("other", "Outsider")
    await admin.aclose()
    app = create_app(settings, redis)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://coordinator"
    ) as http:

        async def hook(api_key: str, **body: Any) -> dict[str, Any]:
            response = await http.post(HOOK, headers=bearer(api_key), json=body)
            assert response.status_code == 200, response.text
            answer: dict[str, Any] = response.json()
            return answer

        await hook(dev_b, event="sessionStart", conversation_id="b", agent_type="cursor", task=TASK)
        assert await hook(dev_b, event="preToolUse", conversation_id="b", file_path=FILE) == {
            "permission": "allow"
        }
        denied = await hook(
            dev_a, event="PreToolUse", conversation_id="a", agent_type="claude-code",
            tool_name="Edit", tool_input={"file_path": FILE},
        )  # fmt: skip
        assert "reserved by Developer B" in str(denied)
        decided = await http.post(DECIDE, headers=bearer(dev_b), json={"text": "Use JWT for auth"})
        assert decided.status_code == 201
    await app.state.store.aclose()
    return [dev_a, dev_b, outsider]


def check_acme(acme: dict[str, Any], reservation_ttl_s: float = 600) -> None:
    """The JSON of workspace acme after ``populate``."""
    assert (acme["slug"], acme["name"]) == ("acme", "Acme Inc")
    assert acme["id"].startswith("ws_")
    sessions = {s["user_name"]: s for s in acme["sessions"]}
    assert set(sessions) == {"Developer A", "Developer B"} and acme["sessions_total"] == 2
    b, a = sessions["Developer B"], sessions["Developer A"]
    assert b["id"] == session_id_for("acme", "b")
    assert (b["agent_type"], b["current_task"], b["current_file"]) == ("cursor", TASK, FILE)
    assert b["reserved_files"] == [FILE]
    assert (a["agent_type"], a["current_file"], a["reserved_files"]) == ("claude-code", None, [])
    assert all(0 <= s["idle_s"] < 60 for s in sessions.values())

    [reservation] = acme["reservations"]
    assert acme["reservations_total"] == 1
    assert reservation["file_path"] == FILE
    assert reservation["session_id"] == session_id_for("acme", "b")  # not A, who was denied
    assert (reservation["user_name"], reservation["agent_type"]) == ("Developer B", "cursor")
    assert reservation["current_task"] == TASK
    assert 0 < reservation["expires_in_s"] <= reservation_ttl_s
    assert reservation["expires_in_s"] > reservation_ttl_s - 60  # just claimed

    [decision] = acme["decisions"]
    assert (decision["text"], decision["user_name"]) == ("Use JWT for auth", "Developer B")
    assert 0 <= decision["age_s"] < 60 and decision["created_at"].endswith("Z")


def assert_no_secrets(output: str, api_keys: list[str]) -> None:
    for api_key in api_keys:
        digest = digest_of(api_key)
        assert api_key not in output and api_key[3:] not in output
        assert digest[:16] not in output  # the key id, and so the digest too


# -- in-process, on fakeredis and on the real server -----------------------------------------


@pytest.mark.anyio
async def test_status_shows_sessions_reservations_and_decisions(
    redis: Redis, settings: Settings
) -> None:
    api_keys = await populate(redis, settings)
    admin = Admin(redis, settings)
    status = await snapshot(admin, None)
    await admin.aclose()

    text = as_json(status)
    found = json.loads(text)
    assert isinstance(found["now_ms"], int)
    assert [ws["slug"] for ws in found["workspaces"]] == ["acme", "other"]
    acme, other = found["workspaces"]
    check_acme(acme)
    assert 0 <= acme["now_ms"] - found["now_ms"] < 5_000
    assert (other["sessions"], other["reservations"], other["decisions"]) == ([], [], [])

    shown = as_table(status, 120)
    assert_no_secrets(text + shown, api_keys)
    lines = shown.splitlines()
    [b_line] = [line for line in lines if line.strip().startswith("Developer B  Cursor")]
    assert TASK in b_line and FILE in b_line and b_line.endswith("0s")
    [a_line] = [line for line in lines if line.strip().startswith("Developer A")]
    assert "Claude Code" in a_line
    header = next(line for line in lines if "HOLDER" in line)
    assert header.split() == ["FILE", "HOLDER", "TASK", "LEFT"]
    [held] = [line for line in lines if line.strip().startswith(FILE)]
    assert "Developer B (Cursor)" in held and TASK in held
    assert held.endswith(("10m 00s", "9m 59s", "9m 58s"))
    assert "0s ago  Developer B  Use JWT for auth" in shown
    # The empty workspace says so, section by section.
    other_block = shown[shown.index("\nother (") :]
    for empty in ("no active sessions", "no reservations", "no decisions yet"):
        assert empty in other_block


@pytest.mark.anyio
async def test_workspace_filter_by_slug_or_id_and_unknown_ones(
    redis: Redis, settings: Settings
) -> None:
    await populate(redis, settings)
    admin = Admin(redis, settings)
    only = await snapshot(admin, "other")
    assert [ws.slug for ws in only.workspaces] == ["other"]
    by_id = await snapshot(admin, only.workspaces[0].id)
    assert [ws.slug for ws in by_id.workspaces] == ["other"]
    for ref, message in [("nope", "no workspace 'nope'"), ("Bad_Slug", "neither a workspace")]:
        with pytest.raises(UsageError, match=message) as caught:
            await snapshot(admin, ref)
        assert caught.value.exit_code == 2
    await admin.aclose()


@pytest.mark.anyio
async def test_sessions_then_reservations_disappear_when_their_ttls_run_out(
    redis: Redis,
) -> None:
    settings = Settings(rate_per_s=0, session_ttl_ms=1_000, reservation_ttl_ms=2_000)
    await populate(redis, settings)
    admin = Admin(redis, settings)
    started = time.monotonic()
    [acme] = (await snapshot(admin, "acme")).workspaces
    [reservation] = acme.reservations
    assert 0 < reservation.expires_in_s <= 2.0
    assert len(acme.sessions) == 2

    await asyncio.sleep(1.2 - (time.monotonic() - started))
    [acme] = (await snapshot(admin, "acme")).workspaces
    # Reservations outlive their sessions (SPEC_NOTES).
    assert (acme.sessions, acme.sessions_total) == ([], 0)
    assert [r.file_path for r in acme.reservations] == [FILE]
    assert "no active sessions" in as_table((await snapshot(admin, "acme")), 100)

    await asyncio.sleep(2.2 - (time.monotonic() - started))
    [acme] = (await snapshot(admin, "acme")).workspaces
    assert (acme.reservations, acme.reservations_total) == ([], 0)
    assert [d.text for d in acme.decisions] == ["Use JWT for auth"]  # decisions stay
    await admin.aclose()


@pytest.mark.anyio
async def test_workspaces_are_found_by_their_records_only(redis: Redis, settings: Settings) -> None:
    api_keys = await populate(redis, settings)
    store = Store(redis, settings)
    admin = Admin(redis, settings)
    # A lock on a path ending in "}:workspace" matches the SCAN pattern too.
    who = await store.principal(digest_of(api_keys[1]))
    assert who is not None
    sid = session_id_for("acme", "sly")
    await store.touch(who, sid, "sly", {"user_name": "Developer B"}, ["x}:workspace"])
    assert await admin.workspace_slugs() == ["acme", "other"]
    await store.aclose()
    await admin.aclose()


@pytest.mark.anyio
async def test_sections_are_capped_with_their_totals(redis: Redis, settings: Settings) -> None:
    api_keys = await populate(redis, settings)
    store = Store(redis, settings)
    admin = Admin(redis, settings)
    who = await store.principal(digest_of(api_keys[0]))
    assert who is not None
    sid = session_id_for("acme", "a")
    await store.touch(who, sid, "a", {"user_name": "Developer A"}, ["one.ts", "two.ts"])
    ws = await admin.workspace("acme")
    assert ws is not None
    capped = await admin.status(ws, rows=1, decisions=5)
    assert (len(capped.sessions), capped.sessions_total) == (1, 2)
    assert (len(capped.reservations), capped.reservations_total) == (1, 3)
    shown = as_table(Status(capped.now_ms, [capped]), 120)
    assert "Sessions (2)" in shown and "… and 1 more" in shown
    assert "Reservations (3)" in shown and "… and 2 more" in shown
    await store.aclose()
    await admin.aclose()


# -- pure formatting --------------------------------------------------------------------------


def test_durations_and_cuts() -> None:
    assert [duration(s) for s in (0.4, 42.9, 192, 3600 * 2 + 300, 86400 * 3 + 3600 * 4)] == [
        "0s", "42s", "3m 12s", "2h 05m", "3d 04h",
    ]  # fmt: skip
    assert duration(0.2, up=True) == "1s" and duration(245, up=True) == "4m 05s"
    assert cut("src/a/b/login.ts", 10, keep_end=True) == "…/login.ts"
    assert cut("Build the thing", 8) == "Build t…"
    assert cut("short", 10) == "short"


def test_a_narrow_terminal_cuts_tasks_and_paths_not_names_or_times() -> None:
    columns = SESSION_COLUMNS
    long_task = "Refactor the whole authentication layer to use refresh tokens"
    rows = [["Developer B", "Cursor", long_task, FILE, "3m 12s"]]
    for width in (120, 60, 48):
        lines = table(columns, rows, width)
        assert all(len(line) <= width for line in lines), (width, lines)
        assert lines[1].startswith("Developer B  Cursor") and lines[1].endswith("3m 12s")
        assert lines[1].endswith("ogin.ts  3m 12s")  # a path keeps its end
    assert long_task in table(columns, rows, 200)[1]
    assert "…" in table(columns, rows, 60)[1]


@pytest.mark.anyio
async def test_escape_sequences_from_agents_never_reach_the_terminal(
    redis: Redis, settings: Settings
) -> None:
    api_keys = await populate(redis, settings)
    store = Store(redis, settings)
    admin = Admin(redis, settings)
    who = await store.principal(digest_of(api_keys[0]))
    assert who is not None
    sid = session_id_for("acme", "evil")
    fields = {"user_name": "Developer A", "current_task": "\x1b[2J\x1b]0;pwned\x07task"}
    await store.touch(who, sid, "evil", fields, ["a\x1b[31m.ts"])
    shown = as_table(await snapshot(admin, "acme"), 200)
    assert "\x1b" not in shown and "\x07" not in shown
    assert "[2J" in shown  # shown, but harmless
    await store.aclose()
    await admin.aclose()


# -- the command, in-process and as a process, on the real server ----------------------------


async def populate_real(redis_url: str) -> list[str]:
    redis = Redis.from_url(redis_url, decode_responses=True)
    try:
        return await populate(redis, Settings(redis_url=redis_url, rate_per_s=0))
    finally:
        await redis.aclose()


def test_the_command_in_process(
    redis_url: str,
    real_redis_sync: SyncRedis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api_keys = asyncio.run(populate_real(redis_url))
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("COLUMNS", "64")
    assert cli.main(["status", "--workspace", "acme"]) == 0
    shown = capsys.readouterr().out
    assert "Developer B" in shown and "Developer A" in shown and "…" in shown
    assert "\nother (" not in shown  # filtered
    assert all(len(line) <= 64 for line in shown.splitlines()), shown
    assert "LEFT" in shown and ("10m 00s" in shown or "9m 5" in shown)
    assert_no_secrets(shown, api_keys)

    assert cli.main(["status", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    check_acme(found["workspaces"][0])

    assert cli.main(["status", "--workspace", "nope"]) == 2
    done = capsys.readouterr()
    assert done.out == ""
    assert (
        done.err == "coordinator: no workspace 'nope'; `coordinator workspaces create` makes one\n"
    )


def test_the_command_as_a_process(redis_url: str, real_redis_sync: SyncRedis) -> None:
    api_keys = asyncio.run(populate_real(redis_url))
    done = coordinator("status", "--json", redis_url=redis_url)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert [ws["slug"] for ws in found["workspaces"]] == ["acme", "other"]
    check_acme(found["workspaces"][0])
    table_done = coordinator("status", redis_url=redis_url)
    assert table_done.returncode == 0 and "Developer B (Cursor)" in table_done.stdout
    assert_no_secrets(done.stdout + done.stderr + table_done.stdout, api_keys)

    unknown = coordinator("status", "--workspace", "nope", redis_url=redis_url)
    assert (unknown.returncode, unknown.stdout) == (2, "")
    assert "no workspace 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr
    no_redis = subprocess.run(
        [sys.executable, "-m", "coordinator", "status"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "REDIS_URL"},
        timeout=30,
    )
    assert no_redis.returncode == 1 and "REDIS_URL is not set" in no_redis.stderr
    down = coordinator("status", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    assert (down.returncode, down.stdout) == (1, "")
    assert "Redis is unreachable" in down.stderr and "Traceback" not in down.stderr


def watch(redis_url: str, *args: str, stdout: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "coordinator", "status", "--watch", "0.2", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        env={**os.environ, "REDIS_URL": redis_url},
    )


def read_until(read: Any, marker: bytes, count: int, timeout: float = 20.0) -> bytes:
    """What ``read()`` gives until ``marker`` appeared ``count`` times (or the time is up)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while seen.count(marker) < count and time.monotonic() < deadline:
        chunk = read()
        if not chunk:
            break
        seen += chunk
    return seen


def test_watch_redraws_until_ctrl_c(redis_url: str, real_redis_sync: SyncRedis) -> None:
    asyncio.run(populate_real(redis_url))
    process = watch(redis_url, stdout=subprocess.PIPE)
    guard = threading.Timer(30, process.kill)  # a hung process fails, never hangs, the test
    guard.start()
    try:
        assert process.stdout is not None
        seen = read_until(process.stdout.readline, HEADER.encode(), 2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        guard.cancel()
    assert seen.count(HEADER.encode()) >= 2, seen
    assert b"Developer B (Cursor)" in seen
    assert b"\x1b" not in seen  # not a terminal: no clearing
    assert process.returncode == 0, err
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err


def test_watch_clears_the_screen_on_a_terminal(redis_url: str, real_redis_sync: SyncRedis) -> None:
    asyncio.run(populate_real(redis_url))
    main, sub = pty.openpty()
    process = watch(redis_url, "--workspace", "acme", stdout=sub)
    os.close(sub)
    guard = threading.Timer(30, process.kill)
    guard.start()
    try:
        seen = read_until(lambda: os.read(main, 65536), CLEAR.encode(), 2)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        guard.cancel()
        os.close(main)
    assert seen.count(CLEAR.encode()) >= 2 and b"Developer B" in seen
    assert process.returncode == 0 and b"Traceback" not in err, err


def test_watch_json_is_one_document_a_line(redis_url: str, real_redis_sync: SyncRedis) -> None:
    asyncio.run(populate_real(redis_url))
    process = watch(redis_url, "--json", stdout=subprocess.PIPE)
    guard = threading.Timer(30, process.kill)
    guard.start()
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        guard.cancel()
    first, second = (json.loads(line) for line in lines)
    assert second["now_ms"] > first["now_ms"]
    check_acme(second["workspaces"][0])
    assert process.returncode == 0, err
