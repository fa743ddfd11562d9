"""What the service answers: deny messages, the briefing, and each form's answer shapes.

The generic form gets the core API's answers. Claude Code and Codex get
``hookSpecificOutput``, and never ``permissionDecision: "allow"``: that would skip the
user's own confirmation prompts, and a coordination service only ever denies.
Cursor gets its ``permission`` answers (docs/agents.md, "Wiring the agents").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import msgspec

from coordinator.briefing import Section, fit, focus_of, lock_lines
from coordinator.events import Event, Kind
from coordinator.globs import is_pattern
from coordinator.models import Briefing, HeldFile, Holder, HookOutcome, News, Note, OverCap
from coordinator.symbol_claims import label

AGENT_NAMES = {"cursor": "Cursor", "claude-code": "Claude Code", "codex": "Codex"}


class Started(msgspec.Struct):
    session_id: str
    additional_context: str


class Permission(msgspec.Struct, omit_defaults=True):
    permission: str
    message: str | None = None


class Ok(msgspec.Struct):
    ok: bool = True


class HookSpecific(msgspec.Struct, omit_defaults=True, rename="camel"):
    hook_event_name: str
    permission_decision: str | None = None
    permission_decision_reason: str | None = None
    additional_context: str | None = None


class ClaudeAnswer(msgspec.Struct, omit_defaults=True, rename="camel"):
    """Claude Code's and Codex's answer; empty (``{}``) means no decision."""

    hook_specific_output: HookSpecific | None = None


class CursorAnswer(msgspec.Struct, omit_defaults=True):
    permission: str | None = None
    user_message: str | None = None
    agent_message: str | None = None
    additional_context: str | None = None
    continue_: bool | None = msgspec.field(default=None, name="continue")


ALLOW = Permission("allow")
OK = Ok()
NO_DECISION = ClaudeAnswer()


def agent_name(agent_type: str | None) -> str:
    if agent_type is None:
        return "unknown agent"
    return AGENT_NAMES.get(agent_type, agent_type)


def minutes_left(remaining_ms: int) -> int:
    """ceil(pttl / 60 s), and at least 1 while the lock exists."""
    return max(1, math.ceil(remaining_ms / 60_000))


def holder_name(holder: Holder) -> str:
    """Who holds a file: its user, or its user's subagent (of its type)."""
    who = holder.user_name or "another agent"
    if holder.parent_session_id is None:
        return who
    kind = f' "{holder.subagent_type}"' if holder.subagent_type else ""
    return f"{who}'s subagent{kind}"


def deny_message(conflict: HeldFile) -> str:
    holder = conflict.holder
    who = holder_name(holder)
    task = f" — '{holder.current_task}'" if holder.current_task else ""
    left = minutes_left(conflict.remaining_ms)
    path, via = conflict.file_path, conflict.via
    if conflict.next_in_line:
        return f"File {path} is reserved for {who} (next in line) ({left} min remaining)"
    if via and is_pattern(path):
        return f"{path} overlaps {via}, reserved by {who}{task} ({left} min remaining)"
    if via:
        return f"File {path} is reserved by {who}{task} ({left} min remaining, as part of {via})"
    return f"{held_text(conflict)} is reserved by {who}{task} ({left} min remaining)"


def held_text(conflict: HeldFile) -> str:
    """``File a.py``, or ``Function refresh_token in a.py``."""
    if conflict.symbol is None:
        return f"File {conflict.file_path}"
    return f"{label(conflict.symbol_kind)} {conflict.symbol} in {conflict.file_path}"


# What a denied agent with the companion wired can do (render.refusal's ``companion``).
ADVICE = "Work on something else, or call request_file to be next in line."


# What each cap is called where an operator sets it (docs/operations.md, "Configuration").
CAP_SETTINGS = {
    "session": ("this session holds", "COORDINATOR_MAX_FILES_PER_SESSION"),
    "key": ("the sessions of this API key hold", "COORDINATOR_MAX_FILES_PER_KEY"),
}


def over_cap_message(over: OverCap) -> str:
    holder, setting = CAP_SETTINGS.get(over.scope, CAP_SETTINGS["session"])
    return (
        f"Not reserved: {holder} {over.held} files, and {setting} = {over.cap} is the most "
        f"they may hold. End a session to release its files, or ask the operator to raise "
        f"{setting}."
    )


def refusal(outcome: HookOutcome | None, companion: bool = False) -> str | None:
    """Why a write is refused: someone else holds a file, or a cap is reached. With the
    companion wired, a conflict also says what the agent can do (ADVICE)."""
    if outcome is None:
        return None
    if outcome.conflict is not None:
        message = deny_message(outcome.conflict)
        return f"{message}. {ADVICE}" if companion else message
    if outcome.over_cap is not None:
        return over_cap_message(outcome.over_cap)
    return None


