"""Two agents, two functions, one file, with the real Claude Code and Codex CLIs, each
wired by ``coordinator install`` with its companion, against a real service.

Claude Code (Developer B) edits ``refresh_token`` of ``src/tokens.py``: its Edit goes
through the companion (an ``mcp_tool`` hook), which maps it to that function, and its
scripted model keeps it mid-session. Codex (Developer A), in its own checkout of the same
file, patches ``revoke_token``: allowed. Its next patch, of ``refresh_token``: denied,
naming the function and its holder.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from coordinator.routes import RESERVATIONS, of_workspace
from tests.helpers import Service, bearer
from tests.process.agent_clis import (
    AnthropicServer,
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

SOURCE = '''"""Tokens."""


def refresh_token(user: str) -> str:
    return user + "-token"


def revoke_token(user: str) -> None:
    print("revoked", user)
'''


def patch(old: str, new: str) -> str:
    return f"*** Begin Patch\n*** Update File: src/tokens.py\n@@\n-{old}\n+{new}\n*** End Patch\n"


REVOKE = patch('    print("revoked", user)', '    print("gone", user)')
REFRESH = patch('    return user + "-token"', '    return user + "-A"')


@pytest.fixture(scope="module")
def agents() -> Path:
    return agents_dir()


def tokens_checkout(folder: Path) -> Path:
    """A repository holding src/tokens.py (SOURCE)."""
    (checkout(folder) / "src").mkdir()
    (folder / "src" / "tokens.py").write_text(SOURCE)
    return folder


def test_claude_code_and_codex_edit_two_functions_of_one_file(
    service: Service, tmp_path: Path, agents: Path
) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATOR_")}
    claude_env = {**base, "COORDINATOR_API_KEY": service.dev_b}
    codex_env = {**base, "COORDINATOR_API_KEY": service.dev_a}
    claude_home, claude_repo = tmp_path / "b" / "home", tokens_checkout(tmp_path / "b" / "repo")
    codex_repo = tokens_checkout(tmp_path / "a" / "repo")
    install("claude-code", {**claude_env, "HOME": str(claude_home)}, service.url)
    settings = json.loads((claude_home / ".claude" / "settings.json").read_text())
    assert settings["hooks"]["PreToolUse"][0]["hooks"][0]["type"] == "mcp_tool"

    tokens = str(claude_repo / "src" / "tokens.py")
    edit = {"file_path": tokens, "old_string": 'user + "-token"', "new_string": 'user + "-B"'}
    script = [Step("Read", {"file_path": tokens}), Step("Edit", edit)]
    with model_server(AnthropicServer, script) as claude_model:
        claude_model.hold_at = 2  # Claude Code stays in its session after its edit
        claude_model.hold.clear()
        claude: list[subprocess.CompletedProcess[str]] = []
        thread = threading.Thread(
            target=lambda: claude.append(
                run_claude(
                    agents, claude_repo, claude_home, "Refresh tokens", claude_model, claude_env
                )
            )
        )
        thread.start()
        try:
            assert claude_model.reached.wait(timeout=120), "Claude Code never edited its file"
            assert 'user + "-B"' in (claude_repo / "src" / "tokens.py").read_text()
            listed = httpx.get(
                service.url + of_workspace(RESERVATIONS, "acme"), headers=bearer(service.dev_a)
            ).json()
            assert [(r["file_path"], r["symbol"], r["user_name"]) for r in listed] == [
                ("src/tokens.py", "refresh_token", "Developer B")
            ]

            with model_server(OpenAIServer, [Step("apply_patch", REVOKE)]) as codex_model:
                home = codex_home(tmp_path / "a" / "codex", codex_model)
                install("codex", {**codex_env, "CODEX_HOME": str(home)}, service.url)
                done = run_codex(agents, codex_repo, home, "Say goodbye", codex_env)
            assert done.returncode == 0, done.stderr
            assert 'print("gone", user)' in (codex_repo / "src" / "tokens.py").read_text()
            assert "is reserved by" not in codex_model.told()

            with model_server(OpenAIServer, [Step("apply_patch", REFRESH)]) as codex_model:
                home = codex_home(tmp_path / "a" / "codex", codex_model)  # a new config.toml
                install("codex", {**codex_env, "CODEX_HOME": str(home)}, service.url)
                done = run_codex(agents, codex_repo, home, "Refresh tokens too", codex_env)
            assert done.returncode == 0, done.stderr
            assert 'user + "-token"' in (codex_repo / "src" / "tokens.py").read_text()
            assert (
                "Function refresh_token in src/tokens.py is reserved by Developer B"
                in codex_model.told()
            )
        finally:
            claude_model.hold.set()
            thread.join(timeout=180)
    assert claude and claude[0].returncode == 0, claude and claude[0].stderr


def test_claude_code_refuses_a_write_whose_companion_is_not_connected(
    service: Service, tmp_path: Path, agents: Path
) -> None:
    """An unconnected companion (here: a command that cannot start; in life, a project
    server not approved yet) must not let writes through unchecked: the PreToolUse check
    is installed with onFailure "block"."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("COORDINATOR_")}
    env = {**base, "COORDINATOR_API_KEY": service.dev_b}
    home, repo = tmp_path / "home", tokens_checkout(tmp_path / "repo")
    install("claude-code", {**env, "HOME": str(home)}, service.url)
    servers = home / ".claude.json"
    config = json.loads(servers.read_text())
    config["mcpServers"]["coordinator"]["command"] = str(tmp_path / "no-such-command")
    servers.write_text(json.dumps(config))

    new = repo / "src" / "new.py"
    with model_server(
        AnthropicServer, [Step("Write", {"file_path": str(new), "content": "x"})]
    ) as model:
        done = run_claude(agents, repo, home, "Add a module", model, env)
    assert done.returncode == 0, done.stderr
    assert not new.exists()
    assert "PreToolUse:Write hook error" in model.told()
