"""A real `coordinator serve` on a real Redis, attacked as a hostile client or met by an
unlucky operator would: oversized headers, requests that never finish arriving, floods of
connections and of pipelined requests, answers nobody reads, bursts on the Redis pool.
Each attack is bounded in count and time; the limits are set small to keep it short.
``python -m bench.hostile`` measures the same attacks at the default limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from coordinator import keys
from coordinator.admin import Admin
from coordinator.config import Settings
from coordinator.routes import HOOK
from coordinator.transport import connect
from tests.helpers import bearer, stop
from tests.servers import free_port, launch

pytestmark = pytest.mark.real_redis

HEALTH = b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n"


class Replica:
    """A `coordinator serve` process and what a test needs to reach it."""

    def __init__(
        self, process: subprocess.Popen[bytes], port: int, log: Path, redis_url: str
    ) -> None:
        self.process, self.port, self.log, self.redis_url = process, port, log, redis_url
        self.url = f"http://127.0.0.1:{port}"

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def health(self) -> int:
        return httpx.get(f"{self.url}/health", timeout=10).status_code

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def sockets(self) -> int:
        held = 0
        for fd in Path(f"/proc/{self.process.pid}/fd").iterdir():
            try:
                held += os.readlink(fd).startswith("socket:")
            except OSError:
                pass
        return held


Start = Callable[..., Replica]


@pytest.fixture
def start(redis_url: str, real_redis_sync: SyncRedis, tmp_path: Path) -> Iterator[Start]:
    """Starts a replica with more settings (and a shell prefix such as ``ulimit``)."""
    started: list[Replica] = []

    def start_replica(prefix: str = "", **settings: str) -> Replica:
        port = free_port()
        log = tmp_path / f"serve-{len(started)}.log"
        env = {**os.environ, "REDIS_URL": redis_url, "COORDINATOR_RATE_LIMIT": "0", **settings}
        serve = [sys.executable, "-m", "coordinator", "serve", "--port", str(port)]
        command = ["sh", "-c", f'{prefix or ":"} && exec "$@"', "sh", *serve]
        replica = Replica(launch(command, port, log, env), port, log, redis_url)
        started.append(replica)
        return replica

    yield start_replica
    for replica in started:
        if replica.process.poll() is None:
            stop(replica.process)
        assert "Traceback" not in replica.log.read_text()


def read_until_closed(sock: socket.socket, limit: int = 1 << 24, within: float = 20.0) -> bytes:
    """What the server sends until it closes the connection (a reset counts as closed);
    TimeoutError if it keeps it open ``within`` seconds or sends ``limit`` bytes."""
    received = bytearray()
    deadline = time.monotonic() + within
    while len(received) < limit and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return bytes(received)
        if not chunk:
            return bytes(received)
        received += chunk
    raise TimeoutError(f"the connection is still open after {len(received)} bytes")


def one_answer(sock: socket.socket) -> bytes:
    """One answer with a Content-Length, head and body, however the reads split it."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.startswith(b"content-length")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def error_of(answer: bytes) -> tuple[int, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


# -- item 1: the connection's limits ----------------------------------------------------


def test_headers_past_the_limit_get_431_and_the_rest_is_not_read(start: Start) -> None:
    replica = start(COORDINATOR_MAX_HEADER_BYTES="4096")
    with replica.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: ")
        sent, chunk = 0, b"a" * 65536
        try:
            while sent < 64 << 20:  # 64 MB, unless the server stops it
                sock.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        else:
            pytest.fail("the server read a 64 MB header")
        try:
            answer = read_until_closed(sock)
        except OSError:
            answer = b""  # the reset came before the answer could be read: still refused
    if answer:
        assert error_of(answer) == (431, "headers_too_large")
    assert replica.health() == 200


def test_a_header_just_under_the_limit_is_served(start: Start) -> None:
    replica = start(COORDINATOR_MAX_HEADER_BYTES="4096")
    with replica.connect() as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Pad: " + b"a" * 3000 + b"\r\n\r\n")
        assert one_answer(sock).startswith(b"HTTP/1.1 200")


def test_requests_that_never_finish_arriving_are_closed(start: Start) -> None:
    replica = start(COORDINATOR_REQUEST_TIMEOUT="0.5")
    api_key = asyncio.run(acme_key(replica.redis_url))
    half_head = b"GET /health HTTP/1.1\r\nHost: test\r\n"
    half_body = (
        f"POST {HOOK} HTTP/1.1\r\nHost: test\r\n{_auth(api_key)}\r\nContent-Length: 100\r\n\r\n{{"
    ).encode()
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(replica.connect()) for _ in range(3)]
        for sock, sent in zip(sockets, [b"", half_head, half_body], strict=True):
            sock.sendall(sent)
        nothing, head, body = (read_until_closed(sock) for sock in sockets)
    assert nothing == b""  # nothing was asked: nothing to answer
    assert error_of(head) == (408, "request_timeout")
    assert error_of(body) == (408, "request_timeout")
    # A request that comes in time is served on a fresh connection, and on a kept-alive one.
    with replica.connect() as sock:
        for _ in range(2):
            sock.sendall(HEALTH)
            assert one_answer(sock).startswith(b"HTTP/1.1 200")


