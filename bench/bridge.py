"""Wall time of ``coordinator hook`` per call, Python start included, next to bare Python.

    python -m bench.bridge [--calls 60]

Starts ``coordinator serve`` on the embedded store (or on ``REDIS_URL``), then runs the
bridge as an agent would, one process per event, with a Cursor preToolUse payload.
Prints medians and 90th percentiles; every line is measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

from tests.servers import free_port


def start_service(port: int) -> tuple[subprocess.Popen[str], str]:
    """A running service and an API key for it (the embedded store's demo key)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "coordinator", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "REDIS_URL"},
    )
    assert server.stdout is not None
    for line in server.stdout:
        if line.startswith("ek_"):
            return server, line.strip()
    raise RuntimeError("the service printed no demo key")


def time_calls(
    command: Sequence[str], stdin: bytes, env: dict[str, str], calls: int
) -> list[float]:
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        done = subprocess.run(command, input=stdin, capture_output=True, env=env, check=True)
        times.append((time.perf_counter() - started) * 1000)
        json.loads(done.stdout or b"{}")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=60)
    args = parser.parse_args()
    port = free_port()
    server, api_key = start_service(port)
    try:
        time.sleep(0.5)
        # As on a developer's machine: bytecode cached (some sandboxes set this variable,
        # which makes every start compile the bridge again).
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env |= {"COORDINATOR_API_KEY": api_key, "COORDINATOR_CONFIG": "/nonexistent"}
        payload = {
            "conversation_id": "bench",
            "hook_event_name": "preToolUse",
            "tool_name": "Write",
            "tool_input": {"file_path": "/repo/src/app.ts", "content": "x" * 20_000},
            "workspace_roots": ["/repo"],
        }
        stdin = json.dumps(payload).encode()
        hook = [sys.executable, "-m", "coordinator", "hook", "--agent", "cursor"]
        script = os.path.join(os.path.dirname(sys.executable), "coordinator")
        runs = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "coordinator hook (console script)": [script, *hook[3:]],
            "python -m coordinator hook": hook,
            "coordinator hook, closed port": [*hook, "--url", f"http://127.0.0.1:{free_port()}"],
        }
        env["COORDINATOR_URL"] = f"http://127.0.0.1:{port}"
        print(f"{'command':40s} {'p50 ms':>8s} {'p90 ms':>8s}   ({args.calls} calls each)")
        for name, command in runs.items():
            times = sorted(time_calls(command, stdin, env, args.calls))
            p90 = times[int(len(times) * 0.9) - 1]
            print(f"{name:40s} {statistics.median(times):8.1f} {p90:8.1f}")
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
