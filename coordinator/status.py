"""``coordinator status``: who works on what, read straight from Redis, as a table or JSON.

The local admin's view (it needs ``REDIS_URL``, not an API key). Every relative time is
taken against Redis's clock, in the same script that reads the rows, so a skewed local
clock shows nothing wrong.
"""

from __future__ import annotations

import asyncio
import math
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple, TextIO

import msgspec

from coordinator.admin import Admin
from coordinator.errors import StoreUnavailable, UsageError
from coordinator.events import SLUG, WORKSPACE_ID
from coordinator.models import LiveSession, WorkspaceStatus, under_parents
from coordinator.render import agent_name
from coordinator.symbol_claims import display

ROWS = 100  # per section and workspace: a screen holds fewer, and Redis runs one script
DECISIONS = 5  # as many as the briefing shows
CLEAR = "\x1b[H\x1b[2J"  # cursor home, erase the screen
GAP = "  "
INDENT = "    "
MIN_FLEX = 8  # a task or path column is never cut below this


class Status(msgspec.Struct, frozen=True):
    """What ``coordinator status --json`` prints: Redis's time when it started reading,
    then each workspace as read by its own script (``WorkspaceStatus.now_ms``)."""

    now_ms: int
    workspaces: list[WorkspaceStatus]


_encoder = msgspec.json.Encoder()


async def snapshot(admin: Admin, ref: str | None) -> Status:
    """The workspace named by slug or id, or every workspace when ``ref`` is None."""
    now_ms = await admin.now_ms()
    if ref is None:
        slugs = await admin.workspace_slugs()
    else:
        if not (SLUG.fullmatch(ref) or WORKSPACE_ID.fullmatch(ref)):
            raise UsageError(f"{ref!r} is neither a workspace slug nor a workspace id")
        slugs = [ref]
    found = []
    for slug in slugs:
        ws = await admin.workspace(slug)
        if ws is None:
            if ref is not None:
                raise UsageError(f"no workspace {ref!r}; `coordinator workspaces create` makes one")
            continue  # deleted between the scan and now
        found.append(await admin.status(ws, ROWS, DECISIONS))
    return Status(now_ms, found)


def as_json(status: Status) -> str:
    return _encoder.encode(status).decode() + "\n"


async def show(admin: Admin, ref: str | None, json: bool, out: TextIO) -> None:
    """Print one snapshot."""
    status = await snapshot(admin, ref)
    out.write(as_json(status) if json else as_table(status, _width()))
    out.flush()


async def watch(admin: Admin, ref: str | None, json: bool, every_s: float, out: TextIO) -> None:
    """Print a snapshot every ``every_s`` seconds until cancelled (Ctrl-C). On a terminal
    each table replaces the last; elsewhere tables follow each other after a blank line,
    and JSON is one document a line. While Redis does not answer, say so and keep trying."""
    clear = CLEAR if out.isatty() and not json else ""
    # The first read outside the loop: a wrong --workspace fails at once.
    status: Status | StoreUnavailable = await snapshot(admin, ref)
    separator = ""
    while True:
        if isinstance(status, StoreUnavailable):
            frame = f"coordinator: {status.message}; trying again every {every_s:g} s\n"
        else:
            frame = as_json(status) if json else as_table(status, _width())
        out.write(clear + separator + frame)
        out.flush()
        if not (clear or json):
            separator = "\n"
        await asyncio.sleep(every_s)
        try:
            status = await snapshot(admin, ref)
        except StoreUnavailable as exc:
            status = exc


def _width() -> int:
    return shutil.get_terminal_size((100, 24)).columns


# -- the table -----------------------------------------------------------------------------


def as_table(status: Status, width: int) -> str:
    """Every workspace as a block of three sections, cut to ``width`` columns."""
    lines = [f"coordinator status · {_clock(status.now_ms)} (Redis time)"]
    if not status.workspaces:
        lines += ["", "no workspaces yet: `coordinator workspaces create` makes one"]
    for ws in status.workspaces:
        lines += ["", *_workspace_lines(ws, width)]
    return "\n".join(lines) + "\n"


def _workspace_lines(ws: WorkspaceStatus, width: int) -> list[str]:
    name = f" — {_clean(ws.name)}" if ws.name != ws.slug else ""
    lines = [f"{ws.slug}{name} ({ws.id})"]

    lines.append(f"  Sessions ({ws.sessions_total})")
    session_rows = [
        [
            _clean(_user(s)),
            _clean(agent_name(s.agent_type)) if s.agent_type else "-",
            _clean(s.current_task or "-"),
            _clean(s.current_file or "-"),
            duration(s.idle_s),
        ]
        for s in under_parents(ws.sessions)
    ]
    lines += _section(SESSION_COLUMNS, session_rows, ws.sessions_total, "no active sessions", width)

    lines.append(f"  Reservations ({ws.reservations_total})")
    reservation_rows = [
        [
            _clean(display(r.file_path, r.symbol)),
            _clean(_holder(r.user_name, r.agent_type, r.subagent_type)),
            _clean(r.current_task or "-"),
            duration(r.expires_in_s, up=True),
        ]
        for r in ws.reservations
    ]
    lines += _section(
        RESERVATION_COLUMNS, reservation_rows, ws.reservations_total, "no reservations", width
    )

    lines.append("  Recent decisions")
    decision_rows = [
        [f"{duration(d.age_s)} ago", _clean(d.user_name), _clean(d.text)] for d in ws.decisions
    ]
    shown = len(decision_rows)
    lines += _section(DECISION_COLUMNS, decision_rows, shown, "no decisions yet", width)
    return lines


