"""The scripts' replies, read into the models or raised as the named errors: what each
row of a reply means, for every script but the listings (``pages.py`` reads theirs).

Pure functions, no Redis: ``store.py`` and ``admin.py`` run a script and hand its reply
here. The rows' shapes are documented in each script's header (``lua/*.lua``) and in the
shared files (``lib.lua``, ``event.lua``): adding a field is one Lua header and one
function here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from coordinator.config import Settings
from coordinator.errors import (
    RateLimited,
    SessionNotFound,
    SessionOfAnotherKey,
    StoreFull,
    StoreUnavailable,
    Unauthorized,
)
from coordinator.models import (
    Briefing,
    Decision,
    Ended,
    FileRequest,
    HeldFile,
    Holder,
    HookOutcome,
    Identity,
    LockLine,
    News,
    Note,
    OverCap,
    Principal,
    RecentDecision,
    Released,
    Requested,
    Reserved,
    TeammateLine,
    Waiter,
    from_ms,
)
from coordinator.symbol_claims import split
from coordinator.transport import STORE_FULL


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


stored_decision = msgspec.json.Decoder(_StoredDecision)
_note_decoder = msgspec.json.Decoder(Note)


def text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def seconds(ms: int) -> float:
    """A span of milliseconds as seconds, never negative (clocks of a reply's parts agree
    to the millisecond, but a span is never shown below zero)."""
    return max(ms, 0) / 1000


def admitted(reply: list[Any], settings: Settings) -> list[Any]:
    """The reply of a script of a key's request, unless it refused the request (every
    such script first checks the key: admit() and refuse_other_key() in lib.lua)."""
    match reply:
        case ["revoked"]:
            raise Unauthorized("this API key has been revoked")
        case ["not_owner"]:
            raise SessionOfAnotherKey(
                "this session was started by another API key: only that key can send "
                "its events, heartbeat or end it"
            )
        case ["full"]:
            raise StoreFull(STORE_FULL)
        case ["limited", retry_ms, remaining, full_ms]:
            raise RateLimited(
                settings.rate_per_s,
                settings.rate_burst,
                int(retry_ms),
                int(remaining),
                int(full_ms),
            )
    return reply


def _decision(encoded: str) -> Decision:
    return stored_decision.decode(encoded).decision()


def decision(reply: list[Any]) -> Decision:
    """decide.lua's {'ok', the decision as JSON}."""
    _, encoded = reply
    return _decision(encoded)


def decisions(reply: list[Any]) -> list[Decision]:
    """decisions.lua's {'ok', {decision json...}}."""
    _, encoded = reply
    return [_decision(d) for d in encoded]


def identity(reply: list[Any], who: Principal) -> Identity:
    """whoami.lua's {'ok', {id, slug, name}} of the key's workspace."""
    _, (ws_id, slug, name) = reply
    ws = who.workspace
    return Identity(slug or ws, ws_id or who.workspace_id, name or ws, who.user_name)


def held_file(row: list[Any]) -> HeldFile:
    """A script's {claim, holder sid, pttl, user_name, agent_type, current_task, parent,
    subagent_type, via, next in line 0|1, symbol kind} (holder_of in event.lua)."""
    claim, owner, pttl, user_name, agent_type, task, parent, subagent, *extra = row
    holder = Holder(
        owner, text(user_name), text(agent_type), text(task), text(parent), text(subagent)
    )
    via = text(extra[0]) if extra else None
    next_in_line = len(extra) > 1 and bool(int(extra[1]))
    kind = text(extra[2]) if len(extra) > 2 else None
    path, symbol = split(claim)
    return HeldFile(path, holder, max(int(pttl), 0), via, next_in_line, symbol, kind)


def notes(encoded: list[Any]) -> list[Note]:
    """A session's notes (claims.lua's push_note), each JSON."""
    return [_note_decoder.decode(n) for n in encoded or []]


