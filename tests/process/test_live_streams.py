"""GET /workspaces/{ref}/events from real `coordinator serve` processes: two replicas on one
Redis, a Redis that stops or hangs, SIGTERM, a revoked key, the embedded store.
(tests/test_live.py checks what the scripts publish and the stream's errors, in process.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis

from coordinator.admin import Admin
from coordinator.config import Settings
from coordinator.models import session_id_for
from coordinator.routes import DECIDE, EVENTS, HOOK, SESSIONS, of_workspace
from coordinator.transport import connect
from tests.event_feed import open_feed
from tests.helpers import STOPPED, bearer, poll, provision, serve, stop
from tests.servers import RedisProcess

pytestmark = pytest.mark.anyio
STREAMS_PER_KEY = 3


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
        await http.get(url + of_workspace(SESSIONS, "acme"), headers=bearer(replicas.dev_a))
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
    events = of_workspace(EVENTS, "acme")
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
        admin = Admin(redis, Settings())
        await admin.revoke_key(replicas.dev_a)
        await admin.aclose()
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
    redis = RedisProcess(tmp_path / "redis", appendonly=False)
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
                    down = await http.get(url + of_workspace(EVENTS, "acme"), headers=bearer(dev_a))
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
            await http.post(url + DECIDE, json={"text": "Ship"}, headers=bearer(api_key))
            decision = await feed.event()
            assert (decision["type"], decision["text"], decision["user"]) == (
                "decision", "Ship", "Demo User",
            )  # fmt: skip
    finally:
        assert stop(server) in STOPPED
