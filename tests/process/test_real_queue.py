"""Claiming and handing off with the real Claude Code and Codex CLIs, each wired by
``coordinator install`` (companion included), against a real service: issue 15's
"Done when".

A (Claude Code) reserves a directory with the companion's ``reserve``. B (Codex, its hooks
through the companion's ``mcp_tool``) is denied a patch inside it, naming A and suggesting
``request_file``, and calls ``request_file``. A's next event tells it B is waiting; A calls
``release``. C (a third conversation) is then told the file is reserved for B, while B's
next patch goes through. A calls ``decide``, and B's next session start shows it.

Each agent is held by its scripted model between steps (``Gated``), so the test orders
the three conversations without sleeping.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from coordinator.routes import hook_url
from tests.helpers import Service, bearer
from tests.process.agent_clis import (
    AnthropicServer,
    ModelServer,
    OpenAIServer,
    Step,
    agent_envs,
    agents_dir,
    checkout,
    codex_home,
    install,
    model_server,
    run_claude,
    run_codex,
)

DECISION = "The API returns problem+json errors"
FILE = "src/api/handler.py"


def patch(text: str) -> str:
    return f"*** Begin Patch\n*** Add File: {FILE}\n+{text}\n*** End Patch\n"


class Gated:
    """Holds a model server before the step after ``n`` tool results until ``open(n)``;
    ``wait(n)`` returns once the agent got there."""

    def __init__(self, server: ModelServer, *points: int) -> None:
        self.gates = {n: threading.Event() for n in points}
        self.arrived = {n: threading.Event() for n in points}
        step = server.next_step

        def next_step(results: int, users: str = "") -> Step:
            if results in self.gates:
                self.arrived[results].set()
                self.gates[results].wait(timeout=120)
            return step(results, users)

        server.next_step = next_step  # type: ignore[method-assign]

    def wait(self, n: int) -> None:
        assert self.arrived[n].wait(timeout=120), f"the agent never reached step {n}"

    def open(self, n: int) -> None:
        self.gates[n].set()

    def open_all(self) -> None:
        for gate in self.gates.values():
            gate.set()


def in_thread(
    run: Callable[[], subprocess.CompletedProcess[str]],
) -> tuple[threading.Thread, list[Any]]:
    done: list[Any] = []
    thread = threading.Thread(target=lambda: done.append(run()))
    thread.start()
    return thread, done


@pytest.fixture(scope="module")
def agents() -> Path:
    return agents_dir()


def test_reserve_request_release_and_hand_off_between_real_agents(
    service: Service, tmp_path: Path, agents: Path
) -> None:
    a_env, b_env = agent_envs(service.dev_a, service.dev_b)
    a_home, a_repo = tmp_path / "a" / "home", checkout(tmp_path / "a" / "repo")
    b_repo = checkout(tmp_path / "b" / "repo")
    install("claude-code", {**a_env, "HOME": str(a_home)}, service.url)

    a_script = [
        Step("mcp__coordinator__reserve", {"paths": ["src/api/"], "task": "Rework the API"}),
        Step("Write", {"file_path": str(a_repo / "NOTES.md"), "content": "api notes\n"}),
        Step("mcp__coordinator__release", {}),
        Step("mcp__coordinator__decide", {"text": DECISION, "kind": "convention"}),
    ]
    b_script = [
        Step("apply_patch", patch("print('B, too early')")),
        Step("tool_search", {"query": "coordinator request_file", "limit": 8}),
        Step("mcp__coordinator/request_file", {"path": FILE, "note": "need the handler"}),
        Step("apply_patch", patch("print('B')")),
    ]
    with (
        model_server(AnthropicServer, a_script) as a_model,
        model_server(OpenAIServer, b_script) as b_model,
    ):
        a_gate, b_gate = Gated(a_model, 1, 3), Gated(b_model, 3)
        b_home = codex_home(tmp_path / "b" / "codex", b_model)
        install("codex", {**b_env, "CODEX_HOME": str(b_home)}, service.url)
        a_thread, a_done = in_thread(
            lambda: run_claude(agents, a_repo, a_home, "Rework the API", a_model, a_env)
        )
        b_thread: threading.Thread | None = None
        try:
            a_gate.wait(1)  # A reserved src/api/
            b_thread, b_done = in_thread(
                lambda: run_codex(agents, b_repo, b_home, "Add the handler", b_env)
            )
            b_gate.wait(3)  # B was denied, and asked for the file
            denied = b_model.told()
            assert f"File {FILE} is reserved by Developer A" in denied
            assert "as part of src/api/" in denied
            assert "call request_file to be next in line" in denied
            assert "number 1 in line" in denied  # request_file's answer reached B's model
            assert not (b_repo / FILE).exists()

            a_gate.open(1)  # A writes a note: its next event tells it B waits; A releases
            a_gate.wait(3)
            told_a = a_model.told()
            assert f"Developer B (Codex) is waiting for {FILE}" in told_a
            assert "release(" in told_a

            # C, a third conversation, is refused the file: it is B's for the grace.
            c = claude_write(service, service.dev_a, "c-conversation", str(a_repo / FILE))
            reason = c["hookSpecificOutput"]["permissionDecisionReason"]
            assert f"File {FILE} is reserved for Developer B (next in line)" in reason

            b_gate.open(3)  # B's next patch goes through
            b_thread.join(timeout=180)
            assert b_done and b_done[0].returncode == 0, b_done and b_done[0].stderr
            assert (b_repo / FILE).read_text() == "print('B')\n"
            a_gate.open(3)  # A records a decision and ends
            a_thread.join(timeout=180)
        finally:
            a_gate.open_all()
            b_gate.open_all()
            a_thread.join(timeout=180)
            if b_thread is not None:
                b_thread.join(timeout=180)
    assert a_done and a_done[0].returncode == 0, a_done and a_done[0].stderr
    assert "Recorded for team acme: [convention]" in a_model.told()

    with model_server(OpenAIServer, [Step(None, "Nothing to do.")]) as b_model:
        b_home = codex_home(tmp_path / "b" / "codex", b_model)  # rewrites config.toml
        install("codex", {**b_env, "CODEX_HOME": str(b_home)}, service.url)
        done = run_codex(agents, b_repo, b_home, "Anything new?", b_env)
    assert done.returncode == 0, done.stderr
    assert f"[convention] {DECISION}" in json.dumps(b_model.requests[0]["body"])


def claude_write(service: Service, key: str, conversation: str, path: str) -> Any:
    """A Claude Code PreToolUse of a Write, as its http hook posts it (companion wired)."""
    body = {
        "session_id": conversation,
        "hook_event_name": "PreToolUse",
        "cwd": str(Path(path).parents[2]),
        "tool_name": "Write",
        "tool_input": {"file_path": path, "content": "x"},
        "tool_use_id": "toolu_c",
    }
    url = hook_url(service.url, "claude-code", companion=True)
    answer = httpx.post(url, json=body, headers=bearer(key), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()
