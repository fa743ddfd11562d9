"""The hook path's benchmark: ``python -m bench [--quick] [--out DIR]``.

In one run on this machine it starts its own redis-server and one service replica (one
uvicorn worker), drives them with wrk (an external load generator, so Python does not
measure itself) using the agents' native payloads, alternates with a bare Starlette
endpoint (the framework's ceiling on this machine), counts Redis commands per event,
sweeps the state size, and writes BENCHMARKS.md's results section and a plot.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redis import Redis as SyncRedis
from redis.asyncio import Redis

from coordinator.admin import Admin
from coordinator.config import Settings
from coordinator.models import digest_of, session_id_for
from coordinator.store import Store
from tests.servers import free_port, free_ports, redis_server_command, running

HERE = Path(__file__).parent
EVENTS = ("start", "prompt", "pre", "post", "end")
WORKLOADS = ("scripted", "mixed", *EVENTS)
NAMES = {
    "scripted": "reference: Starlette + one pipelined EVALSHA (`return 1`)",
    "mixed": "mixed (5/10/40/40/5 %)",
    "start": "SessionStart",
    "prompt": "UserPromptSubmit",
    "pre": "PreToolUse",
    "post": "PostToolUse",
    "end": "SessionEnd",
}
START, END = "<!-- bench:results -->", "<!-- /bench:results -->"


@dataclass(frozen=True)
class Mode:
    seconds: int
    rounds: int
    connections: int
    states: tuple[tuple[int, int], ...]  # (live reservations, sessions)


QUICK = Mode(seconds=1, rounds=2, connections=32, states=((10, 10), (1_000, 1_000)))
FULL = Mode(
    seconds=8, rounds=3, connections=32, states=((10, 10), (1_000, 1_000), (100_000, 5_000))
)


@dataclass(frozen=True)
class Run:
    requests: int
    duration_us: int
    p50_us: int
    p99_us: int
    non_2xx: int
    socket_errors: int

    @property
    def rate(self) -> float:
        return self.requests / (self.duration_us / 1e6)


@contextmanager
def redis_server() -> Iterator[str]:
    port = free_port()
    with tempfile.TemporaryDirectory() as folder:
        command = redis_server_command("redis-server", port, folder)
        with running(command, port, timeout=20):
            yield f"redis://127.0.0.1:{port}/0"


def wrk(
    url: str, mode: str, key: str, seconds: int, connections: int, scale: tuple[int, int]
) -> Run:
    """One wrk run of ``mode`` traffic; scale = (conversations, files)."""
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(HERE / "hooks.lua"),
        url,
        "--",
        mode,
        str(scale[0]),
        str(scale[1]),
        key,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return Run(**json.loads(output.strip().splitlines()[-1]))


async def provision(redis_url: str) -> str:
    """A fresh workspace and key: the state is flushed before each measurement."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    await redis.flushdb()
    admin = Admin(redis, Settings(redis_url=redis_url))
    await admin.create_workspace("bench")
    key, _ = await admin.create_key("bench", "Bench")
    await admin.aclose()
    await redis.aclose()
    return key


