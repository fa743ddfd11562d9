"""The request path's store: what a key's requests read and write, one async method per
operation.

Each operation is one script call (one round trip; lua/<operation>.lua) through the
transport, whose reply ``replies.py`` reads; a revoked key is refused there as
Unauthorized, Redis failing as StoreUnavailable. The CLI's operations are in ``admin.py``.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis

from coordinator import keys, pages, replies
from coordinator.channels import Channels, Subscription
from coordinator.config import Settings
from coordinator.errors import StoreFull, Unauthorized
from coordinator.models import (
    Decision,
    Ended,
    FileRequest,
    HookOutcome,
    Identity,
    Page,
    Principal,
    RedisMemory,
    Released,
    Requested,
    Reservation,
    Reserved,
    Session,
)
from coordinator.symbol_claims import Claim
from coordinator.transport import ERRORS, transport_for

_MAX_CACHED_KEYS = 10_000
# How long a replica trusts the roots it read (a conversation resumed in another checkout
# names other roots, through whichever replica), and that there were none (its start may
# come through another replica).
_ROOTS_CACHED_S = 300.0
_NO_ROOTS_CACHED_S = 10.0
_json = msgspec.json
# A listing's page: rows by default and at most (bounding its script's work and its
# answer), and the files after which a page of sessions ends.
PAGE_LIMIT = 100
MAX_PAGE = 1_000
PAGE_FILES = 1_000
# The request queues: waiters per file, and files requested in a workspace at once.
MAX_WAITERS = 20
MAX_REQUESTS = 200


class Store:
    """Sessions, reservations and decisions of the keys' requests, on one Redis client.

    The client must decode responses (``decode_responses=True``).
    """

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._settings = settings
        self._transport = transport_for(redis, settings.redis_timeout_s)
        self._channels = Channels(redis, settings.redis_timeout_s)
        # What every script is given after the key's digest (lib.lua's head).
        self._limits = (
            settings.rate_per_s,
            settings.rate_burst,
            settings.session_ttl_ms,
            settings.reservation_ttl_ms,
            settings.hand_off_grace_ms,
        )
        # What the events' scripts are given after the conversation id.
        self._news = (settings.briefing_lines, settings.briefing_decisions)
        self._briefing = (*self._news, settings.briefing_scan)
        self._caps = (settings.max_files_per_session, settings.max_files_per_key)
        # API keys resolved before; every script re-checks the key, so revocation is immediate.
        self._principals: dict[str, Principal] = {}
        # The roots of conversations: roots key → (owner key_id, roots, until when to trust
        # them, time.monotonic(); see _ROOTS_CACHED_S).
        self._roots: dict[str, tuple[str, tuple[str, ...], float]] = {}

    @property
    def full_seen_at(self) -> float:
        """When Redis last refused a write for want of memory (time.monotonic())."""
        return self._transport.full_seen_at

    async def aclose(self) -> None:
        """Close the store's own connections (the client passed in stays open)."""
        await self._channels.aclose()
        await self._transport.aclose()

    async def _run(
        self,
        who: Principal,
        name: str,
        sid: str | None = None,
        args: Sequence[Any] = (),
        locks: Sequence[str] = (),
        event: str = "",
    ) -> list[Any]:
        """Run the script ``name`` for the key's request (of the session ``sid``, if
        any, and its ``event``'s note) with lib.lua's head, then its own ``args`` and
        keys (``locks``)."""
        ws = who.workspace
        script_keys = keys.script_keys(ws, who.key_id, sid, event)
        script_keys += locks
        script_args = [who.digest, *self._limits, *keys.prefixes(ws), sid or "", *args]
        reply = await self._transport.script(name, script_keys, script_args)
        try:
            return replies.admitted(reply, self._settings)
        except Unauthorized:
            self._principals.pop(who.digest, None)
            raise
        except StoreFull:
            self._transport.full_seen_at = time.monotonic()
            raise

    async def ping(self) -> None:
        await self._transport.call("PING")

    async def memory(self) -> RedisMemory:
        """Redis's eviction policy and whether it is full (transport.memory)."""
        return await self._transport.memory()

    async def key_stands(self, who: Principal) -> bool:
        """Whether the key is still in its workspace's table: a revocation counts at once,
        whichever replica made it."""
        if await self._transport.call("HEXISTS", keys.workspace_keys(who.workspace), who.digest):
            return True
        self._principals.pop(who.digest, None)
        return False

    @contextlib.asynccontextmanager
    async def subscribe(self, who: Principal) -> AsyncIterator[Subscription]:
        """The live events of the key's workspace, from the moment Redis confirmed the
        subscription. Every workspace's shares one connection (on a cluster: to the node
        of the first channel's slot; a cluster's PUBLISH reaches every node)."""
        channel = keys.events(who.workspace)
        try:
            inbox = await self._channels.join(channel)
        except ERRORS as exc:
            raise self._transport.refusal(exc) from exc
        try:
            yield Subscription(inbox)
        finally:
            await self._channels.leave(channel)

    async def principal(self, digest: str) -> Principal | None:
        """Who the key with this digest speaks for, or None for an unknown key."""
        known = self._principals.get(digest)
        if known is not None:
            return known
        ws, ws_id, user_name, read_only = await self._transport.call(
            "HMGET", keys.api_key(digest), "workspace", "workspace_id", "user_name", "read_only"
        )
        if ws is None:
            return None
        if len(self._principals) >= _MAX_CACHED_KEYS:
            self._principals.clear()
        found = Principal(ws, ws_id, user_name, digest, read_only=read_only == "1")
        self._principals[digest] = found
        return found

    async def check_key(self, who: Principal) -> None:
        """Count a request of the key against its rate, as every script does: Unauthorized
        once it is revoked (through any replica), RateLimited when over its rate."""
        await self.identity(who)

    async def identity(self, who: Principal) -> Identity:
        """The key's workspace and person, read past the key cache: a revoked key is refused."""
        return replies.identity(await self._run(who, "whoami"), who)

    # -- a session's events ----------------------------------------------------------

    # ``notes``: the event can carry context to the agent, so the session's notes (who
    # waits for its files, which file became its) are taken and answered with it.
    # And the event's id (``events.duplicate_id``), if it has one: the same event again is
    # answered as the first was, and changes nothing (HookOutcome.duplicate).
    async def start(
        self,
        who: Principal,
        sid: str,
        conversation_id: str,
        fields: Mapping[str, str] = {},
        notes: bool = False,
        event: str | None = None,
    ) -> HookOutcome:
        """Touch (or create) a session, renew what it holds, and brief it."""
        numbers = (*self._briefing, int(notes), self._window(event))
        return await self._event("start", who, sid, conversation_id, numbers, fields, (), event)

    async def prompt(
        self,
        who: Principal,
        sid: str,
        conversation_id: str,
        fields: Mapping[str, str] = {},
        notes: bool = False,
        event: str | None = None,
    ) -> HookOutcome:
        """Touch (or create) a session and tell it what changed since it last heard."""
        numbers = (*self._news, int(notes), self._window(event))
        return await self._event("prompt", who, sid, conversation_id, numbers, fields, (), event)

    async def touch(
        self,
        who: Principal,
        sid: str,
        conversation_id: str,
        fields: Mapping[str, str] = {},
        claims: Sequence[Claim | str] = (),
        notes: bool = False,
        event: str | None = None,
    ) -> HookOutcome:
        """Touch (or create) a session and claim ``claims`` (files, or symbols of files; a
        str is a whole file) all-or-nothing."""
        numbers = (*self._caps, int(notes), self._window(event))
        return await self._event("touch", who, sid, conversation_id, numbers, fields, claims, event)

    async def announce_subagent(
        self,
        who: Principal,
        sid: str,
        conversation_id: str,
        task: str,
        fields: Mapping[str, str] = {},
    ) -> HookOutcome:
        """Touch a session whose agent starts a subagent, and queue that subagent's task
        for the next subagent of the session that starts."""
        return await self._event("announce", who, sid, conversation_id, (task,), fields)

    async def start_subagent(
        self, who: Principal, sid: str, conversation_id: str, fields: Mapping[str, str]
    ) -> HookOutcome:
        """Touch (or create) a subagent's session (``fields`` name its ``parent``); its
        task is the one its parent queued last, unless ``fields`` name one."""
        return await self._event("subagent", who, sid, conversation_id, (), fields)

    async def hand_over(self, who: Principal, sid: str, parent: str) -> int:
        """A subagent stops: what it holds passes to its parent session, and it ends.
        Returns how many files passed."""
        return replies.handed_over(await self._run(who, "handover", sid, [parent]))

    async def heartbeat(self, who: Principal, sid: str) -> None:
        """Keep a live session alive; SessionNotFound when there is none."""
        await self._event("heartbeat", who, sid, "", (), {})

    # -- claims made on purpose (the companion's reserve, release, request_file) ------

    async def reserve(
        self,
        who: Principal,
        sid: str,
        conversation_id: str,
        fields: Mapping[str, str],
        claims: Sequence[tuple[str, str]],
        minutes: float | None = None,
    ) -> Reserved | HookOutcome:
        """Claim files, directories and globs (key, matcher: globs.claim_key) all or
        nothing; the refusal (a conflict or a cap) as an outcome."""
        ttl = round(minutes * 60_000) if minutes else self._settings.reservation_ttl_ms
        numbers = (*self._caps, self._settings.max_patterns, ttl)
        args = begin_event_args(conversation_id, numbers, fields)
        paths = [key for key, _ in claims]
        args += paths
        args += [spec for _, spec in claims]
        locks = [keys.lock(who.workspace, path) for path in paths]
        reply = await self._run(who, "reserve", sid, args, locks)
        return replies.claim_refused(reply) or replies.reserved(reply, paths)

    async def release(self, who: Principal, sid: str, paths: Sequence[str] = ()) -> Released | str:
        """Give back ``paths`` (none: everything the session holds); a path it does not
        hold is returned instead, and nothing is released."""
        return replies.released(await self._run(who, "release", sid, list(paths)))

    async def request_file(
        self,
        who: Principal,
        sid: str,
        conversation_id: str,
        fields: Mapping[str, str],
        path: str,
        note: str = "",
    ) -> Requested | tuple[str, int]:
        """Join the queue of a file someone else holds (replies.requested)."""
        args = begin_event_args(conversation_id, (note, MAX_WAITERS, MAX_REQUESTS), fields)
        args.append(path)
        reply = await self._run(who, "request", sid, args, [keys.lock(who.workspace, path)])
        return replies.requested(reply)

    async def requests(self, who: Principal) -> list[FileRequest]:
        """The open requests of the workspace (at most MAX_REQUESTS files)."""
        return replies.file_requests(await self._run(who, "requests"))

    def _window(self, event: str | None) -> int:
        """How long the event's note lives: 0 (not noted) for an event without an id."""
        return self._settings.duplicate_window_ms if event else 0

    async def _event(
        self,
        name: str,
        who: Principal,
        sid: str,
        conversation_id: str,
        numbers: tuple[int | str, ...],
        fields: Mapping[str, str],
        claims: Sequence[Claim | str] = (),
        event: str | None = None,
    ) -> HookOutcome:
        """One event's script, with its own arguments as begin_event() in event.lua reads
        them: the conversation, ``numbers``, the fields to set, then the claims and their
        symbols' kinds."""
        args = begin_event_args(conversation_id, numbers, fields)
        members = [c if isinstance(c, str) else c.member for c in claims]
        args += members
        args += ["" if isinstance(c, str) else c.kind or "" for c in claims]
        locks = [keys.claim_lock(who.workspace, member) for member in members]
        reply = await self._run(who, name, sid, args, locks, event or "")
        return replies.outcome(reply, who.workspace, sid)

    async def end_session(self, who: Principal, sid: str) -> Ended:
        """Release every reservation of a session and end it. Idempotent: ending it again
        (a retry) changes nothing and answers as the first end did."""
        return replies.ended(await self._run(who, "end", sid))

    async def remember_roots(self, who: Principal, sid: str, roots: Sequence[str]) -> None:
        """Keep the project roots that a conversation's start named, for its events that
        name none (Claude Code's http hooks); SessionOfAnotherKey if it is another key's."""
        await self._run(who, "roots", sid, [_json.encode(list(roots)).decode()])
        key = keys.roots(who.workspace, sid)
        self._cache_roots(key, who.key_id, tuple(roots), time.monotonic() + _ROOTS_CACHED_S)

    async def roots(self, who: Principal, sid: str) -> tuple[str, ...]:
        """The project roots the conversation's start named, if the key owns it; () if none."""
        key = keys.roots(who.workspace, sid)
        known = self._roots.get(key)
        if known is not None and known[2] > time.monotonic():
            return known[1] if known[0] == who.key_id else ()
        owner, encoded = await self._transport.call("HMGET", key, "key_id", "roots")
        if owner is None or encoded is None:
            self._cache_roots(key, "", (), time.monotonic() + _NO_ROOTS_CACHED_S)
            return ()
        found = tuple(_json.decode(encoded, type=list[str]))
        self._cache_roots(key, owner, found, time.monotonic() + _ROOTS_CACHED_S)
        return found if owner == who.key_id else ()

    def _cache_roots(self, key: str, owner: str, roots: tuple[str, ...], until: float) -> None:
        if len(self._roots) >= _MAX_CACHED_KEYS:
            self._roots.clear()
        self._roots[key] = (owner, roots, until)

    # -- listings and decisions -------------------------------------------------------

    async def sessions(
        self, who: Principal, limit: int = PAGE_LIMIT, cursor: str | None = None
    ) -> Page[Session]:
        """A page of the live sessions, newest first: at most ``limit``, and it ends early
        once it lists PAGE_FILES files (its sessions' files are listed in full)."""
        args = [limit, PAGE_FILES, *pages.cursor_args(cursor), *pages.SESSION_FIELDS]
        return pages.sessions_page(await self._run(who, "sessions", args=args))

    async def reservations(
        self, who: Principal, limit: int = PAGE_LIMIT, cursor: str | None = None
    ) -> Page[Reservation]:
        """A page of the live reservations, longest-lived first, at most ``limit``."""
        args = [limit, *pages.cursor_args(cursor)]
        return pages.reservations_page(await self._run(who, "reservations", args=args))

    async def add_decision(self, who: Principal, text: str, session_id: str | None) -> Decision:
        args = [text, who.user_name, session_id or "", self._settings.decision_history]
        return replies.decision(await self._run(who, "decide", args=args))

    async def decisions(self, who: Principal, limit: int) -> list[Decision]:
        return replies.decisions(await self._run(who, "decisions", args=[limit]))


def begin_event_args(
    conversation_id: str, numbers: Sequence[Any], fields: Mapping[str, str]
) -> list[Any]:
    """The head of an event script's own arguments, as begin_event() in event.lua reads
    it: the conversation, the script's own ``numbers``, then the fields to set on the
    session, counted, as name/value pairs."""
    args: list[Any] = [conversation_id, *numbers, len(fields)]
    for field in fields.items():
        args += field
    return args
