"""Fixtures: every store test runs on fakeredis and on a real redis-server.

The real server is ``COORDINATOR_TEST_REDIS_URL`` when set (a throwaway server: the
tests flush it), else a ``redis-server`` the tests start on a free port. With neither,
real-Redis tests skip locally and fail in CI (``CI`` set), where they must run.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import fakeredis
import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from coordinator.admin import Admin
from coordinator.app import create_app
from coordinator.config import Settings
from coordinator.store import Store
from tests.helpers import Service, Team, provision, serve, stop
from tests.servers import (
    free_port,
    own_redis,
    redis_binary,
    redis_cluster,
    redis_server_command,
    running,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real redis-server for this test run."""
    given = os.environ.get("COORDINATOR_TEST_REDIS_URL")
    if given:
        yield given
        return
    port = free_port()
    workdir: Path = tmp_path_factory.mktemp("redis")
    with running(redis_server_command(redis_binary(), port, str(workdir)), port):
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="session")
def redis_cluster_url() -> Iterator[str]:
    """The ``redis+cluster://`` URL of a throwaway Redis Cluster (three primaries) for this
    test run, started on free loopback ports and torn down at the end."""
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        if os.environ.get("CI"):
            pytest.fail(
                "CI must test against a real Redis Cluster: install redis-server, redis-cli"
            )
        pytest.skip("no redis-server or redis-cli on PATH")
    with redis_cluster(server, cli) as ports:
        yield f"redis+cluster://127.0.0.1:{ports[0]}"


@pytest.fixture
def real_redis_sync(redis_url: str) -> Iterator[SyncRedis]:
    client = SyncRedis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture(params=["fake", "real"])
async def redis(request: pytest.FixtureRequest) -> AsyncIterator[Redis]:
    """A clean store: fakeredis, then the real server."""
    if request.param == "fake":
        client: Redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    else:
        client = Redis.from_url(request.getfixturevalue("redis_url"), decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def settings() -> Settings:
    """Default settings, but no rate limit: tests send bursts (test_rate_limit.py tests it)."""
    return Settings(rate_per_s=0)


@pytest.fixture
async def store(redis: Redis, settings: Settings) -> AsyncIterator[Store]:
    store = Store(redis, settings)
    yield store
    await store.aclose()


@pytest.fixture
async def admin(redis: Redis, settings: Settings) -> AsyncIterator[Admin]:
    admin = Admin(redis, settings)
    yield admin
    await admin.aclose()


@pytest.fixture
async def team(admin: Admin) -> Team:
    acme = await admin.create_workspace("acme", "Acme")
    await admin.create_workspace("other")
    dev_a, _ = await admin.create_key("acme", "Developer A")
    dev_b, _ = await admin.create_key("acme", "Developer B")
    outsider, _ = await admin.create_key("other", "Outsider")
    return Team(dev_a, dev_b, outsider, acme.id)


@pytest.fixture
async def client(redis: Redis, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, redis)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coordinator") as http:
        yield http
    await app.state.store.aclose()  # ASGITransport runs no lifespan


@pytest.fixture
def service(redis_url: str, real_redis_sync: SyncRedis, tmp_path: Path) -> Iterator[Service]:
    dev_a, dev_b = asyncio.run(provision(redis_url))
    log = tmp_path / "serve.log"
    env = {**os.environ, "REDIS_URL": redis_url}
    server, port = serve(env, log)
    try:
        yield Service(f"http://127.0.0.1:{port}", dev_a, dev_b, log)
    finally:
        stop(server)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[str]:
    """A redis-server of this test's own, whose settings (memory, policy) the test may change."""
    with own_redis(tmp_path) as url:
        yield url
