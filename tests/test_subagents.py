"""Parallel subagents of one session: each holds files as (conversation, agent id), on
fakeredis and a real Redis, through the hook route as the agents send their events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from coordinator import keys, status
from coordinator.admin import Admin
from coordinator.app import create_app
from coordinator.config import Settings
from coordinator.models import session_id_for, subagent_id_for
from coordinator.routes import RESERVATIONS, SESSIONS, of_workspace
from tests.helpers import Team, bearer, send_hook

pytestmark = pytest.mark.anyio
ROOT = "/home/a/repo"


def claude(event: str, session: str = "conv-a", **fields: Any) -> dict[str, Any]:
    return {"session_id": session, "cwd": ROOT, "hook_event_name": event, **fields}


def sub(event: str, agent_id: str, session: str = "conv-a", **fields: Any) -> dict[str, Any]:
    """An event of the subagent ``agent_id`` of the conversation ``session``."""
    return claude(event, session, agent_id=agent_id, agent_type="general-purpose", **fields)


def write(path: str) -> dict[str, Any]:
    return {"tool_name": "Write", "tool_input": {"file_path": f"{ROOT}/{path}", "content": "x"}}


async def send(client: httpx.AsyncClient, key: str, body: dict[str, Any]) -> Any:
    return await send_hook(client, key, body, agent="claude-code")


async def edit(client: httpx.AsyncClient, key: str, body: dict[str, Any]) -> str | None:
    """The deny reason of a PreToolUse (None: allowed)."""
    answer = await send(client, key, body)
    if not answer:
        return None
    decision = answer["hookSpecificOutput"]
    assert decision["permissionDecision"] == "deny"
    return str(decision["permissionDecisionReason"])


async def start_two(client: httpx.AsyncClient, key: str) -> None:
    """Developer A's conversation starts two subagents, as Claude Code does."""
    await send(client, key, claude("UserPromptSubmit", prompt="Split the auth work"))
    for agent_id, task in (("a1", "Refactor the login"), ("a2", "Write the docs")):
        agent: dict[str, Any] = {
            "tool_name": "Agent",
            "tool_input": {"description": task, "prompt": "..."},
        }
        assert await send(client, key, claude("PreToolUse", **agent)) == {}
        assert await send(client, key, sub("SubagentStart", agent_id)) == {}


async def holders(client: httpx.AsyncClient, key: str) -> dict[str, str]:
    listed = await client.get(of_workspace(RESERVATIONS, "acme"), headers=bearer(key))
    return {r["file_path"]: r["session_id"] for r in listed.json()}


PARENT = session_id_for("acme", "conv-a")
A1 = subagent_id_for("acme", "conv-a", "a1")
A2 = subagent_id_for("acme", "conv-a", "a2")


def test_a_subagents_session_is_its_own_and_stable() -> None:
    assert A1 == subagent_id_for("acme", "conv-a", "a1")
    assert len({PARENT, A1, A2, subagent_id_for("acme", "conv-b", "a1")}) == 4
    # Never a conversation's own session, whatever the conversation id.
    assert A1 != session_id_for("acme", "conv-a\0a1")


async def test_a_running_subagents_file_denies_its_siblings_and_its_parent(
    client: httpx.AsyncClient, team: Team
) -> None:
    await start_two(client, team.dev_a)
    assert await edit(client, team.dev_a, sub("PreToolUse", "a1", **write("src/x.py"))) is None
    # Its own later edits, and the same file under another spelling, are its own.
    assert await edit(client, team.dev_a, sub("PreToolUse", "a1", **write("src/X.py"))) is None
    expected = (
        'File src/x.py is reserved by Developer A\'s subagent "general-purpose" — '
        "'Refactor the login' (10 min remaining)"
    )
    assert await edit(client, team.dev_a, sub("PreToolUse", "a2", **write("src/x.py"))) == expected
    assert await edit(client, team.dev_a, claude("PreToolUse", **write("src/x.py"))) == expected
    assert await edit(client, team.dev_b, claude("PreToolUse", "conv-b", **write("src/x.py")))
    assert await holders(client, team.dev_a) == {"src/x.py": A1}


async def test_a_subagent_may_edit_what_its_parent_holds(
    client: httpx.AsyncClient, team: Team
) -> None:
    await send(client, team.dev_b, claude("PreToolUse", "conv-b", **write("src/b.py")))
    await send(client, team.dev_a, claude("PreToolUse", **write("src/p.py")))
    await start_two(client, team.dev_a)
    assert await edit(client, team.dev_a, sub("PreToolUse", "a1", **write("src/p.py"))) is None
    # It took the file over: while it runs, its sibling is denied it.
    denied = await edit(client, team.dev_a, sub("PreToolUse", "a2", **write("src/p.py")))
    assert denied and "'Refactor the login'" in denied
    # Another session's holdings deny a subagent as they deny its parent.
    denied = await edit(client, team.dev_a, sub("PreToolUse", "a2", **write("src/b.py")))
    assert denied == "File src/b.py is reserved by Developer B (10 min remaining)"


