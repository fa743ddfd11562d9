"""``GET /workspaces/{id}/events``: a workspace's state changes as Server-Sent Events.

The scripts publish each change on the workspace's channel (keys.events) in the same
atomic step as the change itself; this relays them to the clients. A replica holds one
subscription per workspace that has streams open on it (a Topic): it reads and frames each
event once and hands it to every stream of the workspace, and closes when its last stream
ends. A stream ends when its client goes away, its key is revoked (checked at every
keepalive), Redis fails, its client falls too far behind, or the server shuts down.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import AsyncIterator

import msgspec
from starlette.types import Receive, Scope, Send

from coordinator.asgi import check_workspace, principal
from coordinator.errors import StoreUnavailable, TooManyStreams
from coordinator.models import Principal
from coordinator.store import Store

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    # nginx and its kin buffer answers by default; an event must not wait in a proxy.
    (b"x-accel-buffering", b"no"),
]
SUBSCRIBED = b": subscribed\n\n"
KEEPALIVE = b": keepalive\n\n"
# Frames a stream may fall behind by (a client that stopped reading) before it is ended;
# its client reconnects and reads the listings again. (A client that reads nothing at all
# for COORDINATOR_SEND_TIMEOUT loses its connection, in connection.py.)
MAX_BACKLOG = 1_000
# How long the last bytes of an ended stream may take to go out before the connection is
# dropped instead (its client is not reading).
FINAL_WRITE_S = 1.0
log = logging.getLogger("coordinator.live")


class _Kind(msgspec.Struct):
    type: str


_kind = msgspec.json.Decoder(_Kind)


def frame(event: str) -> bytes | None:
    """One SSE message: the event's type as its name, its JSON (one line) as data. None
    for a message that is no event of ours (a PUBLISH by hand with redis-cli)."""
    try:
        kind = _kind.decode(event).type
    except msgspec.DecodeError:
        return None
    if not kind.isidentifier() or "\n" in event or "\r" in event:
        return None
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), event.encode())


class Listener:
    """One stream's frames, in order; None once the stream must end. ``behind`` is set
    when its client fell MAX_BACKLOG frames behind: the stream ends at once."""

    def __init__(self) -> None:
        # One place more than the backlog: the end always fits after what came before.
        self.frames: asyncio.Queue[bytes | None] = asyncio.Queue(MAX_BACKLOG + 1)
        self.ended = False
        self.behind = asyncio.Event()

    def offer(self, body: bytes) -> None:
        if self.frames.qsize() >= MAX_BACKLOG:
            self.behind.set()
            self.end()
        elif not self.ended:
            self.frames.put_nowait(body)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self.frames.put_nowait(None)


class Topic:
    """This replica's subscription to one workspace's channel, shared by its streams."""

    def __init__(self) -> None:
        self.listeners: set[Listener] = set()
        self.ready = asyncio.Event()  # subscribed, or failed
        self.failure: StoreUnavailable | None = None
        self.pump: asyncio.Task[None] | None = None


class EventStream:
    """The route, as a bare ASGI app: it must watch for the client's disconnect while it
    waits for events, which a Starlette StreamingResponse only notices when it writes."""

    def __init__(self, store: Store, keepalive_s: float, per_key: int) -> None:
        self.store = store
        self.keepalive_s = keepalive_s
        self.per_key = per_key
        self._closing = asyncio.Event()
        self._topics: dict[str, Topic] = {}
        self._open_by_key: collections.Counter[str] = collections.Counter()

    def open_streams(self) -> int:
        return sum(len(topic.listeners) for topic in self._topics.values())

    def close_all(self) -> None:
        """End every open stream (the server is shutting down: it waits for them)."""
        self._closing.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Errors raised before the stream starts are answered by the app's handlers.
        who = await principal(scope, self.store)
        check_workspace(who, scope["path_params"]["ref"])
        # Opening a stream is a request of the key like any other: refused once the key is
        # revoked (through any replica) or over its rate, so reconnecting in a loop is too.
        await self.store.check_key(who)
        if scope["method"] == "HEAD":  # the headers a GET would get, and no stream
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        # Each stream holds memory on this replica as long as it is open: a key gets a few.
        if self._open_by_key[who.digest] >= self.per_key:
            raise TooManyStreams(
                f"this API key has {self.per_key} event streams open on this server already "
                "(COORDINATOR_STREAMS_PER_KEY); close one first"
            )
        self._open_by_key[who.digest] += 1
        try:
            gone = await self._stream(who, receive, send)
        finally:
            self._open_by_key[who.digest] -= 1
            if not self._open_by_key[who.digest]:
                del self._open_by_key[who.digest]
        if not gone:
            # Unfinished, the answer makes the server drop the connection (connection.py).
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(FINAL_WRITE_S):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _stream(self, who: Principal, receive: Receive, send: Send) -> bool:
        """The stream itself, from its headers on; whether the client went away."""
        async with self._listen(who) as listener:
            try:
                await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
                await send({"type": "http.response.body", "body": SUBSCRIBED, "more_body": True})
            except OSError:  # the client left already
                return True
            return await self._relay_until_done(who, listener, receive, send)

    # -- one subscription per workspace ------------------------------------------------

    @contextlib.asynccontextmanager
    async def _listen(self, who: Principal) -> AsyncIterator[Listener]:
        """A listener on the workspace's topic, once its subscription is confirmed (so no
        later event is missed); StoreUnavailable when Redis refuses it."""
        topic = self._topics.get(who.workspace)
        if topic is None:
            topic = self._topics[who.workspace] = Topic()
            topic.pump = asyncio.ensure_future(self._pump(who, topic))
        listener = Listener()
        topic.listeners.add(listener)
        try:
            await topic.ready.wait()
            if topic.failure is not None:
                raise topic.failure
            yield listener
        finally:
            topic.listeners.discard(listener)
            if not topic.listeners and topic.pump is not None:
                self._drop(who.workspace, topic)
                topic.pump.cancel()
                await asyncio.gather(topic.pump, return_exceptions=True)

    async def _pump(self, who: Principal, topic: Topic) -> None:
        """Read the workspace's channel and hand each event to every listener."""
        try:
            async with self.store.subscribe(who) as subscription:
                topic.ready.set()
                while True:
                    event = await subscription.next(3600.0)
                    body = None if event is None else frame(event)
                    if body is not None:
                        for listener in list(topic.listeners):
                            listener.offer(body)
        except StoreUnavailable as exc:
            topic.failure = exc
            if topic.ready.is_set():
                log.warning("event streams of %s ended: %s", who.workspace, exc.message)
        finally:
            # No await before this: a stream that comes after starts a new topic.
            self._drop(who.workspace, topic)
            topic.ready.set()
            for listener in list(topic.listeners):
                listener.end()

    def _drop(self, workspace: str, topic: Topic) -> None:
        if self._topics.get(workspace) is topic:
            del self._topics[workspace]

    # -- one stream --------------------------------------------------------------------

    async def _relay_until_done(
        self, who: Principal, listener: Listener, receive: Receive, send: Send
    ) -> bool:
        """Relay until something ends the stream; whether the client went away. The relay
        may be stuck writing to a client that stopped reading: the rest ends it anyway."""
        relay = asyncio.ensure_future(self._relay(listener, send))
        watch = asyncio.ensure_future(self._watch(who))
        disconnect = asyncio.ensure_future(_disconnected(receive))
        closing = asyncio.ensure_future(self._closing.wait())
        behind = asyncio.ensure_future(listener.behind.wait())
        tasks = {relay, watch, disconnect, closing, behind}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in (relay, watch):
            failure = None if task.cancelled() else task.exception()
            if isinstance(failure, OSError):  # the client went away as we wrote
                return True
            if isinstance(failure, StoreUnavailable):
                log.warning("event stream of %s ended: %s", who.workspace, failure.message)
            elif failure is not None:
                raise failure
        if behind.done() and not behind.cancelled():
            log.info("event stream of %s ended: its client is %d events behind",
                     who.workspace, MAX_BACKLOG)  # fmt: skip
        return disconnect.done() and not disconnect.cancelled()

    async def _relay(self, listener: Listener, send: Send) -> None:
        """Frames as they come, a keepalive comment when none came for a while; returns
        once the listener ends (Redis failed, too far behind)."""
        while True:
            try:
                async with asyncio.timeout(self.keepalive_s):
                    body = await listener.frames.get()
            except TimeoutError:
                body = KEEPALIVE
            if body is None:
                return
            await send({"type": "http.response.body", "body": body, "more_body": True})

    async def _watch(self, who: Principal) -> None:
        """Returns once the key is revoked, checked at the keepalive's pace: whether or
        not its client reads."""
        while True:
            await asyncio.sleep(self.keepalive_s)
            if not await self.store.key_stands(who):
                return


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