async def preload(redis_url: str, key: str, reservations: int, sessions: int) -> None:
    """``sessions`` live sessions holding ``reservations`` files between them."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    store = Store(redis, Settings(redis_url=redis_url, rate_per_s=0))
    who = await store.principal(digest_of(key))
    assert who is not None
    per_session = -(-reservations // sessions)
    semaphore = asyncio.Semaphore(64)

    async def one(n: int) -> None:
        first = n * per_session
        paths = [f"preload/{i}.ts" for i in range(first, min(first + per_session, reservations))]
        conversation = f"preload-{n}"
        async with semaphore:
            await store.touch(
                who,
                session_id_for("bench", conversation),
                conversation,
                {"user_name": "Preloaded", "agent_type": "cursor"},
                paths,
            )

    await asyncio.gather(*(one(n) for n in range(sessions)))
    await store.aclose()
    await redis.aclose()


def settle(redis: SyncRedis, quiet_s: float, most_s: float = 5.0) -> None:
    """Wait until Redis has run no command for ``quiet_s``: the requests wrk left in flight
    are done (a request can wait a p99 in the replica before it calls Redis)."""
    deadline = time.monotonic() + most_s
    last, quiet_since = command_counts(redis), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.02)
        now = command_counts(redis)
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_s:
            return


def command_counts(redis: SyncRedis) -> tuple[int, int]:
    """(EVALSHA calls, all commands including those scripts ran) since the last reset."""
    stats: dict[str, dict[str, int]] = redis.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(s["calls"]) for name, s in stats.items()}
    for admin in ("info", "config|resetstat"):
        calls.pop(admin, None)
    return calls.get("evalsha", 0), sum(calls.values())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Target:
    """A server wrk drives, and the processes whose CPU a run of it is charged."""

    def __init__(self, url: str, pid: int, redis_pid: int | None = None) -> None:
        self.url = url
        self.pid = pid
        self.redis_pid = redis_pid

    def run(self, kind: str, key: str, mode: Mode, scale: tuple[int, int]) -> dict[str, Any]:
        """One wrk run, with the CPU its server (and Redis) spent per request."""
        pids = [self.pid] if self.redis_pid is None else [self.pid, self.redis_pid]
        before = [cpu_seconds(pid) for pid in pids]
        run = wrk(self.url, kind, key, mode.seconds, mode.connections, scale)
        spent = [cpu_seconds(pid) - start for pid, start in zip(pids, before, strict=True)]
        row: dict[str, Any] = {**run.__dict__, "rate": run.rate}
        row["cpu_us_per_request"] = spent[0] / run.requests * 1e6
        if self.redis_pid is not None:
            row["redis_cpu_us_per_request"] = spent[1] / run.requests * 1e6
        return row


# The service's replicas besides the logged one, each run beside it: where its runs go in
# the results. With --baseline, the same two of the code in that folder.
QUIET = {"quiet": "no_request_log"}
BASELINE = {"before": "before", "before-quiet": "before_no_request_log"}


def measure(mode: Mode, baseline: Path | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {"mode": mode.__dict__, "workloads": {}, "states": []}
    others = QUIET | (BASELINE if baseline else {})
    with redis_server() as redis_url, tempfile.TemporaryDirectory() as folder:
        redis = SyncRedis.from_url(redis_url, decode_responses=True)
        redis_pid = int(redis.info("server")["process_id"])
        ports = free_ports(6)
        # One key drives thousands of requests a second: a limit that never bites, so the
        # rate bucket's cost is still measured.
        env = {**os.environ, "REDIS_URL": redis_url, "COORDINATOR_RATE_LIMIT": "1e9"}
        serve = [sys.executable, "-m", "coordinator", "serve", "--port"]
        # As users run it: one JSON line per request on stderr, which a deployment's
        # supervisor appends to a file (systemd's StandardError=append:, `2>>file`).
        service = [*serve, str(ports[0])]
        quiet = [*serve, str(ports[1]), "--no-access-log"]
        ceiling = [sys.executable, "-m", "bench.ceiling", "--port", str(ports[2])]
        scripted = [*ceiling[:-1], str(ports[3]), "--redis-url", redis_url]
        request_log = Path(folder) / "service.log"
        with contextlib.ExitStack() as servers:

            def start(
                command: list[str], port: int, log: Path | None = None, cwd: Path | None = None
            ) -> Target:
                process = running(command, port, log, env, cwd=cwd, timeout=20)
                return Target(f"http://127.0.0.1:{port}", servers.enter_context(process).pid)

            targets = {
                "service": start(service, ports[0], request_log),
                "quiet": start(quiet, ports[1]),
                "ceiling": start(ceiling, ports[2]),
                "scripted": start(scripted, ports[3]),
            }
            if baseline:  # run from that folder, `-m coordinator` imports its package
                before_log = Path(folder) / "before.log"
                targets["before"] = start(
                    [*service[:-1], str(ports[4])], ports[4], before_log, baseline
                )
                targets["before-quiet"] = start(
                    [*quiet[:-2], str(ports[5]), quiet[-1]], ports[5], cwd=baseline
                )
            for name, target in targets.items():
                if name != "ceiling":  # it makes no Redis call
                    target.redis_pid = redis_pid
            key = asyncio.run(provision(redis_url))
            scale = (500, 5_000)
            for name in ("service", "scripted", *others):  # warm up; load the scripts
                wrk(targets[name].url, "mixed", key, 1, mode.connections, scale)
            runs: dict[str, list[dict[str, Any]]] = {w: [] for w in ("ceiling", *WORKLOADS)}
            for section in others.values():
                results[section] = {w: [] for w in WORKLOADS[1:]}
            last_p99_us = 0
            for round_ in range(mode.rounds):
                for workload in WORKLOADS:
                    ceiling_run = targets["ceiling"].run("pre", key, mode, scale)
                    runs["ceiling"].append(ceiling_run)
                    sides = ["scripted"] if workload == "scripted" else ["service", *others]
                    turn = round_ % len(sides)
                    sides = sides[turn:] + sides[:turn]  # no side always next to the ceiling's run
                    for side in sides:
                        # The last run's requests in flight are not this one's.
                        settle(redis, max(0.1, 2 * last_p99_us / 1e6))
                        redis.config_resetstat()
                        kind = "pre" if workload == "scripted" else workload
                        run = targets[side].run(kind, key, mode, scale)
                        evalsha, commands = command_counts(redis)
                        run["ratio"] = run["rate"] / ceiling_run["rate"]
                        run["evalsha_per_request"] = evalsha / run["requests"]
                        run["commands_per_request"] = commands / run["requests"]
                        last_p99_us = run["p99_us"]
                        (results[others[side]] if side in others else runs)[workload].append(run)
            results["workloads"] = runs
            # Round by round, so that the machine's drift over the run does not read as growth.
            states: list[dict[str, Any]] = [
                {"reservations": r, "sessions": s, "pre": [], "start": []} for r, s in mode.states
            ]
            for _ in range(mode.rounds):
                for state in states:
                    key = asyncio.run(provision(redis_url))
                    asyncio.run(preload(redis_url, key, state["reservations"], state["sessions"]))
                    for workload in ("pre", "start"):
                        run = targets["service"].run(workload, key, mode, (20, 100))
                        state[workload].append(run)
                    state["live_locks"] = redis.zcard("coord:{bench}:locks")
                    state["live_sessions"] = redis.zcard("coord:{bench}:sessions")
            results["states"] = states
        results["request_lines"] = request_log.read_text().count('"coordinator.request"')
        redis.close()
    return results


def median(rows: list[dict[str, Any]], field: str) -> float:
    return float(statistics.median(row[field] for row in rows))


def report(results: dict[str, Any], command: str, plot: str) -> str:
    mode = results["mode"]
    lines = [
        START,
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {machine()}, with "
        f"`{command}`: one uvicorn worker, wrk with 1 thread and {mode['connections']} "
        f"connections, {mode['seconds']} s per run, medians of {mode['rounds']} rounds; each "
        "run of the service follows a run of the bare Starlette endpoint, and its ratio is to "
        "that neighbour. The service runs as `coordinator serve` does by default: one JSON "
        "line per request on stderr, appended to a file. CPU per request is user + system "
        "time of the process over the run (`/proc/<pid>/stat`) divided by the requests served.",
        "",
        "| workload | req/s | p50 ms | p99 ms | x ceiling | replica CPU µs / req | Redis CPU µs "
        "/ req | EVALSHA / req | Redis cmds / req (in scripts too) | non-2xx |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    ceiling = results["workloads"]["ceiling"]
    lines.append(
        f"| bare Starlette (ceiling) | {median(ceiling, 'rate'):,.0f} | "
        f"{median(ceiling, 'p50_us') / 1000:.2f} | {median(ceiling, 'p99_us') / 1000:.2f}"
        f" | 1.00 | {median(ceiling, 'cpu_us_per_request'):.0f} | - | - | - | 0 |"
    )
    for workload in WORKLOADS:
        rows = results["workloads"][workload]
        lines.append(
            f"| {NAMES[workload]} | {_common(rows)} | {median(rows, 'evalsha_per_request'):.2f} "
            f"| {median(rows, 'commands_per_request'):.1f} | {sum(r['non_2xx'] for r in rows)} |"
        )
    lines += [
        "",
        "The same, served with `coordinator serve --no-access-log` (no line per request), "
        "each run beside the one above:",
        "",
        "| workload | req/s | p50 ms | p99 ms | x ceiling | replica CPU µs / req | Redis CPU µs "
        "/ req | non-2xx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload, rows in results["no_request_log"].items():
        lines.append(f"| {NAMES[workload]} | {_common(rows)} | {sum(r['non_2xx'] for r in rows)} |")
    lines.append(f"\nRequest lines the service wrote: {results['request_lines']:,}")
    if "before" in results:
        lines += _before_after(results)
    lines += [
        "",
        "State size (preloaded, then measured with 20 conversations over 100 files):",
        "",
        "| live reservations | sessions | PreToolUse p50 / p99 ms | req/s | SessionStart "
        "p50 / p99 ms | req/s |",
        "|---|---|---|---|---|---|",
    ]
    for state in results["states"]:
        pre, start = state["pre"], state["start"]
        lines.append(
            f"| {state['live_locks']:,} | {state['live_sessions']:,} | "
            f"{median(pre, 'p50_us') / 1000:.2f} / {median(pre, 'p99_us') / 1000:.2f} | "
            f"{median(pre, 'rate'):,.0f} | {median(start, 'p50_us') / 1000:.2f} / "
            f"{median(start, 'p99_us') / 1000:.2f} | {median(start, 'rate'):,.0f} |"
        )
    first, last = results["states"][0], results["states"][-1]
    for workload in ("pre", "start"):
        growth = median(last[workload], "p50_us") / median(first[workload], "p50_us")
        lines.append(
            f"\n{NAMES[workload]} p50 at the largest state / at the smallest: {growth:.2f}x"
        )
    lines += ["", f"![latency against state size]({plot})", END]
    return "\n".join(lines)


def _before_after(results: dict[str, Any]) -> list[str]:
    """The --baseline table: each figure before → after, request log on and off."""
    lines = [
        "",
        "Before → after: the code given with `--baseline`, served the same two ways, each "
        "run beside this tree's:",
        "",
        "| workload | x ceiling | p50 ms | replica CPU µs / req | Redis CPU µs / req | x ceiling,"
        " no request log | replica CPU µs / req, no request log |",
        "|---|---|---|---|---|---|---|",
    ]
    for workload in WORKLOADS[1:]:
        on = results["before"][workload], results["workloads"][workload]
        off = results["before_no_request_log"][workload], results["no_request_log"][workload]

        def pair(
            rows: tuple[list[dict[str, Any]], ...], field: str, form: str, scale: float = 1
        ) -> str:
            before, after = (median(side, field) / scale for side in rows)
            return f"{before:{form}} → {after:{form}}"

        lines.append(
            f"| {NAMES[workload]} | {pair(on, 'ratio', '.2f')} | "
            f"{pair(on, 'p50_us', '.2f', 1000)} | "
            f"{pair(on, 'cpu_us_per_request', '.0f')} | "
            f"{pair(on, 'redis_cpu_us_per_request', '.0f')} | {pair(off, 'ratio', '.2f')} | "
            f"{pair(off, 'cpu_us_per_request', '.0f')} |"
        )
    return lines


def _common(rows: list[dict[str, Any]]) -> str:
    """req/s, p50, p99, x ceiling, and the CPU per request of the replica and of Redis."""
    return (
        f"{median(rows, 'rate'):,.0f} | {median(rows, 'p50_us') / 1000:.2f} | "
        f"{median(rows, 'p99_us') / 1000:.2f} | {median(rows, 'ratio'):.2f} | "
        f"{median(rows, 'cpu_us_per_request'):.0f} | {median(rows, 'redis_cpu_us_per_request'):.0f}"
    )


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"


def draw(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    states = results["states"]
    sizes = [f"{s['live_locks']:,} locks\n{s['live_sessions']:,} sessions" for s in states]
    figure, axes = pyplot.subplots(figsize=(7, 4))
    for workload, colour in (("pre", "tab:blue"), ("start", "tab:orange")):
        for field, style in (("p50_us", "-o"), ("p99_us", "--o")):
            values = [median(s[workload], field) / 1000 for s in states]
            label = f"{NAMES[workload]} {field[:3]}"
            axes.plot(sizes, values, style, color=colour, label=label)
    axes.set_ylabel("latency (ms)")
    axes.set_ylim(bottom=0)
    axes.set_title("Hook latency against state size (one replica, 32 connections)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write(results: dict[str, Any], out: Path, command: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench-results.json").write_text(json.dumps(results, indent=2) + "\n")
    plot = out / "bench-state-size.png"
    draw(results, plot)
    doc = out / "BENCHMARKS.md"
    text = doc.read_text() if doc.exists() else f"# Benchmarks\n\n{START}\n{END}\n"
    before, _, rest = text.partition(START)
    _, _, after = rest.partition(END)
    doc.write_text(before + report(results, command, plot.name) + after)
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="under a minute, smaller states")
    parser.add_argument("--out", type=Path, default=Path("."), help="where BENCHMARKS.md is")
    parser.add_argument("--seconds", type=int, help="override the seconds per run (whole)")
    parser.add_argument("--rounds", type=int, help="override the rounds")
    parser.add_argument(
        "--baseline",
        type=Path,
        metavar="DIR",
        help="also run the coordinator package in DIR (git archive REV coordinator | tar -x "
        "-C DIR), logged and not, beside this one",
    )
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            raise SystemExit(f"bench: {tool} is not installed (apt-get install {tool})")
    mode = QUICK if args.quick else FULL
    mode = Mode(
        args.seconds or mode.seconds, args.rounds or mode.rounds, mode.connections, mode.states
    )
    command = "python -m bench" + (" --quick" if args.quick else "")
    if args.baseline:
        command += " --baseline DIR"
    doc = write(measure(mode, args.baseline and args.baseline.resolve()), args.out, command)
    print(doc.read_text().partition(START)[2].partition(END)[0])


if __name__ == "__main__":
    main()
