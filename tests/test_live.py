"""Live events: what the scripts publish, and GET /workspaces/{id}/events streaming it
from real `coordinator serve` processes (two replicas, a Redis that stops, SIGTERM, the
embedded store, a Redis Cluster)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from coordinator import keys
from coordinator.admin import Admin
from coordinator.app import create_app
from coordinator.config import Settings
from coordinator.live import MAX_BACKLOG, Listener, frame
from coordinator.models import digest_of, session_id_for
from coordinator.routes import DECIDE, EVENTS, HEARTBEAT, HOOK, of_workspace
from tests.helpers import Team, bearer

pytestmark = pytest.mark.anyio
TTL_MS = Settings().reservation_ttl_ms
STREAMS_PER_KEY = 3


# -- what the scripts publish (fakeredis and a real Redis) ---------------------------


async def subscribed(redis: Redis, slug: str) -> PubSub:
    """A subscription to the workspace's channel, once Redis confirmed it."""
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.events(slug))
    assert (await pubsub.get_message(timeout=5))["type"] == "subscribe"
    return pubsub


@pytest.fixture
async def channel(redis: Redis) -> AsyncIterator[PubSub]:
    pubsub = await subscribed(redis, "acme")
    yield pubsub
    await pubsub.aclose()  # type: ignore[no-untyped-call]


async def published(pubsub: PubSub) -> list[dict[str, Any]]:
    """Every event published so far (none more within 0.2 s)."""
    found = []
    while message := await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2):
        found.append(json.loads(message["data"]))
    return found


