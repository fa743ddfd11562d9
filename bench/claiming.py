"""What mapping a write to its symbols adds to one bridge call (``coordinator hook``).

    python -m bench.claiming [--runs 40] [--lines 2000] [--compare DIR]

Runs the bridge as an agent does, one process per event, on a PreToolUse Edit of the
middle function of a ``--lines`` Python file, and on the same Edit of a Markdown file
(no grammar: nothing is mapped), alternating, against a port where nothing listens (the
bridge fails open at once, the same for both). Prints the median CPU time of each (the
process's own, from its rusage: on a loaded machine wall time measures the others) and
the difference, what the symbols cost: tree-sitter's load, one grammar's, the parses
and the mapping. ``--compare DIR``: the same, call beside call, with the ``coordinator``
package of another checkout (``git archive main | tar -x -C DIR``), to see a change.

The bytecode caches are written by a first call and used, as in an installed package
(pip compiles them): ``PYTHONDONTWRITEBYTECODE`` would make each call compile every
module it imports, which measures the compiler.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.parsing import UNITS, source


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bridge_cpu_ms(event: dict[str, object], env: dict[str, str]) -> float:
    """One ``coordinator hook`` run's CPU time (user + system), in ms."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "coordinator", "hook", "--agent", "claude-code"],
        input=json.dumps(event),
        capture_output=True,
        text=True,
        env=env,
        cwd=str(event["cwd"]),  # not a checkout's: ``-m`` puts the folder first on the path
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Failed open for the closed port, past the mapping: not for a settings error, which
    # comes before it (an empty config file once made every call skip the mapping).
    assert "cannot reach the service" in done.stdout, done.stdout
    used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return used * 1e3


def imported_from(env: dict[str, str], cwd: str) -> str:
    """Where the bridge's ``coordinator`` package comes from, run as the bench runs it."""
    code = "import coordinator; print(coordinator.__file__)"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, check=True
    )
    return done.stdout.strip()


def events(folder: Path, lines: int) -> tuple[dict[str, object], dict[str, object]]:
    """A PreToolUse Edit of the middle function of a Python file, and of a Markdown file."""
    text = source("a.py", lines)
    middle = lines // UNITS["a.py"].count("\n") // 2
    (folder / "big.py").write_text(text)
    (folder / "notes.md").write_text(text)
    header = f"def f{middle}("
    edit = {"old_string": header, "new_string": header.replace("(", "_renamed(")}

    def pre_tool(name: str) -> dict[str, object]:
        tool_input = {"file_path": str(folder / name), **edit}
        return {
            "hook_event_name": "PreToolUse",
            "session_id": "bench",
            "cwd": str(folder),
            "tool_name": "Edit",
            "tool_input": tool_input,
        }

    return pre_tool("big.py"), pre_tool("notes.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--compare", help="another checkout's folder, measured beside this one")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATOR_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env |= {
        "COORDINATOR_URL": f"http://127.0.0.1:{closed_port()}",
        "COORDINATOR_API_KEY": "ek_bench",
    }
    checkouts = {}
    for checkout in filter(None, [args.compare, str(Path(__file__).resolve().parents[1])]):
        path = os.pathsep.join(filter(None, [checkout, env.get("PYTHONPATH")]))
        checkouts[checkout] = env | {"PYTHONPATH": path}
    with tempfile.TemporaryDirectory() as folder:
        for each in checkouts.values():
            each["COORDINATOR_CONFIG"] = os.path.join(folder, "absent.json")  # no settings
        python, markdown = events(Path(folder), args.lines)
        times: dict[str, tuple[list[float], list[float]]] = {}
        for name, each in checkouts.items():
            assert imported_from(each, folder).startswith(os.path.abspath(name)), name
            bridge_cpu_ms(python, each)  # writes the bytecode caches
            times[name] = ([], [])
        for _ in range(args.runs):
            for name, each in checkouts.items():
                times[name][0].append(bridge_cpu_ms(python, each))
                times[name][1].append(bridge_cpu_ms(markdown, each))
    print(f"coordinator hook, PreToolUse Edit of a {args.lines}-line file, CPU ms (median, min):")
    for name, (mapped, plain) in times.items():
        print(f"{name}:")
        for label, ms in (("a .md file (nothing mapped)", plain), ("a .py file (mapped)", mapped)):
            print(f"  {statistics.median(ms):6.1f} {min(ms):6.1f}  {label}")
        added = [m - p for m, p in zip(mapped, plain, strict=True)]  # run beside run
        median, least = statistics.median(added), min(added)
        print(f"  {median:6.1f} {least:6.1f}  added by the symbols, pair by pair")


if __name__ == "__main__":
    main()