async def test_at_its_stop_a_subagents_files_pass_to_its_parent(
    client: httpx.AsyncClient, team: Team, redis: Redis
) -> None:
    await start_two(client, team.dev_a)
    await edit(client, team.dev_a, sub("PreToolUse", "a1", **write("src/x.py")))
    await edit(client, team.dev_a, sub("PreToolUse", "a1", **write("src/y.py")))
    stop = sub("SubagentStop", "a1", stop_hook_active=False, last_assistant_message="done")
    assert await send(client, team.dev_a, stop) == {}
    assert await holders(client, team.dev_a) == {"src/x.py": PARENT, "src/y.py": PARENT}
    assert await redis.smembers(keys.files("acme", PARENT)) == {"src/x.py", "src/y.py"}
    assert not await redis.exists(keys.session("acme", A1), keys.files("acme", A1))
    assert 590_000 < await redis.pttl(keys.lock("acme", "src/x.py")) <= 600_000
    assert await redis.pttl(keys.holder("acme", PARENT)) > 590_000
    # Its sibling and its parent may edit them again; another developer is still denied,
    # by the parent's name now.
    assert await edit(client, team.dev_a, sub("PreToolUse", "a2", **write("src/x.py"))) is None
    assert await edit(client, team.dev_a, claude("PreToolUse", **write("src/y.py"))) is None
    denied = await edit(client, team.dev_b, claude("PreToolUse", "conv-b", **write("src/y.py")))
    assert denied == (
        "File src/y.py is reserved by Developer A — 'Split the auth work' (10 min remaining)"
    )
    # A stop again (a retry) changes nothing.
    assert await send(client, team.dev_a, stop) == {}
    assert await holders(client, team.dev_a) == {"src/x.py": A2, "src/y.py": PARENT}


async def test_a_subagent_without_an_announced_task_is_named_by_its_type(
    client: httpx.AsyncClient, team: Team
) -> None:
    await send(client, team.dev_a, sub("SubagentStart", "a9"))
    await edit(client, team.dev_a, sub("PreToolUse", "a9", **write("src/z.py")))
    denied = await edit(client, team.dev_a, claude("PreToolUse", **write("src/z.py")))
    assert denied == (
        'File src/z.py is reserved by Developer A\'s subagent "general-purpose" (10 min remaining)'
    )


async def test_the_parents_end_ends_its_subagents(
    client: httpx.AsyncClient, team: Team, redis: Redis
) -> None:
    await start_two(client, team.dev_a)
    await edit(client, team.dev_a, sub("PreToolUse", "a1", **write("src/x.py")))
    await edit(client, team.dev_a, sub("PreToolUse", "a2", **write("src/y.py")))
    await edit(client, team.dev_a, claude("PreToolUse", **write("src/p.py")))
    assert await send(client, team.dev_a, claude("SessionEnd", reason="exit")) == {}
    assert await holders(client, team.dev_a) == {}
    assert not await redis.exists(
        keys.session("acme", A1), keys.session("acme", A2), keys.subagents("acme", PARENT)
    )
    other = claude("PreToolUse", "conv-b", **write("src/x.py"))
    assert await edit(client, team.dev_b, other) is None


