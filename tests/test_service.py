"""End to end: a real `coordinator serve` process, driven over HTTP."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path
from subprocess import Popen
from typing import Any

import httpx
from redis import Redis as SyncRedis

from coordinator.routes import HOOK, RESERVATIONS, SESSIONS, of_workspace
from tests.helpers import STOPPED, Service, bearer, poll, provision, serve, stop
from tests.servers import refuses


class Client:
    """One developer's view of the service (a connection per request, like the hooks)."""

    def __init__(self, url: str, api_key: str) -> None:
        self.url, self.headers = url, bearer(api_key)

    def hook(self, **body: Any) -> Any:
        response = httpx.post(self.url + HOOK, json=body, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.url}{path}", headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()


def test_two_developers_and_their_agents(service: Service) -> None:
    b, a = Client(service.url, service.dev_b), Client(service.url, service.dev_a)
    assert httpx.get(f"{service.url}/health").json()["status"] == "ok"
    b.hook(
        event="sessionStart",
        agent_type="cursor",
        conversation_id="conv-b",
        task="Build JWT auth flow",
    )
    assert b.hook(
        event="preToolUse",
        conversation_id="conv-b",
        cwd="/home/b/repo",
        file_path="/home/b/repo/src/auth/login.ts",
    ) == {"permission": "allow"}
    briefing = a.hook(event="sessionStart", agent_type="claude-code", conversation_id="conv-a")
    assert "  - Developer B (Cursor): Build JWT auth flow" in briefing["additional_context"]
    assert "  - src/auth/login.ts (Developer B)" in briefing["additional_context"]
    denied = a.hook(
        event="preToolUse",
        conversation_id="conv-a",
        cwd="/Users/a/work/repo",
        file_path="/Users/a/work/repo/src/auth/login.ts",
    )
    assert denied == {
        "permission": "deny",
        "message": "File src/auth/login.ts is reserved by Developer B — 'Build JWT auth flow' "
        "(10 min remaining)",
    }
    holders = {r["file_path"]: r["user_name"] for r in a.get(of_workspace(RESERVATIONS, "acme"))}
    assert holders == {"src/auth/login.ts": "Developer B"}
    assert {s["user_name"] for s in a.get(of_workspace(SESSIONS, "acme"))} == {
        "Developer A",
        "Developer B",
    }
    assert b.hook(event="sessionEnd", conversation_id="conv-b") == {"ok": True}
    assert a.hook(event="preToolUse", conversation_id="conv-a", file_path="src/auth/login.ts") == {
        "permission": "allow"
    }


def test_expiry_in_a_running_service(
    redis_url: str, real_redis_sync: SyncRedis, tmp_path: Path
) -> None:
    dev_a, dev_b = asyncio.run(provision(redis_url))
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "COORDINATOR_SESSION_TTL": "0.4",
        "COORDINATOR_RESERVATION_TTL": "0.8",
    }
    server, port = serve(env, tmp_path / "serve.log")
    try:
        url = f"http://127.0.0.1:{port}"
        a, b = Client(url, dev_a), Client(url, dev_b)
        b.hook(event="preToolUse", conversation_id="conv-b", file_path="a.ts")
        assert (
            a.hook(event="preToolUse", conversation_id="conv-a", file_path="a.ts")["permission"]
            == "deny"
        )
        assert poll(lambda: a.get(of_workspace(SESSIONS, "acme")) == [], 3)
        assert poll(lambda: a.get(of_workspace(RESERVATIONS, "acme")) == [], 3)
        assert a.hook(event="preToolUse", conversation_id="conv-a", file_path="a.ts") == {
            "permission": "allow"
        }
    finally:
        assert stop(server) in STOPPED


def test_the_embedded_store_needs_no_redis(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    log = tmp_path / "serve.log"
    server, port = serve(env, log)
    try:
        assert poll(lambda: "ek_" in log.read_text(), 5)
        output = log.read_text()
        assert "embedded in-process store" in output
        assert "NOT persisted and NOT shared" in output
        [api_key] = [line for line in output.splitlines() if line.startswith("ek_")]
        client = Client(f"http://127.0.0.1:{port}", api_key)
        assert client.hook(event="preToolUse", conversation_id="one", file_path="x.ts") == {
            "permission": "allow"
        }
        assert (
            client.hook(event="preToolUse", conversation_id="two", file_path="x.ts")["permission"]
            == "deny"
        )
        assert [s["user_name"] for s in client.get("/workspaces/demo/sessions")] == [
            "Demo User",
            "Demo User",
        ]
    finally:
        assert stop(server) in STOPPED


def test_sigterm_stops_the_service_cleanly(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    server, port = serve(env, tmp_path / "serve.log")
    assert httpx.get(f"http://127.0.0.1:{port}/health").is_success
    assert stop(server) in STOPPED
    log = (tmp_path / "serve.log").read_text()
    assert "Shutting down" in log and "Finished server process" in log


HEALTH = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"


def ask_health(sock: socket.socket) -> bytes:
    """GET /health on a kept-alive connection; the answer's head, lower-cased."""
    sock.sendall(HEALTH)
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed with no answer, after {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head.lower()


def closed(sock: socket.socket) -> bool:
    """Whether the server closed the connection (nothing else is sent on it here)."""
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)


def drained_replica(tmp_path: Path, drain: str) -> tuple[Popen[bytes], list[socket.socket]]:
    """A replica with two kept-alive connections, each answered once, then SIGTERM."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    server, port = serve({**env, "COORDINATOR_DRAIN": drain}, tmp_path / "serve.log")
    connections = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in "ab"]
    for sock in connections:
        assert b"connection: close" not in ask_health(sock)
    server.send_signal(signal.SIGTERM)
    assert poll(lambda: refuses(port), 10), "still listening"
    return server, connections


def test_a_stopping_replica_closes_each_connection_after_its_next_answer(tmp_path: Path) -> None:
    # A proxy may be sending a request on any idle connection: closing it under the
    # request would lose it (nginx sends no POST on to another replica once sent).
    server, (busy, idle) = drained_replica(tmp_path, drain="60")
    try:
        head = ask_health(busy)
        assert head.startswith(b"http/1.1 200") and b"connection: close" in head, head
        assert poll(lambda: closed(busy), 10)
        assert not poll(lambda: closed(idle), 1), "an idle connection closed during the drain"
        # Its client closes the last one: the replica exits, without waiting out the drain.
        idle.close()
        assert server.wait(timeout=20) in STOPPED
    finally:
        busy.close()
        idle.close()
        if server.poll() is None:
            stop(server)


def test_a_stopping_replica_closes_idle_connections_once_drained(tmp_path: Path) -> None:
    server, connections = drained_replica(tmp_path, drain="0.5")
    try:
        assert poll(lambda: all(closed(sock) for sock in connections), 10)
        assert server.wait(timeout=20) in STOPPED
    finally:
        for sock in connections:
            sock.close()
        if server.poll() is None:
            stop(server)
