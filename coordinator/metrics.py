"""Prometheus metrics of one replica, served at ``GET /metrics``.

Each app has its own registry (never the process-global one), so apps in one process
(the tests) count apart. Labels are bounded: a route is its template
(``/workspaces/{ref}/sessions``), never the path a client sent; an event is the
coordinator's own kind (``pre_tool``), never the name an agent spelled; no label holds a
workspace, a user or a key. A scrape reads counters in memory, never Redis.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response

from coordinator import __version__
from coordinator.errors import Unauthorized
from coordinator.events import Kind

# Seconds. A hook answers in about a millisecond idle and under 15 ms at full load
# (BENCHMARKS.md); the top buckets catch a Redis that hangs up to its timeout.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
TOOL_EVENTS = (Kind.PRE_TOOL.value, Kind.POST_TOOL.value)
DECISIONS = ("allow", "deny")


class Metrics:
    """The counters and histograms of one app, and what ``/metrics`` answers."""

    def __init__(
        self, token: str | None = None, open_streams: Callable[[], int] = lambda: 0
    ) -> None:
        self.token = token
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "coordinator_requests",
            "HTTP requests answered, by route template, hook event kind and status.",
            ["route", "event", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "coordinator_request_duration_seconds",
            "Time from a request's arrival to its answer, by route template and event kind.",
            ["route", "event"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        decisions = Counter(
            "coordinator_hook_decisions",
            "Tool events answered allow or deny (deny: another session holds the file).",
            ["event", "decision"],
            registry=registry,
        )
        self.started = Counter(
            "coordinator_sessions_started",
            "Sessions created, by a session start or by any event of an unknown conversation.",
            registry=registry,
        )
        self.ended = Counter(
            "coordinator_sessions_ended",
            "Live sessions ended by an end event or POST /workspaces/sessions/end "
            "(sessions that expire are not seen).",
            registry=registry,
        )
        self.store_errors = Counter(
            "coordinator_store_errors",
            "Requests answered 503 store_unavailable: Redis unreachable, too slow or refusing.",
            registry=registry,
        )
        self.rate_limited = Counter(
            "coordinator_rate_limited",
            "Requests answered 429 rate_limited.",
            registry=registry,
        )
        Info("coordinator_build", "The running version.", registry=registry).info(
            {"version": __version__}
        )
        Gauge(
            "coordinator_event_streams",
            "Event streams (GET /workspaces/{ref}/events) open on this replica now.",
            registry=registry,
        ).set_function(open_streams)  # read at the scrape, nothing on the hot path
        ProcessCollector(registry=registry)  # CPU, memory, open files of this replica
        # Children looked up once: labels() takes a lock and builds a tuple on every call.
        self._decisions = {
            (event, decision): decisions.labels(event, decision)
            for event in TOOL_EVENTS
            for decision in DECISIONS
        }
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def count(
        self,
        route: str,
        event: str,
        status: int,
        seconds: float,
        decision: str | None = None,
        error: str | None = None,
        started: bool = False,
        ended: bool = False,
    ) -> None:
        """Count one answered request."""
        key = (route, event, status)
        series = self._series.get(key)
        if series is None:
            series = (
                self.requests.labels(route, event, str(status)),
                self.latency.labels(route, event),
            )
            self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)
        if decision is not None:
            self._decisions[event, decision].inc()
        if started:
            self.started.inc()
        if ended:
            self.ended.inc()
        if error == "store_unavailable":
            self.store_errors.inc()
        elif error == "rate_limited":
            self.rate_limited.inc()

    async def scrape(self, request: Request) -> Response:
        """``GET /metrics``: open, or only to ``Authorization: Bearer <token>`` if one is set."""
        if self.token is not None:
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), self.token.encode()
            ):
                raise Unauthorized("send COORDINATOR_METRICS_TOKEN as 'Authorization: Bearer ...'")
        # The classic text format (0.0.4) is what every Prometheus version reads.
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)
