"""``coordinator install``: wire an agent's hooks, and its companion, to coordinator.

Merges into the agent's existing files: nothing already there is removed (only an
older coordinator entry is replaced), and running it twice changes nothing. Each
agent's session-end event is wired, never its per-turn stop event: Stop fires after
every turn and would release files the agent is still working on. The companion
(``coordinator mcp``) is registered as the agent's MCP server ``coordinator``
(``companion.py``; ``install_mcp.py`` writes that part), and Codex's hooks run through
it (``mcp_tool``) except at its session end, where Codex runs no MCP hook. Standard
library only.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator import routes
from coordinator.agents import MCP_SERVER

# The tools whose events claim files: the edit tools and the shell, whose command the
# service reads for the files it clearly writes (shell.py).
CLAUDE_WRITES = "Write|Edit|MultiEdit|NotebookEdit|Bash"
CODEX_WRITES = "apply_patch|Bash"
# Before a write, and before the Agent tool starts a subagent (its description is the
# subagent's task; ``Task`` is the tool's older name).
CLAUDE_PRE_TOOLS = f"{CLAUDE_WRITES}|Agent|Task"
TIMEOUT_S = 5
# The companion's tool that answers a hook, and what Codex fills its input from. Codex
# skips a hook (silently) whose ``${field}`` the event lacks, so only fields every such
# event carries are named.
HOOK_TOOL = "hook"
EVENT_FIELDS = {
    "hook_event_name": "${hook_event_name}",
    "session_id": "${session_id}",
    "cwd": "${cwd}",
}
# A subagent's start and stop always carry its id and type. Its other events name it only
# in ``${agent_id}``, which the parent's lack (Codex would skip those hooks), so they name
# their turn: the companion knows a subagent's turn from its start (companion.py).
SUBAGENT_FIELDS = {**EVENT_FIELDS, "agent_id": "${agent_id}", "agent_type": "${agent_type}"}
TURN_FIELDS = {**EVENT_FIELDS, "turn_id": "${turn_id}"}
TOOL_FIELDS = {
    **TURN_FIELDS,
    "tool_name": "${tool_name}",
    "command": "${tool_input.command}",
    "tool_use_id": "${tool_use_id}",
}
# Claude Code's writes through the companion, which maps them to symbols (edits.py): its
# ``${tool_input}`` (an object) comes as JSON text, whole.
CLAUDE_TOOL_FIELDS = {
    **EVENT_FIELDS,
    "tool_name": "${tool_name}",
    "tool_input": "${tool_input}",
    "tool_use_id": "${tool_use_id}",
    # Claude Code fills a field an event lacks with "" (a parent's events name no agent).
    "agent_id": "${agent_id}",
    "agent_type": "${agent_type}",
    "agent": "claude-code",
}


@dataclass
class Report:
    """What an install did to one file, event by event."""

    path: Path
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        changed = bool(self.added or self.updated)
        lines = [f"{'wrote' if changed else 'unchanged'}: {self.path}"]
        for label, events in (
            ("added", self.added),
            ("updated", self.updated),
            ("already there", self.present),
        ):
            if events:
                lines.append(f"  {label}: {', '.join(events)}")
        return lines


def bridge_command() -> str:
    """How an agent runs the bridge: ``coordinator`` when on PATH, else this Python."""
    if shutil.which("coordinator"):
        return "coordinator"
    return f"{shlex.quote(sys.executable)} -m coordinator"


def config_path(agent: str, project: Path | None) -> Path:
    """The agent's hook file in ``project``, or the user's own when project is None."""
    if project is not None:
        relative = {"claude-code": ".claude/settings.json", "cursor": ".cursor/hooks.json"}
        return project / relative.get(agent, ".codex/hooks.json")
    home = Path.home()
    match agent:
        case "claude-code":
            return home / ".claude" / "settings.json"
        case "cursor":
            return home / ".cursor" / "hooks.json"
    return Path(os.environ.get("CODEX_HOME") or home / ".codex") / "hooks.json"


def wanted_hooks(
    agent: str, url: str, command: str, companion: bool = False
) -> dict[str, dict[str, Any]]:
    """Event → the one hook entry coordinator needs there, in the agent's config shape;
    with ``companion``, Codex's go through the companion where Codex allows it, and
    Claude Code's writes (to claim symbols rather than whole files)."""
    base = url.rstrip("/")
    run_bridge = f"{command} hook --agent {agent} --url {shlex.quote(base)}"
    if companion and agent == "cursor":
        run_bridge += " --mcp"  # a deny may then say to call the companion's request_file
    bridge = {"type": "command", "command": run_bridge, "timeout": TIMEOUT_S}
    match agent:
        case "claude-code":
            http = {
                "type": "http",
                "url": routes.hook_url(base, "claude-code", companion),
                "timeout": TIMEOUT_S,
                "headers": {"Authorization": "Bearer $COORDINATOR_API_KEY"},
                "allowedEnvVars": ["COORDINATOR_API_KEY"],
            }
            # With the companion, writes go through it (mcp_tool), which reads the file and
            # claims the symbols an edit touches; an http hook can only claim whole files.
            writes = (
                {"type": "mcp_tool", "server": MCP_SERVER, "tool": HOOK_TOOL}
                | {"input": CLAUDE_TOOL_FIELDS, "timeout": TIMEOUT_S}
                if companion
                else http
            )
            # A companion that is not connected (its project server not approved yet) would
            # let every write through unchecked: the check refuses the write instead, and
            # says so. The companion answers within the bridge's timeout whatever the
            # service does, so only a missing companion blocks.
            check = writes | {"onFailure": "block"} if companion else writes
            return {
                # SessionStart takes only commands. The bridge names the git root, which the
                # service keeps to key the paths of the http hooks (they name no root).
                "SessionStart": {"hooks": [bridge]},
                "UserPromptSubmit": {"hooks": [http]},
                "PreToolUse": {"matcher": CLAUDE_PRE_TOOLS, "hooks": [check]},
                "PostToolUse": {"matcher": CLAUDE_WRITES, "hooks": [writes]},
                "SubagentStart": {"hooks": [http]},
                "SubagentStop": {"hooks": [http]},
                "SessionEnd": {"hooks": [http]},
            }
        case "cursor":
            entry = {"command": bridge["command"], "timeout": TIMEOUT_S}
            events = ("sessionStart", "beforeSubmitPrompt", "preToolUse", "postToolUse")
            subagents = ("subagentStart", "subagentStop")
            return {e: entry for e in (*events, "afterFileEdit", *subagents, "sessionEnd")}
    if companion:
        # Never an http handler here: Codex then rejects the whole file.
        def through(fields: dict[str, str]) -> dict[str, Any]:
            return {"type": "mcp_tool", "server": MCP_SERVER, "tool": HOOK_TOOL, "input": fields}

        return {
            "SessionStart": {"hooks": [through(EVENT_FIELDS)]},
            "UserPromptSubmit": {"hooks": [through({**TURN_FIELDS, "prompt": "${prompt}"})]},
            "PreToolUse": {"matcher": CODEX_WRITES, "hooks": [through(TOOL_FIELDS)]},
            "PostToolUse": {"matcher": CODEX_WRITES, "hooks": [through(TOOL_FIELDS)]},
            "SubagentStart": {"hooks": [through({**SUBAGENT_FIELDS, "turn_id": "${turn_id}"})]},
            "SubagentStop": {"hooks": [through(SUBAGENT_FIELDS)]},
            "SessionEnd": {"hooks": [bridge]},
        }
    return {
        "SessionStart": {"hooks": [bridge]},
        "UserPromptSubmit": {"hooks": [bridge]},
        "PreToolUse": {"matcher": CODEX_WRITES, "hooks": [bridge]},
        "PostToolUse": {"matcher": CODEX_WRITES, "hooks": [bridge]},
        "SubagentStart": {"hooks": [bridge]},
        "SubagentStop": {"hooks": [bridge]},
        "SessionEnd": {"hooks": [bridge]},
    }


