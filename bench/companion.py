"""A Codex hook event through the companion (``mcp_tool``) vs through the bridge, side by side.

    python -m bench.companion [--calls 40] [--runs 5]

Starts ``coordinator serve`` (on its embedded store) and one companion
(``coordinator mcp``) driven by the MCP SDK's client, as Codex drives it. Each run sends
the same Codex PreToolUse (an ``apply_patch`` of one file) ``--calls`` times each way,
alternating call by call: the bridge as Codex runs a command hook (one process per
event), and the companion's ``hook`` tool (one stdio round trip, then one HTTP round
trip on its kept connection). The service's bare round trip on a kept connection is
the floor. Prints each run's medians and the median over the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import anyio
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

from bench.bridge import start_service
from coordinator import routes
from coordinator.client import ServiceClient
from tests.servers import free_port

PATCH = "*** Begin Patch\n*** Update File: src/app.py\n@@\n-x\n+y\n*** End Patch\n"
EVENT = {
    "hook_event_name": "PreToolUse",
    "session_id": "bench-companion",
    "cwd": os.getcwd(),
    "tool_name": "apply_patch",
    "tool_use_id": "call_1",
}


async def run(url: str, api_key: str, calls: int, runs: int) -> None:
    # As on a developer's machine: bytecode cached (some sandboxes turn that off).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env |= {"COORDINATOR_API_KEY": api_key, "COORDINATOR_CONFIG": "/nonexistent"}
    script = os.path.join(os.path.dirname(sys.executable), "coordinator")
    bridge = [script, "hook", "--agent", "codex", "--url", url]
    stdin = json.dumps({**EVENT, "tool_input": {"command": PATCH}, "model": "gpt-5.5"}).encode()
    hook_input = {**EVENT, "command": PATCH}
    floor = ServiceClient(url, api_key, 5)
    slim = {**EVENT, "tool_input": {"command": "*** Update File: src/app.py"}}
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "coordinator", "mcp", "--url", url], env=env
    )
    medians: dict[str, list[float]] = {"bridge": [], "companion": [], "http": []}
    async with Client(params) as companion:
        await companion.call_tool("hook", hook_input)  # warm: connection, imports
        print(f"{'run':>4s} {'bridge p50':>11s} {'companion p50':>14s} {'HTTP alone':>11s}")
        for number in range(1, runs + 1):
            times: dict[str, list[float]] = {name: [] for name in medians}
            for _ in range(calls):
                started = time.perf_counter()
                done = subprocess.run(bridge, input=stdin, capture_output=True, env=env)
                times["bridge"].append(time.perf_counter() - started)
                assert json.loads(done.stdout) == {}, done.stdout
                started = time.perf_counter()
                result = await companion.call_tool("hook", hook_input)
                times["companion"].append(time.perf_counter() - started)
                assert not result.is_error and json.loads(result.content[0].text) == {}  # type: ignore[union-attr]
                started = time.perf_counter()
                floor.post(routes.hook_url("", "codex"), slim)
                times["http"].append(time.perf_counter() - started)
            p50 = {name: statistics.median(values) * 1000 for name, values in times.items()}
            for name, value in p50.items():
                medians[name].append(value)
            print(f"{number:4d} {p50['bridge']:11.1f} {p50['companion']:14.1f} {p50['http']:11.1f}")
    floor.close()
    overall = {name: statistics.median(values) for name, values in medians.items()}
    print(
        f"median of {runs} runs ({calls} calls each way per run): bridge "
        f"{overall['bridge']:.1f} ms, companion {overall['companion']:.1f} ms "
        f"({overall['bridge'] / overall['companion']:.1f}x faster), HTTP alone "
        f"{overall['http']:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    port = free_port()
    server, api_key = start_service(port)
    try:
        time.sleep(0.5)
        anyio.run(run, f"http://127.0.0.1:{port}", api_key, args.calls, args.runs)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
