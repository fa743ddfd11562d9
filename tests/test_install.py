"""``coordinator install``: merging into the agents' own hook files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from coordinator.install import config_path, install, runs_twice
from coordinator.install_mcp import install_companion
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
        "SubagentStart",
        "SubagentStop",
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
    # Bash: shell writes; before the Agent tool too: its description is the subagent's task.
    assert pre["matcher"] == "Write|Edit|MultiEdit|NotebookEdit|Bash|Agent|Task"
    assert hooks["PostToolUse"][0]["matcher"] == "Write|Edit|MultiEdit|NotebookEdit|Bash"
    assert hooks["SubagentStop"] == [{"hooks": pre["hooks"]}]
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
        "subagentStart",
        "subagentStop",
        "sessionEnd",
    }
    assert config["hooks"]["preToolUse"] == [
        {"command": "coordinator hook --agent cursor --url http://127.0.0.1:8080", "timeout": 5}
    ]


def test_codex_matches_apply_patch_and_its_shell(tmp_path: Path) -> None:
    path = config_path("codex", tmp_path)
    install("codex", path, URL, COMMAND)
    hooks = read(path)["hooks"]
    assert path == tmp_path / ".codex" / "hooks.json"
    assert set(hooks) == {
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "SubagentStart",
        "SubagentStop",
        "SessionEnd",
    }
    assert hooks["PreToolUse"][0]["matcher"] == "apply_patch|Bash"
    assert hooks["PostToolUse"][0]["matcher"] == "apply_patch|Bash"
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
        "SubagentStart",
        "SubagentStop",
        "SessionEnd",
    ]
    assert commands_of(hooks["PreToolUse"]) == [
        hook_url("http://coordinator.internal:9000", "claude-code")
    ]
    assert commands_of(hooks["SessionStart"]) == [
        "/opt/bin/coordinator hook --agent claude-code --url http://coordinator.internal:9000"
    ]


@pytest.mark.parametrize(("agent", "before"), [("claude-code", "Write|Edit|MultiEdit|NotebookEdit"),
                                             ("codex", "apply_patch")])  # fmt: skip
def test_an_install_without_the_shell_gains_it(tmp_path: Path, agent: str, before: str) -> None:
    path = config_path(agent, tmp_path)
    install(agent, path, URL, COMMAND)
    config = read(path)
    for event in ("PreToolUse", "PostToolUse"):
        config["hooks"][event][0]["matcher"] = before  # as an earlier coordinator wrote it
    path.write_text(json.dumps(config))
    report = install(agent, path, URL, COMMAND)
    assert report.updated == ["PreToolUse", "PostToolUse"]
    hooks = read(path)["hooks"]
    for event in ("PreToolUse", "PostToolUse"):
        [entry] = hooks[event]
        assert "Bash" in entry["matcher"].split("|")


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
    added = "added: SessionStart, UserPromptSubmit, PreToolUse, PostToolUse, SubagentStart, "
    assert added + "SubagentStop, SessionEnd" in first.stdout
    second = subprocess.run(run, capture_output=True, text=True, check=True)
    assert "unchanged:" in second.stdout and "already there:" in second.stdout


# -- the companion (coordinator mcp) -------------------------------------------------------


def test_codex_hooks_go_through_the_companion_but_its_session_end(tmp_path: Path) -> None:
    path = config_path("codex", tmp_path)
    install("codex", path, URL, COMMAND, companion=True)
    hooks = read(path)["hooks"]
    handlers = {event: entries[0]["hooks"][0] for event, entries in hooks.items()}
    assert [h["type"] for h in handlers.values()] == ["mcp_tool"] * 6 + ["command"]
    assert '"http"' not in json.dumps(hooks)  # Codex would reject the whole file
    assert handlers["PreToolUse"] == {
        "type": "mcp_tool",
        "server": "coordinator",
        "tool": "hook",
        "input": {
            "hook_event_name": "${hook_event_name}",
            "session_id": "${session_id}",
            "cwd": "${cwd}",
            "turn_id": "${turn_id}",
            "tool_name": "${tool_name}",
            "command": "${tool_input.command}",
            "tool_use_id": "${tool_use_id}",
        },
    }
    assert hooks["PreToolUse"][0]["matcher"] == "apply_patch|Bash"
    assert handlers["UserPromptSubmit"]["input"]["prompt"] == "${prompt}"
    # Only fields every such event carries: Codex skips a hook naming one it lacks.
    assert handlers["SubagentStop"]["input"] == {
        "hook_event_name": "${hook_event_name}",
        "session_id": "${session_id}",
        "cwd": "${cwd}",
        "agent_id": "${agent_id}",
        "agent_type": "${agent_type}",
    }
    assert handlers["SubagentStart"]["input"]["turn_id"] == "${turn_id}"
    assert "${agent_id}" not in json.dumps([handlers["PreToolUse"], handlers["PostToolUse"]])
    assert handlers["SessionEnd"]["command"] == (
        "coordinator hook --agent codex --url http://127.0.0.1:8080"
    )


def test_switching_to_and_from_the_companion_replaces_the_hooks(tmp_path: Path) -> None:
    path = config_path("codex", tmp_path)
    install("codex", path, URL, COMMAND)
    through = install("codex", path, URL, COMMAND, companion=True)
    assert through.updated == [
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "SubagentStart",
        "SubagentStop",
    ]
    assert through.present == ["SessionEnd"]
    back = install("codex", path, URL, COMMAND)
    assert back.updated == through.updated
    assert all(len(entries) == 1 for entries in read(path)["hooks"].values())


COMPANION = {"command": "coordinator", "args": ["mcp", "--url", URL]}


def test_claude_code_gets_the_server_and_the_grant(tmp_path: Path) -> None:
    reports = install_companion("claude-code", tmp_path, URL + "/", COMMAND)
    assert [r.path for r in reports] == [tmp_path / ".mcp.json", tmp_path / ".claude/settings.json"]
    assert read(tmp_path / ".mcp.json") == {
        "mcpServers": {"coordinator": {"type": "stdio", **COMPANION}}
    }
    assert read(tmp_path / ".claude/settings.json")["permissions"]["allow"] == ["mcp__coordinator"]


def test_claude_code_for_the_user_keeps_what_its_files_hold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    state = {"numStartups": 3, "mcpServers": {"theirs": {"command": "x"}}}
    (tmp_path / ".claude.json").write_text(json.dumps(state))
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude/settings.json").write_text('{"permissions": {"allow": ["Bash(ls)"]}}')
    install_companion("claude-code", None, URL, COMMAND)
    servers = read(tmp_path / ".claude.json")
    assert servers["numStartups"] == 3
    assert servers["mcpServers"] == {
        "theirs": {"command": "x"},
        "coordinator": {"type": "stdio", **COMPANION},
    }
    allowed = read(tmp_path / ".claude/settings.json")["permissions"]["allow"]
    assert allowed == ["Bash(ls)", "mcp__coordinator"]


def test_cursor_gets_its_mcp_file(tmp_path: Path) -> None:
    install_companion("cursor", tmp_path, URL, "'/opt/my tools/coordinator'")
    assert read(tmp_path / ".cursor/mcp.json") == {
        "mcpServers": {
            "coordinator": {"command": "/opt/my tools/coordinator", "args": COMPANION["args"]}
        }
    }


def test_codex_gets_its_server_table_and_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / ".codex" / "config.toml"
    path.parent.mkdir()
    path.write_text(
        'model = "gpt-5.5"  # mine\n\n[mcp_servers.coordinator]\ncommand = "old"\n'
        '[mcp_servers.coordinator.env]\nA = "1"\n\n[mcp_servers.docs]\ncommand = "docs"\n'
    )
    [report] = install_companion("codex", tmp_path, URL, f"{sys.executable} -m coordinator")
    assert report.updated == ["[mcp_servers.coordinator]"]
    config = tomllib.loads(path.read_text())
    assert config["model"] == "gpt-5.5"
    assert config["mcp_servers"]["docs"] == {"command": "docs"}
    assert config["mcp_servers"]["coordinator"] == {
        "command": sys.executable,
        "args": ["-m", "coordinator", "mcp", "--url", URL],
        "env_vars": ["COORDINATOR_API_KEY", "COORDINATOR_CONFIG", "COORDINATOR_TIMEOUT"],
        "default_tools_approval_mode": "approve",
    }
    assert 'model = "gpt-5.5"  # mine' in path.read_text()


def test_a_codex_table_it_cannot_replace_safely_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / ".codex" / "config.toml"
    path.parent.mkdir()
    inline = 'mcp_servers = { coordinator = { command = "mine" } }\n'
    path.write_text(inline)
    with pytest.raises(SystemExit, match="remove it and run install again"):
        install_companion("codex", tmp_path, URL, COMMAND)
    path.write_text("[broken\n")
    with pytest.raises(SystemExit, match="cannot read"):
        install_companion("codex", tmp_path, URL, COMMAND)
    assert path.read_text() == "[broken\n"


@pytest.mark.parametrize("agent", ["claude-code", "cursor", "codex"])
def test_installing_the_companion_twice_changes_nothing(tmp_path: Path, agent: str) -> None:
    first = install_companion(agent, tmp_path, URL, COMMAND)
    written = {r.path: r.path.read_bytes() for r in first}
    again = install_companion(agent, tmp_path, URL, COMMAND)
    assert {r.path: r.path.read_bytes() for r in again} == written
    assert all((r.added, r.updated) == ([], []) and r.present for r in again)


def run_install(*args: str, home: Path) -> str:
    env = {**os.environ, "HOME": str(home), "CODEX_HOME": str(home / ".codex")}
    command = [sys.executable, "-m", "coordinator", "install", *args, "--url", URL]
    return subprocess.run(command, capture_output=True, text=True, check=True, env=env).stdout


def test_no_mcp_wires_the_hooks_only(tmp_path: Path) -> None:
    for agent in ("claude-code", "cursor", "codex"):
        run_install(agent, "--project", str(tmp_path), "--no-mcp", home=tmp_path / "home")
    assert not (tmp_path / ".mcp.json").exists()
    assert not (tmp_path / ".cursor/mcp.json").exists()
    assert not (tmp_path / ".codex/config.toml").exists()
    assert "permissions" not in read(tmp_path / ".claude/settings.json")
    assert "mcp_tool" not in (tmp_path / ".codex/hooks.json").read_text()


def test_the_command_says_what_the_user_must_still_do(tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = run_install("claude-code", "--project", str(tmp_path), home=home)
    assert f"wrote: {tmp_path}/.mcp.json" in project
    assert "added: permissions.allow mcp__coordinator" in project
    assert "until you trust this workspace" in project and "--user" in project
    user = run_install("claude-code", "--user", home=home)
    assert f"wrote: {home}/.claude.json" in user
    assert "trust" not in user
    codex = run_install("codex", "--user", home=home)
    assert f"wrote: {home}/.codex/config.toml" in codex
    assert "export COORDINATOR_API_KEY" in codex and "/hooks" in codex


def test_with_the_companion_a_deny_may_name_its_tools(tmp_path: Path) -> None:
    """Claude Code's hook URL and Cursor's bridge say the companion is wired (mcp=1)."""
    claude, cursor = config_path("claude-code", tmp_path), config_path("cursor", tmp_path)
    install("claude-code", claude, URL, COMMAND, companion=True)
    install("cursor", cursor, URL, COMMAND, companion=True)
    [prompt] = read(claude)["hooks"]["UserPromptSubmit"]  # its writes: the companion itself
    assert prompt["hooks"][0]["url"] == hook_url(URL, "claude-code", companion=True)
    assert read(cursor)["hooks"]["preToolUse"] == [
        {"command": f"coordinator hook --agent cursor --url {URL} --mcp", "timeout": 5}
    ]


def test_the_command_warns_when_cursor_would_run_the_hooks_twice(tmp_path: Path) -> None:
    home, project, other = tmp_path / "home", tmp_path / "p", tmp_path / "q"
    claude = run_install("claude-code", "--project", str(project), home=home)
    assert "third-party hooks" not in claude
    cursor = run_install("cursor", "--project", str(project), home=home)
    assert "Warning: Cursor also runs Claude Code's hooks" in cursor
    assert f"{project}/.cursor/hooks.json and {project}/.claude/settings.json" in cursor
    assert "Warning: Cursor" in run_install("claude-code", "--project", str(project), home=home)
    assert "Warning" not in run_install("codex", "--project", str(project), home=home)
    # Cursor loads the user's Claude Code hooks too.
    assert "Warning" not in run_install("cursor", "--project", str(other), home=home)
    run_install("claude-code", "--user", home=home)
    warned = run_install("cursor", "--project", str(other), home=home)
    assert f"{other}/.cursor/hooks.json and {home}/.claude/settings.json" in warned


def test_hooks_of_others_do_not_count_as_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    install("cursor", config_path("cursor", tmp_path), URL, COMMAND)
    lint = {"type": "command", "command": "lint"}
    theirs = {"hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [lint]}]}}
    (tmp_path / ".claude").mkdir()
    (tmp_path / ".claude/settings.json").write_text(json.dumps(theirs))
    assert runs_twice(tmp_path) is None
    (tmp_path / ".claude/settings.local.json").write_text("{not json")
    assert runs_twice(tmp_path) is None
    install("claude-code", config_path("claude-code", tmp_path), URL, COMMAND)
    assert runs_twice(tmp_path) is not None


def test_claude_code_writes_go_through_the_companion_when_it_is_installed(
    tmp_path: Path,
) -> None:
    path = config_path("claude-code", tmp_path)
    install("claude-code", path, URL, COMMAND, companion=True)
    hooks = read(path)["hooks"]
    handlers = {event: entries[0]["hooks"][0] for event, entries in hooks.items()}
    assert {event: h["type"] for event, h in handlers.items()} == {
        "SessionStart": "command",
        "UserPromptSubmit": "http",
        "PreToolUse": "mcp_tool",
        "PostToolUse": "mcp_tool",
        "SubagentStart": "http",
        "SubagentStop": "http",
        "SessionEnd": "http",
    }
    # A write whose check cannot reach the companion is refused, not let through unchecked.
    check = dict(handlers["PreToolUse"])
    assert check.pop("onFailure") == "block"
    assert (
        check
        == handlers["PostToolUse"]
        == {
            "type": "mcp_tool",
            "server": "coordinator",
            "tool": "hook",
            "input": {
                "hook_event_name": "${hook_event_name}",
                "session_id": "${session_id}",
                "cwd": "${cwd}",
                "tool_name": "${tool_name}",
                "tool_input": "${tool_input}",
                "tool_use_id": "${tool_use_id}",
                "agent_id": "${agent_id}",
                "agent_type": "${agent_type}",
                "agent": "claude-code",
            },
            "timeout": 5,
        }
    )
    assert hooks["PreToolUse"][0]["matcher"] == "Write|Edit|MultiEdit|NotebookEdit|Bash|Agent|Task"
    assert hooks["PostToolUse"][0]["matcher"] == "Write|Edit|MultiEdit|NotebookEdit|Bash"
    # Without the companion (--no-mcp), whole-file claims through http hooks, replaced in place.
    back = install("claude-code", path, URL, COMMAND)
    assert {"PreToolUse", "PostToolUse"} <= set(back.updated)
    assert read(path)["hooks"]["PreToolUse"][0]["hooks"][0]["type"] == "http"