def test_past_the_cap_idle_connections_make_room_and_files_do_not_run_out(
    start: Start,
) -> None:
    # 300 open files allow 300 - 64 spare - 50 for the pool: 186 connections.
    replica = start("ulimit -n 300", COORDINATOR_REQUEST_TIMEOUT="60")
    with contextlib.ExitStack() as stack:
        idle = [stack.enter_context(replica.connect()) for _ in range(320)]
        for sock in idle[-50:]:
            sock.sendall(b"GET /health HTTP/1.1\r\n")  # half a request: waiting too
        for _ in range(5):
            assert replica.health() == 200
        assert replica.sockets() <= 186 + 10  # the listener and Redis besides
        assert read_until_closed(idle[0]) == b""  # the one that waited longest went first
    assert "COORDINATOR_MAX_CONNECTIONS" in replica.log.read_text()


def test_pipelined_requests_the_client_does_not_read_stay_bounded(start: Start) -> None:
    replica = start()
    assert replica.health() == 200
    before = replica.rss_mb()
    with replica.connect(timeout=10) as sock:
        try:
            for _ in range(100):  # 200,000 requests, 7.6 MB
                sock.sendall(HEALTH * 2000)
        except OSError:
            pass  # closed for sending more than it reads
        time.sleep(1)
        answers = read_until_closed(sock).count(b"HTTP/1.1 200")
    assert answers < 10_000  # the rest was never queued
    assert replica.rss_mb() - before < 30
    assert replica.health() == 200


# -- item 8: an event stream whose client stops reading ---------------------------------


def unread_stream(replica: Replica, api_key: str) -> socket.socket:
    """An event stream of workspace acme whose client reads nothing after the headers."""
    sock = replica.connect(timeout=20)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    request = f"GET /workspaces/acme/events HTTP/1.1\r\nHost: test\r\n{_auth(api_key)}\r\n\r\n"
    sock.sendall(request.encode())
    received = b""
    while b": subscribed" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            sock.close()
            pytest.fail(f"no stream: {received!r}")
        received += chunk
    return sock


def _auth(api_key: str) -> str:
    return f"Authorization: Bearer {api_key}"


def publish_unread(redis_url: str, count: int) -> None:
    """``count`` events of 8 KB: 600 are more than the sockets' buffers hold (4 MB on
    Linux's loopback), and fewer than MAX_BACKLOG."""
    event = json.dumps({"type": "decision", "text": "x" * 8000})
    with SyncRedis.from_url(redis_url) as redis, redis.pipeline() as pipe:
        for _ in range(count):
            pipe.publish(keys.events("acme"), event)
        pipe.execute()


async def acme_key(redis_url: str) -> str:
    redis = Redis.from_url(redis_url, decode_responses=True)
    admin = Admin(redis, Settings(redis_url=redis_url))
    await admin.create_workspace("acme")
    api_key, _ = await admin.create_key("acme", "Developer A")
    await admin.aclose()
    await redis.aclose()
    return api_key


