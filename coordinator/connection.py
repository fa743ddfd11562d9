"""One client connection of ``coordinator serve``, with the limits that keep a careless or
hostile client from exhausting a replica: uvicorn's httptools protocol, plus

- a request line and headers of at most ``max_header_bytes``: past it, 431 and close (the
  parser would copy a header that grows without end over and over, stalling every other
  client);
- a request's headers and body in full within ``request_timeout_s`` of the connection
  opening or the request's first byte: else 408 (or nothing, if no byte came) and close;
- no more read from a client while MAX_PIPELINED of its requests wait for an answer, and
  the connection closed if it sends more than that;
- an answer its client leaves unread for ``send_timeout_s`` drops the connection;
- at most ``max_connections`` connections: past it, the connection that has waited
  longest for a request makes room (a new one, when every other is busy answering).

A 503 would let an agent go ahead without coordination: none of these answers with one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import httptools
import msgspec
from uvicorn._types import ASGI3Application, ASGIReceiveCallable, ASGISendCallable, Scope
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from coordinator.config import Settings
from coordinator.errors import CoordinatorError, HeadersTooLarge, RequestTimeout

# Requests one connection may have waiting behind the one being answered. Clients that
# pipeline at all (few do) send a handful.
MAX_PIPELINED = 32
# Once the server is shutting down, a connection whose answer has not moved for this long
# is dropped: its client stopped reading, and the server would wait for it.
SHUTDOWN_FLUSH_S = 1.0
log = logging.getLogger("coordinator.connection")


@dataclass(eq=False)
class Limits:
    """The limits, and what the connections of one server share to keep them."""

    max_connections: int
    max_header_bytes: int
    request_timeout_s: float
    send_timeout_s: float
    # Connections with no request being answered, the one waiting longest first.
    waiting: dict[Connection, None] = field(default_factory=dict)
    _warned_at: float = -60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            settings.max_connections,
            settings.max_header_bytes,
            settings.request_timeout_s,
            settings.send_timeout_s,
        )

    def make_room(self, newcomer: Connection) -> None:
        """Close the connection that has waited longest for a request, or the newcomer
        when every other one is busy answering."""
        victim = next(iter(self.waiting), newcomer)
        now = time.monotonic()
        if now - self._warned_at >= 60:
            self._warned_at = now
            log.warning(
                "%d connections open, the most COORDINATOR_MAX_CONNECTIONS allows: closing %s",
                self.max_connections,
                "the new one (all are busy)" if victim is newcomer else "the longest idle one",
            )
        victim.drop()


class Connection(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol under ``Limits``; build with ``partial(Connection, limits)``."""

    def __init__(
        self,
        limits: Limits,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits
        # Per connection
        # The request being received must be in by _due. Its timer is left running when a
        # request completes in time, and moved on when it fires early: a timer made and
        # cancelled at every request costs more than the rest of the deadline's work.
        self._due: float | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._stalled: asyncio.TimerHandle | None = None  # the client stopped reading
        self._refused = False  # answered by a limit: nothing more is read
        self._lost = False
        self._shutting_down = False
        self._draining = False  # each answer closes the connection after it
        self._answering: RequestResponseCycle | None = None  # its app runs (self.cycle: newest)
        # Per request
        self._in_head = False
        self._head_bytes = 0

    # -- the connection ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._wait_for_request()
        if len(self.connections) > self.limits.max_connections:
            self.limits.make_room(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self._cancel_deadline()
        self.limits.waiting.pop(self, None)
        if self._stalled is not None:
            self._stalled.cancel()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            if not self._refused:
                raise
            return  # a limit stopped the parser, and answered
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # no WebSocket route here
            return
        if self._in_head:
            # Counted per read, not per byte of the head: a read that also held earlier
            # requests counts whole (only a client that pipelines sees the difference).
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self.refuse(
                    HeadersTooLarge(
                        f"the request line and headers are over {self.limits.max_header_bytes} "
                        "bytes (COORDINATOR_MAX_HEADER_BYTES)"
                    )
                )

    def drain(self) -> None:
        """The server is stopping: from now on each answer says ``Connection: close`` and
        the connection closes after it, while an idle one stays open. Closing an idle one
        could meet a request its client (a proxy) is sending on it, which the client then
        can't tell from one the server received: a proxy sends no such POST on elsewhere."""
        self._draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    def shutdown(self) -> None:
        self._shutting_down = True
        super().shutdown()
        if self.flow.write_paused:
            self.drop()
        else:
            self.loop.call_later(SHUTDOWN_FLUSH_S, self._drop_if_stuck, None)

    # -- parser callbacks -------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        if self._due is None:
            self._start_deadline()

    def on_headers_complete(self) -> None:
        self._in_head = False
        if len(self.pipeline) >= MAX_PIPELINED:
            self.drop()
            self._refused = True
            raise _TooManyPipelined  # stops the parser: the rest of this read is dropped
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not before:
            cycle.transport = _OneWrite(self.transport, cycle)  # type: ignore[assignment]
            if self._draining:
                cycle.keep_alive = False

    def on_message_complete(self) -> None:
        self._stop_deadline()
        self.limits.waiting.pop(self, None)
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._lost or self.transport.is_closing():
            return
        if self.pipeline:
            # uvicorn reads on at every answer: a client that sends requests faster than
            # it reads the answers would queue them without end.
            self.flow.pause_reading()
        elif self.cycle is None or self.cycle.response_complete:
            self.limits.waiting[self] = None

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        async def answer(
            scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
        ) -> None:
            await app(scope, receive, send)
            if cycle.response_started and not cycle.response_complete and not cycle.disconnected:
                # The app gave up on an answer it could not finish (an event stream whose
                # client stopped reading): the connection goes, without waiting to flush.
                self.drop()

        self._answering = cycle
        super()._start_asgi_task(cycle, answer)

    # -- flow control -----------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._shutting_down:
            self.drop()
        elif self._stalled is None:
            self._stalled = self.loop.call_later(self.limits.send_timeout_s, self.drop)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None

    # -- ending it --------------------------------------------------------------------

    def refuse(self, error: CoordinatorError) -> None:
        """Answer ``error``, when no other answer is under way, and close."""
        running = self._answering
        if running is not None and running.response_started and not running.response_complete:
            self.drop()
            return
        self._refused = True
        self._cancel_deadline()
        self.limits.waiting.pop(self, None)
        self._disconnect_requests()
        body = msgspec.json.encode({"error": error.code, "message": error.message})
        head = (
            f"HTTP/1.1 {error.status} {_REASONS[error.status]}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        )
        self.transport.write(head.encode() + body)
        self.transport.close()

    def drop(self) -> None:
        """Close the connection at once, discarding what its client has not read."""
        self._refused = True
        self._cancel_deadline()
        self.limits.waiting.pop(self, None)  # it makes no more room
        self._disconnect_requests()
        self.flow.resume_writing()  # an answer waiting to write returns
        # A reset, not a FIN: the kernel would otherwise go on holding (and trickling out)
        # the megabytes queued for a client that reads nothing.
        sock = self.transport.get_extra_info("socket")
        with contextlib.suppress(AttributeError, OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self.transport.abort()

    def _disconnect_requests(self) -> None:
        """Every request of the connection reads a disconnect, and its answer goes nowhere
        (uvicorn does this once the connection is lost: it is not yet)."""
        for cycle in (self._answering, self.cycle, *(cycle for cycle, _ in self.pipeline)):
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()

    def _drop_if_stuck(self, before: int | None) -> None:
        if self._lost:
            return
        pending = self.transport.get_write_buffer_size()
        if pending and pending == before:
            self.drop()
        else:
            self.loop.call_later(SHUTDOWN_FLUSH_S, self._drop_if_stuck, pending)

    # -- the deadline for a request to arrive -----------------------------------------

    def _wait_for_request(self) -> None:
        self.limits.waiting[self] = None
        self._start_deadline()

    def _start_deadline(self) -> None:
        self._due = self.loop.time() + self.limits.request_timeout_s
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.limits.request_timeout_s, self._check)

    def _stop_deadline(self) -> None:
        self._due = None

    def _cancel_deadline(self) -> None:
        self._due = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _check(self) -> None:
        self._deadline = None
        if self._due is None:
            return
        left = self._due - self.loop.time()
        if left > 0:  # a later request's deadline
            self._deadline = self.loop.call_later(left, self._check)
            return
        self._due = None
        self._timed_out()

    def _timed_out(self) -> None:
        if self._lost or self._refused:
            return
        cycle = self.cycle
        if not self._in_head and cycle is not None and cycle.response_started:
            self.drop()  # answered already, and the rest of its body never came
            return
        began = self._in_head or (self.cycle is not None and self.cycle.more_body)
        if not began:  # nothing sent at all: nobody to tell
            self._refused = True
            self.transport.close()
            return
        self.refuse(
            RequestTimeout(
                f"the request did not arrive in full within {self.limits.request_timeout_s:g} s "
                "(COORDINATOR_REQUEST_TIMEOUT)"
            )
        )


class _OneWrite:
    """The transport as one request's answer sees it. The head of an answer of known length
    waits for the body's first bytes and leaves with them: one write, so one system call
    and one TCP segment, where uvicorn makes two (a hook's answer is a few hundred bytes)."""

    __slots__ = ("_cycle", "_head", "_held", "_transport")

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head = True  # the answer's head is the first write once it has started
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif self._head and self._cycle.response_started:
            self._head = False
            cycle = self._cycle
            # Its length known and not a HEAD: its body's writes follow (an empty one too).
            if cycle.chunked_encoding is False and cycle.scope["method"] != "HEAD":
                self._held = data
                return
        self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            data, self._held = self._held, None
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


class _TooManyPipelined(Exception):
    pass


_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST
_REASONS = {408: "Request Timeout", 431: "Request Header Fields Too Large"}
