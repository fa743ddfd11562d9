"""One pub/sub connection that carries every live-event subscription of a replica.

A connection per subscribed workspace took one from the client's pool for as long as a
stream stayed open: a hundred workspaces with a stream each used the pool up, and every
command after them (``/health``, key look-ups) failed. Here channels are added to and
removed from one connection, opened with the first and closed with the last, and a
single reader hands each message to its channel's inbox. ``store.py`` decides what to
subscribe to; this module only carries it, like ``pipeline.py`` for commands.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from coordinator.errors import StoreUnavailable
from coordinator.transport import ERRORS, unavailable

# What an inbox holds: a message's data, or the failure that ended the connection.
Inbox = asyncio.Queue[str | BaseException]


class Channels:
    """Subscriptions on one connection of ``redis``'s, confirmed within ``timeout_s``."""

    def __init__(self, redis: Redis, timeout_s: float) -> None:
        self._redis = redis
        self._timeout_s = timeout_s
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._inboxes: dict[str, Inbox] = {}
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._changing = asyncio.Lock()  # one SUBSCRIBE or UNSUBSCRIBE at a time
        self._closing: set[asyncio.Task[None]] = set()

    async def join(self, channel: str) -> Inbox:
        """The inbox of ``channel``'s messages, from the moment Redis confirmed the
        subscription; a redis-py error when it failed or was not confirmed in time."""
        inbox: Inbox = asyncio.Queue()
        async with self._changing:
            if channel in self._inboxes:  # one subscriber per channel (live.py's topic)
                raise ValueError(f"{channel} is subscribed already")
            pubsub = self._pubsub
            if pubsub is None:
                pubsub = self._pubsub = self._redis.pubsub()
            confirmed = asyncio.get_running_loop().create_future()
            self._confirming[channel] = confirmed
            self._inboxes[channel] = inbox
            try:
                await pubsub.subscribe(channel)
                if self._reader is None:
                    self._reader = asyncio.ensure_future(self._read(pubsub))
                try:
                    async with asyncio.timeout(self._timeout_s):
                        await asyncio.shield(confirmed)
                except TimeoutError:
                    raise redis_errors.TimeoutError(
                        "Redis did not confirm the subscription in time"
                    ) from None
            except BaseException:
                self._confirming.pop(channel, None)
                self._inboxes.pop(channel, None)
                if not self._inboxes:
                    await self._close()
                raise
        return inbox

    async def leave(self, channel: str) -> None:
        """Unsubscribe; the connection closes with its last channel."""
        async with self._changing:
            if self._inboxes.pop(channel, None) is None:
                return  # ended with the connection already
            if not self._inboxes:
                await self._close()
            elif self._pubsub is not None:
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(channel)

    async def aclose(self) -> None:
        async with self._changing:
            self._inboxes.clear()
            await self._close()

    async def _read(self, pubsub: PubSub) -> None:
        try:
            while True:
                message: dict[str, Any] | None = await pubsub.get_message(timeout=None)
                if message is None:
                    continue
                channel = str(message["channel"])
                match message["type"]:
                    case "subscribe":
                        confirmed = self._confirming.pop(channel, None)
                        if confirmed is not None and not confirmed.done():
                            confirmed.set_result(None)
                    case "message":
                        inbox = self._inboxes.get(channel)
                        if inbox is not None:
                            inbox.put_nowait(str(message["data"]))
        except Exception as exc:  # the connection failed: so did every subscription on it
            self._fail(pubsub, exc)

    def _fail(self, pubsub: PubSub, exc: BaseException) -> None:
        if self._pubsub is not pubsub:
            return
        for confirmed in self._confirming.values():
            if not confirmed.done():
                confirmed.set_exception(exc)
        for inbox in self._inboxes.values():
            inbox.put_nowait(exc)
        self._confirming.clear()
        self._inboxes.clear()
        self._pubsub, self._reader = None, None
        closing = asyncio.ensure_future(_close_quietly(pubsub))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def _close(self) -> None:
        pubsub, reader = self._pubsub, self._reader
        self._pubsub, self._reader = None, None
        if reader is not None:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if pubsub is not None:
            await _close_quietly(pubsub)


async def _close_quietly(pubsub: PubSub) -> None:
    with contextlib.suppress(Exception):
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py


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
        if isinstance(item, ERRORS):
            raise unavailable(item) from item
        if isinstance(item, BaseException):
            raise StoreUnavailable(f"the subscription failed: {type(item).__name__}") from item
        return item
