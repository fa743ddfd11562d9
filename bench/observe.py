"""What metrics and the JSON request log cost a PreToolUse, side by side.

    python -m bench.observe [--rounds 5] [--seconds 4]

Starts its own redis-server and three replicas on it, alternating wrk runs of PreToolUse
against them (the order rotates each round):

- ``bare``: ``coordinator serve --no-access-log`` with the metrics middleware swapped for
  one that only hands the handlers their (unread) record: neither metrics nor log lines;
- ``metrics``: ``coordinator serve --no-access-log``: counted, no line per request;
- ``metrics+logs``: ``coordinator serve``: counted, and one JSON line per request,
  written to a file as a supervisor would collect it.

With ``--baseline DIR``, a fourth replica runs the coordinator package found in DIR (say
``git archive main coordinator | tar -x -C DIR``) as ``coordinator serve`` with its
defaults: before this change, that was uvicorn's own access log and no metrics.

Prints each round's rates and the replicas' CPU time per request (user + system, from
/proc: unlike a rate, it does not move when something else runs on the machine), each
as a ratio to ``bare``, and their medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, cast

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from bench.__main__ import provision, redis_server, wrk
from coordinator import commands
from coordinator.app import create_app
from coordinator.observe import RECORD, Observe, RequestRecord
from tests.servers import free_port, running

SIDES = ("bare", "metrics", "metrics+logs")


class RecordOnly:
    """Observe without its work: the handlers still get a record to write to."""

    def __init__(self, app: ASGIApp, **_: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[RECORD] = RequestRecord()
        await self.app(scope, receive, send)


def create_bare_app(*args: Any, **kwargs: Any) -> Starlette:
    app = create_app(*args, **kwargs)
    # Starlette builds its middleware stack at the first request, from this list.
    app.user_middleware = [
        Middleware(cast(Any, RecordOnly)) if cast(Any, m.cls) is Observe else m
        for m in app.user_middleware
    ]
    return app


def serve_bare(port: int) -> None:
    """``coordinator serve --no-access-log``, but with ``create_bare_app``."""
    commands.create_app = create_bare_app  # type: ignore[attr-defined]  # what serve() calls
    sys.argv = ["coordinator", "serve", "--no-access-log", "--port", str(port)]
    from coordinator.cli import main as cli_main

    raise SystemExit(cli_main())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--baseline", type=Path, metavar="DIR")
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_bare:
        serve_bare(args.serve_bare)
    sides = (*SIDES, "baseline") if args.baseline else SIDES
    ports = {side: free_port() for side in sides}
    serve = [sys.executable, "-m", "coordinator", "serve", "--port"]
    commands_of = {
        "bare": [sys.executable, "-m", "bench.observe", "--serve-bare", str(ports["bare"])],
        "metrics": [*serve, str(ports["metrics"]), "--no-access-log"],
        "metrics+logs": [*serve, str(ports["metrics+logs"])],
        "baseline": [*serve, str(ports.get("baseline", 0))],
    }
    urls = {side: f"http://127.0.0.1:{port}" for side, port in ports.items()}
    with redis_server() as redis_url, tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "REDIS_URL": redis_url, "COORDINATOR_RATE_LIMIT": "0"}
        with contextlib.ExitStack() as replicas:
            pids = {}
            for side in sides:
                log = Path(folder) / f"{side}.log"
                side_env = env
                if side == "baseline":
                    side_env = {**env, "PYTHONPATH": str(args.baseline.resolve())}
                process = running(commands_of[side], ports[side], log, side_env, timeout=20)
                pids[side] = replicas.enter_context(process).pid
            key = asyncio.run(provision(redis_url))
            scale = (500, 5_000)
            for url in urls.values():  # warm up; load the scripts
                wrk(url, "pre", key, 1, 32, scale)
            ratios: dict[str, list[float]] = {side: [] for side in sides[1:]}
            cpu_ratios: dict[str, list[float]] = {side: [] for side in sides[1:]}
            cpu_us: dict[str, list[float]] = {side: [] for side in sides}
            for round_ in range(args.rounds):
                rates = {}
                turn = round_ % len(sides)
                order = sides[turn:] + sides[:turn]  # no side always first
                for side in order:
                    before = cpu_seconds(pids[side])
                    run = wrk(urls[side], "pre", key, args.seconds, 32, scale)
                    assert run.non_2xx == 0 and run.socket_errors == 0, run
                    rates[side] = run.rate
                    cpu_us[side].append((cpu_seconds(pids[side]) - before) / run.requests * 1e6)
                for side in ratios:
                    ratios[side].append(rates[side] / rates["bare"])
                    cpu_ratios[side].append(cpu_us[side][-1] / cpu_us["bare"][-1])
                print(
                    "   ".join(
                        f"{side} {rates[side]:6.0f} req/s {cpu_us[side][-1]:5.1f} us CPU/req"
                        for side in sides
                    )
                )
            logged = (Path(folder) / "metrics+logs.log").read_text().count('"coordinator.request"')
            print(f"request lines logged by metrics+logs: {logged}")
            for side in sides:
                print(f"{side}: median {statistics.median(cpu_us[side]):.1f} us CPU per request")
            for side, values in ratios.items():
                print(
                    f"{side} / bare: median throughput ratio {statistics.median(values):.3f}, "
                    f"median CPU-per-request ratio {statistics.median(cpu_ratios[side]):.3f}"
                )


if __name__ == "__main__":
    main()