class Column(NamedTuple):
    title: str
    flex: bool = False  # shares the width the other columns leave
    keep_end: bool = False  # a path: cut its start, its end names the file
    right: bool = False  # numbers and times line up on the right


SESSION_COLUMNS = (
    Column("USER"),
    Column("AGENT"),
    Column("TASK", flex=True),
    Column("FILE", flex=True, keep_end=True),
    Column("IDLE", right=True),
)
RESERVATION_COLUMNS = (
    Column("FILE", flex=True, keep_end=True),
    Column("HOLDER"),
    Column("TASK", flex=True),
    Column("LEFT", right=True),
)
DECISION_COLUMNS = (Column("WHEN", right=True), Column("BY"), Column("DECISION", flex=True))
MAX_FIXED = 32  # a user name or holder longer than this is cut


def _section(
    columns: Sequence[Column], rows: list[list[str]], total: int, empty: str, width: int
) -> list[str]:
    if not rows:
        return [f"{INDENT}{empty}"]
    lines = table(columns, rows, width - len(INDENT))
    lines = [f"{INDENT}{line}" for line in lines]
    if total > len(rows):
        lines.append(f"{INDENT}… and {total - len(rows)} more")
    return lines


def table(columns: Sequence[Column], rows: list[list[str]], width: int) -> list[str]:
    """A header and the rows, columns two spaces apart, in at most ``width`` columns as
    long as the flexible ones can shrink to MIN_FLEX."""
    natural = [
        max(len(column.title), *(len(row[i]) for row in rows)) for i, column in enumerate(columns)
    ]
    widths = [n if c.flex else min(n, MAX_FIXED) for n, c in zip(natural, columns, strict=True)]
    flexible = [i for i, column in enumerate(columns) if column.flex]
    fixed = sum(w for w, column in zip(widths, columns, strict=True) if not column.flex)
    room = width - fixed - len(GAP) * (len(columns) - 1)
    for i, share in zip(flexible, _share(room, [natural[i] for i in flexible]), strict=True):
        widths[i] = share
    lines = []
    for cells in [[c.title for c in columns], *rows]:
        parts = []
        for cell, column, size in zip(cells, columns, widths, strict=True):
            text = cut(cell, size, column.keep_end)
            parts.append(text.rjust(size) if column.right else text.ljust(size))
        lines.append(GAP.join(parts).rstrip())
    return lines


def _share(room: int, wants: list[int]) -> list[int]:
    """Split ``room`` among columns that want ``wants``: the narrow ones get what they
    want, the rest an even share of what is left, never less than MIN_FLEX."""
    given = [0] * len(wants)
    left = room
    order = sorted(range(len(wants)), key=lambda i: wants[i])
    for done, i in enumerate(order):
        fair = left // (len(wants) - done)
        given[i] = max(min(MIN_FLEX, wants[i]), min(wants[i], fair))
        left -= given[i]
    return given


def cut(text: str, width: int, keep_end: bool = False) -> str:
    """``text`` in at most ``width`` characters, an ellipsis where it was cut."""
    if len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    return "…" + text[len(text) - width + 1 :] if keep_end else text[: width - 1] + "…"


def duration(seconds: float, up: bool = False) -> str:
    """``42s``, ``3m 12s``, ``2h 05m``, ``3d 04h``: rounded down, or up (a reservation
    that exists has at least ``1s`` left)."""
    whole = math.ceil(seconds) if up else math.floor(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def _user(session: LiveSession) -> str:
    """A session's user; a subagent's row, under its parent's, names its type instead."""
    if session.parent_session_id is None:
        return session.user_name or "?"
    return f" └ subagent {session.subagent_type or ''}".rstrip()


def _holder(user_name: str | None, agent_type: str | None, subagent: str | None = None) -> str:
    who = user_name or "?"
    if subagent:
        who += f"'s {subagent}"
    return f"{who} ({agent_name(agent_type)})" if agent_type else who


def _clean(text: str) -> str:
    """Agents send tasks and paths; an escape sequence in one must not drive the terminal."""
    return "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in text)


def _clock(epoch_ms: int) -> str:
    return f"{datetime.fromtimestamp(epoch_ms // 1000, UTC):%Y-%m-%d %H:%M:%SZ}"
