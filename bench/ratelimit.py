"""What the per-key rate bucket costs a PreToolUse, side by side.

    python -m bench.ratelimit [--rounds 5] [--seconds 4]

Starts its own redis-server and two replicas on it, one with the rate limit off
(``COORDINATOR_RATE_LIMIT=0``: the scripts only check the key) and one with a limit
that never bites (``1e9``: the bucket is read and written on every request), and
alternates wrk runs of PreToolUse against them, each side first every other round.
Prints each round's ratio (on / off) and their median.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys

from bench.__main__ import provision, redis_server, wrk
from tests.servers import free_port, running

LIMITS = {"off": "0", "on": "1e9"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=4)
    args = parser.parse_args()
    with redis_server() as redis_url:
        ports = {mode: free_port() for mode in LIMITS}
        urls = {mode: f"http://127.0.0.1:{port}" for mode, port in ports.items()}
        serve = [sys.executable, "-m", "coordinator", "serve", "--no-access-log", "--port"]
        env = {**os.environ, "REDIS_URL": redis_url}
        with contextlib.ExitStack() as replicas:
            for mode, limit in LIMITS.items():
                command = [*serve, str(ports[mode])]
                limited = {**env, "COORDINATOR_RATE_LIMIT": limit}
                replicas.enter_context(running(command, ports[mode], env=limited, timeout=20))
            key = asyncio.run(provision(redis_url))
            scale = (500, 5_000)
            for url in urls.values():  # warm up; load the scripts
                wrk(url, "pre", key, 1, 32, scale)
            ratios = []
            for round_ in range(args.rounds):
                rates = {}
                order = list(urls) if round_ % 2 == 0 else list(reversed(urls))  # no side first
                for mode in order:
                    run = wrk(urls[mode], "pre", key, args.seconds, 32, scale)
                    assert run.non_2xx == 0 and run.socket_errors == 0, run
                    rates[mode] = run.rate
                ratios.append(rates["on"] / rates["off"])
                print(f"off {rates['off']:7.0f} req/s   on {rates['on']:7.0f} req/s   "
                      f"ratio {ratios[-1]:.3f}")  # fmt: skip
            print(f"median ratio (bucket on / off): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
