"""``coordinator install``: merging into the agents' own hook files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coordinator.install import config_path, install
from coordinator.routes import hook_url

URL = "http://127.0.0.1:8080"
COMMAND = "coordinator"


def read(path: Path) -> Any:
    return json.loads(path.read_text())


def commands_of(entries: list[Any]) -> list[str]:
    handlers = [h for e in entries for h in e.get("hooks", [e])]
    return [h.get("command") or h.get("url") for h in handlers]


def test_claude_code_posts_directly_except_at_session_start(tmp_path: Path) -> None:
    path = config_path("claude-code", tmp_path)
    report = install("claude-code", path, URL, COMMAND)
    hooks = read(path)["hooks"]
    assert path == tmp_path / ".claude" / "settings.json"
    assert report.added == [
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "SessionEnd",
    ]
    assert hooks["SessionStart"] == [
        {
            "hooks": [
                {
                    "type": "command",
                    "command": "coordinator hook --agent claude-code --url http://127.0.0.1:8080",
                    "timeout": 5,
                }
            ]
        }
    ]
    [pre] = hooks["PreToolUse"]
    assert pre["matcher"] == "Write|Edit|MultiEdit|NotebookEdit"
    assert pre["hooks"] == [
        {
            "type": "http",
            "url": hook_url("http://127.0.0.1:8080", "claude-code"),
            "timeout": 5,
            "headers": {"Authorization": "Bearer $COORDINATOR_API_KEY"},
            "allowedEnvVars": ["COORDINATOR_API_KEY"],
        }
    ]
    assert "Stop" not in hooks


def test_cursor_runs_the_bridge_for_every_event(tmp_path: Path) -> None:
    path = config_path("cursor", tmp_path)
    install("cursor", path, URL, COMMAND)
    config = read(path)
    assert config["version"] == 1
    assert set(config["hooks"]) == {
        "sessionStart",
        "beforeSubmitPrompt",
        "preToolUse",
        "postToolUse",
        "afterFileEdit",
        "sessionEnd",
    }
    assert config["hooks"]["preToolUse"] == [
        {"command": "coordinator hook --agent cursor --url http://127.0.0.1:8080", "timeout": 5}
    ]


def test_codex_matches_apply_patch(tmp_path: Path) -> None:
    path = config_path("codex", tmp_path)
    install("codex", path, URL, COMMAND)
    hooks = read(path)["hooks"]
    assert path == tmp_path / ".codex" / "hooks.json"
    assert set(hooks) == {
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "SessionEnd",
    }
    assert hooks["PreToolUse"][0]["matcher"] == "apply_patch"
    assert commands_of(hooks["SessionEnd"]) == [
        "coordinator hook --agent codex --url http://127.0.0.1:8080"
    ]


@pytest.mark.parametrize("agent", ["claude-code", "cursor", "codex"])
def test_installing_twice_changes_nothing(tmp_path: Path, agent: str) -> None:
    path = config_path(agent, tmp_path)
    install(agent, path, URL, COMMAND)
    first = path.read_bytes()
    again = install(agent, path, URL, COMMAND)
    assert path.read_bytes() == first
    assert (again.added, again.updated) == ([], [])
    assert again.lines()[0] == f"unchanged: {path}"


def test_what_was_there_stays(tmp_path: Path) -> None:
    path = config_path("claude-code", tmp_path)
    path.parent.mkdir(parents=True)
    theirs = {"type": "command", "command": "./lint.sh"}
    existing: dict[str, Any] = {
        "permissions": {"allow": ["Bash(npm test)"]},
        "hooks": {
            "PreToolUse": [{"matcher": "Bash", "hooks": [theirs]}],
            "Stop": [{"hooks": [{"type": "command", "command": "say done"}]}],
        },
    }
    path.write_text(json.dumps(existing))
    install("claude-code", path, URL, COMMAND)
    config = read(path)
    assert config["permissions"] == existing["permissions"]
    assert config["hooks"]["Stop"] == existing["hooks"]["Stop"]
    assert config["hooks"]["PreToolUse"][0] == {"matcher": "Bash", "hooks": [theirs]}
    assert len(config["hooks"]["PreToolUse"]) == 2


def test_a_new_url_replaces_the_old_entry_instead_of_adding_one(tmp_path: Path) -> None:
    path = config_path("claude-code", tmp_path)
    install("claude-code", path, URL, COMMAND)
    report = install(
        "claude-code", path, "http://coordinator.internal:9000", "/opt/bin/coordinator"
    )
    hooks = read(path)["hooks"]
    assert report.updated == [
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "SessionEnd",
    ]
    assert commands_of(hooks["PreToolUse"]) == [
        hook_url("http://coordinator.internal:9000", "claude-code")
    ]
    assert commands_of(hooks["SessionStart"]) == [
        "/opt/bin/coordinator hook --agent claude-code --url http://coordinator.internal:9000"
    ]


def test_a_broken_file_is_left_alone(tmp_path: Path) -> None:
    path = config_path("cursor", tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with pytest.raises(SystemExit, match="cannot read"):
        install("cursor", path, URL, COMMAND)
    assert path.read_text() == "{not json"


def test_user_level_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CODEX_HOME", raising=False)
    assert config_path("claude-code", None) == tmp_path / ".claude" / "settings.json"
    assert config_path("cursor", None) == tmp_path / ".cursor" / "hooks.json"
    assert config_path("codex", None) == tmp_path / ".codex" / "hooks.json"
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    assert config_path("codex", None) == tmp_path / "codex" / "hooks.json"


def test_the_command_says_what_it_did(tmp_path: Path) -> None:
    run = [
        sys.executable,
        "-m",
        "coordinator",
        "install",
        "codex",
        "--project",
        str(tmp_path),
        "--url",
        "http://127.0.0.1:9999",
    ]
    first = subprocess.run(run, capture_output=True, text=True, check=True)
    assert f"wrote: {tmp_path}/.codex/hooks.json" in first.stdout
    assert "added: SessionStart, UserPromptSubmit, PreToolUse, PostToolUse, SessionEnd" in (
        first.stdout
    )
    second = subprocess.run(run, capture_output=True, text=True, check=True)
    assert "unchanged:" in second.stdout and "already there:" in second.stdout
