"""The per-key token bucket, kept in Redis by the same scripts that serve the request."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from coordinator.config import Settings
from coordinator.routes import DECISIONS, HOOK, RESERVATIONS, of_workspace
from tests.helpers import Team, bearer

pytestmark = pytest.mark.anyio
RATE, BURST = 2.0, 3


@pytest.fixture
def settings() -> Settings:
    return Settings(rate_per_s=RATE, rate_burst=BURST)


async def claim(client: httpx.AsyncClient, api_key: str, path: str) -> httpx.Response:
    body = {"event": "preToolUse", "conversation_id": api_key[-8:], "file_path": path}
    return await client.post(HOOK, headers=bearer(api_key), json=body)


async def test_a_burst_over_the_limit_gets_429_with_the_headers(
    client: httpx.AsyncClient, team: Team
) -> None:
    answers = [await claim(client, team.dev_a, f"f{i}.ts") for i in range(BURST + 1)]

    assert [a.status_code for a in answers] == [200] * BURST + [429]
    limited = answers[-1]
    assert limited.json()["error"] == "rate_limited"
    assert "2 requests per second" in limited.json()["message"]
    assert limited.headers["Retry-After"] == "1"
    assert limited.headers["X-RateLimit-Limit"] == str(BURST)
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(limited.headers["X-RateLimit-Reset"]) <= 1 + BURST / RATE
    # The refused claim took nothing, and the other Starlette routes are limited alike.
    listed = await client.get(of_workspace(RESERVATIONS, "acme"), headers=bearer(team.dev_b))
    assert sorted(r["file_path"] for r in listed.json()) == ["f0.ts", "f1.ts", "f2.ts"]
    read = await client.get(of_workspace(DECISIONS, "acme"), headers=bearer(team.dev_a))
    assert read.status_code == 429 and read.headers["Retry-After"] == "1"


async def test_the_bucket_is_per_key_and_refills(client: httpx.AsyncClient, team: Team) -> None:
    for i in range(BURST):
        assert (await claim(client, team.dev_a, f"a{i}.ts")).status_code == 200
    assert (await claim(client, team.dev_a, "late.ts")).status_code == 429
    assert (await claim(client, team.dev_b, "b.ts")).status_code == 200  # its own bucket

    await asyncio.sleep(1.5 / RATE)  # one token and a half

    assert (await claim(client, team.dev_a, "late.ts")).status_code == 200
    assert (await claim(client, team.dev_a, "later.ts")).status_code == 429


def test_the_limit_is_configured_from_the_environment() -> None:
    settings = Settings.from_env({"COORDINATOR_RATE_LIMIT": "0", "COORDINATOR_RATE_BURST": "9"})
    assert (settings.rate_per_s, settings.rate_burst) == (0, 9)
    assert (Settings.from_env({}).rate_per_s, Settings.from_env({}).rate_burst) == (50, 200)
