"""Attacks on one replica, as a hostile client or an unlucky operator would make them.

    python -m bench.hostile [--before REV] [--only NAME ...]

Each attack runs against a fresh ``coordinator serve`` (under ``ulimit -n 1024``, as many
hosts start it) on a throwaway redis-server, while a probe opens a new connection for a
``GET /health`` every 50 ms. Printed per attack: the probe's latency p50 and max, its
failures (no answer, or not 200), the replica's RSS growth, the sockets it still holds
when the attack ends, and the attack's own 503s. With ``--before REV`` the same attacks
run against the package at REV first (``git archive``). Every attack is bounded in count
and time; all traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from bench.__main__ import redis_server
from bench.events import tree_at
from coordinator import keys
from coordinator.admin import Admin
from coordinator.config import Settings
from tests.servers import free_port, running

HEALTH = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"
HOOK = "/workspaces/sessions/hook"
NOTES: list[str] = []  # what an attack has to say besides the figures


@dataclass
class Target:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    redis_url: str
    keys: list[str]
    log: Path


@dataclass
class Outcome:
    probe_ms: list[float] = field(default_factory=list)
    probe_failures: int = 0
    rss_growth_mb: float = 0.0
    held: int = 0
    status_503: int = 0
    note: str = ""


class Probe:
    """``GET /health`` on a new connection every 50 ms, in a thread of its own."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Probe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            start = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
                    sock.sendall(HEALTH)
                    answer = sock.recv(4096)
                ok = answer.startswith(b"HTTP/1.1 200")
            except OSError:
                ok = False
            if ok:
                self.latencies.append((time.perf_counter() - start) * 1000)
            else:
                self.failures += 1


