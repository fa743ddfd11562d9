"""The benchmark's smoke test: its quick mode, on tiny numbers, end to end.

It asserts what the benchmark reports, never how fast anything was.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def wrk() -> None:
    if shutil.which("wrk") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the benchmark's smoke test: install wrk")
        pytest.skip("no wrk on PATH (apt-get install wrk)")


def test_quick_mode_writes_the_table_the_json_and_the_plot(wrk: None, tmp_path: Path) -> None:
    (tmp_path / "BENCHMARKS.md").write_text(
        "# Benchmarks\n\nprose kept\n\n<!-- bench:results -->\nold\n<!-- /bench:results -->\n"
        "\nmore prose kept\n"
    )
    command = [sys.executable, "-m", "bench", "--quick", "--seconds", "1", "--rounds", "1"]
    subprocess.run([*command, "--out", str(tmp_path)], cwd=ROOT, check=True, timeout=240)

    results = json.loads((tmp_path / "bench-results.json").read_text())
    workloads = results["workloads"]
    assert set(workloads) == {
        "ceiling",
        "scripted",
        "mixed",
        "start",
        "prompt",
        "pre",
        "post",
        "end",
    }
    quiet = results["no_request_log"]  # the same events, served with --no-access-log
    assert set(quiet) == set(workloads) - {"ceiling", "scripted"}
    for name, runs in [*workloads.items(), *quiet.items()]:
        for run in runs:
            assert run["requests"] > 0 and run["non_2xx"] == 0 and run["socket_errors"] == 0
            assert run["cpu_us_per_request"] > 0
            if name != "ceiling":
                assert run["redis_cpu_us_per_request"] >= 0
                # One script call per hook event; wrk does not count the (at most one per
                # connection) requests still in flight when it stops.
                calls = round(run["evalsha_per_request"] * run["requests"])
                assert run["requests"] <= calls <= run["requests"] + 32, (name, run)
    # The service logs as users run it: one line per request (wrk does not count those in
    # flight when it stops).
    served = sum(run["requests"] for runs in workloads.values() for run in runs)
    served -= sum(run["requests"] for run in workloads["ceiling"] + workloads["scripted"])
    assert results["request_lines"] >= served
    sizes = [(s["live_locks"], s["live_sessions"]) for s in results["states"]]
    assert sizes[0][0] >= 10 and sizes[-1][0] >= 1_000 and sizes[-1][1] >= 1_000

    doc = (tmp_path / "BENCHMARKS.md").read_text()
    assert doc.startswith("# Benchmarks\n\nprose kept\n") and doc.endswith("more prose kept\n")
    assert "old" not in doc
    for row in ("bare Starlette (ceiling)", "reference: Starlette", "PreToolUse", "mixed"):
        assert f"| {row}" in doc
    assert doc.count("| PreToolUse |") == 2  # request log on, and off
    assert "`python -m bench --quick`" in doc
    assert (tmp_path / "bench-state-size.png").read_bytes().startswith(b"\x89PNG")
