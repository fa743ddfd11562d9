"""What many test files share: auth headers, the hook call, the test team's keys, and a
real ``coordinator`` process (``serve`` and the admin commands).

Fixtures live in conftest.py; route paths come from ``coordinator.routes``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
from redis.asyncio import Redis

from coordinator.admin import Admin
from coordinator.config import Settings
from coordinator.routes import HOOK
from tests.servers import free_port, launch

# uvicorn re-raises the SIGTERM it handled once it has shut down gracefully.
STOPPED = (0, -signal.SIGTERM)


def bearer(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"}


async def post_hook(
    client: httpx.AsyncClient, api_key: str, body: dict[str, Any], agent: str | None = None
) -> httpx.Response:
    """POST ``body`` to the hook route (as ``agent``'s own payload if given), any answer."""
    params = {"agent": agent} if agent else None
    return await client.post(HOOK, headers=bearer(api_key), json=body, params=params)


async def hook_response(client: httpx.AsyncClient, api_key: str, **body: Any) -> httpx.Response:
    """The hook route's answer, any status, to a body of ``body``'s fields."""
    return await post_hook(client, api_key, body)


async def send_hook(
    client: httpx.AsyncClient, api_key: str, body: dict[str, Any], agent: str | None = None
) -> Any:
    """The hook route's JSON answer to ``body``, which must be a 200."""
    response = await post_hook(client, api_key, body, agent)
    assert response.status_code == 200, response.text
    return response.json()


async def hook(client: httpx.AsyncClient, api_key: str, **body: Any) -> Any:
    """The hook route's JSON answer to a body of ``body``'s fields, which must be a 200."""
    return await send_hook(client, api_key, body)


def poll(check: Callable[[], bool], seconds: float) -> bool:
    """Whether ``check`` holds within ``seconds`` (asked every 50 ms)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


class Team(msgspec.Struct):
    """A workspace 'acme' with two developers' keys, and one key of workspace 'other'."""

    dev_a: str
    dev_b: str
    outsider: str
    workspace_id: str


class Service(msgspec.Struct):
    """A real `coordinator serve` process on the real Redis, with two developers' keys."""

    url: str
    dev_a: str
    dev_b: str
    log: Path


async def provision(redis_url: str) -> tuple[str, str]:
    """Workspace 'acme' on the Redis at ``redis_url``, and two developers' keys to it."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    admin = Admin(redis, Settings(redis_url=redis_url))
    await admin.create_workspace("acme")
    dev_a, _ = await admin.create_key("acme", "Developer A")
    dev_b, _ = await admin.create_key("acme", "Developer B")
    await admin.aclose()
    await redis.aclose()
    return dev_a, dev_b


def serve(env: dict[str, str], log: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """Start `coordinator serve` on a free port (more flags in ``args``), its output
    going to ``log``."""
    port = free_port()
    command = [sys.executable, "-m", "coordinator", "serve", "--port", str(port), *args]
    return launch(command, port, log, env), port


def stop(server: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as a supervisor would; the exit code."""
    server.terminate()
    try:
        return server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
        raise


def coordinator(
    *args: str, redis_url: str | None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run the ``coordinator`` command with ``args`` on the Redis at ``redis_url`` (none:
    no REDIS_URL at all); whatever it exits with."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    if redis_url:
        env["REDIS_URL"] = redis_url
    return subprocess.run(
        [sys.executable, "-m", "coordinator", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        input=stdin,
    )