def rss_mb(pid: int) -> float:
    """The process's resident memory, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def sockets_of(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


async def provision(redis_url: str, workspaces: int, keys_each: int) -> list[str]:
    redis = Redis.from_url(redis_url, decode_responses=True)
    await redis.flushdb()
    admin = Admin(redis, Settings(redis_url=redis_url))
    found = []
    for n in range(workspaces):
        await admin.create_workspace(f"ws{n}")
        for _ in range(keys_each):
            found.append((await admin.create_key(f"ws{n}", "Bench"))[0])
    await admin.aclose()
    await redis.aclose()
    return found


@contextlib.contextmanager
def target(code: Path | None, workspaces: int, keys_each: int, folder: Path) -> Iterator[Target]:
    with redis_server() as redis_url:
        keys = asyncio.run(provision(redis_url, workspaces, keys_each))
        port = free_port()
        env = {**os.environ, "REDIS_URL": redis_url, "COORDINATOR_RATE_LIMIT": "0"}
        if code is not None:
            env["PYTHONPATH"] = str(code)
        log = folder / f"serve-{port}.log"
        serve = [sys.executable, "-m", "coordinator", "serve", "--no-access-log"]
        command = ["sh", "-c", 'ulimit -n 1024 && exec "$@"', "sh", *serve, "--port", str(port)]
        with running(command, port, log, env, cwd=folder, timeout=20) as process:
            yield Target(f"http://127.0.0.1:{port}", port, process, redis_url, keys, log)


# -- the attacks: each returns its own 503 count ------------------------------------------


def pipelining(t: Target) -> int:
    """One connection sends 300,000 pipelined GET /health (at most 15 s) and reads nothing."""
    with socket.create_connection(("127.0.0.1", t.port)) as sock:
        sock.settimeout(15)
        batch, deadline = HEALTH * 1000, time.monotonic() + 15
        with contextlib.suppress(OSError):
            for _ in range(300):
                sock.sendall(batch)
                if time.monotonic() > deadline:
                    break
        time.sleep(2)
    return 0


def big_headers(t: Target) -> int:
    """Two connections each send a 100 MB header (at most 20 s), reading nothing."""

    def one() -> None:
        with socket.create_connection(("127.0.0.1", t.port)) as sock:
            sock.settimeout(20)
            chunk, deadline = b"a" * (1 << 20), time.monotonic() + 20
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ")
                for _ in range(100):
                    sock.sendall(chunk)
                    if time.monotonic() > deadline:
                        break

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return 0


def idle_sockets(t: Target) -> int:
    """1,100 connections: a third send nothing, a third half the headers, a third half a
    body; held 15 s."""
    half_body = b"POST /workspaces/decisions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"
    partial = [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n", half_body]
    held = []
    for n in range(1100):
        with contextlib.suppress(OSError):
            sock = socket.create_connection(("127.0.0.1", t.port), timeout=5)
            sock.sendall(partial[n % 3])
            held.append(sock)
    time.sleep(15)
    for sock in held:
        sock.close()
    return 0


def _open_unread_stream(t: Target) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", t.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.sendall(
        f"GET /workspaces/ws0/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {t.keys[0]}"
        "\r\n\r\n".encode()
    )
    time.sleep(1)
    return sock


def _publish(t: Target, count: int, size: int) -> None:
    event = '{"type":"decision","text":"' + "x" * size + '"}'
    with SyncRedis.from_url(t.redis_url) as redis, redis.pipeline() as pipe:
        for _ in range(count):
            pipe.publish(keys.events("ws0"), event)
        pipe.execute()


def unread_stream(t: Target) -> int:
    """An event stream that reads nothing while 600 events of 8 KB are published (more than
    the sockets' buffers: the replica is stuck writing), then its key is revoked; notes how
    long the replica kept the stream's connection after that."""
    with _open_unread_stream(t) as sock:
        client_port = sock.getsockname()[1]
        _publish(t, 600, 8000)
        time.sleep(1)
        asyncio.run(_revoke(t.redis_url, t.keys[0]))
        start = time.monotonic()
        while time.monotonic() - start < 40 and _established(t.port, client_port):
            time.sleep(0.2)
        NOTES.append(f"stream held {time.monotonic() - start:.1f} s after the revocation")
    return 0


def _established(port: int, client_port: int) -> bool:
    """Whether the replica still holds its end of the connection from ``client_port``
    (once it closes it, the kernel may still be sending, in FIN-WAIT)."""
    query = f"( sport = :{port} and dport = :{client_port} )"
    found = subprocess.run(
        ["ss", "-tnH", "state", "established", query], capture_output=True, text=True
    )
    return bool(found.stdout.strip())


def unread_shutdown(t: Target) -> int:
    """An event stream that reads nothing while 600 events of 8 KB are published, then
    SIGTERM; notes how long the replica took to exit and the tracebacks it logged."""
    with _open_unread_stream(t):
        _publish(t, 600, 8000)
        time.sleep(1)
        start = time.monotonic()
        t.process.terminate()
        t.process.wait(timeout=60)
        elapsed = time.monotonic() - start
    logged = t.log.read_text(errors="replace")
    NOTES.append(f"SIGTERM to exit {elapsed:.1f} s, {logged.count('Traceback')} tracebacks")
    return 0


async def _revoke(redis_url: str, api_key: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    admin = Admin(redis, Settings(redis_url=redis_url))
    await admin.revoke_key(api_key)
    await admin.aclose()
    await redis.aclose()


def concurrently(count: int, call: Callable[[httpx.AsyncClient, int], Awaitable[Any]]) -> int:
    async def run() -> int:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            answers = await asyncio.gather(
                *(call(client, n) for n in range(count)),
                return_exceptions=True,
            )
        return sum(getattr(a, "status_code", 0) == 503 for a in answers)

    return asyncio.run(run())


def streams(t: Target) -> int:
    """One event stream on each of 110 workspaces, then 50 /health and 50 logins."""

    async def run() -> int:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            opened = []
            for n, key in enumerate(t.keys[:110]):
                request = client.build_request(
                    "GET", f"{t.url}/workspaces/ws{n}/events", headers=_bearer(key)
                )
                opened.append(await client.send(request, stream=True))
            statuses = [r.status_code for r in opened]
            health = await asyncio.gather(*(client.get(f"{t.url}/health") for _ in range(50)))
            logins = await asyncio.gather(
                *(client.get(f"{t.url}/whoami", headers=_bearer(k)) for k in t.keys[110:160])
            )
            for response in opened:
                await response.aclose()
        every = statuses + [r.status_code for r in (*health, *logins)]
        return every.count(503)

    return asyncio.run(run())


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def hooks(t: Target) -> int:
    """150 hook calls at once, on a fresh replica, each with a key it has not seen."""

    def call(client: httpx.AsyncClient, n: int) -> Awaitable[httpx.Response]:
        body = {"event": "sessionStart", "conversation_id": f"c{n}", "workspace": f"ws{n}"}
        return client.post(f"{t.url}{HOOK}", json=body, headers=_bearer(t.keys[n]))

    return concurrently(150, call)


def health(t: Target) -> int:
    """220 GET /health at once."""
    return concurrently(220, lambda client, _: client.get(f"{t.url}/health"))


def bogus_keys(t: Target) -> int:
    """400 requests at once, each with a key that does not exist."""

    def call(client: httpx.AsyncClient, n: int) -> Awaitable[httpx.Response]:
        return client.get(f"{t.url}/whoami", headers=_bearer(f"ek_bogus{n}"))

    return concurrently(400, call)


ATTACKS: dict[str, tuple[Callable[[Target], int], int]] = {
    # name: (attack, workspaces to provision)
    "pipelining": (pipelining, 1),
    "big-headers": (big_headers, 1),
    "idle-sockets": (idle_sockets, 1),
    "unread-stream": (unread_stream, 1),
    "unread-shutdown": (unread_shutdown, 1),
    "streams": (streams, 160),
    "hooks": (hooks, 150),
    "health": (health, 1),
    "bogus-keys": (bogus_keys, 1),
}


def attack(name: str, code: Path | None, folder: Path) -> Outcome:
    run, workspaces = ATTACKS[name]
    with target(code, workspaces, 1, folder) as t:
        httpx.get(f"{t.url}/health")  # warm
        time.sleep(0.5)
        before = rss_mb(t.process.pid)
        with Probe(t.port) as probe:
            status_503 = run(t)
            time.sleep(1)  # and a second after
        outcome = Outcome(probe.latencies, probe.failures)
        if t.process.poll() is None:
            outcome.rss_growth_mb = rss_mb(t.process.pid) - before
            outcome.held = sockets_of(t.process.pid)
        outcome.status_503, outcome.note = status_503, "; ".join(NOTES)
        NOTES.clear()
    return outcome


def report(side: str, name: str, o: Outcome) -> None:
    p50 = statistics.median(o.probe_ms) if o.probe_ms else float("nan")
    slowest = max(o.probe_ms, default=float("nan"))
    print(
        f"{side:6} {name:15} /health p50 {p50:6.1f} ms max {slowest:7.1f} ms "
        f"failed {o.probe_failures:3}  RSS +{o.rss_growth_mb:6.1f} MB  "
        f"sockets held {o.held:4}  503s {o.status_503:3}  {o.note}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a git revision to attack first")
    parser.add_argument("--only", nargs="*", choices=sorted(ATTACKS), default=sorted(ATTACKS))
    args = parser.parse_args()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))  # the attacker's
    with contextlib.ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hostile-")))
        sides: list[tuple[str, Path | None]] = [("after", None)]
        if args.before:
            sides.insert(0, ("before", stack.enter_context(tree_at(args.before))))
        for side, code in sides:
            for name in args.only:
                report(side, name, attack(name, code, folder))


if __name__ == "__main__":
    main()
