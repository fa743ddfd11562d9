"""``GET /workspaces/{id}/events``: a workspace's state changes as Server-Sent Events.

The scripts publish each change on the workspace's channel (keys.events) in the same
atomic step as the change itself; this relays them to one client. Each stream holds a
pub/sub connection of its own, closed as soon as the client goes away, the key is
revoked (checked at every keepalive), Redis fails, or the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from starlette.types import Receive, Scope, Send

from coordinator.auth import authenticate, check_workspace
from coordinator.errors import StoreUnavailable, Unauthorized
from coordinator.models import Principal
from coordinator.store import Store, Subscription

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    # nginx and its kin buffer answers by default; an event must not wait in a proxy.
    (b"x-accel-buffering", b"no"),
]
SUBSCRIBED = b": subscribed\n\n"
KEEPALIVE = b": keepalive\n\n"
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


class EventStream:
    """The route, as a bare ASGI app: it must watch for the client's disconnect while it
    waits on Redis, which a Starlette StreamingResponse only notices when it writes."""

    def __init__(self, store: Store, keepalive_s: float) -> None:
        self.store = store
        self.keepalive_s = keepalive_s
        self._closing = asyncio.Event()

    def close_all(self) -> None:
        """End every open stream (the server is shutting down: it waits for them)."""
        self._closing.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Errors raised before the stream starts are answered by the app's handlers.
        headers = dict(scope["headers"])
        who = await authenticate(headers.get(b"authorization", b"").decode("latin-1"), self.store)
        check_workspace(who, scope["path_params"]["ref"])
        if not await self.store.key_stands(who):  # revoked through another replica
            raise Unauthorized("this API key has been revoked")
        if scope["method"] == "HEAD":  # the headers a GET would get, and no stream
            await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return
        async with self.store.subscribe(who) as subscription:
            try:
                await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
                await send({"type": "http.response.body", "body": SUBSCRIBED, "more_body": True})
            except OSError:  # the client left already
                return
            gone = await self._relay_until_done(who, subscription, receive, send)
        if not gone:
            with contextlib.suppress(OSError):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _relay_until_done(
        self, who: Principal, subscription: Subscription, receive: Receive, send: Send
    ) -> bool:
        """Relay until something ends the stream; whether the client went away."""
        relay = asyncio.ensure_future(self._relay(who, subscription, send))
        disconnect = asyncio.ensure_future(_disconnected(receive))
        closing = asyncio.ensure_future(self._closing.wait())
        tasks = {relay, disconnect, closing}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if relay.done() and not relay.cancelled():
            failure = relay.exception()
            if isinstance(failure, OSError):  # the client went away as we wrote
                return True
            if isinstance(failure, StoreUnavailable):
                log.warning("event stream of %s ended: %s", who.workspace, failure.message)
            elif failure is not None:
                raise failure
        return disconnect.done() and not disconnect.cancelled()

    async def _relay(self, who: Principal, subscription: Subscription, send: Send) -> None:
        """Events as they come, a keepalive comment when none came for a while; returns
        once the key has been revoked."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.keepalive_s
        while True:
            event = await subscription.next(max(due - loop.time(), 0.0))
            if event is not None:
                body = frame(event)
                if body is None:
                    continue
            elif loop.time() >= due:
                if not await self.store.key_stands(who):
                    return
                body = KEEPALIVE
                due = loop.time() + self.keepalive_s
            else:
                continue
            await send({"type": "http.response.body", "body": body, "more_body": True})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