def install(agent: str, path: Path, url: str, command: str, companion: bool = False) -> Report:
    """Merge coordinator's hooks for ``agent`` into the JSON file at ``path``."""

    def merge(config: dict[str, Any], report: Report) -> None:
        if not isinstance(config.get("hooks", {}), dict):
            raise SystemExit(f"coordinator: {path} is not a hook configuration this can merge into")
        if agent == "cursor":
            config.setdefault("version", 1)
        hooks: dict[str, Any] = config.setdefault("hooks", {})
        for event, entry in wanted_hooks(agent, url, command, companion).items():
            entries = hooks.setdefault(event, [])
            if not isinstance(entries, list):
                raise SystemExit(f"coordinator: {path}: hooks.{event} is not a list")
            if entry in entries:
                report.present.append(event)
                continue
            ours = [i for i, old in enumerate(entries) if _is_coordinator(old)]
            if ours:
                entries[ours[0]] = entry
                report.updated.append(event)
            else:
                entries.append(entry)
                report.added.append(event)

    return update_json(path, merge)


def update_json(path: Path, change: Callable[[dict[str, Any], Report], None]) -> Report:
    """Apply ``change`` to the JSON object in ``path`` (none yet: an empty one), and
    write it back only if the change added or updated something."""
    try:
        config: Any = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as exc:
        raise SystemExit(f"coordinator: cannot read {path} ({exc}); fix it and try again") from None
    if not isinstance(config, dict):
        raise SystemExit(f"coordinator: {path} is not a JSON object this can merge into")
    report = Report(path)
    change(config, report)
    if report.added or report.updated:
        write_atomically(path, json.dumps(config, indent=2) + "\n")
    return report


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text)
    partial.replace(path)


