"""Instructions per PreToolUse of one replica, by callgrind: ``python -m bench.instructions``.

    python -m bench.instructions [--requests 320] [--baseline DIR] [-- serve options...]

The rates and CPU times of ``python -m bench`` move with whatever else runs on the
machine; the instructions a replica executes per request do not (within about 1 %), so
this is how a change to the hook path is measured step by step. It starts a redis-server
and a replica under ``valgrind --tool=callgrind`` (the code in DIR with ``--baseline``),
warms it up, counts only while it sends ``--requests`` PreToolUse events of Claude Code
shape, 16 connections at a time, and prints the instructions per request. User space
only: the kernel's side of a system call is not counted. Needs valgrind; takes about a
minute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.__main__ import provision, redis_server
from tests.servers import free_port, wait_for_port

CONNECTIONS = 16
HOOK = "/workspaces/sessions/hook"


def request(key: str, n: int) -> bytes:
    body = json.dumps(
        {
            "session_id": f"claude-{n % 50}",
            "cwd": "/home/dev/repo",
            "hook_event_name": "PreToolUse",
            "tool_name": "Edit",
            "tool_input": {"file_path": f"/home/dev/repo/src/module{n % 97}/file{n}.ts"},
        }
    ).encode()
    head = (
        f"POST {HOOK} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def answer(sock: socket.socket) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, rest = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"bench.instructions: the replica answered {head.splitlines()[0]!r}")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(rest) < length:
        rest += sock.recv(65536)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=320)
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="the coordinator in DIR")
    parser.add_argument("serve", nargs="*", help="options for coordinator serve, after --")
    args = parser.parse_args()
    with redis_server() as redis_url, tempfile.TemporaryDirectory() as folder:
        port = free_port()
        out = Path(folder) / "callgrind.out"
        env = {**os.environ, "REDIS_URL": redis_url, "COORDINATOR_RATE_LIMIT": "1e9"}
        env["PYTHONHASHSEED"] = "0"  # the same dict layouts, run after run
        command = [
            "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
            sys.executable, "-m", "coordinator", "serve", "--port", str(port), *args.serve,
        ]  # fmt: skip
        cwd = args.baseline.resolve() if args.baseline else None  # `-m` imports from there
        with (Path(folder) / "serve.log").open("wb") as log:
            replica = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=log)
        try:
            wait_for_port(port, 300)
            key = asyncio.run(provision(redis_url))
            sockets = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]

            def send(first: int) -> None:
                for n, sock in enumerate(sockets):
                    sock.sendall(request(key, first + n))
                for sock in sockets:
                    answer(sock)

            for first in range(0, 10 * CONNECTIONS, CONNECTIONS):  # warm up
                send(first)
            control = ["callgrind_control", "-i", "on", str(replica.pid)]
            subprocess.run(control, check=True, capture_output=True)
            counted = 0
            while counted < args.requests:
                send(10 * CONNECTIONS + counted)
                counted += CONNECTIONS
            control[2] = "off"
            subprocess.run(control, check=True, capture_output=True)
            subprocess.run(
                ["callgrind_control", "-d", str(replica.pid)], check=True, capture_output=True
            )
            totals = [
                int(line.split()[1])
                for dump in Path(folder).glob("callgrind.out*")
                for line in dump.read_text().splitlines()
                if line.startswith(("summary:", "totals:"))
            ]
            print(f"{max(totals) / counted:,.0f} instructions per PreToolUse ({counted} counted)")
        finally:
            replica.terminate()
            replica.wait(60)


if __name__ == "__main__":
    main()
