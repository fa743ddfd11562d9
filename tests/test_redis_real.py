"""What only a real redis-server can show: TTL expiry in real time, and round trips."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from coordinator.admin import Admin
from coordinator.app import create_app
from coordinator.config import Settings
from coordinator.routes import HEARTBEAT, HOOK, SESSIONS, of_workspace
from tests.helpers import bearer

pytestmark = pytest.mark.anyio
SESSION_TTL, RESERVATION_TTL = 0.4, 0.9


class Api:
    """A client for the app on a real Redis, with sub-second TTLs, and two developers' keys."""

    def __init__(self, http: httpx.AsyncClient, dev_a: str, dev_b: str) -> None:
        self.http, self.dev_a, self.dev_b = http, dev_a, dev_b

    async def hook(self, api_key: str, **body: Any) -> dict[str, Any]:
        response = await self.http.post(HOOK, headers=bearer(api_key), json=body)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def sessions(self) -> list[dict[str, Any]]:
        listed = await self.http.get(of_workspace(SESSIONS, "acme"), headers=bearer(self.dev_a))
        sessions: list[dict[str, Any]] = listed.json()
        return sessions


@pytest.fixture
async def api(redis_url: str, real_redis_sync: SyncRedis) -> AsyncIterator[Api]:
    settings = Settings(
        redis_url=redis_url,
        session_ttl_ms=int(SESSION_TTL * 1000),
        reservation_ttl_ms=int(RESERVATION_TTL * 1000),
    )
    redis = Redis.from_url(redis_url, decode_responses=True)
    admin = Admin(redis, settings)
    await admin.create_workspace("acme")
    dev_a, _ = await admin.create_key("acme", "Developer A")
    dev_b, _ = await admin.create_key("acme", "Developer B")
    await admin.aclose()
    app = create_app(settings, redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://c") as http:
        yield Api(http, dev_a, dev_b)
    await app.state.store.aclose()
    await redis.aclose()


def sleep_until(start: float, seconds: float) -> None:
    time.sleep(max(0.0, start + seconds - time.monotonic()))


async def test_an_idle_session_expires_by_its_ttl(api: Api) -> None:
    start = time.monotonic()
    await api.hook(api.dev_a, event="sessionStart", conversation_id="a")
    assert len(await api.sessions()) == 1
    sleep_until(start, SESSION_TTL + 0.15)
    assert await api.sessions() == []
    sid = "sess_" + "0" * 24
    beat = await api.http.post(HEARTBEAT, headers=bearer(api.dev_a), json={"session_id": sid})
    assert beat.status_code == 404


async def test_a_reservation_outlives_its_session_then_expires(api: Api) -> None:
    start = time.monotonic()
    await api.hook(api.dev_b, event="sessionStart", conversation_id="b", task="Build JWT auth flow")
    await api.hook(api.dev_b, event="preToolUse", conversation_id="b", file_path="login.ts")
    sleep_until(start, SESSION_TTL + 0.15)
    assert await api.sessions() == []
    denied = await api.hook(
        api.dev_a, event="preToolUse", conversation_id="a", file_path="login.ts"
    )
    assert denied["permission"] == "deny"
    assert "Developer B — 'Build JWT auth flow' (1 min remaining)" in denied["message"]
    sleep_until(start, RESERVATION_TTL + 0.15)
    allowed = await api.hook(
        api.dev_a, event="preToolUse", conversation_id="a", file_path="login.ts"
    )
    assert allowed == {"permission": "allow"}


async def test_any_event_of_the_holder_keeps_its_reservations(api: Api) -> None:
    start = time.monotonic()
    await api.hook(api.dev_b, event="preToolUse", conversation_id="b", file_path="login.ts")
    for step in (1, 2, 3):
        sleep_until(start, step * RESERVATION_TTL * 0.6)
        await api.hook(api.dev_b, event="file_check", conversation_id="b")
    # 1.6 reservation TTLs after the claim, the lock is still held thanks to the heartbeats.
    denied = await api.hook(
        api.dev_a, event="preToolUse", conversation_id="a", file_path="login.ts"
    )
    assert denied["permission"] == "deny"


async def test_a_conversation_resumed_after_expiry_still_owns_its_files(api: Api) -> None:
    start = time.monotonic()
    await api.hook(api.dev_b, event="preToolUse", conversation_id="b", file_path="login.ts")
    sleep_until(start, SESSION_TTL + 0.15)
    assert await api.sessions() == []
    resumed = await api.hook(api.dev_b, event="SessionStart", conversation_id="b")
    assert "Locked files:\n  (none)" in resumed["additional_context"]  # its own are not listed
    again = await api.hook(
        api.dev_b, event="postToolUse", conversation_id="b", file_path="login.ts"
    )
    assert again == {"permission": "allow"}
    [session] = await api.sessions()
    assert session["reserved_files"] == ["login.ts"]


async def test_one_hook_event_is_one_round_trip(
    api: Api, real_redis_sync: SyncRedis, redis_url: str
) -> None:
    events: list[dict[str, Any]] = [
        {"event": "sessionStart", "agent_type": "cursor", "conversation_id": "b"},
        {"event": "beforeSubmitPrompt", "conversation_id": "b", "prompt": "Fix login"},
        {"event": "preToolUse", "conversation_id": "b", "file_path": "a.ts"},
        {"event": "postToolUse", "conversation_id": "b", "file_path": "a.ts"},
        {"event": "file_check", "conversation_id": "b"},
        {"event": "sessionEnd", "conversation_id": "b"},
    ]
    for event in events:  # warm up: scripts loaded, key resolved, connection open
        await api.hook(api.dev_b, **event)
    marker = SyncRedis.from_url(redis_url)
    marker.config_resetstat()  # also opens the marker's connection before MONITOR starts
    # MONITOR tells a client's own commands from those its scripts run ('lua').
    with real_redis_sync.monitor() as monitor:  # type: ignore[no-untyped-call]
        for event in events:
            await api.hook(api.dev_b, **event)
        marker.echo("done")
        sent = []
        for seen in monitor.listen():
            if seen["command"] == "ECHO done":
                break
            if seen["client_type"] != "lua":
                sent.append(seen["command"].split()[0].upper())
    assert sent == ["EVALSHA"] * len(events)
    stats = marker.info("commandstats")
    marker.close()
    assert stats["cmdstat_evalsha"]["calls"] == len(events)