def _is_coordinator(entry: Any) -> bool:
    """An entry an earlier install wrote: it runs the bridge, posts to the hook route or
    calls the companion."""
    handlers = entry.get("hooks", [entry]) if isinstance(entry, dict) else []
    for handler in handlers if isinstance(handlers, list) else []:
        if not isinstance(handler, dict):
            continue
        if routes.HOOK in str(handler.get("url", "")):
            return True
        if handler.get("type") == "mcp_tool" and handler.get("server") == MCP_SERVER:
            return True
        command = str(handler.get("command", ""))
        if "coordinator" in command and " hook --agent " in command:
            return True
    return False


NEXT_STEPS = {
    "claude-code": "Next: export COORDINATOR_API_KEY=ek_... in the shell that starts claude.",
    "cursor": "Next: export COORDINATOR_API_KEY=ek_... where Cursor starts, or put it in "
    "~/.config/coordinator/bridge.json as api_key.",
    "codex": "Next: export COORDINATOR_API_KEY=ek_... in the shell that starts codex. Project "
    "hooks and MCP servers load only in a trusted project; approve new hooks once in /hooks.",
}


# Cursor runs Claude Code's hooks too when its third-party hooks setting is on.
TWICE = (
    "Cursor also runs Claude Code's hooks when its third-party hooks setting is on (Cursor "
    "Settings, 'Include third-party Plugins, Skills, and other configs'), and both are wired "
    "here: {cursor} and {claude}. Each Cursor event would then reach coordinator twice. The "
    "service answers the second copy as the first (the same tool call or generation) and "
    "counts it once, but it is a round trip for nothing: turn that setting off in Cursor."
)


def runs_twice(project: Path | None) -> str | None:
    """The warning to give when Cursor would run coordinator's hooks twice: once from its
    own hook files and once from Claude Code's, which it loads (project and user level)."""
    home = Path.home()
    cursor = [home / ".cursor" / "hooks.json"]
    claude = [home / ".claude" / "settings.json"]
    if project is not None:
        cursor.insert(0, project / ".cursor" / "hooks.json")
        claude[:0] = [
            project / ".claude" / "settings.local.json",
            project / ".claude/settings.json",
        ]
    wired = [
        next((path for path in paths if _wires_coordinator(path)), None)
        for paths in (cursor, claude)
    ]
    if wired[0] is None or wired[1] is None:
        return None
    return TWICE.format(cursor=wired[0], claude=wired[1])


def _wires_coordinator(path: Path) -> bool:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    hooks = config.get("hooks") if isinstance(config, dict) else None
    if not isinstance(hooks, dict):
        return False
    return any(
        _is_coordinator(entry)
        for entries in hooks.values()
        if isinstance(entries, list)
        for entry in entries
    )
