"""``/health`` and the start-up check on a real redis-server: a maxmemory-policy that
evicts keys is a warning at start and a degraded /health, read without loading Redis."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis, RedisCluster

from coordinator.config import Settings
from coordinator.health import Health
from coordinator.store import Store
from coordinator.transport import connect
from tests.helpers import serve, stop
from tests.servers import own_redis

pytestmark = pytest.mark.real_redis


@pytest.mark.parametrize("policy", ["volatile-lru", "allkeys-lru", "noeviction"])
def test_an_evicting_policy_is_a_warning_at_start_and_a_degraded_health(
    redis_server: str, tmp_path: Path, policy: str
) -> None:
    with SyncRedis.from_url(redis_server) as redis:
        redis.config_set("maxmemory-policy", policy)
    log = tmp_path / "serve.log"
    server, port = serve({**os.environ, "REDIS_URL": redis_server}, log)
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
    finally:
        stop(server)
    assert health.status_code == 200  # every replica shares the Redis: none is taken out
    answer = health.json()
    assert (answer["maxmemory_policy"], answer["store_full"]) == (policy, False)
    warned = f"maxmemory-policy is {policy}" in log.read_text()
    if policy == "noeviction":
        assert (answer["status"], answer["problems"], warned) == ("ok", [], False)
    else:
        assert answer["status"] == "degraded" and policy in answer["problems"][0]
        assert warned


@pytest.fixture
async def real_store(redis_server: str) -> AsyncIterator[Store]:
    client = Redis.from_url(redis_server, decode_responses=True)
    store = Store(client, Settings(redis_url=redis_server))
    yield store
    await store.aclose()
    await client.aclose()


def info_calls(redis: SyncRedis) -> int:
    stats = redis.info("commandstats")
    return int(stats.get("cmdstat_info", {}).get("calls", 0))


@pytest.mark.anyio
async def test_health_reads_the_policy_at_most_every_few_seconds(
    real_store: Store, redis_server: str
) -> None:
    health = Health(real_store, read_every_s=60)
    with SyncRedis.from_url(redis_server, decode_responses=True) as redis:
        assert (await health.answer())["status"] == "ok"
        before = info_calls(redis)
        redis.config_set("maxmemory-policy", "allkeys-lru")
        answers = {(await health.answer())["status"] for _ in range(50)}
        assert info_calls(redis) - before <= 1, "50 polls read INFO (1: counting them did)"
        assert answers == {"ok"}  # the policy as read a moment ago
        health.read_every_s = 0
        assert (await health.answer())["maxmemory_policy"] == "allkeys-lru"


@pytest.fixture
def redis_without_info(tmp_path: Path) -> Iterator[str]:
    """A redis-server whose INFO is renamed away, as some managed services do."""
    with own_redis(tmp_path, "--rename-command", "INFO", "") as url:
        yield url


def test_no_info_command_is_an_unknown_policy_not_an_outage(
    redis_without_info: str, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    server, port = serve({**os.environ, "REDIS_URL": redis_without_info}, log)
    try:
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)
    finally:
        stop(server)
    assert health.status_code == 200
    assert (health.json()["status"], health.json()["maxmemory_policy"]) == ("ok", None)
    assert "does not tell its maxmemory-policy" in log.read_text()


@pytest.mark.anyio
async def test_every_primary_of_a_cluster_is_read(redis_cluster_url: str) -> None:
    settings = Settings(redis_url=redis_cluster_url, rate_per_s=0)
    client = connect(settings)
    assert isinstance(client, RedisCluster)
    store = Store(client, settings)
    primaries = await client.info("server", target_nodes=RedisCluster.PRIMARIES)
    last = sorted(primaries)[-1]  # host:port of one primary
    host, port = last.rsplit(":", 1)
    try:
        assert (await store.memory()).policy == "noeviction"
        with SyncRedis(host=host, port=int(port)) as node:
            node.config_set("maxmemory-policy", "volatile-ttl")
            try:
                assert (await store.memory()).policy == "volatile-ttl"
            finally:
                node.config_set("maxmemory-policy", "noeviction")
    finally:
        await store.aclose()
        await client.aclose()
