"""What a session start's briefing costs at 100 agents, 1,000 reservations, 200 decisions.

    python -m bench.briefing [--baseline DIR] [--rounds 3] [--starts 500]

Starts its own redis-server, builds that state (ten people, ten agents each, ten files
each in a directory of its own), then times ``--starts`` session starts of one more agent:
Redis's time per start script (INFO commandstats), the start's round trip with the
briefing's text made (p50), the text alone, and its size. With ``--baseline DIR`` (a
folder holding another version's ``coordinator/`` package, e.g. ``git archive REV
coordinator | tar -x -C DIR``) it measures that one too, round by round in turn, since
this shared machine's speed drifts from one minute to the next. Prints a Markdown table of
the medians. Writes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def measure(url: str, starts: int) -> dict[str, float]:
    """One measurement, with whichever ``coordinator`` is on the path."""
    import time

    from redis.asyncio import Redis

    from coordinator.admin import Admin
    from coordinator.config import Settings
    from coordinator.models import digest_of, session_id_for
    from coordinator.render import briefing_text
    from coordinator.store import Store

    redis = Redis.from_url(url, decode_responses=True)
    await redis.flushdb()
    settings = Settings(rate_per_s=0)
    admin = Admin(redis, settings)
    store = Store(redis, settings)
    await admin.create_workspace("acme", "Acme")
    people = []
    for n in range(10):
        key, _ = await admin.create_key("acme", f"Developer {n}")
        who = await store.principal(digest_of(key))
        assert who is not None
        people.append(who)
    for n in range(100):
        who = people[n % 10]
        task = f"Move module {n} of the billing service to the new tax rules"
        fields = {"user_name": who.user_name, "agent_type": "claude-code", "current_task": task}
        sid = session_id_for("acme", f"conv-{n}")
        paths = [f"src/module{n}/file{j}.ts" for j in range(10)]
        outcome = await store.touch(who, sid, f"conv-{n}", fields, paths)
        assert outcome.conflict is None
    for n in range(200):
        text = f"Decision {n}: every module calls the gateway through src/gateway/client.ts"
        await store.add_decision(people[n % 10], text, None)
    me = people[0]
    sid = session_id_for("acme", "conv-me")
    fields = {"user_name": me.user_name, "agent_type": "codex"}
    await store.touch(me, sid, "conv-me", fields, ["src/module7/mine.ts"])
    await redis.config_resetstat()
    took, text, briefing = [], "", None
    for _ in range(starts):
        began = time.perf_counter()
        briefing = (await store.start(me, sid, "conv-me", fields)).briefing
        assert briefing is not None
        text = briefing_text(briefing)
        took.append(time.perf_counter() - began)
    scripts = (await redis.info("commandstats"))["cmdstat_evalsha"]
    assert briefing is not None
    began = time.perf_counter()
    for _ in range(starts):
        briefing_text(briefing)
    render_us = (time.perf_counter() - began) / starts * 1e6
    await store.aclose()
    await admin.aclose()
    await redis.aclose()
    return {
        "bytes": len(text.encode()),
        "redis_us": scripts["usec"] / scripts["calls"],
        "p50_ms": statistics.median(took) * 1000,
        "render_us": render_us,
    }


def run(url: str, starts: int, code: Path) -> dict[str, float]:
    """``measure`` in a process whose ``coordinator`` is the one in ``code``."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    command = [sys.executable, __file__, "--measure", url, "--starts", str(starts)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--baseline", type=Path, help="a folder holding another coordinator/")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--starts", type=int, default=500)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # one run, in a child process
    args = parser.parse_args()
    if args.measure:
        import asyncio

        print(json.dumps(asyncio.run(measure(args.measure, args.starts))))
        return

    sys.path.insert(0, str(ROOT))
    from bench.__main__ import redis_server

    codes = {"this tree": ROOT}
    if args.baseline:
        codes = {"baseline": args.baseline.resolve(), **codes}
    results: dict[str, list[dict[str, float]]] = {name: [] for name in codes}
    with redis_server() as url:
        for _ in range(args.rounds):
            for name, code in codes.items():
                results[name].append(run(url, args.starts, code))
    print("| code | briefing bytes | Redis µs per start | start + text p50 ms | text alone µs |")
    print("|---|---|---|---|---|")
    for name, runs in results.items():
        cells = [statistics.median(r[field] for r in runs) for field in runs[0]]
        print(f"| {name} | {cells[0]:.0f} | {cells[1]:.0f} | {cells[2]:.2f} | {cells[3]:.0f} |")


if __name__ == "__main__":
    main()
