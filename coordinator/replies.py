"""The scripts' replies, read into the models: what each row of a reply means.

Pure functions, no Redis: ``store.py`` runs a script and hands its reply here. The rows'
shapes are documented in each script's header (``lua/*.lua``) and in ``lib.lua``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import msgspec

from coordinator.errors import InvalidField
from coordinator.models import (
    Briefing,
    Conflict,
    Decision,
    Holder,
    HookOutcome,
    LiveReservation,
    LiveSession,
    LockLine,
    News,
    OverCap,
    RecentDecision,
    Reservation,
    Session,
    TeammateLine,
    Workspace,
    WorkspaceStatus,
    from_ms,
)

MAX_CURSOR = 2048
# The session fields the listings read, in the order ``session`` unpacks them.
SESSION_FIELDS = (
    "id",
    "user_name",
    "agent_type",
    "current_task",
    "current_file",
    "branch",
    "conversation_id",
    "last_seen_ms",
)


class _StoredDecision(msgspec.Struct):
    text: str
    user_name: str
    created_ms: int
    session_id: str | None = None

    def decision(self) -> Decision:
        return Decision(self.text, self.user_name, from_ms(self.created_ms), self.session_id)

    def recent(self, now_ms: int) -> RecentDecision:
        created = from_ms(self.created_ms)
        age_s = seconds(now_ms - self.created_ms)
        return RecentDecision(self.text, self.user_name, created, self.session_id, age_s=age_s)


_decision_decoder = msgspec.json.Decoder(_StoredDecision)


def text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def seconds(ms: int) -> float:
    """A span of milliseconds as seconds, never negative (clocks of a reply's parts agree
    to the millisecond, but a span is never shown below zero)."""
    return max(ms, 0) / 1000


def decision(encoded: str) -> Decision:
    return _decision_decoder.decode(encoded).decision()


def decisions(encoded: list[str]) -> list[Decision]:
    return [decision(d) for d in encoded]


def conflict(row: list[Any]) -> Conflict:
    """A script's {path, holder sid, pttl, user_name, agent_type, current_task}."""
    path, owner, pttl, user_name, agent_type, task = row
    holder = Holder(owner, text(user_name), text(agent_type), text(task))
    return Conflict(path, holder, max(int(pttl), 0))


def hook_outcome(reply: list[Any]) -> HookOutcome | None:
    """hook.lua's reply, but for 'missing' (None: the caller says which session)."""
    match reply:
        case ["deny", created, *row]:
            # A new conversation's session exists even when its first write is denied.
            return HookOutcome(bool(created), conflict=conflict(row))
        case ["ok", created]:
            return HookOutcome(bool(created))
        case ["over_cap", created, scope, cap, held]:
            return HookOutcome(bool(created), over_cap=OverCap(str(scope), int(cap), int(held)))
        case ["news", created, taken, encoded]:
            news = News([conflict(row) for row in taken], decisions(encoded))
            return HookOutcome(bool(created), news=news)
        case ["brief", created, now, agents_total, agents, locks_total, locks, encoded]:
            briefing = Briefing(
                now=from_ms(int(now)),
                agents=[TeammateLine(u, text(a), text(t)) for u, a, t in agents],
                agents_total=int(agents_total),
                locks=[LockLine(path, text(user)) for path, user in locks],
                locks_total=int(locks_total),
                decisions=decisions(encoded),
            )
            return HookOutcome(bool(created), briefing=briefing)
    return None


def cursor(pair: list[Any] | None) -> str | None:
    """A script's {score, member} after which the next page starts, as the opaque cursor
    a client sends back (url-safe, so it goes in a query string as it is)."""
    if not pair:
        return None
    score, member = pair
    return base64.urlsafe_b64encode(f"{int(score)}:{member}".encode()).decode().rstrip("=")


def cursor_args(given: str | None) -> list[str]:
    """A cursor from ``cursor()`` back as the scripts' {score, member} ('' '': none)."""
    if not given:
        return ["", ""]
    if len(given) > MAX_CURSOR:
        raise InvalidField(f"cursor is over {MAX_CURSOR} characters: not one this listing gave")
    try:
        decoded = base64.urlsafe_b64decode(given + "=" * (-len(given) % 4)).decode()
        score, _, member = decoded.partition(":")
        if score.isascii() and score.isdigit() and len(score) <= 16 and member:
            return [score, member]
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidField("cursor is not one this listing gave; start again without it")


def session(values: list[Any], held: list[str]) -> Session:
    """A row of live_sessions (lib.lua) read with SESSION_FIELDS."""
    sid, user, agent, task, current, branch, conversation, seen = values
    return Session(
        sid,
        text(user),
        text(agent),
        text(task),
        text(current),
        text(branch),
        text(conversation),
        from_ms(int(seen)) if seen else None,
        sorted(held),
    )


def live_reservation(row: list[Any], now_ms: int) -> LiveReservation:
    """A row of live_reservations (lib.lua): {path, sid, pttl, user, task, conversation, agent}."""
    path, sid, pttl, user, task, conversation, agent = row
    left = max(int(pttl), 0)
    return LiveReservation(
        path,
        sid,
        text(conversation),
        text(user),
        text(task),
        from_ms(now_ms + left),
        text(agent),
        seconds(left),
    )


def reservation(row: list[Any], now_ms: int) -> Reservation:
    """The HTTP listing's shape: the agent and the time left are status's extras."""
    r = live_reservation(row, now_ms)
    return Reservation(
        r.file_path, r.session_id, r.conversation_id, r.user_name, r.current_task, r.expires_at
    )


def workspace_status(ws: Workspace, reply: list[Any]) -> WorkspaceStatus:
    """status.lua's reply: {now, sessions total, sessions, locks total, locks, decisions}."""
    now, sessions_total, sessions, locks_total, locks, encoded = reply
    now = int(now)
    live = []
    for values, held in sessions:
        s = session(values, held)
        seen = values[-1]  # last_seen_ms, to the millisecond
        idle_s = seconds(now - int(seen)) if seen else 0.0
        live.append(
            LiveSession(
                s.id,
                s.user_name,
                s.agent_type,
                s.current_task,
                s.current_file,
                s.branch,
                s.conversation_id,
                s.last_heartbeat,
                s.reserved_files,
                idle_s,
            )
        )
    return WorkspaceStatus(
        ws.slug,
        ws.id,
        ws.name,
        now,
        live,
        int(sessions_total),
        [live_reservation(row, now) for row in locks],
        int(locks_total),
        [_decision_decoder.decode(d).recent(now) for d in encoded],
    )
