"""Two subagents of one session writing the same file, with the real Claude Code and Codex
CLIs wired by ``coordinator install``, against a real service.

Developer A's agent starts two subagents. The first writes ``src/shared.py`` and is kept
running by its scripted model; the second then tries the same file and is denied, named
as the first (the file on disk stays the first's). Once the first stops, its file passes
to the session: the second's retry goes through, while Developer B's agent is still
denied that file.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from coordinator.routes import RESERVATIONS, of_workspace
from tests.helpers import Service, bearer
from tests.process.agent_clis import (
    AnthropicServer,
    Branch,
    Gate,
    ModelServer,
    OpenAIServer,
    Step,
    agents_dir,
    checkout,
    codex_home,
    install,
    model_server,
    run_claude,
    run_codex,
)

FIRST, SECOND = "Edit shared one", "Edit shared two"


@pytest.fixture(scope="module")
def agents() -> Path:
    return agents_dir()


def environment(api_key: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATOR_")}
    return {**base, "COORDINATOR_API_KEY": api_key}


def holder_of(service: Service, path: str) -> dict[str, str | None] | None:
    listed = httpx.get(
        service.url + of_workspace(RESERVATIONS, "acme"), headers=bearer(service.dev_a)
    )
    return next((r for r in listed.json() if r["file_path"] == path), None)


def wait_for(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting: {what}"
        time.sleep(0.2)


def in_background(
    run: Callable[[], subprocess.CompletedProcess[str]],
) -> tuple[threading.Thread, list[subprocess.CompletedProcess[str]]]:
    done: list[subprocess.CompletedProcess[str]] = []
    thread = threading.Thread(target=lambda: done.append(run()))
    thread.start()
    return thread, done


def play(
    service: Service,
    model: ModelServer,
    first: Branch,
    second: Branch,
    shared: Path,
    other_denied: Callable[[], None],
    denied_at: int,
    task: str,
) -> Gate:
    """The scene, once the agent runs: both subagents meet at ``shared``. Returns the gate
    where the second subagent waits after its denied write (``denied_at`` tool results)."""
    started, denied = Gate(), Gate()
    first_gate = first.gates[1]
    second.gates.update({0: started, denied_at: denied})
    assert first_gate.arrived.wait(timeout=90), "the first subagent never wrote"
    assert shared.exists()
    held = holder_of(service, "src/shared.py")
    assert held and held["parent_session_id"] and held["subagent_type"], held
    started.open.set()  # the second subagent starts only once the first holds the file
    assert denied.arrived.wait(timeout=60), "the second subagent never tried the file"
    before = shared.read_text()
    told = model.told()
    deny = "src/shared.py is reserved by Developer A's subagent"
    assert deny in told.replace('\\"', '"')
    assert f"'{task}' (" in told, task
    first_gate.open.set()  # the first subagent ends: its file passes to the session
    wait_for(
        lambda: (holder_of(service, "src/shared.py") or {}).get("parent_session_id") is None,
        "the first subagent's file to pass to its session",
    )
    assert shared.read_text() == before
    other_denied()
    return denied


def test_claude_code_subagents_take_turns_on_one_file(
    service: Service, tmp_path: Path, agents: Path
) -> None:
    env_a, env_b = environment(service.dev_a), environment(service.dev_b)
    repo = checkout(tmp_path / "a" / "repo")
    install("claude-code", env_a, service.url, "--project", str(repo))
    shared = repo / "src" / "shared.py"
    write = {"file_path": str(shared)}
    first = Branch("SUB-ONE", [Step("Write", {**write, "content": "one = 1\n"})], {1: Gate()})
    second = Branch(
        "SUB-TWO",
        [
            Step("Read", write),
            Step("Write", {**write, "content": "two = 2\n"}),
            Step("Write", {**write, "content": "two = 2\n"}),
        ],
    )
    agent = [
        Step("Agent", {"description": FIRST, "prompt": "SUB-ONE: write src/shared.py"}),
        Step("Agent", {"description": SECOND, "prompt": "SUB-TWO: write src/shared.py"}),
    ]

    def codex_denied() -> None:
        patch = "*** Begin Patch\n*** Add File: src/shared.py\n+b = 1\n*** End Patch\n"
        repo_b = checkout(tmp_path / "b" / "repo")
        with model_server(OpenAIServer, [Step("apply_patch", patch)]) as codex_model:
            home = codex_home(tmp_path / "b" / "codex", codex_model)
            install("codex", {**env_b, "CODEX_HOME": str(home)}, service.url)
            done = run_codex(agents, repo_b, home, "Write shared", env_b)
        assert done.returncode == 0, done.stderr
        assert not (repo_b / "src/shared.py").exists()
        assert "File src/shared.py is reserved by Developer A" in codex_model.told()

    with model_server(AnthropicServer, agent) as model:
        model.branches += [first, second]
        home = tmp_path / "a" / "home"
        thread, done = in_background(
            lambda: run_claude(agents, repo, home, "Split the work", model, env_a)
        )
        try:
            play(service, model, first, second, shared, codex_denied, 2, FIRST).open.set()
            wait_for(lambda: shared.read_text() == "two = 2\n", "the second subagent's retry")
        finally:
            for branch in (first, second):
                for gate in branch.gates.values():
                    gate.open.set()
            thread.join(timeout=120)
    assert done and done[0].returncode == 0, done and done[0].stderr
    assert shared.read_text() == "two = 2\n"


def test_codex_spawned_agents_take_turns_on_one_file(
    service: Service, tmp_path: Path, agents: Path
) -> None:
    env_a, env_b = environment(service.dev_a), environment(service.dev_b)
    repo = checkout(tmp_path / "a" / "repo")
    shared = repo / "src" / "shared.py"
    add = "*** Begin Patch\n*** Add File: src/shared.py\n+one = 1\n*** End Patch\n"
    update = (
        "*** Begin Patch\n*** Update File: src/shared.py\n@@\n-one = 1\n+two = 2\n*** End Patch\n"
    )
    first = Branch("SUB-ONE", [Step("apply_patch", add)], {1: Gate()})
    second = Branch("SUB-TWO", [Step("apply_patch", update), Step("apply_patch", update)])
    spawn = "multi_agent_v1/spawn_agent"
    parent = [
        Step("tool_search", {"query": "spawn agent", "limit": 8}),
        Step(spawn, {"message": f"SUB-ONE: {FIRST}"}),
        Step(spawn, {"message": f"SUB-TWO: {SECOND}"}),
    ]

    def claude_denied() -> None:
        repo_b = checkout(tmp_path / "b" / "repo")
        install("claude-code", env_b, service.url, "--project", str(repo_b))
        target = repo_b / "src/shared.py"
        step = Step("Write", {"file_path": str(target), "content": "b = 1\n"})
        with model_server(AnthropicServer, [step]) as claude_model:
            done = run_claude(agents, repo_b, tmp_path / "b" / "home", "Write", claude_model, env_b)
        assert done.returncode == 0, done.stderr
        assert not target.exists()
        assert "File src/shared.py is reserved by Developer A" in claude_model.told()

    with model_server(OpenAIServer, parent) as model:
        model.branches += [first, second]
        model.hold_at = 3  # the parent waits for its subagents, as wait_agent would
        model.hold.clear()
        home = codex_home(tmp_path / "a" / "codex", model)
        install("codex", {**env_a, "CODEX_HOME": str(home)}, service.url)
        hooks = json.loads((home / "hooks.json").read_text())["hooks"]
        assert hooks["SubagentStart"][0]["hooks"][0]["type"] == "mcp_tool"
        thread, done = in_background(lambda: run_codex(agents, repo, home, "Split", env_a))
        try:
            play(
                service, model, first, second, shared, claude_denied, 1, f"SUB-ONE: {FIRST}"
            ).open.set()
            wait_for(lambda: shared.read_text() == "two = 2\n", "the second subagent's retry")
        finally:
            model.hold.set()
            for branch in (first, second):
                for gate in branch.gates.values():
                    gate.open.set()
            thread.join(timeout=120)
    assert done and done[0].returncode == 0, done and done[0].stderr
    assert shared.read_text() == "two = 2\n"
