"""The listings' replies (sessions, reservations, the status view), read into pages of
the models, and the cursors a client sends back for the next page.

Pure functions, no Redis, as ``replies.py``: ``store.py`` and ``admin.py`` run the listing
scripts (``lua/listings.lua`` walks the indexes) and hand their replies here.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from coordinator.errors import InvalidField
from coordinator.models import (
    LiveReservation,
    LiveSession,
    Page,
    Reservation,
    Session,
    Workspace,
    WorkspaceStatus,
    from_ms,
)
from coordinator.replies import seconds, stored_decision, text
from coordinator.symbol_claims import split

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
    "parent",
    "agent_id",
    "subagent_type",
    "last_seen_ms",  # the last: status reads it so
)


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


def sessions_page(reply: list[Any]) -> Page[Session]:
    """sessions.lua's {'ok', rows, live total, cursor}."""
    _, rows, total, after = reply
    return Page([session(values, held) for values, held in rows], int(total), cursor(after))


def reservations_page(reply: list[Any]) -> Page[Reservation]:
    """reservations.lua's {'ok', now, rows, live total, cursor}."""
    _, now, rows, total, after = reply
    items = [reservation(row, int(now)) for row in rows]
    return Page(items, int(total), cursor(after))


def session(values: list[Any], held: list[str]) -> Session:
    """A row of live_sessions (listings.lua) read with SESSION_FIELDS."""
    sid, user, agent, task, current, branch, conversation, parent, agent_id, kind, seen = values
    files, symbols = held_claims(held)
    return Session(
        sid,
        text(user),
        text(agent),
        text(task),
        text(current),
        text(branch),
        text(conversation),
        from_ms(int(seen)) if seen else None,
        files,
        text(parent),
        text(agent_id),
        text(kind),
        symbols,
    )


def held_claims(held: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """A session's claims as its listing shows them: every file it holds any of, sorted,
    and the symbols of those it holds only symbols of."""
    whole: set[str] = set()
    symbols: dict[str, list[str]] = {}
    for claim in held:
        path, symbol = split(claim)
        if symbol is None:
            whole.add(path)
        else:
            symbols.setdefault(path, []).append(symbol)
    partial = {path: sorted(names) for path, names in symbols.items() if path not in whole}
    return sorted(whole | set(symbols)), dict(sorted(partial.items()))


def live_reservation(row: list[Any], now_ms: int) -> LiveReservation:
    """A row of live_reservations (listings.lua): {claim, sid, pttl, user, task, conversation,
    agent, parent, subagent_type}."""
    claim, sid, pttl, user, task, conversation, agent, parent, kind = row
    left = max(int(pttl), 0)
    path, symbol = split(claim)
    return LiveReservation(
        path,
        sid,
        text(conversation),
        text(user),
        text(task),
        from_ms(now_ms + left),
        text(parent),
        text(kind),
        symbol,
        agent_type=text(agent),
        expires_in_s=seconds(left),
    )


def reservation(row: list[Any], now_ms: int) -> Reservation:
    """The HTTP listing's shape: the agent and the time left are status's extras."""
    r = live_reservation(row, now_ms)
    return Reservation(
        r.file_path,
        r.session_id,
        r.conversation_id,
        r.user_name,
        r.current_task,
        r.expires_at,
        r.parent_session_id,
        r.subagent_type,
        r.symbol,
    )


def workspace_status(ws: Workspace, reply: list[Any]) -> WorkspaceStatus:
    """status.lua's {'ok', now, sessions total, sessions, locks total, locks, decisions}."""
    _, now, sessions_total, sessions, locks_total, locks, encoded = reply
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
                s.parent_session_id,
                s.agent_id,
                s.subagent_type,
                s.reserved_symbols,
                idle_s=idle_s,
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
        [stored_decision.decode(d).recent(now) for d in encoded],
    )
