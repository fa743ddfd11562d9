"""Local processes for the tests and the benchmarks: free ports, waiting, a throwaway Redis
(one server, or a cluster of them)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from redis import exceptions as redis_errors


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free a moment ago (held open together, so distinct)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def refuses(port: int) -> bool:
    """Whether nothing listens on ``port`` (any more)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def launch(
    argv: list[str],
    port: int,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    append: bool = False,
    cwd: Path | None = None,
    timeout: float = 10.0,
) -> subprocess.Popen[bytes]:
    """Start ``argv``, its output going to ``log`` (or nowhere), and wait until it listens
    on ``port``; killed, and TimeoutError, if it never does."""
    with contextlib.ExitStack() as files:
        out: Any = subprocess.DEVNULL
        if log is not None:
            out = files.enter_context(log.open("ab" if append else "wb"))
        process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for_port(port, timeout)
    except TimeoutError:
        process.kill()
        process.wait()
        raise
    return process


@contextlib.contextmanager
def running(
    argv: list[str],
    port: int,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    append: bool = False,
    cwd: Path | None = None,
    timeout: float = 10.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """``launch``, then SIGTERM and a wait of at most ``timeout`` on leaving the block."""
    process = launch(argv, port, log, env, append=append, cwd=cwd, timeout=timeout)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=timeout)


def redis_server_command(binary: str, port: int, folder: str) -> list[str]:
    """A redis-server on loopback that keeps nothing: no snapshots, no append-only file."""
    return [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", folder]  # fmt: skip


def redis_binary() -> str:
    """The redis-server on PATH. Without one a test skips, but fails under CI, where the
    real-Redis tests must run."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("CI must test against a real Redis: install redis-server")
        pytest.skip("no redis-server on PATH")
    return binary


@contextlib.contextmanager
def own_redis(folder: Path, *options: str) -> Iterator[str]:
    """The URL of a redis-server of a test's own (whose settings it may change), started
    with ``options`` added, and stopped on leaving the block."""
    port = free_port()
    with running([*redis_server_command(redis_binary(), port, str(folder)), *options], port):
        yield f"redis://127.0.0.1:{port}/0"


class RedisProcess:
    """A redis-server of a test's own, that the test can stop, freeze and restart."""

    def __init__(self, folder: Path, appendonly: bool) -> None:
        self.port, self.folder = free_port(), folder
        self.command = redis_server_command(redis_binary(), self.port, str(folder))
        if appendonly:  # as docs/operations.md recommends: every write on disk before its answer
            self.command += ["--appendonly", "yes", "--appendfsync", "always"]
        self.process: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(exist_ok=True)
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL)
        wait_for_port(self.port)

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)


@contextlib.contextmanager
def redis_cluster(
    server_binary: str, cli_binary: str, masters: int = 3, timeout: float = 30.0
) -> Iterator[list[int]]:
    """A throwaway Redis Cluster of ``masters`` primaries and no replicas on loopback,
    keeping nothing; yields their ports once every node reports ``cluster_state:ok``.
    The processes and their folder are gone when the block exits."""
    with tempfile.TemporaryDirectory(prefix="redis-cluster-") as folder:
        # The cluster bus gets its own free port (cluster-port, Redis 7): the default,
        # port + 10000, may be taken or past 65535.
        ports = free_ports(2 * masters)
        nodes = list(zip(ports[:masters], ports[masters:], strict=True))
        servers: list[subprocess.Popen[bytes]] = []
        try:
            for port, bus_port in nodes:
                command = [
                    *redis_server_command(server_binary, port, folder),
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", f"{folder}/nodes-{port}.conf",
                    "--cluster-port", str(bus_port),
                ]  # fmt: skip
                servers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL))
            data_ports = [port for port, _ in nodes]
            for port in data_ports:
                wait_for_port(port, timeout)
            create = [cli_binary, "--cluster", "create", *(f"127.0.0.1:{p}" for p in data_ports),
                      "--cluster-replicas", "0", "--cluster-yes"]  # fmt: skip
            subprocess.run(create, check=True, capture_output=True, timeout=timeout)
            wait_for_cluster(data_ports, timeout)
            yield data_ports
        finally:
            for server in servers:
                server.terminate()
            for server in servers:
                try:
                    server.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()


def wait_for_cluster(ports: list[int], timeout: float = 30.0) -> None:
    """Until every node reports ``cluster_state:ok`` and knows all the others."""
    deadline = time.monotonic() + timeout
    for port in ports:
        with Redis(host="127.0.0.1", port=port, decode_responses=True) as node:
            while True:
                try:
                    info = node.cluster("INFO")
                except redis_errors.ConnectionError:
                    info = {}
                if info.get("cluster_state") == "ok" and int(
                    info.get("cluster_known_nodes", 0)
                ) == len(ports):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the Redis Cluster on {ports} is not ok after {timeout} s")
                time.sleep(0.05)
