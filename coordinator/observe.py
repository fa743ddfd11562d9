"""What each request was: counted in the metrics and written as one log line.

``Observe`` wraps the app. It puts a ``RequestRecord`` in the request's scope; the
handlers fill in what only they know (the event, the agent, the workspace, allow or deny,
the error code) and ``Observe`` reads it once the answer is sent.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from coordinator.logs import REQUEST_LOGGER, request_line
from coordinator.metrics import Metrics

RECORD = "coordinator.record"
UNMATCHED = "unmatched"  # any path no route serves: a 404, counted under one label
DISCONNECTED = 499  # the client left before it was answered (nginx's convention)
log = logging.getLogger(REQUEST_LOGGER)


class RequestRecord:
    """What the handlers learnt about one request. Strings only from bounded sets,
    except ``workspace`` and ``agent``, which go to the log and never to a metric label."""

    __slots__ = ("agent", "decision", "ended", "error", "event", "started", "workspace")

    def __init__(self) -> None:
        self.event = ""  # a Kind's value; empty off the hook route or before decoding
        self.agent: str | None = None
        self.workspace: str | None = None
        self.decision: str | None = None  # "allow" or "deny", for tool events
        self.error: str | None = None
        self.started = False
        self.ended = False


def record_of(scope: Scope) -> RequestRecord:
    record: RequestRecord = scope[RECORD]
    return record


class Observe:
    """Times each HTTP request, counts it, and logs one line for it.

    ``routes`` maps each endpoint to its route template: Starlette's router leaves the
    endpoint it picked in the scope, so a path's template costs one dict lookup.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: dict[Any, str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        record = RequestRecord()
        scope[RECORD] = record
        status = DISCONNECTED
        started = time.perf_counter()

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        except Exception:
            status = 500  # Starlette's outer layer answers it, after we have seen it fail
            record.error = record.error or "internal_error"
            raise
        finally:
            seconds = time.perf_counter() - started
            route = self.routes.get(scope.get("endpoint"), UNMATCHED)
            self.metrics.count(
                route,
                record.event,
                status,
                seconds,
                record.decision,
                record.error,
                record.started,
                record.ended,
            )
            level = logging.INFO if status < 500 else logging.ERROR
            if status == 503:
                level = logging.WARNING  # Redis is away: the replica is fine
            if log.isEnabledFor(level):
                request_line(log, level, _line(scope, route, record, status, seconds))


def _line(
    scope: Scope, route: str, record: RequestRecord, status: int, seconds: float
) -> dict[str, Any]:
    """The request's log fields. Never a header, a query string or a body: they hold keys
    and file contents."""
    return {
        "method": scope["method"],
        "route": route,
        "event": record.event or None,
        "agent": record.agent,
        "workspace": record.workspace,
        "status": status,
        "decision": record.decision,
        "error": record.error,
        "duration_ms": int(seconds * 1e6 + 0.5) / 1000,  # to the µs; round() costs more
    }
