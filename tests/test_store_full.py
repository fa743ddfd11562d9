"""A real `coordinator serve` on a real redis-server that has reached its maxmemory under
noeviction: reads and ends go on (an end frees memory), writes answer 507 store_full,
and /health says so."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from coordinator.config import Settings
from coordinator.errors import StoreFull
from coordinator.models import Principal, digest_of
from coordinator.routes import DECIDE, EVENTS, HOOK, RESERVATIONS, of_workspace
from coordinator.store import Store
from tests.helpers import bearer, provision, serve, stop

pytestmark = pytest.mark.real_redis


def fill(redis: SyncRedis) -> None:
    """Redis at its maxmemory: the limit set below what it already holds, so that no
    delete in the test brings it back under."""
    redis.config_set("maxmemory-policy", "noeviction")
    redis.config_set("maxmemory", "100kb")


def test_reads_and_ends_work_and_writes_answer_store_full(
    redis_server: str, tmp_path: Path
) -> None:
    dev_a, dev_b = asyncio.run(provision(redis_server))
    log = tmp_path / "serve.log"
    server, port = serve({**os.environ, "REDIS_URL": redis_server}, log)
    url, a, b = f"http://127.0.0.1:{port}", bearer(dev_a), bearer(dev_b)

    def hook(headers: dict[str, str], **body: Any) -> httpx.Response:
        return httpx.post(f"{url}{HOOK}", json=body, headers=headers, timeout=10)

    def get(path: str) -> httpx.Response:
        return httpx.get(f"{url}{path}", headers=a, timeout=10)

    try:
        claim = {"event": "preToolUse", "conversation_id": "conv-a", "file_path": "src/a.py"}
        assert hook(a, **claim).json() == {"permission": "allow"}
        decision = {"workspace_slug": "acme", "text": "Use JWT"}
        assert httpx.post(url + DECIDE, json=decision, headers=a).is_success
        with SyncRedis.from_url(redis_server, decode_responses=True) as redis:
            fill(redis)

            # Reads: the listings, whoami, opening an event stream.
            for path in ("sessions", "reservations", "decisions"):
                listing = get(f"/workspaces/acme/{path}")
                assert listing.status_code == 200, listing.text
            assert get(of_workspace(RESERVATIONS, "acme")).json()[0]["file_path"] == "src/a.py"
            assert get("/whoami").status_code == 200
            with httpx.stream("GET", url + of_workspace(EVENTS, "acme"), headers=a) as stream:
                assert stream.status_code == 200

            # Writes: a claim, a new session, a decision. Refused, clearly, changing nothing.
            before = redis.dbsize()
            refused = [
                hook(b, event="preToolUse", conversation_id="conv-b", file_path="src/b.py"),
                hook(b, event="sessionStart", conversation_id="conv-c"),
                httpx.post(url + DECIDE, json=decision, headers=b),
            ]
            for answer in refused:
                assert answer.status_code == 507, answer.text
                assert answer.json()["error"] == "store_full"
                assert "script" not in answer.text and "user_script" not in answer.text
            assert redis.dbsize() == before

            health = httpx.get(f"{url}/health").json()
            assert (health["status"], health["store_full"]) == ("degraded", True)

            # The end that frees memory goes through, and frees the file.
            ended = hook(a, event="sessionEnd", conversation_id="conv-a")
            assert ended.status_code == 200, ended.text
            assert get(of_workspace(RESERVATIONS, "acme")).json() == []
    finally:
        stop(server)
    assert '"status":507' in log.read_text()  # logged, as any other 5xx


@pytest.mark.anyio
@pytest.mark.parametrize("rate", [50.0, 0.0])
async def test_store_full_with_and_without_a_rate_limit(redis_server: str, rate: float) -> None:
    """Without a rate limit no bucket is written first: the script's own first write meets
    the OOM error, which must read store_full too, not 'Redis refused' with the script's sha."""
    dev_a, _ = await provision(redis_server)
    settings = Settings(redis_url=redis_server, rate_per_s=rate)
    client = Redis.from_url(redis_server, decode_responses=True)
    store = Store(client, settings)
    try:
        principal = await store.principal(digest_of(dev_a))
        assert isinstance(principal, Principal)
        with SyncRedis.from_url(redis_server, decode_responses=True) as redis:
            fill(redis)
        with pytest.raises(StoreFull) as full:
            await store.touch(principal, "sess_" + "0" * 24, "conv", {}, ["src/x.py"])
        assert "script" not in full.value.message
        assert (await store.sessions(principal)).items == []
        ended = await store.end_session(principal, "sess_" + "0" * 24)
        assert (ended.live, ended.released) == (False, 0)
    finally:
        await store.aclose()
        await client.aclose()
