"""The companion (``coordinator mcp``) with the real Claude Code and Codex CLIs, each wired
by ``coordinator install`` (companion included), against a real service.

Claude Code (Developer B) writes a file, and is kept mid-session by its scripted model.
Codex (Developer A), whose hooks all run through the companion (``mcp_tool``), is denied
a patch of that file. Claude Code then calls the companion's ``decide`` and
``team_status``, and ends; Codex's next session is briefed the decision, and its patch
goes through.
"""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path

import pytest

from tests.helpers import Service
from tests.process.agent_clis import (
    AnthropicServer,
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

DECISION = "Auth uses JWT, not server sessions"
PATCH = "*** Begin Patch\n*** Add File: src/app.py\n+print('from A')\n*** End Patch\n"


@pytest.fixture(scope="module")
def agents() -> Path:
    return agents_dir()


def test_claude_code_and_codex_coordinate_through_the_companion(
    service: Service, tmp_path: Path, agents: Path
) -> None:
    claude_env, codex_env = agent_envs(service.dev_b, service.dev_a)
    claude_home, claude_repo = tmp_path / "b" / "home", checkout(tmp_path / "b" / "repo")
    codex_repo = checkout(tmp_path / "a" / "repo")
    install("claude-code", {**claude_env, "HOME": str(claude_home)}, service.url)

    script = [
        Step("Write", {"file_path": str(claude_repo / "src/app.py"), "content": "print('B')\n"}),
        Step("mcp__coordinator__decide", {"text": DECISION, "kind": "architecture"}),
        Step("mcp__coordinator__team_status", {}),
    ]
    with model_server(AnthropicServer, script) as claude_model:
        claude_model.hold.clear()  # Claude Code stays in its session after writing
        claude: list[subprocess.CompletedProcess[str]] = []
        thread = threading.Thread(
            target=lambda: claude.append(
                run_claude(agents, claude_repo, claude_home, "Build auth", claude_model, claude_env)
            )
        )
        thread.start()
        try:
            assert claude_model.reached.wait(timeout=120), "Claude Code never wrote its file"
            with model_server(OpenAIServer, [Step("apply_patch", PATCH)]) as codex_model:
                home = codex_home(tmp_path / "a" / "codex", codex_model)
                install("codex", {**codex_env, "CODEX_HOME": str(home)}, service.url)
                hooks = json.loads((home / "hooks.json").read_text())["hooks"]
                assert hooks["PreToolUse"][0]["hooks"][0]["type"] == "mcp_tool"
                done = run_codex(agents, codex_repo, home, "Write the app", codex_env)
            assert done.returncode == 0, done.stderr
            assert not (codex_repo / "src/app.py").exists()  # the patch never applied
            told = codex_model.told()
            assert "src/app.py (Developer B)" in told  # the briefing, through the companion
            assert "File src/app.py is reserved by Developer B" in told
        finally:
            claude_model.hold.set()
            thread.join(timeout=180)
    assert claude and claude[0].returncode == 0, claude and claude[0].stderr
    results = [
        block
        for request in claude_model.requests
        for message in request["body"].get("messages", [])
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    outputs = {json.dumps(block["content"]) for block in results}
    assert any(f"Recorded for team acme: [architecture] {DECISION}" in o for o in outputs)
    assert any("You hold: src/app.py" in o for o in outputs), outputs

    with model_server(OpenAIServer, [Step("apply_patch", PATCH)]) as codex_model:
        home = codex_home(tmp_path / "a" / "codex", codex_model)
        install("codex", {**codex_env, "CODEX_HOME": str(home)}, service.url)
        done = run_codex(agents, codex_repo, home, "Write the app", codex_env)
    assert done.returncode == 0, done.stderr
    first_request = json.dumps(codex_model.requests[0]["body"])
    assert f"[architecture] {DECISION}" in first_request  # the next session's briefing
    assert (codex_repo / "src/app.py").read_text() == "print('from A')\n"