async def call(client: httpx.AsyncClient, api_key: str, path: str = HOOK, **body: Any) -> Any:
    response = await client.post(path, headers=bearer(api_key), json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()


def without_time(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for event in events:
        assert isinstance(event.pop("at_ms"), int)
    return events


async def test_each_change_is_published_once_with_its_fields(
    client: httpx.AsyncClient, channel: PubSub, team: Team
) -> None:
    a, b = session_id_for("acme", "a"), session_id_for("acme", "b")
    who_a = {"session_id": a, "user": "Developer A", "agent": "cursor"}
    await call(
        client, team.dev_a, event="sessionStart", conversation_id="a", agent_type="cursor",
        task="Build auth",
    )  # fmt: skip
    assert without_time(await published(channel)) == [
        {"type": "started", **who_a, "task": "Build auth"}
    ]

    await call(client, team.dev_a, event="preToolUse", conversation_id="a", file_path="a.ts")
    [reserved] = await published(channel)
    assert reserved["expires_at_ms"] == reserved["at_ms"] + TTL_MS
    assert without_time([reserved]) == [
        {"type": "reserved", **who_a, "path": "a.ts", "expires_at_ms": reserved["expires_at_ms"]}
    ]

    # Renewals, heartbeats, a repeated task and a deny change nothing anyone could see.
    await call(client, team.dev_a, event="preToolUse", conversation_id="a", file_path="a.ts")
    await call(client, team.dev_a, event="postToolUse", conversation_id="a", file_path="a.ts")
    await call(client, team.dev_a, event="file_check", conversation_id="a")
    await call(client, team.dev_a, HEARTBEAT, session_id=a)
    await call(
        client, team.dev_a, event="beforeSubmitPrompt", conversation_id="a", task="Build auth"
    )
    assert await published(channel) == []

    await call(client, team.dev_b, event="preToolUse", conversation_id="b", file_path="a.ts")
    started_b = without_time(await published(channel))  # B's session starts; no reservation
    denied = {"type": "denied", "session_id": b, "user": "Developer B", "agent": None,
              "path": "a.ts", "holder": "Developer A"}  # fmt: skip
    assert started_b == [
        {"type": "started", "session_id": b, "user": "Developer B", "agent": None, "task": None},
        denied,
    ]
    await call(client, team.dev_b, event="preToolUse", conversation_id="b", file_path="a.ts")
    assert without_time(await published(channel)) == [denied]  # each deny, for the feed

    await call(
        client, team.dev_a, event="beforeSubmitPrompt", conversation_id="a", prompt="Refresh\nx"
    )
    assert without_time(await published(channel)) == [{"type": "task", **who_a, "task": "Refresh"}]

    await call(client, team.dev_a, DECIDE, text="Use JWT", session_id=a)
    assert without_time(await published(channel)) == [
        {"type": "decision", "session_id": a, "user": "Developer A", "agent": None,
         "text": "Use JWT"}
    ]  # fmt: skip

    # A patch claims its files all-or-nothing: one event per file newly reserved.
    await call(
        client, team.dev_a, event="preToolUse", conversation_id="a", file_path="a.ts",
    )  # fmt: skip
    await call(client, team.dev_a, event="postToolUse", conversation_id="a", file_path="b.ts")
    assert [(e["type"], e["path"]) for e in await published(channel)] == [("reserved", "b.ts")]

    await call(client, team.dev_a, event="sessionEnd", conversation_id="a")
    ended = without_time(await published(channel))
    released = sorted(ended[:2], key=lambda e: e["path"])
    assert [(e["type"], e["path"], e["session_id"]) for e in released] == [
        ("released", "a.ts", a),
        ("released", "b.ts", a),
    ]
    assert ended[2:] == [{"type": "ended", **who_a}]
    # Ending a session that is gone publishes nothing more.
    await call(client, team.dev_a, event="sessionEnd", conversation_id="a")
    assert await published(channel) == []


async def test_revoking_publishes_releases_and_ends(
    client: httpx.AsyncClient, admin: Admin, channel: PubSub, team: Team
) -> None:
    await call(client, team.dev_a, event="preToolUse", conversation_id="a", file_path="a.ts")
    await published(channel)

    await admin.revoke_key(team.dev_a)

    sid = session_id_for("acme", "a")
    events = without_time(await published(channel))
    assert events == [
        {"type": "released", "session_id": sid, "user": "Developer A", "agent": None,
         "path": "a.ts", "expires_at_ms": events[0]["expires_at_ms"]},
        {"type": "ended", "session_id": sid, "user": "Developer A", "agent": None,
         "reason": "revoked"},
    ]  # fmt: skip


async def test_events_stay_in_their_workspace_and_carry_no_secret(
    client: httpx.AsyncClient, redis: Redis, channel: PubSub, team: Team
) -> None:
    other = await subscribed(redis, "other")
    await call(client, team.outsider, event="preToolUse", conversation_id="o", file_path="a.ts")
    await call(client, team.outsider, DECIDE, text="Theirs")
    assert await published(channel) == []
    theirs = await published(other)
    assert [e["type"] for e in theirs] == ["started", "reserved", "decision"]
    await other.aclose()  # type: ignore[no-untyped-call]

    await call(client, team.dev_a, event="preToolUse", conversation_id="a", file_path="a.ts")
    await call(client, team.dev_a, event="sessionEnd", conversation_id="a")
    text = json.dumps(await published(channel))
    for secret in (team.dev_a, team.dev_a.removeprefix("ek_"), digest_of(team.dev_a)):
        assert secret not in text
    assert digest_of(team.dev_a)[:16] not in text  # not even the key id


@pytest.mark.parametrize(
    ("headers", "ref", "status", "code"),
    [
        ({}, "acme", 401, "unauthorized"),
        ({"Authorization": "Bearer ek_nope"}, "acme", 401, "unauthorized"),
        (None, "other", 403, "forbidden"),
        (None, "Not A Slug", 422, "invalid_field"),
    ],
)
async def test_stream_errors_are_json_before_any_stream(
    client: httpx.AsyncClient,
    team: Team,
    headers: dict[str, str] | None,
    ref: str,
    status: int,
    code: str,
) -> None:
    response = await client.get(
        EVENTS.format(ref=ref), headers=bearer(team.dev_a) if headers is None else headers
    )
    assert (response.status_code, response.json()["error"]) == (status, code)
    assert response.headers["content-type"] == "application/json"


def test_a_frame_is_one_sse_message() -> None:
    event = '{"type":"reserved","path":"a\\nb.ts"}'
    assert frame(event) == b'event: reserved\ndata: {"type":"reserved","path":"a\\nb.ts"}\n\n'
    # What someone might PUBLISH by hand is passed over, never a broken frame.
    for stray in ("hello", '{"no": "type"}', '{"type": "x\\ny"}', '{"type": "a",\n"b": 1}'):
        assert frame(stray) is None, stray


async def test_a_listener_that_falls_too_far_behind_is_ended() -> None:
    listener = Listener()
    for i in range(MAX_BACKLOG + 5):
        listener.offer(b"%d" % i)
    assert listener.ended
    frames = [listener.frames.get_nowait() for _ in range(listener.frames.qsize())]
    # What it had is kept, in order, then the end.
    assert frames == [b"%d" % i for i in range(MAX_BACKLOG)] + [None]


async def test_opening_a_stream_counts_against_the_keys_rate(redis: Redis, team: Team) -> None:
    app = create_app(Settings(rate_per_s=0.001, rate_burst=2), redis)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coordinator") as http:
        # HEAD opens no stream, but is admitted the same way (ASGITransport cannot stream).
        answers = [
            await http.head(of_workspace(EVENTS, "acme"), headers=bearer(team.dev_a)) for _ in "abc"
        ]
    await app.state.store.aclose()
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["retry-after"]


async def test_head_answers_the_headers_and_no_stream(
    client: httpx.AsyncClient, team: Team
) -> None:
    response = await client.head(of_workspace(EVENTS, "acme"), headers=bearer(team.dev_a))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