async def revoke(redis_url: str, api_key: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    admin = Admin(redis, Settings(redis_url=redis_url))
    await admin.revoke_key(api_key)
    await admin.aclose()
    await redis.aclose()


def let_go(replica: Replica, sockets: int, within: float = 20.0) -> bool:
    """Whether the replica holds no more than ``sockets`` sockets within ``within`` s:
    its stream's connection, and the stream's subscription, given back."""
    deadline = time.monotonic() + within
    while replica.sockets() > sockets:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def stream_stuck(replica: Replica, api_key: str) -> tuple[socket.socket, int]:
    """A stream whose client reads nothing, the server stuck writing to it; and the
    sockets the replica held before it."""
    assert replica.health() == 200  # the connection to Redis is open: it stays
    before = replica.sockets()
    sock = unread_stream(replica, api_key)
    publish_unread(replica.redis_url, 600)
    time.sleep(1)  # the replica relays what it can, and waits
    return sock, before


def test_revoking_ends_a_stream_whose_client_stopped_reading(start: Start) -> None:
    replica = start(COORDINATOR_EVENTS_KEEPALIVE="0.3", COORDINATOR_SEND_TIMEOUT="600")
    api_key = asyncio.run(acme_key(replica.redis_url))
    sock, before = stream_stuck(replica, api_key)
    with sock:
        asyncio.run(revoke(replica.redis_url, api_key))
        assert let_go(replica, before)  # the client still reads nothing


def test_a_client_that_reads_nothing_for_the_send_timeout_loses_its_stream(
    start: Start,
) -> None:
    replica = start(COORDINATOR_SEND_TIMEOUT="0.5")
    api_key = asyncio.run(acme_key(replica.redis_url))
    sock, before = stream_stuck(replica, api_key)
    with sock:
        assert let_go(replica, before)


def test_a_stream_whose_client_is_too_far_behind_ends(start: Start) -> None:
    replica = start(COORDINATOR_SEND_TIMEOUT="600")
    api_key = asyncio.run(acme_key(replica.redis_url))
    sock, before = stream_stuck(replica, api_key)
    with sock:
        with SyncRedis.from_url(replica.redis_url) as redis, redis.pipeline() as pipe:
            for _ in range(2000):  # MAX_BACKLOG is 1,000
                pipe.publish(keys.events("acme"), '{"type": "decision"}')
            pipe.execute()
        assert let_go(replica, before)


def test_shutdown_ends_a_stream_whose_client_stopped_reading(start: Start) -> None:
    replica = start(COORDINATOR_SEND_TIMEOUT="600")
    api_key = asyncio.run(acme_key(replica.redis_url))
    sock, _ = stream_stuck(replica, api_key)
    with sock:
        replica.process.terminate()
        # Well within the 10 s grace: the server does not wait for the stream.
        assert replica.process.wait(timeout=8) in (0, -signal.SIGTERM)
    log = replica.log.read_text()
    assert "Traceback" not in log and '"ERROR"' not in log


# -- item 3: the Redis pool -------------------------------------------------------------


async def many_keys(redis_url: str, workspaces: int) -> list[str]:
    """A workspace ``ws<n>`` with one key each."""
    settings = Settings(redis_url=redis_url)
    redis = connect(settings)
    admin = Admin(redis, settings)

    async def one(n: int) -> str:
        await admin.create_workspace(f"ws{n}")
        return (await admin.create_key(f"ws{n}", "Dev"))[0]

    found = await asyncio.gather(*(one(n) for n in range(workspaces)))
    await admin.aclose()
    await redis.aclose()
    return found


def _client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    return httpx.AsyncClient(limits=limits, timeout=30)


def test_streams_on_many_workspaces_leave_redis_to_the_requests(
    start: Start, real_redis_sync: SyncRedis
) -> None:
    replica = start()
    api_keys = asyncio.run(many_keys(replica.redis_url, 160))

    async def attack() -> list[int]:
        async with _client() as http:
            streams = []
            for n, api_key in enumerate(api_keys[:110]):
                url = f"{replica.url}/workspaces/ws{n}/events"
                request = http.build_request("GET", url, headers=bearer(api_key))
                streams.append(await http.send(request, stream=True))
            statuses = [response.status_code for response in streams]
            redis_clients = len(real_redis_sync.client_list())
            answers = await asyncio.gather(
                *(http.get(f"{replica.url}/health") for _ in range(50)),
                *(http.get(f"{replica.url}/whoami", headers=bearer(k)) for k in api_keys[110:]),
            )
            for response in streams:
                await response.aclose()
        assert redis_clients <= 5  # the test's own, the pipeline, one for every stream
        return statuses + [answer.status_code for answer in answers]

    statuses = asyncio.run(attack())
    assert statuses == [200] * 210


def test_bursts_on_a_fresh_replica_get_no_503(start: Start) -> None:
    replica = start()
    api_keys = asyncio.run(many_keys(replica.redis_url, 150))

    async def attack() -> list[int]:
        async with _client() as http:
            hooks = [
                http.post(
                    f"{replica.url}{HOOK}",
                    json={"event": "sessionStart", "conversation_id": "c", "workspace": f"ws{n}"},
                    headers=bearer(api_key),
                )
                for n, api_key in enumerate(api_keys)
            ]
            health = [http.get(f"{replica.url}/health") for _ in range(220)]
            bogus = [
                http.get(f"{replica.url}/whoami", headers=bearer(f"ek_bogus{n}"))
                for n in range(400)
            ]
            answers = await asyncio.gather(*hooks, *health, *bogus)
        return [answer.status_code for answer in answers]

    statuses = asyncio.run(attack())
    assert statuses == [200] * 370 + [401] * 400


@pytest.mark.anyio
async def test_the_pool_waits_for_a_connection_rather_than_failing(
    redis_url: str, real_redis_sync: SyncRedis
) -> None:
    """Two connections serve ten commands at once that each hold one for 50 ms."""
    redis = connect(Settings(redis_url=redis_url, redis_pool_size=2))
    try:
        await asyncio.gather(*(redis.blpop(["nothing"], timeout=0.05) for _ in range(10)))
    finally:
        await redis.aclose()
