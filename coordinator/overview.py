"""The companion's ``team_status``: the team at a glance, as text an agent reads in one go.

Built from the service's listings (who is active, what is reserved, recent decisions)
and who the key speaks for. Reservations are grouped by holder and by directory, so a
teammate holding forty files in one folder is one line, and every list is cut short
with how many more there are.
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from datetime import datetime

from coordinator.models import (
    Decision,
    FileRequest,
    Identity,
    Reservation,
    Session,
    session_id_for,
    under_parents,
)
from coordinator.symbol_claims import display

MAX_SESSIONS = 10
MAX_HOLDERS = 8
MAX_GROUPS = 6  # directories (or single files) per holder
MAX_NAMES = 3  # file names shown inside a directory
MAX_DECISIONS = 5


class TeamView:
    """What ``team_status`` shows, as the listings gave it at ``now`` (the service's clock).

    ``my_session`` is the agent's own session id (its conversation), once a hook told it.
    """

    def __init__(
        self,
        me: Identity,
        sessions: list[Session],
        sessions_total: int,
        reservations: list[Reservation],
        reservations_total: int,
        decisions: list[Decision],
        now: datetime,
        requests: list[FileRequest] | None = None,
    ) -> None:
        self.me = me
        self.sessions = sessions
        self.sessions_total = sessions_total
        self.reservations = reservations
        self.reservations_total = reservations_total
        self.decisions = decisions
        self.now = now
        self.requests = requests or []

    def text(self, my_session: str | None = None) -> str:
        """The whole view; with ``my_session``, "you hold" is this session's own claims,
        else those of every session of the key's person."""
        me = self.me.user_name
        lines = [
            f"Team {self.me.workspace} · you are {me} · {_count(self.sessions_total, 'agent')}"
            f" active · {_count(self.reservations_total, 'file')} reserved"
        ]
        others = [s for s in self.sessions if s.conversation_id != my_session]
        if others:
            lines.append("Active:")
            lines += [self._session_line(s) for s in under_parents(others)[:MAX_SESSIONS]]
            lines += _more(len(others) - MAX_SESSIONS, "agent")
        mine = [r for r in self.reservations if _is_mine(r, me, my_session)]
        theirs = [r for r in self.reservations if not _is_mine(r, me, my_session)]
        if theirs:
            lines.append("Reserved by others (do not edit these; work elsewhere):")
            lines += self._holders(theirs)
        if mine:
            lines.append(f"You hold: {', '.join(self._groups(mine, with_time=True))}")
        else:
            lines.append("You hold no files.")
        lines += self._requests(my_session)
        unseen = self.reservations_total - len(self.reservations)
        if unseen > 0:
            lines.append(f"(and {_count(unseen, 'more reservation')} not listed)")
        if self.decisions:
            lines.append("Recent decisions:")
            for decision in self.decisions[:MAX_DECISIONS]:
                age = _ago(self.now, decision.created_at)
                lines.append(f"- {decision.text} — {decision.user_name}, {age}")
        else:
            lines.append("No decisions recorded yet.")
        return "\n".join(lines)

    def _requests(self, my_session: str | None) -> list[str]:
        """The open requests that involve me: files I wait for, and files of mine others
        wait for (by my session when known, else by my name)."""
        me = self.me.user_name
        sid = session_id_for(self.me.workspace, my_session) if my_session else None

        def is_me(session_id: str, user_name: str | None) -> bool:
            return session_id == sid if sid else user_name == me

        lines = []
        for request in self.requests:
            holder = request.holder
            for place, waiter in enumerate(request.waiters, 1):
                if is_me(waiter.session_id, waiter.user_name):
                    by = holder.user_name if holder else "nobody"
                    lines.append(
                        f"- you wait for {request.file_path} (number {place} in line; held by {by})"
                    )
            if not (holder and is_me(holder.session_id, holder.user_name)):
                continue
            if request.next_in_line:
                lines.append(f"- {request.file_path} is free and held for you: edit it now")
            elif request.waiters:
                names = ", ".join(w.user_name or "someone" for w in request.waiters)
                held = request.via or request.file_path
                lines.append(
                    f"- {names} wait(s) for {request.file_path}, which you hold: "
                    f'release(["{held}"]) when done'
                )
        return ["Requests involving you:", *lines[:MAX_SESSIONS]] if lines else []

    def _session_line(self, session: Session) -> str:
        who = session.user_name or "someone"
        if session.agent_type:
            who += f" ({session.agent_type})"
        if session.parent_session_id is not None:  # under its parent's line
            who = f"  - subagent {session.subagent_type or ''}".rstrip()
        else:
            who = f"- {who}"
        parts = [who]
        if session.current_task:
            parts.append(repr(_cut(session.current_task, 80)))
        if session.current_file:
            parts.append(f"on {session.current_file}")
        if session.last_heartbeat is not None:
            parts.append(f"seen {_ago(self.now, session.last_heartbeat)}")
        return " — ".join(parts)

    def _holders(self, reservations: list[Reservation]) -> list[str]:
        by_holder: dict[str, list[Reservation]] = defaultdict(list)
        for reservation in reservations:
            holder = reservation.user_name or "someone"
            if reservation.current_task:
                holder += f" ({_cut(reservation.current_task, 60)!r})"
            by_holder[holder].append(reservation)
        ranked = sorted(by_holder.items(), key=lambda item: -len(item[1]))
        lines = [f"- {holder}: {', '.join(self._groups(held))}" for holder, held in ranked]
        return lines[:MAX_HOLDERS] + _more(len(lines) - MAX_HOLDERS, "holder")

    def _groups(self, held: list[Reservation], with_time: bool = False) -> list[str]:
        by_folder: dict[str, list[Reservation]] = defaultdict(list)
        for reservation in held:
            by_folder[posixpath.dirname(reservation.file_path)].append(reservation)
        groups = []
        for folder, files in sorted(by_folder.items(), key=lambda item: (-len(item[1]), item[0])):
            if len(files) == 1:
                text = display(files[0].file_path, files[0].symbol)
            else:
                names = sorted(display(posixpath.basename(r.file_path), r.symbol) for r in files)
                shown = ", ".join(names[:MAX_NAMES]) + (", …" if len(names) > MAX_NAMES else "")
                text = f"{folder or '.'}/ ({len(files)} files: {shown})"
            if with_time:
                text += f" ({_left(self.now, min(r.expires_at for r in files))})"
            groups.append(text)
        if len(groups) > MAX_GROUPS:
            return [*groups[:MAX_GROUPS], f"{len(groups) - MAX_GROUPS} more places"]
        return groups


def _is_mine(reservation: Reservation, me: str, my_session: str | None) -> bool:
    if my_session is not None:
        return reservation.conversation_id == my_session
    return reservation.user_name == me


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _more(extra: int, noun: str) -> list[str]:
    return [f"- … {_count(extra, f'more {noun}')}"] if extra > 0 else []


def _cut(text: str, length: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


def _minutes(seconds: float) -> str:
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 120 else f"{round(minutes / 60)} h"


def _ago(now: datetime, then: datetime) -> str:
    seconds = (now - then).total_seconds()
    return "just now" if seconds < 60 else f"{_minutes(seconds)} ago"


def _left(now: datetime, until: datetime) -> str:
    return f"{_minutes(max((until - now).total_seconds(), 0))} left"
