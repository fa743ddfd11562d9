"""What the service answers: deny messages, the briefing text, and generic-form answers."""

from __future__ import annotations

import math
from datetime import datetime

import msgspec

from coordinator.events import Kind
from coordinator.models import Briefing, Conflict, HookOutcome

AGENT_NAMES = {"cursor": "Cursor", "claude-code": "Claude Code", "codex": "Codex"}


class Started(msgspec.Struct):
    session_id: str
    additional_context: str


class Permission(msgspec.Struct, omit_defaults=True):
    permission: str
    message: str | None = None


class Ok(msgspec.Struct):
    ok: bool = True


ALLOW = Permission("allow")
OK = Ok()


def agent_name(agent_type: str | None) -> str:
    if agent_type is None:
        return "unknown agent"
    return AGENT_NAMES.get(agent_type, agent_type)


def minutes_left(remaining_ms: int) -> int:
    """ceil(pttl / 60 s), and at least 1 while the lock exists."""
    return max(1, math.ceil(remaining_ms / 60_000))


def deny_message(conflict: Conflict) -> str:
    holder = conflict.holder
    who = holder.user_name or "another agent"
    task = f" — '{holder.current_task}'" if holder.current_task else ""
    left = minutes_left(conflict.remaining_ms)
    return f"File {conflict.file_path} is reserved by {who}{task} ({left} min remaining)"


def briefing_text(briefing: Briefing) -> str:
    agents = [
        f"{a.user_name} ({agent_name(a.agent_type)})"
        + (f": {a.current_task}" if a.current_task else "")
        for a in briefing.agents
    ]
    locks = [f"{lock.file_path} ({lock.user_name or 'unknown'})" for lock in briefing.locks]
    decisions = [
        f"{d.text} ({d.user_name}, {_ago(d.created_at, briefing.now)})" for d in briefing.decisions
    ]
    return "\n\n".join(
        [
            "Team briefing:",
            _section("Active agents", agents, briefing.agents_total),
            _section("Locked files", locks, briefing.locks_total),
            _section("Recent decisions", decisions, len(decisions)),
        ]
    )


def generic_answer(kind: Kind, session_id: str, outcome: HookOutcome | None) -> msgspec.Struct:
    """The generic form's answer to an event (the core API's table)."""
    match kind:
        case Kind.START:
            briefing = outcome.briefing if outcome else None
            return Started(session_id, briefing_text(briefing) if briefing else "")
        case Kind.PRE_TOOL | Kind.POST_TOOL:
            if outcome and outcome.conflict:
                return Permission("deny", deny_message(outcome.conflict))
            return ALLOW
        case _:
            return OK


def _section(title: str, lines: list[str], total: int) -> str:
    body = [f"  - {line}" for line in lines] or ["  (none)"]
    if total > len(lines):
        body.append(f"  … and {total - len(lines)} more")
    return "\n".join([f"{title}:", *body])


def _ago(then: datetime, now: datetime) -> str:
    minutes = int((now - then).total_seconds() // 60)
    return "just now" if minutes < 1 else f"{minutes} min ago"
