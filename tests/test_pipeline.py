"""The pipelined connection, on a real redis-server: order, errors, reloads, losses, timeouts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import fakeredis
import pytest
from redis import Redis as SyncRedis
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from coordinator.pipeline import Pipeline

pytestmark = pytest.mark.anyio


def address(redis_url: str) -> tuple[str, int]:
    url = urlsplit(redis_url)
    return url.hostname or "127.0.0.1", url.port or 6379


@pytest.fixture
async def pipeline(redis_url: str, real_redis_sync: SyncRedis) -> AsyncIterator[Pipeline]:
    opened = Pipeline(*address(redis_url), timeout_s=0.5)
    yield opened
    await opened.aclose()


async def test_concurrent_calls_each_get_their_own_reply(pipeline: Pipeline) -> None:
    replies = await asyncio.gather(*(pipeline.call("ECHO", f"call {n}") for n in range(300)))
    assert replies == [f"call {n}" for n in range(300)]


async def test_calls_of_one_loop_turn_share_one_write(
    pipeline: Pipeline, real_redis_sync: SyncRedis
) -> None:
    await pipeline.call("PING")  # connected
    before = int(real_redis_sync.info("stats")["total_reads_processed"])
    await asyncio.gather(*(pipeline.call("INCR", "counter") for _ in range(200)))
    reads = int(real_redis_sync.info("stats")["total_reads_processed"]) - before
    assert real_redis_sync.get("counter") == "200"
    assert reads < 20  # one read per write, give or take a split packet and the INFO itself


async def test_an_error_reply_fails_only_its_own_call(
    pipeline: Pipeline, real_redis_sync: SyncRedis
) -> None:
    real_redis_sync.set("text", "not a number")
    results = await asyncio.gather(
        pipeline.call("INCR", "text"), pipeline.call("ECHO", "fine"), return_exceptions=True
    )
    assert isinstance(results[0], redis_errors.ResponseError)
    assert results[1] == "fine"
    assert await pipeline.call("ECHO", "still fine") == "still fine"


async def test_a_script_unknown_to_the_server_is_loaded_once_and_run(
    pipeline: Pipeline, real_redis_sync: SyncRedis
) -> None:
    source = "return ARGV[1] .. KEYS[1]"
    sha = real_redis_sync.script_load(source)
    real_redis_sync.script_flush()
    assert await pipeline.script(sha, source, ["key"], ["arg-"]) == "arg-key"
    assert real_redis_sync.script_exists(sha) == [True]


async def test_a_lost_connection_fails_its_calls_then_reconnects(
    pipeline: Pipeline, real_redis_sync: SyncRedis
) -> None:
    own_id = await pipeline.call("CLIENT", "ID")
    real_redis_sync.client_kill_filter(_id=own_id)
    with pytest.raises(redis_errors.ConnectionError):
        await pipeline.call("ECHO", "gone")  # the server closed this connection
    assert await pipeline.call("ECHO", "back") == "back"
    assert await pipeline.call("CLIENT", "ID") != own_id


async def test_no_reply_in_time_is_a_timeout_then_it_recovers(
    pipeline: Pipeline, real_redis_sync: SyncRedis
) -> None:
    await pipeline.call("PING")
    real_redis_sync.client_pause(2000)
    try:
        started = time.monotonic()
        with pytest.raises(redis_errors.TimeoutError):
            await pipeline.call("ECHO", "paused")
        assert time.monotonic() - started < 1.5  # the 0.5 s timeout, not the 2 s pause
    finally:
        real_redis_sync.client_unpause()
    assert await pipeline.call("ECHO", "resumed") == "resumed"


async def test_a_cancelled_caller_does_not_shift_the_replies(
    pipeline: Pipeline, real_redis_sync: SyncRedis
) -> None:
    real_redis_sync.rpush("queue", "first")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pipeline.call("BLPOP", "empty", 0.3), 0.05)
    assert await pipeline.call("LPOP", "queue") == "first"
    assert await pipeline.call("ECHO", "in order") == "in order"


async def test_it_authenticates_and_selects_the_database(
    redis_url: str, real_redis_sync: SyncRedis
) -> None:
    real_redis_sync.acl_setuser(
        "pipetest", enabled=True, passwords=["+s3cret"], keys=["*"], commands=["+@all"]
    )
    host, port = address(redis_url)
    good = Pipeline(host, port, 0.5, db=3, username="pipetest", password="s3cret")
    wrong = Pipeline(host, port, 0.5, username="pipetest", password="wrong")
    try:
        await good.call("SET", "where", "db 3")
        assert await good.call("ACL", "WHOAMI") == "pipetest"
        on_db3 = SyncRedis(host=host, port=port, db=3, decode_responses=True)
        assert on_db3.get("where") == "db 3" and real_redis_sync.get("where") is None
        on_db3.flushdb()
        on_db3.close()
        with pytest.raises(redis_errors.ResponseError):
            await wrong.call("PING")
    finally:
        await good.aclose()
        await wrong.aclose()
        real_redis_sync.acl_deluser("pipetest")


async def test_it_serves_plain_tcp_clients_only(redis_url: str) -> None:
    tcp = Redis.from_url(redis_url, decode_responses=True)
    fake = fakeredis.FakeAsyncRedis(decode_responses=True)
    try:
        assert isinstance(Pipeline.serving(tcp, 1.0), Pipeline)
        assert Pipeline.serving(fake, 1.0) is None
    finally:
        await tcp.aclose()
        await fake.aclose()
