"""The only module that talks to Redis: one async method per operation.

Each hook event is one script call (one round trip); scripts live in ``lua/`` and
are registered once. Redis failures surface as StoreUnavailable, a revoked key as
Unauthorized.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from importlib import resources
from typing import Any, Literal, cast

import msgspec
from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.commands.core import AsyncScript
from redis.typing import EncodableT, FieldT

from coordinator import keys, replies
from coordinator.channels import Channels, Inbox
from coordinator.config import Settings
from coordinator.errors import Conflict as NameTaken
from coordinator.errors import (
    NotFound,
    RateLimited,
    SessionNotFound,
    SessionOfAnotherKey,
    StoreFull,
    StoreUnavailable,
    Unauthorized,
    UsageError,
)
from coordinator.models import (
    Decision,
    Ended,
    HookOutcome,
    Identity,
    KeyInfo,
    Page,
    Principal,
    RedisMemory,
    Reservation,
    Revoked,
    Session,
    Workspace,
    WorkspaceStatus,
    from_ms,
    key_id_of,
)
from coordinator.pipeline import Pipeline

Mode = Literal["touch", "claim", "start", "prompt", "heartbeat"]
# RedisClusterException (no node of a cluster answers) is not a RedisError.
_FAILURES = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.RedisClusterException,
    OSError,
)
_ERRORS = (*_FAILURES, redis_errors.RedisError)
_MAX_CACHED_KEYS = 10_000
# How long a replica trusts the roots it read (a conversation resumed in another checkout
# names other roots, through whichever replica), and that there were none (its start may
# come through another replica).
_ROOTS_CACHED_S = 300.0
_NO_ROOTS_CACHED_S = 10.0
_json = msgspec.json
KEY_ID = re.compile(r"[0-9a-f]{4,64}")  # a key's id as `keys list` shows it, or its head
STORE_FULL = (
    "Redis is full (at its maxmemory) and stores nothing more: reads and session ends still "
    "work; an operator must free memory or raise maxmemory"
)
# A listing's page: rows by default and at most (bounding its script's work and its
# answer), and the files after which a page of sessions ends.
PAGE_LIMIT = 100
MAX_PAGE = 1_000
PAGE_FILES = 1_000


# What RedisCluster.from_url reads in place of each cluster scheme.
_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def connect(settings: Settings) -> Redis:
    """A client for ``settings.redis_url`` that gives up after the configured timeout;
    a Redis Cluster client for ``redis+cluster://host:port`` (``rediss+cluster://``: TLS).

    Its pool holds ``redis_pool_size`` connections, and a command finding them all busy
    waits for one up to ``redis_timeout_s`` (redis-py's own pool fails at once: under a
    burst, a healthy Redis looked unreachable)."""
    url = settings.redis_url or ""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "socket_timeout": settings.redis_timeout_s,
    }
    scheme, _, rest = url.partition("://")
    cluster_scheme = _CLUSTER_SCHEMES.get(scheme.lower())
    if cluster_scheme is not None:
        # RedisCluster shares no base class with Redis but has every command the store
        # sends, and routes each to the node of its key's slot (a script: of its first key).
        return cast(Redis, RedisCluster.from_url(f"{cluster_scheme}://{rest}", **options))
    pool = BlockingConnectionPool.from_url(
        url, max_connections=settings.redis_pool_size, timeout=settings.redis_timeout_s, **options
    )
    return Redis.from_pool(pool)


def _unavailable(exc: BaseException) -> StoreUnavailable | StoreFull:
    """Redis failing, in any of _ERRORS' ways, as the client's 503 (507 when it is full).
    Its error's text stays here: a script's error names the script's sha and line."""
    if isinstance(exc, _FAILURES):
        return StoreUnavailable(f"Redis is unreachable: {type(exc).__name__}")
    code = str(exc).split(" ", 1)[0]
    if isinstance(exc, redis_errors.OutOfMemoryError) or code == "OOM":
        return StoreFull(STORE_FULL)
    # Redis's error codes are one capitalised word (READONLY, BUSY, ...); redis-py strips ERR.
    return StoreUnavailable(f"Redis refused the operation ({code if code.isupper() else 'ERR'})")


