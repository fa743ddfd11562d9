"""``coordinator install``'s companion half: register ``coordinator mcp`` as each agent's MCP
server ``coordinator`` (Claude Code's ``.mcp.json`` or ``~/.claude.json`` and its permission
grant, Cursor's ``.cursor/mcp.json``, Codex's ``[mcp_servers.coordinator]`` in config.toml),
merged as ``install.py`` merges hooks. Standard library only.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coordinator.agents import MCP_SERVER
from coordinator.install import Report, config_path, update_json, write_atomically

# Claude Code's permission rule for every tool of the companion.
GRANT = f"mcp__{MCP_SERVER}"
# Codex starts an MCP server with a bare environment: these pass through by name.
PASSED_ENV = ["COORDINATOR_API_KEY", "COORDINATOR_CONFIG", "COORDINATOR_TIMEOUT"]
# Claude Code asks once to approve a project's MCP server, and ignores a project's
# permission rules until its workspace is trusted.
UNTRUSTED_GRANT = (
    f"Claude Code asks once to approve the project's MCP server {MCP_SERVER}, and ignores the "
    f"project's grant of {GRANT} until you trust this workspace (accept the trust prompt when "
    "claude first starts here); or install with --user, whose grant needs no trust. Until "
    f"{MCP_SERVER} is connected, Claude Code refuses writes (its check runs on the companion)."
)


def companion_argv(command: str, url: str) -> list[str]:
    """How an agent starts the companion, as a program and its arguments."""
    return [*shlex.split(command), "mcp", "--url", url.rstrip("/")]


def install_companion(agent: str, project: Path | None, url: str, command: str) -> list[Report]:
    """Register the companion as ``agent``'s MCP server ``coordinator``, in ``project``
    or (None) for the user; for Claude Code also grant its tools."""
    program, *args = companion_argv(command, url)
    home = Path.home()
    match agent:
        case "claude-code":
            servers = project / ".mcp.json" if project else home / ".claude.json"
            entry = {"type": "stdio", "command": program, "args": args}
            return [
                update_json(servers, _server_merge("mcpServers", entry)),
                update_json(config_path(agent, project), _grant),
            ]
        case "cursor":
            servers = (project or home) / ".cursor" / "mcp.json"
            entry = {"command": program, "args": args}
            return [update_json(servers, _server_merge("mcpServers", entry))]
    folder = (
        project / ".codex" if project else Path(os.environ.get("CODEX_HOME") or home / ".codex")
    )
    table = {
        "command": program,
        "args": args,
        "env_vars": PASSED_ENV,
        # Without it Codex refuses the model's calls under approval_policy "never".
        "default_tools_approval_mode": "approve",
    }
    return [update_codex_server(folder / "config.toml", table)]


def _server_merge(section: str, entry: dict[str, Any]) -> Callable[[dict[str, Any], Report], None]:
    def merge(config: dict[str, Any], report: Report) -> None:
        servers = config.setdefault(section, {})
        if not isinstance(servers, dict):
            raise SystemExit(f"coordinator: {report.path}: {section} is not an object")
        label = f"{section}.{MCP_SERVER}"
        if servers.get(MCP_SERVER) == entry:
            report.present.append(label)
            return
        (report.updated if MCP_SERVER in servers else report.added).append(label)
        servers[MCP_SERVER] = entry

    return merge


def _grant(config: dict[str, Any], report: Report) -> None:
    permissions = config.setdefault("permissions", {})
    allow = permissions.setdefault("allow", []) if isinstance(permissions, dict) else None
    if not isinstance(allow, list):
        raise SystemExit(f"coordinator: {report.path}: permissions.allow is not a list")
    label = f"permissions.allow {GRANT}"
    if GRANT in allow:
        report.present.append(label)
    else:
        allow.append(GRANT)
        report.added.append(label)


def update_codex_server(path: Path, table: dict[str, Any]) -> Report:
    """Write ``[mcp_servers.coordinator]`` into Codex's config.toml: appended, or an
    earlier one replaced; every other line stays as it was."""
    import tomllib

    report = Report(path)
    label = f"[mcp_servers.{MCP_SERVER}]"
    try:
        text = path.read_text() if path.exists() else ""
        old = tomllib.loads(text).get("mcp_servers", {}).get(MCP_SERVER)
    except (OSError, ValueError, AttributeError) as exc:
        raise SystemExit(f"coordinator: cannot read {path} ({exc}); fix it and try again") from None
    if old == table:
        report.present.append(label)
        return report
    kept = _without_table(text, f"mcp_servers.{MCP_SERVER}")
    block = "\n".join([label, *(f"{key} = {_toml(value)}" for key, value in table.items())])
    new = (kept.rstrip("\n") + "\n\n" if kept.strip() else "") + block + "\n"
    try:
        written = tomllib.loads(new).get("mcp_servers", {}).get(MCP_SERVER)
    except ValueError:
        written = None
    if written != table:  # an inline or dotted definition this cannot edit safely
        raise SystemExit(
            f"coordinator: {path} defines mcp_servers.{MCP_SERVER} in a form this cannot "
            f"replace; remove it and run install again"
        )
    (report.updated if old is not None else report.added).append(label)
    write_atomically(path, new)
    return report


def _without_table(text: str, name: str) -> str:
    """``text`` without the table ``[name]`` and its sub-tables (``[name.env]``...)."""
    kept, inside = [], False
    for line in text.splitlines(keepends=True):
        header = line.strip()
        if header.startswith("[") and not header.startswith("[[") and "]" in header:
            table = header[1 : header.index("]")].strip().replace('"', "")
            inside = table == name or table.startswith(name + ".")
        if not inside:
            kept.append(line)
    return "".join(kept)


def _toml(value: Any) -> str:
    """A string or a list of strings in TOML: JSON's escapes are valid TOML basic strings."""
    if isinstance(value, list):
        return "[" + ", ".join(json.dumps(item) for item in value) + "]"
    return json.dumps(value)