@pytest.fixture
async def lapsing(redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """The service where sessions lapse after 0.4 s idle; reservations last 10 s."""
    app = create_app(Settings(rate_per_s=0, session_ttl_ms=400, reservation_ttl_ms=10_000), redis)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coordinator") as http:
        yield http
    await app.state.store.aclose()


async def test_a_lapsed_subagents_files_are_its_parents(
    lapsing: httpx.AsyncClient, team: Team, redis: Redis
) -> None:
    client = lapsing
    await start_two(client, team.dev_a)
    await edit(client, team.dev_a, sub("PreToolUse", "a1", **write("src/x.py")))
    await edit(client, team.dev_a, sub("PreToolUse", "a2", **write("src/y.py")))
    denied = await edit(client, team.dev_a, sub("PreToolUse", "a2", **write("src/x.py")))
    assert denied and "subagent" in denied
    for _ in range(50):  # the subagents lapse (Redis expires keys on its own clock)
        if not await redis.exists(keys.session("acme", A1), keys.session("acme", A2)):
            break
        await asyncio.sleep(0.1)
    # Their locks outlive them; a sibling or the parent may take them, nobody else.
    assert await holders(client, team.dev_a) == {"src/x.py": A1, "src/y.py": A2}
    denied = await edit(client, team.dev_b, claude("PreToolUse", "conv-b", **write("src/x.py")))
    assert denied == (
        'File src/x.py is reserved by Developer A\'s subagent "general-purpose" — '
        "'Refactor the login' (1 min remaining)"
    )
    assert await edit(client, team.dev_a, claude("PreToolUse", **write("src/y.py"))) is None
    assert await edit(client, team.dev_a, sub("PreToolUse", "a2", **write("src/x.py"))) is None
    assert await holders(client, team.dev_a) == {"src/x.py": A2, "src/y.py": PARENT}


async def test_revoking_the_key_ends_its_subagents(
    client: httpx.AsyncClient, team: Team, admin: Admin, redis: Redis
) -> None:
    await start_two(client, team.dev_a)
    await edit(client, team.dev_a, sub("PreToolUse", "a1", **write("src/x.py")))
    await send(client, team.dev_a, sub("UserPromptSubmit", "a2", prompt="go"))
    revoked = await admin.revoke_key(team.dev_a)
    assert revoked.sessions_ended == 3
    assert revoked.files_released == 1
    assert await holders(client, team.dev_b) == {}
    assert not await redis.exists(keys.session("acme", A1), keys.session("acme", A2))


async def test_subagents_are_listed_with_their_parent(
    client: httpx.AsyncClient, team: Team
) -> None:
    await start_two(client, team.dev_a)
    await edit(client, team.dev_a, sub("PreToolUse", "a1", **write("src/x.py")))
    listed = await client.get(of_workspace(SESSIONS, "acme"), headers=bearer(team.dev_a))
    rows = {s["id"]: s for s in listed.json()}
    assert rows[A1]["parent_session_id"] == PARENT
    assert rows[A1]["subagent_type"] == "general-purpose"
    assert rows[A1]["agent_id"] == "a1"
    assert rows[A1]["current_task"] == "Refactor the login"
    assert rows[A1]["reserved_files"] == ["src/x.py"]
    assert rows[A2]["current_task"] == "Write the docs"
    assert rows[PARENT]["parent_session_id"] is None
    held = await client.get(of_workspace(RESERVATIONS, "acme"), headers=bearer(team.dev_a))
    (row,) = held.json()
    assert row["parent_session_id"] == PARENT
    assert row["subagent_type"] == "general-purpose"


async def test_status_and_briefings_show_subagents_under_their_parent(
    client: httpx.AsyncClient, team: Team, admin: Admin
) -> None:
    await send(client, team.dev_b, claude("SessionStart", "conv-b"))
    await start_two(client, team.dev_a)
    await edit(client, team.dev_a, sub("PreToolUse", "a1", **write("src/x.py")))
    table = status.as_table(await status.snapshot(admin, "acme"), 200)
    rows = [line.split() for line in table.splitlines()]
    # Each subagent's row right under its parent's.
    parent_row = next(i for i, row in enumerate(rows) if "Split" in row)
    assert rows[parent_row + 1][:3] == ["└", "subagent", "general-purpose"]
    assert rows[parent_row + 2][:3] == ["└", "subagent", "general-purpose"]
    assert "Developer A's general-purpose" in table  # x.py's holder
    briefing = await send(client, team.dev_b, claude("SessionStart", "conv-b"))
    context = briefing["hookSpecificOutput"]["additionalContext"]
    assert 'Developer A\'s subagent "general-purpose" (Claude Code): Refactor the login' in context


def write_symbols(path: str, *names: str) -> dict[str, Any]:
    """A write of ``path`` whose edit the agent side mapped to ``names``."""
    return {**write(path), "symbols": {f"{ROOT}/{path}": list(names)}}


async def test_subagents_claim_symbols_and_hand_them_over(
    client: httpx.AsyncClient, team: Team, redis: Redis
) -> None:
    await start_two(client, team.dev_a)
    # Two subagents, two functions of one file: both go through; the same function: denied.
    assert (
        await edit(client, team.dev_a, sub("PreToolUse", "a1", **write_symbols("m.py", "f")))
        is None
    )
    assert (
        await edit(client, team.dev_a, sub("PreToolUse", "a2", **write_symbols("m.py", "g")))
        is None
    )
    reason = await edit(client, team.dev_a, sub("PreToolUse", "a2", **write_symbols("m.py", "f")))
    assert reason is not None and reason.startswith("Symbol f in m.py is reserved by Developer A")
    # a1 stops: its function passes to the parent, with the file's index of symbols alive,
    # so the other developer's whole-file write is still denied, and a2 may take it.
    await send(client, team.dev_a, sub("SubagentStop", "a1"))
    assert await redis.pttl(keys.file_symbols("acme", "m.py")) > 0
    other = await edit(client, team.dev_b, claude("PreToolUse", "conv-b", **write("m.py")))
    assert other is not None and "in m.py is reserved by Developer A" in other
    assert (
        await edit(client, team.dev_a, sub("PreToolUse", "a2", **write_symbols("m.py", "f")))
        is None
    )
