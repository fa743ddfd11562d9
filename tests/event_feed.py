"""An event stream (GET /workspaces/{ref}/events) read frame by frame, as a client would."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import anyio
import httpx

from coordinator.routes import EVENTS, of_workspace
from tests.helpers import bearer


class Feed:
    """The frames of one open event stream: (event name, data), ':' for a comment."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 5.0) -> tuple[str, str]:
        """The next frame; ('end', '') once the server ended the stream."""
        name, data = "", ""
        with anyio.fail_after(timeout):
            async for line in self._lines:
                if line == "":
                    if name or data:
                        return name, data
                elif line.startswith(":"):
                    name, data = ":", line[1:].strip()
                elif line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = line.removeprefix("data: ")
        return "end", ""

    async def ends(self, timeout: float = 5.0) -> bool:
        """Whether the server ends the stream within ``timeout``, keepalives aside."""
        with anyio.move_on_after(timeout):
            while (frame := await self.next(timeout + 1)) != ("end", ""):
                assert frame == (":", "keepalive"), frame
            return True
        return False

    async def event(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next event, keepalives skipped; its name must match its type."""
        while True:
            name, data = await self.next(timeout)
            assert name != "end", "the stream ended"
            if name != ":":
                found: dict[str, Any] = json.loads(data)
                assert found["type"] == name
                return found


async def open_feed(
    http: httpx.AsyncClient,
    url: str,
    api_key: str,
    stack: contextlib.AsyncExitStack,
    ref: str = "acme",
) -> Feed:
    response = await stack.enter_async_context(
        http.stream("GET", url + of_workspace(EVENTS, ref), headers=bearer(api_key))
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-accel-buffering"] == "no"
    feed = Feed(response)
    assert await feed.next() == (":", "subscribed")
    return feed