def digest_of(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def _script_source(name: str) -> str:
    folder = resources.files("coordinator") / "lua"
    return (folder / "lib.lua").read_text() + "\n" + (folder / f"{name}.lua").read_text()


class Subscription:
    """The live events of one workspace, as they come on the replica's pub/sub connection."""

    def __init__(self, inbox: Inbox) -> None:
        self._inbox = inbox

    async def next(self, timeout_s: float) -> str | None:
        """The next event, as the JSON the script published; None when none came within
        ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                item = await self._inbox.get()
        except TimeoutError:
            return None
        if isinstance(item, _ERRORS):
            raise _unavailable(item) from item
        if isinstance(item, BaseException):
            raise StoreUnavailable(f"the subscription failed: {type(item).__name__}") from item
        return item


class Store:
    """Sessions, reservations, decisions, workspaces and API keys, on one Redis client.

    The client must decode responses (``decode_responses=True``).
    """

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self._settings = settings
        self._hook = self._script("hook")
        self._end = self._script("end")
        self._decide = self._script("decide")
        self._decisions = self._script("decisions")
        self._sessions = self._script("sessions")
        self._reservations = self._script("reservations")
        self._status = self._script("status")
        self._revoke = self._script("revoke")
        self._whoami = self._script("whoami")
        self._remember_roots = self._script("roots")
        # API keys resolved before; every script re-checks the key, so revocation is immediate.
        self._principals: dict[str, Principal] = {}
        # When Redis last refused a write for want of memory (time.monotonic()): /health
        # reads Redis's memory again at once, rather than after its usual pause.
        self.full_seen_at = 0.0
        # The roots of conversations: roots key → (owner key_id, roots, until when to trust
        # them, time.monotonic(); see _ROOTS_CACHED_S).
        self._roots: dict[str, tuple[str, tuple[str, ...], float]] = {}
        self._pipeline = Pipeline.serving(redis, settings.redis_timeout_s)
        self._channels = Channels(redis, settings.redis_timeout_s)

    async def aclose(self) -> None:
        """Close the store's own connections (the client passed in stays open)."""
        await self._channels.aclose()
        if self._pipeline is not None:
            await self._pipeline.aclose()

    def _script(self, name: str) -> AsyncScript:
        return self.redis.register_script(_script_source(name))

    async def _call(self, command: Any) -> Any:
        try:
            return await command
        except _ERRORS as exc:
            raise self._refusal(exc) from exc

    def _refusal(self, exc: BaseException) -> StoreUnavailable | StoreFull:
        error = _unavailable(exc)
        if isinstance(error, StoreFull):
            self.full_seen_at = time.monotonic()
        return error

    async def _run(
        self, who: Principal, script: AsyncScript, keys_: Sequence[str], args: Sequence[Any]
    ) -> list[Any]:
        """Run one of the scripts that a key's request runs, all of which first check
        that the key still stands and is within its rate (``admit`` in lib.lua)."""
        ws, settings = who.workspace, self._settings
        all_keys = [keys.workspace_keys(ws), keys.rate(ws, who.key_id), *keys_]
        all_args = [who.digest, settings.rate_per_s, settings.rate_burst, *args]
        if self._pipeline is None:
            call = script(keys=all_keys, args=all_args)
        else:
            call = self._pipeline.script(script.sha, script.script, all_keys, all_args)
        reply: list[Any] = await self._call(call)
        match reply:
            case ["revoked"]:
                self._principals.pop(who.digest, None)
                raise Unauthorized("this API key has been revoked")
            case ["not_owner"]:
                raise SessionOfAnotherKey(
                    "this session was started by another API key: only that key can send "
                    "its events, heartbeat or end it"
                )
            case ["full"]:
                self.full_seen_at = time.monotonic()
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

    async def ping(self) -> None:
        # Through the pipeline where there is one, as every request's commands go: the
        # pool is for the admin's commands and the pub/sub connection.
        if self._pipeline is None:
            await self._call(self.redis.ping())
        else:
            await self._call(self._pipeline.call("PING"))

    async def memory(self) -> RedisMemory:
        """Redis's eviction policy and whether it is full, from ``INFO memory`` (managed
        Redis services often disable CONFIG), of every primary of a cluster."""
        try:
            if isinstance(self.redis, RedisCluster):
                by_node = await self.redis.info("memory", target_nodes=RedisCluster.PRIMARIES)
                replies = list(by_node.values())
            else:
                replies = [await self.redis.info("memory")]
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        except redis_errors.ResponseError:  # INFO renamed away, or (fakeredis) unknown
            return RedisMemory(None, False)
        policies = [reply.get("maxmemory_policy") for reply in replies]
        unsafe = [name for name in policies if name not in (None, "noeviction")]
        policy = unsafe[0] if unsafe else None if None in policies else "noeviction"
        # Redis's own test: what it counts against maxmemory leaves out replication buffers.
        full = any(
            0
            < int(reply.get("maxmemory", 0))
            < int(reply.get("used_memory", 0)) - int(reply.get("mem_not_counted_for_evict", 0))
            for reply in replies
        )
        return RedisMemory(policy, full)

    async def key_stands(self, who: Principal) -> bool:
        """Whether the key is still in its workspace's table: a revocation counts at once,
        whichever replica made it."""
        table = keys.workspace_keys(who.workspace)
        # Through the pipeline where there is one: every open stream asks this at once
        # after a quiet spell, and the pool would keep a connection for each.
        if self._pipeline is None:
            command = self.redis.hexists(table, who.digest)
        else:
            command = self._pipeline.call("HEXISTS", table, who.digest)
        if await self._call(command):
            return True
        self._principals.pop(who.digest, None)
        return False

    @contextlib.asynccontextmanager
    async def subscribe(self, who: Principal) -> AsyncIterator[Subscription]:
        """The live events of the key's workspace, from the moment Redis confirmed the
        subscription. Every workspace's shares one connection (on a cluster: to the node
        of the first channel's slot; a cluster's PUBLISH reaches every node)."""
        channel = keys.events(who.workspace)
        inbox = await self._call(self._channels.join(channel))
        try:
            yield Subscription(inbox)
        finally:
            await self._channels.leave(channel)

    async def now_ms(self) -> int:
        """Redis's clock, the one the scripts use, so replicas agree on times."""
        seconds, micros = await self._call(self.redis.time())
        return int(seconds) * 1000 + int(micros) // 1000

    # -- API keys and workspaces -------------------------------------------------------

    async def principal(self, digest: str) -> Principal | None:
        """Who the key with this digest speaks for, or None for an unknown key."""
        known = self._principals.get(digest)
        if known is not None:
            return known
        if self._pipeline is None:
            fields = await self._call(self.redis.hgetall(keys.api_key(digest)))
        else:  # a reply of name, value, name, value...
            flat = await self._call(self._pipeline.call("HGETALL", keys.api_key(digest)))
            fields = dict(zip(flat[::2], flat[1::2], strict=True))
        if not fields:
            return None
        if len(self._principals) >= _MAX_CACHED_KEYS:
            self._principals.clear()
        found = Principal(
            fields["workspace"],
            fields["workspace_id"],
            fields["user_name"],
            digest,
            read_only=fields.get("read_only") == "1",
        )
        self._principals[digest] = found
        return found

    async def admit(self, who: Principal) -> None:
        """Count a request of the key against its rate, as every script does: Unauthorized
        once it is revoked (through any replica), RateLimited when over its rate."""
        await self.identity(who)

    async def identity(self, who: Principal) -> Identity:
        """The key's workspace and person, read past the key cache: a revoked key is refused."""
        ws = who.workspace
        _, (ws_id, slug, name) = await self._run(who, self._whoami, [keys.workspace(ws)], [])
        return Identity(slug or ws, ws_id or who.workspace_id, name or ws, who.user_name)

    async def create_workspace(self, slug: str, name: str | None = None) -> Workspace:
        key = keys.workspace(slug)
        ws_id = "ws_" + secrets.token_urlsafe(9)
        if not await self._call(self.redis.hsetnx(key, "id", ws_id)):
            raise NameTaken(f"workspace {slug!r} exists already")
        created_ms = await self.now_ms()
        fields: dict[FieldT, EncodableT] = {
            "slug": slug,
            "name": name or slug,
            "created_ms": created_ms,
        }
        await self._call(self.redis.hset(key, mapping=fields))
        await self._call(self.redis.set(keys.workspace_id(ws_id), slug))
        return Workspace(slug, ws_id, name or slug, from_ms(created_ms))

    async def workspace(self, ref: str) -> Workspace | None:
        """The workspace named by its slug or its id."""
        slug = ref
        if ref.startswith("ws_"):
            slug = await self._call(self.redis.get(keys.workspace_id(ref)))
            if slug is None:
                return None
        fields = await self._call(self.redis.hgetall(keys.workspace(slug)))
        if not fields:
            return None
        return Workspace(slug, fields["id"], fields["name"], from_ms(int(fields["created_ms"])))

    async def create_key(
        self, slug: str, user_name: str, read_only: bool = False
    ) -> tuple[str, KeyInfo]:
        """A new API key for one person in one workspace; only its digest is stored.
        A ``read_only`` key reads everything of its workspace and writes nothing."""
        ws = await self.workspace(slug)
        if ws is None:
            raise NotFound(f"no workspace {slug!r}; create it with `coordinator workspaces create`")
        api_key = "ek_" + secrets.token_urlsafe(32)
        digest = digest_of(api_key)
        created_ms = await self.now_ms()
        fields: dict[FieldT, EncodableT] = {
            "workspace": ws.slug,
            "workspace_id": ws.id,
            "user_name": user_name,
            "created_ms": created_ms,
        }
        if read_only:
            fields["read_only"] = 1
        # The workspace's table first: a key missing from it is refused, so a failure
        # between the two writes leaves a dead key, never a half-live one.
        await self._call(self.redis.hset(keys.workspace_keys(ws.slug), digest, user_name))
        await self._call(self.redis.hset(keys.api_key(digest), mapping=fields))
        info = KeyInfo(key_id_of(digest), ws.slug, user_name, from_ms(created_ms), read_only)
        return api_key, info

    async def list_keys(self, slug: str) -> list[KeyInfo]:
        table = await self._call(self.redis.hgetall(keys.workspace_keys(slug)))
        found = []
        for digest in sorted(table):
            fields = await self._call(self.redis.hgetall(keys.api_key(digest)))
            created = from_ms(int(fields.get("created_ms", 0)))
            read_only = fields.get("read_only") == "1"
            found.append(KeyInfo(key_id_of(digest), slug, table[digest], created, read_only))
        return found

    async def revoke_key(self, api_key: str) -> Revoked:
        """Revoke a key, given the key itself, and end the sessions it speaks for."""
        return await self._revoke_digest(digest_of(api_key))

    async def revoke_key_id(self, key_id: str) -> Revoked:
        """Revoke a key by its id as ``keys list`` shows it (or a prefix of it, if that
        names one key only), and end the sessions it speaks for."""
        wanted = key_id.strip().lower()
        if not KEY_ID.fullmatch(wanted):
            raise UsageError(
                f"{key_id!r} is not a key id: give the hex id `keys list` shows "
                "(at least 4 digits), or `-` and the key itself on stdin"
            )
        found = {
            key.removeprefix(keys.api_key(""))
            for key in await self._scan(keys.api_key(wanted) + "*")
        }
        if len(found) > 1:
            ids = ", ".join(sorted(key_id_of(digest) for digest in found))
            raise UsageError(f"key id {key_id!r} names {len(found)} keys ({ids}): give more digits")
        if not found:
            raise NotFound(f"no API key with id {key_id!r} (was it revoked already?)")
        return await self._revoke_digest(found.pop())

    async def _revoke_digest(self, digest: str) -> Revoked:
        fields = await self._call(self.redis.hgetall(keys.api_key(digest)))
        if not fields:
            raise NotFound("no such API key (was it revoked already?)")
        ws, key_id = fields["workspace"], key_id_of(digest)
        ended = released = 0
        async for step_ended, step_released in self._revoke_steps(ws, digest):
            ended, released = ended + step_ended, released + step_released
        await self._call(self.redis.delete(keys.api_key(digest)))
        self._principals.pop(digest, None)
        created = from_ms(int(fields["created_ms"]))
        info = KeyInfo(key_id, ws, fields["user_name"], created, fields.get("read_only") == "1")
        return Revoked(info, ended, released)

    async def _revoke_steps(self, ws: str, digest: str) -> AsyncIterator[tuple[int, int]]:
        """Revoke a key in bounded steps, one script call each (revoke.lua), yielding the
        sessions ended and files released of each: the first call takes the key out of its
        workspace's table (from then on every replica refuses it), and no call holds Redis
        up however much the key or its workspace holds. Interrupted, a revocation is taken
        up again from the start (the key's record goes last)."""
        key_id = key_id_of(digest)
        script_keys = [
            keys.workspace_keys(ws),
            keys.rate(ws, key_id),
            keys.sessions_index(ws),
            keys.locks_index(ws),
            keys.events(ws),
            keys.key_files(ws, key_id),
        ]
        prefixes = [
            keys.session(ws, ""),
            keys.files(ws, ""),
            keys.holder(ws, ""),
            keys.told(ws, ""),
            keys.lock(ws, ""),
        ]
        stage, horizon, after_score, after_member = "start", "", "", ""
        while stage:
            args = [digest, key_id, *prefixes, stage, horizon, after_score, after_member]
            reply = await self._call(self._revoke(keys=script_keys, args=args))
            _, ended, released, stage, horizon, after_score, after_member = reply
            yield int(ended), int(released)

    # -- sessions and reservations -----------------------------------------------------

    async def hook(
        self,
        who: Principal,
        sid: str,
        conversation_id: str,
        mode: Mode,
        fields: Mapping[str, str] = {},
        paths: Sequence[str] = (),
    ) -> HookOutcome:
        """Touch (or create) a session; with mode 'claim', claim ``paths`` all-or-nothing."""
        ws, settings = who.workspace, self._settings
        script_keys = [
            keys.session(ws, sid),
            keys.files(ws, sid),
            keys.holder(ws, sid),
            keys.sessions_index(ws),
            keys.locks_index(ws),
            keys.decisions(ws),
            keys.told(ws, sid),
            keys.events(ws),
            keys.key_files(ws, who.key_id),
            keys.roots(ws, sid),
            *(keys.lock(ws, path) for path in paths),
        ]
        args: list[Any] = [
            sid,
            conversation_id,
            settings.session_ttl_ms,
            settings.reservation_ttl_ms,
            keys.lock(ws, ""),
            keys.holder(ws, ""),
            keys.session(ws, ""),
            mode,
            settings.briefing_lines,
            settings.briefing_decisions,
            settings.max_files_per_session,
            settings.max_files_per_key,
            len(fields),
        ]
        for name, value in fields.items():
            args += (name, value)
        args += paths
        reply = await self._run(who, self._hook, script_keys, args)
        if reply == ["missing"]:
            raise SessionNotFound(f"no live session {sid} in workspace {ws!r}")
        outcome = replies.hook_outcome(reply)
        if outcome is not None:
            return outcome
        raise StoreUnavailable(f"unexpected reply from the hook script: {reply[:1]!r}")

    async def remember_roots(self, who: Principal, sid: str, roots: Sequence[str]) -> None:
        """Keep the project roots that a conversation's start named, for its events that
        name none (Claude Code's http hooks); SessionOfAnotherKey if it is another key's."""
        ws, key = who.workspace, keys.roots(who.workspace, sid)
        await self._run(
            who,
            self._remember_roots,
            [keys.session(ws, sid), keys.holder(ws, sid), key],
            [
                _json.encode(list(roots)).decode(),
                max(self._settings.session_ttl_ms, self._settings.reservation_ttl_ms),
            ],
        )
        self._cache_roots(key, who.key_id, tuple(roots), time.monotonic() + _ROOTS_CACHED_S)

    async def roots(self, who: Principal, sid: str) -> tuple[str, ...]:
        """The project roots the conversation's start named, if the key owns it; () if none."""
        key = keys.roots(who.workspace, sid)
        known = self._roots.get(key)
        if known is not None and known[2] > time.monotonic():
            return known[1] if known[0] == who.key_id else ()
        if self._pipeline is None:
            command = self.redis.hmget(key, ["key_id", "roots"])
        else:
            command = self._pipeline.call("HMGET", key, "key_id", "roots")
        owner, encoded = await self._call(command)
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

    async def end_session(self, who: Principal, sid: str) -> Ended:
        """Release every reservation of a session and end it. Idempotent: ending it again
        (a retry) changes nothing and answers as the first end did."""
        ws = who.workspace
        script_keys = [
            keys.session(ws, sid),
            keys.files(ws, sid),
            keys.holder(ws, sid),
            keys.sessions_index(ws),
            keys.locks_index(ws),
            keys.told(ws, sid),
            keys.events(ws),
            keys.key_files(ws, who.key_id),
            keys.ended(ws, sid),
        ]
        args = [sid, keys.lock(ws, ""), self._settings.session_ttl_ms]
        _, live, released, before = await self._run(who, self._end, script_keys, args)
        return Ended(bool(live), int(released), bool(before))

    async def sessions(
        self, who: Principal, limit: int = PAGE_LIMIT, cursor: str | None = None
    ) -> Page[Session]:
        """A page of the live sessions, newest first: at most ``limit``, and it ends early
        once it lists PAGE_FILES files (its sessions' files are listed in full)."""
        ws = who.workspace
        _, rows, total, after = await self._run(
            who,
            self._sessions,
            [keys.sessions_index(ws)],
            [
                keys.session(ws, ""),
                keys.files(ws, ""),
                keys.lock(ws, ""),
                limit,
                PAGE_FILES,
                *replies.cursor_args(cursor),
                *replies.SESSION_FIELDS,
            ],
        )
        items = [replies.session(values, held) for values, held in rows]
        return Page(items, int(total), replies.cursor(after))

    async def reservations(
        self, who: Principal, limit: int = PAGE_LIMIT, cursor: str | None = None
    ) -> Page[Reservation]:
        """A page of the live reservations, longest-lived first, at most ``limit``."""
        ws = who.workspace
        _, now, rows, total, after = await self._run(
            who,
            self._reservations,
            [keys.locks_index(ws)],
            [keys.lock(ws, ""), keys.holder(ws, ""), limit, *replies.cursor_args(cursor)],
        )
        items = [replies.reservation(row, int(now)) for row in rows]
        return Page(items, int(total), replies.cursor(after))

    # -- the admin's view (`coordinator status`): no API key, so never reachable over HTTP --

    async def workspace_slugs(self) -> list[str]:
        """Every workspace's slug, sorted. SCAN, never KEYS (on a Redis Cluster redis-py
        scans every primary), over the workspace records."""
        slugs = (keys.slug_of_workspace(key) for key in await self._scan(keys.workspace_pattern()))
        return sorted({slug for slug in slugs if slug is not None})

    async def _scan(self, pattern: str) -> list[str]:
        """Every key matching ``pattern``: SCAN, never KEYS (on a Redis Cluster redis-py
        scans every primary). For the admin's commands only: it walks the keyspace."""
        try:  # a scan is many commands: _call cannot wrap it
            return [key async for key in self.redis.scan_iter(match=pattern, count=1000)]
        except _ERRORS as exc:
            raise self._refusal(exc) from exc

    async def status(self, ws: Workspace, rows: int, decisions: int) -> WorkspaceStatus:
        """One workspace at one instant: its newest ``rows`` sessions, its longest-lived
        ``rows`` reservations (with the totals of both) and its ``decisions`` newest
        decisions. For the trusted local admin only: it checks no API key."""
        slug = ws.slug
        reply = await self._call(
            self._status(
                keys=[keys.sessions_index(slug), keys.locks_index(slug), keys.decisions(slug)],
                args=[
                    keys.session(slug, ""),
                    keys.files(slug, ""),
                    keys.lock(slug, ""),
                    keys.holder(slug, ""),
                    rows,
                    decisions,
                    PAGE_FILES,
                    *replies.SESSION_FIELDS,
                ],
            )
        )
        return replies.workspace_status(ws, reply)

    # -- decisions ---------------------------------------------------------------------

    async def add_decision(self, who: Principal, text: str, session_id: str | None) -> Decision:
        _, encoded = await self._run(
            who,
            self._decide,
            [keys.decisions(who.workspace), keys.events(who.workspace)],
            [text, who.user_name, session_id or "", self._settings.decision_history],
        )
        return replies.decision(encoded)

    async def decisions(self, who: Principal, limit: int) -> list[Decision]:
        _, encoded = await self._run(who, self._decisions, [keys.decisions(who.workspace)], [limit])
        return replies.decisions(encoded)
