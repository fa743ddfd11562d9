"""What only the trusted local admin (the CLI) does: workspaces, API keys, and the
``coordinator status`` snapshot. No API key checks these, so no route reaches them.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Sequence
from typing import Any

from redis.asyncio import Redis

from coordinator import keys, pages, replies
from coordinator.config import Settings
from coordinator.errors import NameTaken, NotFound, UsageError
from coordinator.models import (
    KeyInfo,
    Revoked,
    Workspace,
    WorkspaceStatus,
    digest_of,
    from_ms,
    key_id_of,
)
from coordinator.store import PAGE_FILES
from coordinator.transport import transport_for

KEY_ID = re.compile(r"[0-9a-f]{4,64}")  # a key's id as `keys list` shows it, or its head


class Admin:
    """Workspaces, API keys and status, on one Redis client (decoding responses)."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._settings = settings
        self._transport = transport_for(redis, settings.redis_timeout_s)

    async def aclose(self) -> None:
        """Close the admin's own connections (the client passed in stays open)."""
        await self._transport.aclose()

    async def _script(self, name: str, slug: str, digest: str, args: Sequence[Any]) -> list[Any]:
        """Run a script with lib.lua's head, for the key ``digest`` ('' for none)."""
        settings = self._settings
        head = [
            digest,
            settings.rate_per_s,
            settings.rate_burst,
            settings.session_ttl_ms,
            settings.reservation_ttl_ms,
            settings.hand_off_grace_ms,
            *keys.prefixes(slug),
            "",
        ]
        script_keys = keys.script_keys(slug, key_id_of(digest))
        reply: list[Any] = await self._transport.script(name, script_keys, [*head, *args])
        return reply

    async def now_ms(self) -> int:
        """Redis's clock, the one the scripts use, so replicas agree on times."""
        seconds, micros = await self._transport.call("TIME")
        return int(seconds) * 1000 + int(micros) // 1000

    # -- workspaces ---------------------------------------------------------------------

    async def create_workspace(self, slug: str, name: str | None = None) -> Workspace:
        key = keys.workspace(slug)
        ws_id = "ws_" + secrets.token_urlsafe(9)
        if not await self._transport.call("HSETNX", key, "id", ws_id):
            raise NameTaken(f"workspace {slug!r} exists already")
        created_ms = await self.now_ms()
        await self._transport.call(
            "HSET", key, "slug", slug, "name", name or slug, "created_ms", created_ms
        )
        await self._transport.call("SET", keys.workspace_id(ws_id), slug)
        return Workspace(slug, ws_id, name or slug, from_ms(created_ms))

    async def workspace(self, ref: str) -> Workspace | None:
        """The workspace named by its slug or its id."""
        slug = ref
        if ref.startswith("ws_"):
            slug = await self._transport.call("GET", keys.workspace_id(ref))
            if slug is None:
                return None
        ws_id, name, created_ms = await self._transport.call(
            "HMGET", keys.workspace(slug), "id", "name", "created_ms"
        )
        if ws_id is None:
            return None
        return Workspace(slug, ws_id, name, from_ms(int(created_ms)))

    async def workspace_slugs(self) -> list[str]:
        """Every workspace's slug, sorted. SCAN, never KEYS (on a Redis Cluster redis-py
        scans every primary), over the workspace records."""
        found = await self._transport.scan(keys.workspace_pattern())
        slugs = (keys.slug_of_workspace(key) for key in found)
        return sorted({slug for slug in slugs if slug is not None})

    async def status(self, ws: Workspace, rows: int, decisions: int) -> WorkspaceStatus:
        """One workspace at one instant: its newest ``rows`` sessions, its longest-lived
        ``rows`` reservations (with the totals of both) and its ``decisions`` newest
        decisions. For the trusted local admin only: it checks no API key."""
        args = [rows, decisions, PAGE_FILES, *pages.SESSION_FIELDS]
        return pages.workspace_status(ws, await self._script("status", ws.slug, "", args))

    # -- API keys -----------------------------------------------------------------------

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
        fields: list[Any] = ["workspace", ws.slug, "workspace_id", ws.id]
        fields += ["user_name", user_name, "created_ms", created_ms]
        if read_only:
            fields += ["read_only", 1]
        # The workspace's table first: a key missing from it is refused, so a failure
        # between the two writes leaves a dead key, never a half-live one.
        await self._transport.call("HSET", keys.workspace_keys(ws.slug), digest, user_name)
        await self._transport.call("HSET", keys.api_key(digest), *fields)
        return api_key, await self._key_info(digest, ws.slug, user_name)

    async def _key_info(
        self, digest: str, workspace: str | None = None, user_name: str | None = None
    ) -> KeyInfo:
        """The key of this digest as ``keys list`` shows it, from its record; NotFound once
        it is revoked. ``workspace`` and ``user_name``: as its workspace's table names it
        (listed even if its record is gone, as a key whose creation failed halfway)."""
        found_ws, found_user, created_ms, read_only = await self._transport.call(
            "HMGET", keys.api_key(digest), "workspace", "user_name", "created_ms", "read_only"
        )
        if found_ws is None and workspace is None:
            raise NotFound("no such API key (was it revoked already?)")
        return KeyInfo(
            key_id_of(digest),
            workspace or found_ws,
            user_name or found_user,
            from_ms(int(created_ms or 0)),
            read_only == "1",
        )

    async def list_keys(self, slug: str) -> list[KeyInfo]:
        table = await self._transport.fields(keys.workspace_keys(slug))
        return [await self._key_info(digest, slug, table[digest]) for digest in sorted(table)]

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
            for key in await self._transport.scan(keys.api_key(wanted) + "*")
        }
        if len(found) > 1:
            ids = ", ".join(sorted(key_id_of(digest) for digest in found))
            raise UsageError(f"key id {key_id!r} names {len(found)} keys ({ids}): give more digits")
        if not found:
            raise NotFound(f"no API key with id {key_id!r} (was it revoked already?)")
        return await self._revoke_digest(found.pop())

    async def _revoke_digest(self, digest: str) -> Revoked:
        info = await self._key_info(digest)
        ended = released = 0
        async for step_ended, step_released in self.revoke_steps(info.workspace, digest):
            ended, released = ended + step_ended, released + step_released
        await self._transport.call("DEL", keys.api_key(digest))
        return Revoked(info, ended, released)

    async def revoke_steps(self, ws: str, digest: str) -> AsyncIterator[tuple[int, int]]:
        """Revoke a key in bounded steps, one script call each (revoke.lua), yielding the
        sessions ended and files released of each: the first call takes the key out of its
        workspace's table (from then on every replica refuses it), and no call holds Redis
        up however much the key or its workspace holds. Interrupted, a revocation is taken
        up again from the start (the key's record goes last)."""
        stage, horizon, after_score, after_member = "start", "", "", ""
        while stage:
            args = [stage, horizon, after_score, after_member]
            reply = await self._script("revoke", ws, digest, args)
            ended, released, stage, horizon, after_score, after_member = replies.revoke_step(reply)
            yield ended, released
