"""The deployment, run without Docker as local processes (for tests/process/test_deploy.py): the
replicas' command, nginx with deploy/nginx.conf, which replica served a request (from its
log), event streams through nginx, and a stand-in upstream that streams.
"""

from __future__ import annotations

import collections
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest

from coordinator.routes import EVENTS, HOOK, of_workspace
from tests.event_feed import Feed
from tests.helpers import bearer
from tests.process.deploy_files import local_nginx_conf, read_compose, replicas
from tests.servers import free_port, launch

# --- Local processes ---------------------------------------------------------------------


@dataclass
class Process:
    """A server started by a test, its output going to ``log``."""

    popen: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self, pattern: str) -> int:
        return len(re.findall(pattern, self.log.read_text(errors="replace")))


def start(argv: list[str], env: dict[str, str], log: Path, port: int) -> Process:
    """Run ``argv`` until it listens on ``port``."""
    try:
        return Process(launch(argv, port, log, env), port, log)
    except TimeoutError:
        raise AssertionError(f"{argv} did not listen: {log.read_text(errors='replace')}") from None


def start_replica(
    redis_url: str,
    log: Path,
    extra_env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Process:
    """`coordinator serve` on loopback (on ``port``, or a free one), with the environment
    compose.yaml gives the replicas (REDIS_URL pointed at ``redis_url`` instead of the
    ``redis`` service), and ``extra_env``."""
    service = read_compose()["services"][replicas(read_compose())[0]]
    env = {**os.environ, **service["environment"], "REDIS_URL": redis_url, **(extra_env or {})}
    port = port or free_port()
    argv = [
        sys.executable,
        "-m",
        "coordinator",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    return start(argv, env, log, port)


def binary(name: str) -> str:
    """A program the deployment tests run: they skip without it, but not in CI."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the deployment tests: install {name} (.ci/run does)")
        pytest.skip(f"{name} is not installed")
    return found


def start_nginx(
    upstreams: dict[str, int], folder: Path, swaps: Mapping[str, str] | None = None
) -> Process:
    """nginx with deploy/nginx.conf, its upstreams pointed at local ports, not a daemon;
    each ``swaps`` pattern (a regex, found at least once) replaced."""
    folder.mkdir()
    port = free_port()
    text = local_nginx_conf(port, upstreams)
    for pattern, replacement in (swaps or {}).items():
        text, count = re.subn(pattern, replacement, text)
        assert count, f"{pattern!r} is not in deploy/nginx.conf"
    conf = folder / "nginx.conf"
    conf.write_text(text)
    argv = [binary("nginx"), "-p", str(folder), "-e", "stderr", "-c", str(conf),
            "-g", f"daemon off; pid {folder / 'nginx.pid'};"]  # fmt: skip
    return start(argv, dict(os.environ), folder / "nginx.log", port)


# --- The deployment, running -------------------------------------------------------------


@dataclass
class Deployment:
    """compose.yaml's replicas and nginx as local processes; ``url`` is nginx's."""

    url: str
    replicas: list[Process]
    nginx: Process
    dev_a: str
    dev_b: str


# One JSON line per request, written once it is answered (coordinator/observe.py), so a
# stream's line comes when it ends; the route comes before the status in it.
HOOK_LINE = f'"route":"{HOOK}"[^\\n]*"status":'
HOOK_ANSWERED = HOOK_LINE + "200"
STREAMED = f'"route":"{EVENTS}"[^\\n]*"status":200'
TOO_LARGE = '"status":413'


def lines_of(deployment: Deployment, pattern: str) -> list[int]:
    """How many lines of each replica's log match ``pattern``."""
    return [replica.log_lines(pattern) for replica in deployment.replicas]


def served_by(deployment: Deployment, before: list[int], pattern: str) -> int:
    """Which replica's access log gained a line matching ``pattern`` since ``before``."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        now = lines_of(deployment, pattern)
        grown = [i for i, (a, b) in enumerate(zip(before, now, strict=True)) if b > a]
        if grown:
            assert len(grown) == 1 and sum(now) == sum(before) + 1, (before, now)
            return grown[0]
        time.sleep(0.02)
    raise AssertionError(f"no replica logged {pattern!r}")


def answered_a_hook(replica: Process) -> bool:
    return replica.log_lines(HOOK_ANSWERED) > 0


def wait_until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not {what} after {timeout} s"
        time.sleep(0.02)


@dataclass
class Traffic:
    """Hook events POSTed through nginx by ``senders`` threads, one at a time each, until
    ``stop``, which counts their statuses (an exception's name for no answer)."""

    url: str
    api_key: str
    senders: int = 4
    answers: list[int | str] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for number in range(self.senders):
            self.threads.append(threading.Thread(target=self._send, args=(number,)))
            self.threads[-1].start()

    def stop(self) -> collections.Counter[int | str]:
        self.done.set()
        for thread in self.threads:
            thread.join(timeout=60)
        return collections.Counter(self.answers)

    def _send(self, number: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            sent = 0
            while not self.done.is_set():
                path = f"src/{number}/{sent % 20}.py"
                body = {"event": "preToolUse", "conversation_id": f"c{number}", "file_path": path}
                try:
                    answer: int | str = http.post(
                        HOOK, json=body, headers=bearer(self.api_key)
                    ).status_code
                except httpx.HTTPError as exc:
                    answer = type(exc).__name__
                self.answers.append(answer)
                sent += 1


# How soon an event must come through: a proxy that held it back would hold it until the
# stream's end, or until its buffer filled.
PROMPT = 2.0


async def open_stream(http: httpx.AsyncClient, api_key: str, stack: AsyncExitStack) -> Feed:
    """An event stream opened through nginx, once its replica confirmed the subscription."""
    response = await stack.enter_async_context(
        http.stream("GET", of_workspace(EVENTS, "acme"), headers=bearer(api_key))
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert "x-accel-buffering" not in response.headers, "nginx reads it, and keeps it"
    feed = Feed(response)
    assert await feed.next(PROMPT) == (":", "subscribed")
    return feed


async def ends_within(feed: Feed, seconds: float) -> bool:
    """Whether the server ends the stream within ``seconds``, keepalives aside. Reads whole
    frames only (a read cancelled halfway closes the stream), so keepalives must come."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frame = await feed.next(PROMPT)
        if frame == ("end", ""):
            return True
        assert frame == (":", "keepalive"), frame
    return False


class HeldStream(BaseHTTPRequestHandler):
    """An upstream that sends one event, then holds the second until ``release`` is set.

    Its answer is HTTP/1.0, ended by closing the connection: a buffering nginx holds that
    back, so this shows deploy/nginx.conf's own ``proxy_buffering off`` at work (and, on
    another path, the hold-up it prevents). The replicas' stream can't show it: it is
    chunked, which nginx passes on chunk by chunk even when buffering, and it says
    ``X-Accel-Buffering: no`` besides."""

    release = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(b"data: first\n\n")
        self.wfile.flush()
        self.release.wait(timeout=10)
        self.wfile.write(b"data: second\n\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


def first_event_seconds(url: str, held_for: float) -> float:
    """Seconds until the first event of a HeldStream reached this client, its second held
    back for ``held_for`` seconds."""
    HeldStream.release.clear()
    timer = threading.Timer(held_for, HeldStream.release.set)
    timer.start()
    try:
        began = time.monotonic()
        with httpx.stream("GET", url, timeout=15) as response:
            for line in response.iter_lines():
                if line == "data: first":
                    return time.monotonic() - began
    finally:
        timer.cancel()
        HeldStream.release.set()
    raise AssertionError("the stream ended without its first event")
