"""What publishing live events costs a PreToolUse, side by side.

    python -m bench.events [--rounds 5] [--seconds 4] [--streams 4] [--before REV]

Three replicas, each on a redis-server of its own: ``before`` (the package at ``--before``,
by default the last commit before live events, from ``git archive``), ``events`` (this
tree, nobody listening) and ``events+streams`` (this tree, with ``--streams`` SSE clients
on the same replica, which relays every event to each; ``--streams 0`` leaves it out). wrk sends two
PreToolUse workloads in turn, the sides in turn and reversed every other round:
``renew`` (one conversation writing one file: every request after the first renews a lock
it holds, which publishes nothing) and ``claim`` (500 conversations over a billion files:
nearly every request reserves a new file and publishes ``reserved``). Prints each round's
rates and Redis's own time per script call (``INFO commandstats``: ``usec_per_call`` of
EVALSHA, reset before each run; what the scripts cost, without the replica's noise), then
the median ratios to ``before`` and between the two ``events`` sides.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from redis import Redis as SyncRedis

from bench.__main__ import provision, redis_server, wrk
from tests.servers import free_port, running

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {"renew": (1, 1), "claim": (500, 1_000_000_000)}
SIDES = ("before", "events", "events+streams")
BEFORE_EVENTS = "27fa9ce"  # main before live events landed


@contextlib.contextmanager
def tree_at(revision: str) -> Iterator[Path]:
    """The package as it is at ``revision``, in a folder of its own."""
    with tempfile.TemporaryDirectory(prefix="coordinator-before-") as folder:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", revision, "coordinator"],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
        yield Path(folder)


@contextlib.contextmanager
def replica(redis_url: str, code: Path | None) -> Iterator[str]:
    """A replica on ``redis_url``, running the package in ``code`` (None: this tree)."""
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "COORDINATOR_RATE_LIMIT": "0"}
    if code is not None:  # ahead of the editable install of this tree
        env["PYTHONPATH"] = str(code)
    command = [sys.executable, "-m", "coordinator", "serve", "--no-access-log", "--port"]
    with running([*command, str(port)], port, env=env, timeout=20):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def streams(url: str, key: str, count: int, folder: Path) -> Iterator[list[Path]]:
    """``count`` SSE clients (curl) on the replica, each writing what it receives to a file."""
    outputs = [folder / f"stream-{i}.txt" for i in range(count)]
    clients = []
    try:
        for output in outputs:
            command = ["curl", "-sN", "-H", f"Authorization: Bearer {key}",
                       f"{url}/workspaces/bench/events"]  # fmt: skip
            with output.open("wb") as out:
                clients.append(subprocess.Popen(command, stdout=out))
        yield outputs
    finally:
        for client in clients:
            client.terminate()
            client.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--before", default=BEFORE_EVENTS, help="the git revision to compare")
    args = parser.parse_args()
    sides = SIDES if args.streams else SIDES[:2]
    with contextlib.ExitStack() as stack:
        old = stack.enter_context(tree_at(args.before))
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        urls, keys, redis = {}, {}, {}
        for side in sides:
            redis_url = stack.enter_context(redis_server())
            redis[side] = SyncRedis.from_url(redis_url, decode_responses=True)
            keys[side] = asyncio.run(provision(redis_url))
            urls[side] = stack.enter_context(replica(redis_url, old if side == "before" else None))
        outputs = []
        if args.streams:
            outputs = stack.enter_context(
                streams(urls["events+streams"], keys["events+streams"], args.streams, folder)
            )
        for side in sides:  # warm up; load the scripts
            for scale in WORKLOADS.values():
                wrk(urls[side], "pre", keys[side], 1, 32, scale)
        ratios: dict[tuple[str, str], list[float]] = {}
        script_us: dict[tuple[str, str], list[float]] = {}
        for round_ in range(args.rounds):
            for workload, scale in WORKLOADS.items():
                order = sides if round_ % 2 == 0 else sides[::-1]  # no side always first
                rates, p50s, us = {}, {}, {}
                for side in order:
                    redis[side].config_resetstat()
                    run = wrk(urls[side], "pre", keys[side], args.seconds, 32, scale)
                    assert run.non_2xx == 0 and run.socket_errors == 0, run
                    rates[side], p50s[side] = run.rate, run.p50_us / 1000
                    stats = redis[side].info("commandstats")["cmdstat_evalsha"]
                    us[side] = float(stats["usec_per_call"])
                    script_us.setdefault((workload, side), []).append(us[side])
                for side in sides[1:]:
                    ratios.setdefault((workload, side), []).append(rates[side] / rates["before"])
                if args.streams:
                    with_streams = rates["events+streams"] / rates["events"]
                    ratios.setdefault((workload, "streams/none"), []).append(with_streams)
                print(
                    f"round {round_ + 1} {workload:5}  "
                    + "   ".join(
                        f"{s} {rates[s]:6.0f} req/s p50 {p50s[s]:5.2f} ms script {us[s]:5.1f} us"
                        for s in sides
                    )
                )
        if outputs:
            received = [path.read_bytes().count(b"event: reserved") for path in outputs]
            print(f"'reserved' events received by each of the {args.streams} streams: {received}")
        for (workload, side), values in script_us.items():
            print(f"median Redis time per script call {workload:5} {side:15} "
                  f"{statistics.median(values):5.1f} us")  # fmt: skip
        for (workload, side), values in ratios.items():
            label = f"{side} / before" if side in SIDES else "events+streams / events"
            print(f"median ratio {workload:5} {label:26} {statistics.median(values):.3f}  "
                  f"(rounds: {' '.join(f'{v:.2f}' for v in values)})")  # fmt: skip


if __name__ == "__main__":
    main()
