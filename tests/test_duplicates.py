"""An event that arrives twice is one event: Cursor runs Claude Code's hooks too when its
third-party hooks setting is on, so each of its events reaches the service once through
its own hooks and once through Claude Code's. The second copy gets the first one's answer
(in its own agent's shape) and changes nothing: no second claim, event or count, on any
replica. fakeredis and a real Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from coordinator import keys
from coordinator.app import create_app
from coordinator.config import Settings
from coordinator.events import Event, Kind, duplicate_id
from coordinator.routes import DECIDE
from tests.helpers import Team, bearer, send_hook
from tests.test_metrics import scrape, value
from tests.test_native import claude_edit, cursor, reserved

pytestmark = pytest.mark.anyio
FILE = "/p/repo/src/a.ts"


def cursor_write(event: str = "preToolUse", path: str = FILE, **ids: str) -> dict[str, Any]:
    """Cursor's own payload of a Write (its hooks run the bridge, ``?agent=cursor``)."""
    return cursor(event, "conv-1", tool_name="Write", cwd="/p/repo",
                  tool_input={"file_path": path, "content": "x"},
                  **{"workspace_roots": ["/p/repo"], "tool_use_id": "tu-1", **ids})  # fmt: skip


def as_claude(payload: dict[str, Any]) -> dict[str, Any]:
    """The same event as Cursor hands it to Claude Code's hooks (``?agent=claude-code``)."""
    name = payload["hook_event_name"]
    copy = {**payload, "session_id": payload["conversation_id"], "cwd": "/p/repo"}
    copy["hook_event_name"] = name[0].upper() + name[1:]
    del copy["conversation_id"], copy["workspace_roots"]
    return copy


class Published:
    """Every live event the scripts publish on the workspace's channel."""

    def __init__(self, redis: Redis) -> None:
        self.pubsub = redis.pubsub()

    async def __aenter__(self) -> Published:
        await self.pubsub.subscribe(keys.events("acme"))
        await self.pubsub.get_message(timeout=1.0)  # the subscription's confirmation
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]

    async def types(self) -> list[str]:
        found = []
        while (message := await self.pubsub.get_message(timeout=0.3)) is not None:
            if message["type"] == "message":
                found.append(json.loads(message["data"])["type"])
        return found


