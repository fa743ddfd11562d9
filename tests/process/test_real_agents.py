"""The real Claude Code and Codex CLIs, wired by `coordinator install`, against a real service.

Two developers, two checkouts at different paths. One developer's agent writes a file and
is kept mid-session by its scripted model; the other's agent then tries to edit the same
file: the edit is blocked (the file is untouched on disk) and its model is told who holds
it. Once the holder's session ends, the same edit goes through.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from coordinator.routes import RESERVATIONS, of_workspace
from tests.helpers import Service, bearer
from tests.process.agent_clis import (
    AnthropicServer,
    ModelServer,
    OpenAIServer,
    Step,
    agents_dir,
    codex_home,
    model_server,
    run_claude,
    run_codex,
)

BRIDGE = f"{sys.executable} -m coordinator"


@pytest.fixture(scope="module")
def agents() -> Path:
    return agents_dir()


class Developer:
    """One developer: a checkout of the project, an API key, and an agent to run in it."""

    def __init__(self, root: Path, name: str, api_key: str, service: Service, agents: Path) -> None:
        self.root = root / name
        self.agents = agents
        self.repo = self.root / "work" / "repo"
        self.repo.mkdir(parents=True)
        subprocess.run(["git", "init", "-q", str(self.repo)], check=True)
        self.service = service
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATOR_")}
        self.env["COORDINATOR_API_KEY"] = api_key

    def install(self, agent: str, env: dict[str, str] | None = None) -> None:
        where = ["--user"] if agent == "codex" else ["--project", str(self.repo)]
        subprocess.run(
            [
                sys.executable,
                "-m",
                "coordinator",
                "install",
                agent,
                *where,
                "--url",
                self.service.url,
                "--bridge-command",
                BRIDGE,
            ],
            check=True,
            capture_output=True,
            env=env or self.env,
        )

    def run(self, agent: str, model: ModelServer, prompt: str) -> subprocess.CompletedProcess[str]:
        if agent == "claude-code":
            self.install(agent)
            return run_claude(self.agents, self.repo, self.root / "home", prompt, model, self.env)
        home = codex_home(self.root / "codex", model)
        self.install(agent, {**self.env, "CODEX_HOME": str(home)})
        return run_codex(self.agents, self.repo, home, prompt, self.env)

    def write(self, agent: str, path: str, text: str) -> tuple[type[ModelServer], Step]:
        """The model server kind and the scripted step that writes ``path`` with ``agent``."""
        if agent == "claude-code":
            return AnthropicServer, Step(
                "Write", {"file_path": str(self.repo / path), "content": text + "\n"}
            )
        lines = "".join(f"+{line}\n" for line in text.splitlines())
        return OpenAIServer, Step(
            "apply_patch", f"*** Begin Patch\n*** Add File: {path}\n{lines}*** End Patch\n"
        )


def reservations(service: Service) -> dict[str, str]:
    listed = httpx.get(
        service.url + of_workspace(RESERVATIONS, "acme"), headers=bearer(service.dev_a)
    )
    return {r["file_path"]: r["user_name"] for r in listed.json()}


@pytest.fixture
def team(service: Service, tmp_path: Path, agents: Path) -> Iterator[tuple[Developer, Developer]]:
    yield (
        Developer(tmp_path, "dev-a", service.dev_a, service, agents),
        Developer(tmp_path, "dev-b", service.dev_b, service, agents),
    )


@pytest.mark.parametrize(
    ("holder_agent", "blocked_agent"), [("claude-code", "codex"), ("codex", "claude-code")]
)
def test_an_edit_of_a_file_another_agent_holds_is_blocked(
    team: tuple[Developer, Developer], service: Service, holder_agent: str, blocked_agent: str
) -> None:
    dev_a, dev_b = team
    kind, step = dev_b.write(holder_agent, "src/app.py", "print('from B')")
    with model_server(kind, [step]) as holder_model:
        holder_model.hold.clear()  # B's agent stays in its session after writing
        holder: list[subprocess.CompletedProcess[str]] = []
        thread = threading.Thread(
            target=lambda: holder.append(dev_b.run(holder_agent, holder_model, "Build the app"))
        )
        thread.start()
        try:
            assert holder_model.reached.wait(timeout=120), "B's agent never wrote its file"
            assert (dev_b.repo / "src/app.py").read_text() == "print('from B')\n"
            assert reservations(service) == {"src/app.py": "Developer B"}

            kind, step = dev_a.write(blocked_agent, "src/app.py", "print('from A')")
            with model_server(kind, [step]) as blocked_model:
                done = dev_a.run(blocked_agent, blocked_model, "Rewrite the app")
            assert done.returncode == 0, done.stderr
            assert not (dev_a.repo / "src/app.py").exists()  # the write never happened
            first_request = json.dumps(blocked_model.requests[0]["body"])
            assert "Team briefing" in first_request  # the session start's briefing
            assert "src/app.py (Developer B)" in first_request
            assert "File src/app.py is reserved by Developer B" in blocked_model.told()
        finally:
            holder_model.hold.set()
            thread.join(timeout=120)
    assert holder and holder[0].returncode == 0, holder and holder[0].stderr
    assert reservations(service) == {}  # B's session end released it

    kind, step = dev_a.write(blocked_agent, "src/app.py", "print('from A')")
    with model_server(kind, [step]) as retry_model:
        done = dev_a.run(blocked_agent, retry_model, "Rewrite the app")
    assert done.returncode == 0, done.stderr
    assert (dev_a.repo / "src/app.py").read_text() == "print('from A')\n"
    assert "reserved by" not in retry_model.told()


def test_a_codex_sed_of_a_file_claude_code_holds_is_denied(
    team: tuple[Developer, Developer], service: Service
) -> None:
    """Codex's shell (its hooks see ``Bash``) edits with ``sed -i``: the service reads the
    command, denies the file Claude Code holds, and lets the same command on a free file run."""
    dev_a, dev_b = team
    for name in ("app.py", "free.py"):
        (dev_a.repo / "src").mkdir(exist_ok=True)
        (dev_a.repo / "src" / name).write_text("print('from A')\n")
    kind, step = dev_b.write("claude-code", "src/app.py", "print('from B')")
    with model_server(kind, [step]) as holder_model:
        holder_model.hold.clear()  # Claude Code stays in its session, holding src/app.py
        holder: list[subprocess.CompletedProcess[str]] = []
        thread = threading.Thread(
            target=lambda: holder.append(dev_b.run("claude-code", holder_model, "Build the app"))
        )
        thread.start()
        try:
            assert holder_model.reached.wait(timeout=120), "Claude Code never wrote its file"
            script = [
                Step("exec_command", {"cmd": "sed -i s/A/C/ src/app.py"}),
                Step("exec_command", {"cmd": "sed -i s/A/C/ src/free.py"}),
            ]
            with model_server(OpenAIServer, script) as codex_model:
                done = dev_a.run("codex", codex_model, "Rename A to C")
            assert done.returncode == 0, done.stderr
            assert (dev_a.repo / "src/app.py").read_text() == "print('from A')\n"  # denied
            assert (dev_a.repo / "src/free.py").read_text() == "print('from C')\n"  # ran
            assert "File src/app.py is reserved by Developer B" in codex_model.told()
        finally:
            holder_model.hold.set()
            thread.join(timeout=120)
    assert holder and holder[0].returncode == 0, holder and holder[0].stderr