def briefing_text(briefing: Briefing, notes: Sequence[Note] = ()) -> str:
    """The briefing of a starting session, at most briefing.BUDGET bytes (briefing.py):
    first what the session is told (who waits for its files, which file is now its),
    then the team."""
    agents = [
        holder_name(Holder("", a.user_name, None, None, a.subagent_of, a.subagent_type))
        + f" ({agent_name(a.agent_type)})"
        + (f": {a.current_task}" if a.current_task else "")
        for a in briefing.agents
    ]
    locks, counts = lock_lines(briefing)
    decisions = [
        f"{d.text} ({d.user_name}, {_ago(d.created_at, briefing.now)})" for d in briefing.decisions
    ]
    told = note_lines(notes)
    return fit(
        [
            *([Section("For you", told, len(told), share=8, whole_lines=True)] if told else []),
            Section("Active agents", agents, briefing.agents_total),
            Section("Locked files", locks, briefing.locks_total, counts, share=2),
            Section("Recent decisions", decisions, len(decisions), share=2),
        ]
    )


def news_text(news: News) -> str | None:
    """A short note of what changed, or None when nothing did."""
    lines = [deny_message(conflict) for conflict in news.taken]
    lines += [f"New decision: {d.text} ({d.user_name})" for d in news.decisions]
    if not lines:
        return None
    return "\n".join(["Team update since your last prompt:", *(f"  - {line}" for line in lines)])


def notes_text(notes: Sequence[Note]) -> str | None:
    """The session's notes as lines the agent reads, or None when there are none."""
    lines = note_lines(notes)
    return "\n".join(lines) if lines else None


def note_lines(notes: Sequence[Note]) -> list[str]:
    """A line for each of the session's notes."""
    lines = []
    for note in notes:
        if note.kind == "free":
            lines.append(
                f"{note.path} is free and held for you (you were next in line) for a short "
                f"while: edit it now, or call reserve to keep it."
            )
        elif note.kind == "waiting":
            who = note.by or "a teammate"
            if note.agent:
                who += f" ({agent_name(note.agent)})"
            said = f" — '{note.note}'" if note.note else ""
            held = note.via or note.path
            lines.append(
                f"{who} is waiting for {note.path}{said}. When you are done with it, call "
                f'release(["{held}"]) so it passes to them (or end your session).'
            )
    return lines


def answer(
    event: Event, session_id: str, outcome: HookOutcome | None, companion: bool = False
) -> msgspec.Struct:
    """The answer to a hook event, in the shape its sender expects; ``companion``: the
    agent has the companion's tools (a deny says to call request_file)."""
    if outcome is not None and outcome.briefing is not None:
        # What lies under the directory the agent works in is listed early.
        focus = focus_of(event.cwd, event.roots)
        briefing = msgspec.structs.replace(outcome.briefing, focus=focus)
        outcome = msgspec.structs.replace(outcome, briefing=briefing)
    match event.native:
        case None:
            return generic_answer(event.kind, session_id, outcome)
        case "cursor":
            return cursor_answer(event.kind, outcome, companion)
        case _:
            return claude_answer(event, outcome, companion)


def generic_answer(kind: Kind, session_id: str, outcome: HookOutcome | None) -> msgspec.Struct:
    """The generic form's answer to an event (the core API's table)."""
    match kind:
        case Kind.START:
            briefing = outcome.briefing if outcome else None
            notes = outcome.notes if outcome else []
            return Started(session_id, briefing_text(briefing, notes) if briefing else "")
        case Kind.PRE_TOOL | Kind.POST_TOOL:
            refused = refusal(outcome)
            return ALLOW if refused is None else Permission("deny", refused)
        case _:
            return OK


def claude_answer(
    event: Event, outcome: HookOutcome | None, companion: bool = False
) -> ClaudeAnswer:
    """Claude Code's and Codex's shape: a deny, some context, or no decision at all."""
    refused = refusal(outcome, companion)
    context: str | None = None
    notes = outcome.notes if outcome else []
    match event.kind:
        case Kind.PRE_TOOL if refused:
            deny = HookSpecific(event.name, "deny", permission_decision_reason=refused)
            return ClaudeAnswer(deny)
        case Kind.POST_TOOL if refused:
            context = f"Warning: {refused.rstrip('.')}. Coordinate before editing it again."
        case Kind.START if outcome and outcome.briefing:
            context, notes = briefing_text(outcome.briefing, notes), []  # told first in it
        case Kind.PROMPT if outcome and outcome.news:
            context = news_text(outcome.news)
    told = notes_text(notes)
    if told:
        context = f"{context}\n\n{told}" if context else told
    if context is None:
        return NO_DECISION
    return ClaudeAnswer(HookSpecific(event.name, additional_context=context))


def cursor_answer(kind: Kind, outcome: HookOutcome | None, companion: bool = False) -> CursorAnswer:
    refused = refusal(outcome, companion)
    match kind:
        case Kind.PRE_TOOL if refused:
            return CursorAnswer("deny", user_message=refused, agent_message=refused)
        case Kind.PRE_TOOL:
            return CursorAnswer("allow")
        case Kind.POST_TOOL if refused:
            warning = f"Warning: {refused.rstrip('.')}. Coordinate before editing it again."
            return CursorAnswer(additional_context=warning)
        case Kind.POST_TOOL if outcome and outcome.notes:
            return CursorAnswer(additional_context=notes_text(outcome.notes))
        case Kind.START if outcome and outcome.briefing:
            return CursorAnswer(additional_context=briefing_text(outcome.briefing, outcome.notes))
        case Kind.PROMPT:
            return CursorAnswer(continue_=True)
    return CursorAnswer()


def _ago(then: datetime, now: datetime) -> str:
    minutes = int((now - then).total_seconds() // 60)
    return "just now" if minutes < 1 else f"{minutes} min ago"
