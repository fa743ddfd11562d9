"""The three agents: their names, and how to tell them apart when nothing names them.

Standard library only: the bridge (``coordinator hook``) imports it on every tool call.
"""

from __future__ import annotations

from collections.abc import Mapping

AGENTS = ("claude-code", "cursor", "codex")
# The companion's (``coordinator mcp``) server name in every agent's MCP configuration:
# Claude Code names its tools ``mcp__coordinator__<tool>``.
MCP_SERVER = "coordinator"


def recognise(payload: Mapping[str, object]) -> str:
    """HOOKS.md's fallback rule, for a payload whose sender nothing names.

    A real Codex SessionEnd looks exactly like Claude Code's, which is why the
    installers always name the agent.
    """
    name = payload.get("hook_event_name")
    if (isinstance(name, str) and name[:1].islower()) or payload.get("conversation_id") is not None:
        return "cursor"
    if payload.get("turn_id") is not None or payload.get("model") is not None:
        return "codex"
    return "claude-code"


def normalise_agent(agent: str | None) -> str | None:
    """``Claude_Code``, ``claude`` → ``claude-code``; None for nothing."""
    if agent is None or not agent.strip():
        return None
    name = agent.strip().lower().replace("_", "-").replace(" ", "-")
    return "claude-code" if name in ("claude", "claudecode") else name