@pytest.fixture
async def replica(redis: Redis, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A second replica on the same Redis."""
    app = create_app(settings, redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://r2") as http:
        yield http
    await app.state.store.aclose()


async def test_a_write_arriving_twice_is_claimed_once(
    client: httpx.AsyncClient, replica: httpx.AsyncClient, redis: Redis, team: Team
) -> None:
    own = cursor_write()
    async with Published(redis) as published:
        first = await send_hook(client, team.dev_b, own, "cursor")
        again = await send_hook(replica, team.dev_b, as_claude(own), "claude-code")
        assert (first, again) == ({"permission": "allow"}, {})  # each in its agent's shape
        assert await published.types() == ["started", "reserved"]  # once, not twice
    assert await reserved(client, team.dev_b) == {"src/a.ts": "conv-1"}
    samples = await scrape(client)
    assert value(samples, "coordinator_hook_decisions_total", event="pre_tool",
                 decision="allow") == 1  # fmt: skip
    assert value(samples, "coordinator_sessions_started_total") == 1
    on_replica = await scrape(replica)
    assert value(on_replica, "coordinator_hook_decisions_total", event="pre_tool",
                 decision="allow") == 0  # fmt: skip
    assert value(on_replica, "coordinator_requests_total", route="/workspaces/sessions/hook",
                 event="duplicate", status="200") == 1  # fmt: skip


async def test_a_denied_write_arriving_twice_is_denied_alike(
    client: httpx.AsyncClient, redis: Redis, team: Team
) -> None:
    await send_hook(client, team.dev_a, claude_edit("PreToolUse", "/Users/a/work/repo/src/a.ts"))
    own = cursor_write()
    async with Published(redis) as published:
        first = await send_hook(client, team.dev_b, own, "cursor")
        again = await send_hook(client, team.dev_b, as_claude(own), "claude-code")
        assert await published.types() == ["started", "denied"]  # one deny, not two
    assert first["permission"] == "deny"
    reason = again["hookSpecificOutput"]["permissionDecisionReason"]
    assert reason == first["agent_message"]
    assert reason.startswith("File src/a.ts is reserved by Developer A")
    # The holder lets go: the model's next try is a new tool call, and goes through.
    await send_hook(client, team.dev_a, {"hook_event_name": "SessionEnd", "session_id": "claude-1"},
                    "claude-code")  # fmt: skip
    assert await send_hook(client, team.dev_b, own, "cursor") == first  # still the same call
    retry = cursor_write(tool_use_id="tu-2")
    assert await send_hook(client, team.dev_b, retry, "cursor") == {"permission": "allow"}


async def test_a_prompt_arriving_twice_hears_the_news_in_both(
    client: httpx.AsyncClient, team: Team
) -> None:
    await send_hook(client, team.dev_b, cursor("sessionStart", "conv-1"), "cursor")
    decided = await client.post(DECIDE, headers=bearer(team.dev_a),
                                json={"text": "Tokens live 15 minutes"})  # fmt: skip
    assert decided.status_code == 201
    prompt = cursor("beforeSubmitPrompt", "conv-1", prompt="Fix it", generation_id="gen-7")
    await send_hook(client, team.dev_b, prompt, "cursor")
    copy = {**as_claude({**prompt, "workspace_roots": []}), "hook_event_name": "UserPromptSubmit"}
    told = await send_hook(client, team.dev_b, copy, "claude-code")
    context = told["hookSpecificOutput"]["additionalContext"]
    assert "Tokens live 15 minutes" in context  # the first copy's news, not an empty answer
    later = {**copy, "generation_id": "gen-8"}
    assert await send_hook(client, team.dev_b, later, "claude-code") == {}  # heard already


async def test_a_start_arriving_twice_is_briefed_alike(
    client: httpx.AsyncClient, team: Team
) -> None:
    await send_hook(client, team.dev_a, claude_edit("PreToolUse", "/Users/a/work/repo/src/x.ts"))
    start = cursor("sessionStart", "conv-1", generation_id="gen-1")
    first = await send_hook(client, team.dev_b, start, "cursor")
    again = await send_hook(client, team.dev_b, as_claude({**start, "workspace_roots": []}),
                            "claude-code")  # fmt: skip
    assert "src/x.ts (Developer A)" in first["additional_context"]
    assert again["hookSpecificOutput"]["additionalContext"] == first["additional_context"]


async def test_events_without_an_id_or_with_new_ids_are_each_their_own(
    client: httpx.AsyncClient, team: Team
) -> None:
    plain = {"event": "preToolUse", "conversation_id": "c", "file_path": "a.py"}
    for _ in range(2):
        assert (await send_hook(client, team.dev_b, plain))["permission"] == "allow"
    for tool_use_id in ("t1", "t2"):
        await send_hook(client, team.dev_b, {**plain, "tool_use_id": tool_use_id})
    samples = await scrape(client)
    assert value(samples, "coordinator_hook_decisions_total", event="pre_tool",
                 decision="allow") == 4  # fmt: skip


async def test_the_note_lapses_after_the_window(redis: Redis, team: Team) -> None:
    app = create_app(Settings(rate_per_s=0, duplicate_window_ms=300), redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://c") as http:
        held = claude_edit("PreToolUse", "/Users/a/work/repo/src/a.ts")
        await send_hook(http, team.dev_a, held)
        own = cursor_write()
        assert (await send_hook(http, team.dev_b, own, "cursor"))["permission"] == "deny"
        await send_hook(http, team.dev_a, {"hook_event_name": "SessionEnd",
                                           "session_id": "claude-1"}, "claude-code")  # fmt: skip
        await asyncio.sleep(0.6)
        assert await send_hook(http, team.dev_b, own, "cursor") == {"permission": "allow"}
        assert [k async for k in redis.scan_iter(keys.once("acme", "*", "*"))]  # noted anew
    await app.state.store.aclose()


def event(kind: Kind, **ids: str | None) -> Event:
    return Event(kind=kind, name="", conversation_id="c", **ids)  # type: ignore[arg-type]


def test_what_names_a_duplicate() -> None:
    tool = duplicate_id(event(Kind.PRE_TOOL, tool_use_id="t"), ["src/A.ts"])
    assert tool is not None and len(tool) == 24
    assert duplicate_id(event(Kind.PRE_TOOL, tool_use_id="t"), ["src/a.ts"]) == tool  # one lock
    assert duplicate_id(event(Kind.POST_TOOL, tool_use_id="t"), ["src/a.ts"]) != tool
    assert duplicate_id(event(Kind.PRE_TOOL, tool_use_id="t"), ["src/b.ts"]) != tool
    assert duplicate_id(event(Kind.PRE_TOOL, generation_id="t"), ["src/a.ts"]) != tool
    assert duplicate_id(event(Kind.PRE_TOOL), ["src/a.ts"]) is None
    assert duplicate_id(event(Kind.END, tool_use_id="t", generation_id="g"), []) is None
    assert duplicate_id(event(Kind.PROMPT, generation_id="\ud800"), []) is not None