def outcome(reply: list[Any], ws: str, sid: str) -> HookOutcome:
    """The reply of an event's script (start, prompt, touch, heartbeat) of session
    ``sid``: SessionNotFound for heartbeat.lua's {'missing'}."""
    match reply:
        case ["ok", created]:
            return HookOutcome(bool(created))
        case ["ok", created, encoded]:
            return HookOutcome(bool(created), notes=notes(encoded))
        case ["deny", created, *row]:
            # A new conversation's session exists even when its first write is denied.
            return HookOutcome(bool(created), conflict=held_file(row))
        case ["over_cap", created, scope, cap, held]:
            return HookOutcome(bool(created), over_cap=OverCap(str(scope), int(cap), int(held)))
        case ["news", created, taken, encoded, told]:
            news = News([held_file(row) for row in taken], [_decision(d) for d in encoded])
            return HookOutcome(bool(created), news=news, notes=notes(told))
        case [
            "brief",
            created,
            now,
            agents_total,
            agents,
            locks_total,
            locks,
            encoded,
            folders,
            told,
        ]:
            briefing = Briefing(
                now=from_ms(int(now)),
                agents=[
                    TeammateLine(u, text(a), text(t), text(p), text(k)) for u, a, t, p, k in agents
                ],
                agents_total=int(agents_total),
                locks=[lock_line(p, u) for p, u in zip(locks[::2], locks[1::2], strict=True)],
                locks_total=int(locks_total),
                decisions=[_decision(d) for d in encoded],
                folders=list(folders),
            )
            return HookOutcome(bool(created), briefing=briefing, notes=notes(told))
        case ["again", first]:  # the same event again: the first one's answer
            return msgspec.structs.replace(outcome(first, ws, sid), duplicate=True)
        case ["missing"]:
            raise SessionNotFound(f"no live session {sid} in workspace {ws!r}")
    raise StoreUnavailable(f"unexpected reply from an event's script: {reply[:1]!r}")


def handed_over(reply: list[Any]) -> int:
    """handover.lua's {'ok', the subagent was live, files passed}: the files passed."""
    _, _, passed = reply
    return int(passed)


def lock_line(claim: str, user: Any) -> LockLine:
    path, symbol = split(claim)
    return LockLine(path, text(user), symbol)


def ended(reply: list[Any]) -> Ended:
    """end.lua's {'ok', session was live, files released, ended before}."""
    _, live, released, before = reply
    return Ended(bool(live), int(released), bool(before))


def revoke_step(reply: list[Any]) -> tuple[int, int, str, str, str, str]:
    """revoke.lua's {'ok', sessions ended, files released, next stage, horizon, cursor
    score, cursor member}, as they are but for the counts."""
    _, ended_, released, stage, horizon, after_score, after_member = reply
    return int(ended_), int(released), stage, horizon, after_score, after_member


def claim_refused(reply: list[Any], requested: str = "") -> HookOutcome | None:
    """reserve.lua's refusals as an outcome (a conflict or a cap), None when it claimed."""
    match reply:
        case ["deny", created, *row]:
            return HookOutcome(bool(created), conflict=held_file(row))
        case ["over_cap", created, scope, cap, held]:
            return HookOutcome(bool(created), over_cap=OverCap(str(scope), int(cap), int(held)))
    return None


def reserved(reply: list[Any], paths: list[str]) -> Reserved:
    """reserve.lua's {'ok', created, expiry ms}."""
    _, _, expires_ms = reply
    return Reserved(paths, from_ms(int(expires_ms)))


def released(reply: list[Any]) -> Released | str:
    """release.lua's {'ok', paths} or, for a path it does not hold, that path."""
    match reply:
        case ["not_holder", path]:
            return str(path)
        case ["ok", paths]:
            return Released(list(paths))
    raise StoreUnavailable(f"unexpected reply from release: {reply[:1]!r}")


def requested(reply: list[Any]) -> Requested | tuple[str, int]:
    """request.lua's {'queued', position, holder_of row}, or its other answers as
    (status, number): ('yours', 0), ('next', pttl), ('free', 0), ('queue_full', most),
    ('too_many', most)."""
    match reply:
        case ["queued", position, row]:
            held = held_file(row)
            left = seconds(held.remaining_ms)
            return Requested(
                held.file_path, int(position), held.holder, left, held.via, held.next_in_line
            )
        case [status]:
            return str(status), 0
        case [status, number]:
            return str(status), int(number)
    raise StoreUnavailable(f"unexpected reply from request: {reply[:1]!r}")


def file_requests(reply: list[Any]) -> list[FileRequest]:
    """requests.lua's {'ok', now, {{path, holder_of row or {}, waiters}...}}."""
    _, _, rows = reply
    found = []
    for path, row, waiters in rows:
        held = held_file(row) if row else None
        found.append(
            FileRequest(
                str(path),
                held.holder if held else None,
                held.via if held else None,
                bool(held and held.next_in_line),
                [
                    Waiter(str(sid), text(user), text(agent), text(note), from_ms(int(at)))
                    for sid, user, agent, note, at in waiters
                ],
            )
        )
    return found
