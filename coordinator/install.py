"""``coordinator install``: wire an agent's hooks to coordinator.

Merges into the agent's existing hook file: nothing already there is removed (only an
older coordinator entry of the same event is replaced), and running it twice changes
nothing. Each agent's session-end event is wired, never its per-turn stop event:
Stop fires after every turn and would release files the agent is still working on.
Standard library only.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator import routes

CLAUDE_WRITES = "Write|Edit|MultiEdit|NotebookEdit"
TIMEOUT_S = 5


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


def wanted_hooks(agent: str, url: str, command: str) -> dict[str, dict[str, Any]]:
    """Event → the one hook entry coordinator needs there, in the agent's config shape."""
    base = url.rstrip("/")
    run_bridge = f"{command} hook --agent {agent} --url {shlex.quote(base)}"
    bridge = {"type": "command", "command": run_bridge, "timeout": TIMEOUT_S}
    match agent:
        case "claude-code":
            http = {
                "type": "http",
                "url": routes.hook_url(base, "claude-code"),
                "timeout": TIMEOUT_S,
                "headers": {"Authorization": "Bearer $COORDINATOR_API_KEY"},
                "allowedEnvVars": ["COORDINATOR_API_KEY"],
            }
            return {
                # SessionStart takes only commands. The bridge names the git root, which the
                # service keeps to key the paths of the http hooks (they name no root).
                "SessionStart": {"hooks": [bridge]},
                "UserPromptSubmit": {"hooks": [http]},
                "PreToolUse": {"matcher": CLAUDE_WRITES, "hooks": [http]},
                "PostToolUse": {"matcher": CLAUDE_WRITES, "hooks": [http]},
                "SessionEnd": {"hooks": [http]},
            }
        case "cursor":
            entry = {"command": bridge["command"], "timeout": TIMEOUT_S}
            events = ("sessionStart", "beforeSubmitPrompt", "preToolUse", "postToolUse")
            return {event: entry for event in (*events, "afterFileEdit", "sessionEnd")}
    return {
        "SessionStart": {"hooks": [bridge]},
        "UserPromptSubmit": {"hooks": [bridge]},
        "PreToolUse": {"matcher": "apply_patch", "hooks": [bridge]},
        "PostToolUse": {"matcher": "apply_patch", "hooks": [bridge]},
        "SessionEnd": {"hooks": [bridge]},
    }


def install(agent: str, path: Path, url: str, command: str) -> Report:
    """Merge coordinator's hooks for ``agent`` into the JSON file at ``path``."""
    try:
        config: Any = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, ValueError) as exc:
        raise SystemExit(f"coordinator: cannot read {path} ({exc}); fix it and try again") from None
    if not isinstance(config, dict) or not isinstance(config.get("hooks", {}), dict):
        raise SystemExit(f"coordinator: {path} is not a hook configuration this can merge into")
    if agent == "cursor":
        config.setdefault("version", 1)
    hooks: dict[str, Any] = config.setdefault("hooks", {})
    report = Report(path)
    for event, entry in wanted_hooks(agent, url, command).items():
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
    if report.added or report.updated:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".tmp")
        partial.write_text(json.dumps(config, indent=2) + "\n")
        partial.replace(path)
    return report


def _is_coordinator(entry: Any) -> bool:
    """An entry an earlier install wrote: it runs the bridge or posts to the hook route."""
    handlers = entry.get("hooks", [entry]) if isinstance(entry, dict) else []
    for handler in handlers if isinstance(handlers, list) else []:
        if not isinstance(handler, dict):
            continue
        if routes.HOOK in str(handler.get("url", "")):
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
    "hooks load only in a trusted project; approve new hooks once in /hooks.",
}
