"""A real `coordinator serve` while its real redis-server stops, hangs, restarts or
comes back empty, and while the service itself is told to stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from coordinator.routes import HOOK, SESSIONS, of_workspace
from tests.helpers import STOPPED, poll, provision, serve, stop
from tests.servers import RedisProcess

pytestmark = pytest.mark.real_redis


@pytest.fixture
def redis_aof(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis", appendonly=True)
    server.start()
    yield server
    server.stop()


class Service:
    def __init__(self, redis: RedisProcess, log: Path, **env: str) -> None:
        self.dev_a, self.dev_b = asyncio.run(provision(redis.url))
        settings = {"COORDINATOR_REDIS_TIMEOUT": "1", "COORDINATOR_REDIS_CONNECT_TIMEOUT": "0.5"}
        self.log = log
        self.process, port = serve({**os.environ, "REDIS_URL": redis.url, **settings, **env}, log)
        self.url = f"http://127.0.0.1:{port}"

    def post(self, api_key: str, **body: Any) -> tuple[int, Any, float]:
        """Status, answer and seconds taken of one hook call."""
        started = time.monotonic()
        response = httpx.post(
            self.url + HOOK, json=body, headers={"Authorization": f"Bearer {api_key}"}, timeout=10
        )
        return response.status_code, response.json(), time.monotonic() - started

    def claim(self, api_key: str, conversation: str, path: str) -> tuple[int, Any, float]:
        return self.post(api_key, event="preToolUse", conversation_id=conversation, file_path=path)


def unavailable(answer: tuple[int, Any, float]) -> bool:
    status, body, _ = answer
    return status == 503 and body["error"] == "store_unavailable"


def test_redis_stopping_hanging_and_restarting_under_a_running_service(
    redis_aof: RedisProcess, tmp_path: Path
) -> None:
    service = Service(redis_aof, tmp_path / "serve.log")
    try:
        assert service.claim(service.dev_a, "a", "src/app.ts")[:2] == (200, {"permission": "allow"})

        redis_aof.stop()  # refused connections: the answer is immediate
        down = [service.claim(service.dev_b, "b", "src/app.ts") for _ in range(3)]
        health = httpx.get(service.url + "/health")
        assert all(unavailable(a) for a in down), down
        assert max(seconds for *_, seconds in down) < 1.5
        assert (health.status_code, health.json()["error"]) == (503, "store_unavailable")

        redis_aof.start()  # the same process reconnects; the AOF kept the reservation
        assert poll(lambda: httpx.get(service.url + "/health").status_code == 200, 5)
        status, denied, _ = service.claim(service.dev_b, "b", "src/app.ts")
        assert (status, denied["permission"]) == (200, "deny")
        assert "Developer A" in denied["message"]

        redis_aof.signal(signal.SIGSTOP)  # a Redis that hangs: the command timeout answers
        hung = service.claim(service.dev_b, "b", "src/other.ts")
        reading = httpx.get(service.url + "/health")
        redis_aof.signal(signal.SIGCONT)
        assert unavailable(hung), hung
        assert 0.9 < hung[2] < 2.5
        assert reading.status_code == 503
        recovered = poll(lambda: service.claim(service.dev_b, "b", "src/other.ts")[0] == 200, 5)
        assert recovered
    finally:
        assert stop(service.process) in STOPPED
    log = service.log.read_text()
    assert "Traceback" not in log
    for api_key in (service.dev_a, service.dev_b):
        assert api_key.removeprefix("ek_") not in log


def test_redis_restarted_empty(tmp_path: Path) -> None:
    """Without persistence a restart loses everything, API keys included: the agents'
    keys are refused with a clear 401 until they are provisioned again; from then on
    sessions come back by themselves on their next events."""
    redis = RedisProcess(tmp_path / "redis", appendonly=False)
    redis.start()
    service = Service(redis, tmp_path / "serve.log")
    try:
        assert service.claim(service.dev_a, "a", "a.ts")[0] == 200
        redis.stop()
        redis.start()
        assert poll(lambda: httpx.get(service.url + "/health").status_code == 200, 5)
        status, body, _ = service.claim(service.dev_a, "a", "a.ts")
        assert (status, body["error"]) == (401, "unauthorized")

        dev_a, dev_b = asyncio.run(provision(redis.url))
        assert service.claim(dev_a, "a", "a.ts")[:2] == (200, {"permission": "allow"})
        status, denied, _ = service.claim(dev_b, "b", "a.ts")
        assert denied["permission"] == "deny" and "Developer A" in denied["message"]
        sessions = httpx.get(
            service.url + of_workspace(SESSIONS, "acme"),
            headers={"Authorization": f"Bearer {dev_a}"},
        ).json()
        assert sorted(s["conversation_id"] for s in sessions) == ["a", "b"]
    finally:
        stop(service.process)
        redis.stop()


def test_sigterm_lets_requests_in_flight_finish_and_refuses_new_connections(
    redis_aof: RedisProcess, tmp_path: Path
) -> None:
    service = Service(redis_aof, tmp_path / "serve.log", COORDINATOR_REDIS_TIMEOUT="10")
    port = int(service.url.rsplit(":", 1)[1])
    subprocess.run(["redis-cli", "-p", str(redis_aof.port), "CLIENT", "PAUSE", "2000", "ALL"],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    answers: list[tuple[int, Any, float]] = []
    in_flight = threading.Thread(
        target=lambda: answers.append(service.claim(service.dev_a, "a", "slow.ts"))
    )
    in_flight.start()
    time.sleep(0.3)  # the request waits on the paused Redis

    service.process.send_signal(signal.SIGTERM)

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            return True
        return False

    assert poll(refused, 1.0)
    assert in_flight.is_alive()  # still waiting on Redis, while new connections are refused
    in_flight.join(timeout=10)
    assert answers and answers[0][:2] == (200, {"permission": "allow"})
    assert service.process.wait(timeout=10) in STOPPED
