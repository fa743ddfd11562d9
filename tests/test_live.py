"""Live events: what the scripts publish, and GET /workspaces/{id}/events streaming it
from real `coordinator serve` processes (two replicas, a Redis that stops, SIGTERM, the
embedded store, a Redis Cluster)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from coordinator import keys
from coordinator.app import create_app
from coordinator.config import Settings
from coordinator.live import MAX_BACKLOG, Listener, frame
from coordinator.models import session_id_for
from coordinator.store import Store, connect, digest_of
from tests.conftest import Team, bearer, provision, serve, stop
from tests.test_outage import Redis as OwnRedis
from tests.test_service import STOPPED, poll

pytestmark = pytest.mark.anyio
HOOK = "/workspaces/sessions/hook"
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
    await call(client, team.dev_a, "/workspaces/sessions/heartbeat", session_id=a)
    await call(
        client, team.dev_a, event="beforeSubmitPrompt", conversation_id="a", task="Build auth"
    )
    assert await published(channel) == []

    await call(client, team.dev_b, event="preToolUse", conversation_id="b", file_path="a.ts")
    started_b = without_time(await published(channel))  # B's session starts; no reservation
    assert started_b == [
        {"type": "started", "session_id": b, "user": "Developer B", "agent": None, "task": None}
    ]
    await call(client, team.dev_b, event="preToolUse", conversation_id="b", file_path="a.ts")
    assert await published(channel) == []

    await call(
        client, team.dev_a, event="beforeSubmitPrompt", conversation_id="a", prompt="Refresh\nx"
    )
    assert without_time(await published(channel)) == [{"type": "task", **who_a, "task": "Refresh"}]

    await call(client, team.dev_a, "/workspaces/decisions", text="Use JWT", session_id=a)
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
    client: httpx.AsyncClient, store: Store, channel: PubSub, team: Team
) -> None:
    await call(client, team.dev_a, event="preToolUse", conversation_id="a", file_path="a.ts")
    await published(channel)

    await store.revoke_key(team.dev_a)

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
    await call(client, team.outsider, "/workspaces/decisions", text="Theirs")
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
        f"/workspaces/{ref}/events", headers=bearer(team.dev_a) if headers is None else headers
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
            await http.head("/workspaces/acme/events", headers=bearer(team.dev_a)) for _ in "abc"
        ]
    await app.state.store.aclose()
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].headers["retry-after"]


async def test_head_answers_the_headers_and_no_stream(
    client: httpx.AsyncClient, team: Team
) -> None:
    response = await client.head("/workspaces/acme/events", headers=bearer(team.dev_a))
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"


# -- the stream, from real processes --------------------------------------------------


class Feed:
    """The frames of one open event stream: (event name, data), ':' for a comment."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> tuple[str, str]:
        """The next frame; ('end', '') once the server ended the stream."""
        name, data = "", ""
        with anyio.fail_after(timeout):
            async for line in self._lines:
                if line == "":
                    if name or data:
                        return name, data
                elif line.startswith(":"):
                    name, data = ":", line[1:].strip()
                elif line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = line.removeprefix("data: ")
        return "end", ""

    async def ends(self, timeout: float = 5.0) -> bool:
        """Whether the server ends the stream within ``timeout``, keepalives aside."""
        with anyio.move_on_after(timeout):
            while (frame := await self.next(timeout + 1)) != ("end", ""):
                assert frame == (":", "keepalive"), frame
            return True
        return False

    async def event(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next event, keepalives skipped; its name must match its type."""
        while True:
            name, data = await self.next(timeout)
            assert name != "end", "the stream ended"
            if name != ":":
                found: dict[str, Any] = json.loads(data)
                assert found["type"] == name
                return found


async def open_feed(
    http: httpx.AsyncClient,
    url: str,
    api_key: str,
    stack: contextlib.AsyncExitStack,
    ref: str = "acme",
) -> Feed:
    response = await stack.enter_async_context(
        http.stream("GET", f"{url}/workspaces/{ref}/events", headers=bearer(api_key))
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-accel-buffering"] == "no"
    feed = Feed(response)
    assert await feed.next() == (":", "subscribed")
    return feed


class Replicas:
    def __init__(self, urls: list[str], dev_a: str, dev_b: str, redis_url: str) -> None:
        self.urls, self.dev_a, self.dev_b, self.redis_url = urls, dev_a, dev_b, redis_url


@pytest.fixture
def replicas(redis_url: str, real_redis_sync: SyncRedis, tmp_path: Path) -> Iterator[Replicas]:
    """Two `coordinator serve` processes on one real Redis, keepalive every 0.3 s, at
    most STREAMS_PER_KEY streams of a key on each."""
    dev_a, dev_b = asyncio.run(provision(redis_url))
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "COORDINATOR_EVENTS_KEEPALIVE": "0.3",
        "COORDINATOR_STREAMS_PER_KEY": str(STREAMS_PER_KEY),
    }
    servers = [serve(env, tmp_path / f"serve-{i}.log") for i in range(2)]
    try:
        urls = [f"http://127.0.0.1:{port}" for _, port in servers]
        yield Replicas(urls, dev_a, dev_b, redis_url)
    finally:
        for server, _ in servers:
            assert stop(server) in STOPPED
    for i in range(2):
        assert "Traceback" not in (tmp_path / f"serve-{i}.log").read_text()


def clients(redis: SyncRedis) -> int:
    return len(redis.client_list())


@pytest.mark.real_redis
async def test_a_change_on_one_replica_reaches_a_stream_on_the_other(
    replicas: Replicas, real_redis_sync: SyncRedis
) -> None:
    a_url, b_url = replicas.urls
    sid = session_id_for("acme", "b")
    async with httpx.AsyncClient(timeout=10) as http, contextlib.AsyncExitStack() as stack:
        feed = await open_feed(http, a_url, replicas.dev_a, stack)
        body = {"event": "preToolUse", "conversation_id": "b", "file_path": "src/app.py"}
        hooked = await http.post(f"{b_url}{HOOK}", json=body, headers=bearer(replicas.dev_b))
        assert hooked.json() == {"permission": "allow"}
        assert (await feed.event())["type"] == "started"
        reserved = await feed.event()
        assert (reserved["type"], reserved["path"], reserved["session_id"]) == (
            "reserved", "src/app.py", sid,
        )  # fmt: skip
        assert reserved["user"] == "Developer B"

        end = {"event": "sessionEnd", "conversation_id": "b"}
        await http.post(f"{b_url}{HOOK}", json=end, headers=bearer(replicas.dev_b))
        released, ended = await feed.event(), await feed.event()
        assert (released["type"], released["path"]) == ("released", "src/app.py")
        assert (ended["type"], ended["session_id"]) == ("ended", sid)

        # Nothing happens: keepalive comments, every 0.3 s.
        started = time.monotonic()
        assert await feed.next() == (":", "keepalive")
        assert await feed.next() == (":", "keepalive")
        assert time.monotonic() - started < 2


@pytest.mark.real_redis
async def test_the_streams_of_a_workspace_share_one_connection_and_give_it_back(
    replicas: Replicas, real_redis_sync: SyncRedis
) -> None:
    url = replicas.urls[0]

    async def claim(path: str) -> None:
        body = {"event": "preToolUse", "conversation_id": "c", "file_path": path}
        await http.post(f"{url}{HOOK}", json=body, headers=bearer(replicas.dev_a))

    async with httpx.AsyncClient(timeout=10) as http:
        async with contextlib.AsyncExitStack() as stack:  # a first one: the replica's pool warms up
            await open_feed(http, url, replicas.dev_a, stack)
        await http.get(f"{url}/workspaces/acme/sessions", headers=bearer(replicas.dev_a))
        assert poll(lambda: clients(real_redis_sync) <= 3, 5)  # ours, the pipeline, the pool
        baseline = clients(real_redis_sync)
        async with contextlib.AsyncExitStack() as last:
            kept = await open_feed(http, url, replicas.dev_b, last)
            async with contextlib.AsyncExitStack() as stack:
                # Kept in a list: a Feed collected mid-stream closes its response.
                feeds = [kept] + [await open_feed(http, url, replicas.dev_b, stack) for _ in "ab"]
                assert clients(real_redis_sync) == baseline + 1
                await claim("one.py")
                for feed in feeds:
                    assert [(await feed.event())["type"] for _ in "ab"] == ["started", "reserved"]
            # Two clients went away without a word; the third still hears everything.
            await claim("two.py")
            reserved = await kept.event()
            assert (reserved["type"], reserved["path"]) == ("reserved", "two.py")
            assert clients(real_redis_sync) == baseline + 1
        # The last one gone, the replica must notice at once (not at its next write) and
        # close the subscription.
        assert poll(lambda: clients(real_redis_sync) == baseline, 3), real_redis_sync.client_list()


@pytest.mark.real_redis
async def test_a_key_holds_a_few_streams_open_on_a_replica(replicas: Replicas) -> None:
    first, second = replicas.urls
    events = "/workspaces/acme/events"
    async with httpx.AsyncClient(timeout=10) as http, contextlib.AsyncExitStack() as stack:

        async def refusal() -> dict[str, Any] | None:
            """What one more stream of dev_a on the first replica gets (None: a stream,
            closed at once; never read, as a stream would never end)."""
            headers = bearer(replicas.dev_a)
            async with http.stream("GET", f"{first}{events}", headers=headers) as answer:
                if answer.status_code == 200:
                    return None
                await answer.aread()
                return {"status": answer.status_code, **answer.json()}

        held = [await open_feed(http, first, replicas.dev_a, stack) for _ in range(STREAMS_PER_KEY)]
        refused = await refusal()
        assert refused is not None, "a stream past the key's limit"
        assert (refused["status"], refused["error"]) == (429, "too_many_streams")
        assert "COORDINATOR_STREAMS_PER_KEY" in refused["message"]
        # Per key and per replica: another key, and the same key elsewhere, are let in.
        await open_feed(http, first, replicas.dev_b, stack)
        await open_feed(http, second, replicas.dev_a, stack)
        await held[0].response.aclose()
        # The replica gives the place back once it notices the client left.
        for _ in range(50):
            if await refusal() is None:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("a closed stream's place was never given back")


@pytest.mark.real_redis
async def test_a_stream_ends_when_its_key_is_revoked(replicas: Replicas) -> None:
    async with httpx.AsyncClient(timeout=10) as http, contextlib.AsyncExitStack() as stack:
        feed = await open_feed(http, replicas.urls[0], replicas.dev_a, stack)
        redis = connect(Settings(redis_url=replicas.redis_url))
        await Store(redis, Settings()).revoke_key(replicas.dev_a)
        await redis.aclose()
        assert await feed.ends()  # at the next keepalive (0.3 s) at the latest
        refused = await http.get(
            f"{replicas.urls[1]}/workspaces/acme/events", headers=bearer(replicas.dev_a)
        )
        assert refused.status_code == 401


@pytest.mark.real_redis
async def test_a_stream_ends_when_redis_stops_or_hangs_and_when_the_server_stops(
    tmp_path: Path,
) -> None:
    redis = OwnRedis(tmp_path / "redis", appendonly=False)
    redis.start()
    try:
        dev_a, _ = await provision(redis.url)
        env = {**os.environ, "REDIS_URL": redis.url, "COORDINATOR_EVENTS_KEEPALIVE": "0.3",
               "COORDINATOR_REDIS_TIMEOUT": "1"}  # fmt: skip
        server, port = serve(env, tmp_path / "serve.log")
        url = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(timeout=10) as http:
                async with contextlib.AsyncExitStack() as stack:
                    feed = await open_feed(http, url, dev_a, stack)
                    redis.stop()
                    assert await feed.ends()
                    down = await http.get(f"{url}/workspaces/acme/events", headers=bearer(dev_a))
                    assert (down.status_code, down.json()["error"]) == (503, "store_unavailable")
                redis.start()
                dev_a, _ = await provision(redis.url)  # it came back empty
                async with contextlib.AsyncExitStack() as stack:
                    # A Redis that hangs: the key check at the next keepalive times out.
                    feed = await open_feed(http, url, dev_a, stack)
                    redis.signal(signal.SIGSTOP)
                    try:
                        assert await feed.ends()
                    finally:
                        redis.signal(signal.SIGCONT)
                async with contextlib.AsyncExitStack() as stack:
                    feed = await open_feed(http, url, dev_a, stack)
                    started = time.monotonic()
                    server.send_signal(signal.SIGTERM)
                    assert await feed.ends()
                    assert await asyncio.to_thread(server.wait, 5) in STOPPED
                    assert time.monotonic() - started < 3
        finally:
            if server.poll() is None:
                stop(server)
    finally:
        redis.stop()
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log and "timeout graceful shutdown" not in log, log


async def test_the_embedded_store_streams_too(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    log = tmp_path / "serve.log"
    server, port = serve(env, log)
    url = f"http://127.0.0.1:{port}"
    try:
        api_key = next(line for line in log.read_text().splitlines() if line.startswith("ek_"))
        async with httpx.AsyncClient(timeout=10) as http, contextlib.AsyncExitStack() as stack:
            feed = await open_feed(http, url, api_key, stack, ref="demo")
            await http.post(
                f"{url}/workspaces/decisions", json={"text": "Ship"}, headers=bearer(api_key)
            )
            decision = await feed.event()
            assert (decision["type"], decision["text"], decision["user"]) == (
                "decision", "Ship", "Demo User",
            )  # fmt: skip
    finally:
        assert stop(server) in STOPPED
