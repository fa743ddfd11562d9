"""Prometheus metrics of one replica, served at ``GET /metrics``.

Each app has its own registry (never the process-global one), so apps in one process
(the tests) count apart. Labels are bounded: a route is its template
(``/workspaces/{ref}/sessions``), never the path a client sent; an event is the
coordinator's own kind (``pre_tool``), never the name an agent spelled; no label holds a
workspace, a user or a key. A scrape reads counters in memory, never Redis.
"""

from __future__ import annotations

import hmac
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Info,
    ProcessCollector,
    generate_latest,
)
from prometheus_client import metrics as prometheus_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString
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
        # The three series every request adds to are counted in plain numbers and read
        # out at the scrape (prometheus_client takes a lock per increment and walks the
        # buckets in Python: a fifth of the cost of observing a request).
        self._requests = _RequestCounts()
        registry.register(self._requests)
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
        requests = self._requests
        counted = requests.requests.get((route, event, status))
        if counted is None:
            counted = requests.requests[route, event, status] = [0, time.time()]
        counted[0] += 1
        latency = requests.latency.get((route, event))
        if latency is None:
            latency = requests.latency[route, event] = _Latency()
        latency.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency.sum += seconds
        if decision is not None:
            requests.decisions[event, decision][0] += 1
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


class _Latency:
    __slots__ = ("buckets", "created", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)  # the last one: over every bound
        self.sum = 0.0
        self.created = time.time()


class _RequestCounts:
    """A collector of the requests, their latency and the hook decisions, in the families
    and samples prometheus_client's Counter and Histogram would write for them (``_total``,
    ``_bucket``/``_count``/``_sum``, ``_created``), series in the order first seen."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], list[float]] = {}  # [count, created]
        self.latency: dict[tuple[str, str], _Latency] = {}
        now = time.time()
        # Every tool event's two decisions are there from the start, at 0.
        self.decisions = {
            (event, decision): [0, now] for event in TOOL_EVENTS for decision in DECISIONS
        }

    def describe(self) -> list[Metric]:
        return []  # nothing to check against other collectors' names at registration

    def collect(self) -> Iterator[Metric]:
        # Whether prometheus_client writes _created series (PROMETHEUS_DISABLE_CREATED_SERIES)
        created = getattr(prometheus_metrics, "_use_created", True)
        requests = CounterMetricFamily(
            "coordinator_requests",
            "HTTP requests answered, by route template, hook event kind and status.",
            labels=["route", "event", "status"],
        )
        for (route, event, status), (count, since) in self.requests.items():
            requests.add_metric([route, event, str(status)], count, since if created else None)
        yield requests
        latency = HistogramMetricFamily(
            "coordinator_request_duration_seconds",
            "Time from a request's arrival to its answer, by route template and event kind.",
            labels=["route", "event"],
        )
        for (route, event), series in self.latency.items():
            total, cumulative = 0, []
            for bound, count in zip(_BOUNDS, series.buckets, strict=True):
                total += count
                cumulative.append((bound, total))
            latency.add_metric([route, event], cumulative, series.sum)
            if created:
                labels = {"route": route, "event": event}
                name = "coordinator_request_duration_seconds_created"
                latency.samples.append(Sample(name, labels, series.created))
        yield latency
        decisions = CounterMetricFamily(
            "coordinator_hook_decisions",
            "Tool events answered allow or deny (deny: another session holds the file).",
            labels=["event", "decision"],
        )
        for (event, decision), (count, since) in self.decisions.items():
            decisions.add_metric([event, decision], count, since if created else None)
        yield decisions


_BOUNDS: list[str] = [
    floatToGoString(bound)  # type: ignore[no-untyped-call]
    for bound in (*LATENCY_BUCKETS, float("inf"))
]
