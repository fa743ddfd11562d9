"""GET /metrics: after real traffic, every counter holds exactly what happened, under
route templates and event kinds, never a workspace or a raw path."""

from __future__ import annotations

import contextlib
import re
import time

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from coordinator.app import create_app
from coordinator.config import Settings
from coordinator.metrics import DECISIONS, LATENCY_BUCKETS, TOOL_EVENTS, Metrics
from coordinator.models import session_id_for
from coordinator.routes import END, EVENTS, HOOK, SESSIONS, of_workspace
from tests.helpers import Service, Team, bearer, hook
from tests.servers import free_port

LABELS = ["route", "event", "status"]
REQUESTS_HELP = "HTTP requests answered, by route template, hook event kind and status."
LATENCY_HELP = "Time from a request's arrival to its answer, by route template and event kind."
DECISIONS_HELP = "Tool events answered allow or deny (deny: another session holds the file)."
BURST = 8
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def settings() -> Settings:
    # A bucket that does not refill during a test: the ninth request of a key is a 429.
    return Settings(rate_per_s=0.001, rate_burst=BURST)


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient, **headers: str) -> Samples:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.text)


@pytest.mark.anyio
async def test_the_counters_after_real_traffic(client: httpx.AsyncClient, team: Team) -> None:
    a, b = team.dev_a, team.dev_b
    claim = {"event": "preToolUse", "file_path": "src/app.py"}
    assert (await hook(client, b, conversation_id="conv-b", **claim))["permission"] == "allow"
    denied = await hook(client, a, conversation_id="conv-a", **{**claim, "event": "PreToolUse"})
    assert denied["permission"] == "deny"
    edited = await hook(client, a, event="postToolUse", conversation_id="conv-a", file_path="b.py")
    assert edited["permission"] == "allow"
    await hook(client, b, event="SessionStart", conversation_id="conv-b")  # resumed, not new
    await hook(client, b, event="sessionEnd", conversation_id="conv-b")
    ended = await client.post(
        END,
        headers=bearer(a),
        json={"session_id": session_id_for("acme", "conv-a")},
    )
    assert ended.status_code == 200
    retried = await client.post(
        END,
        headers=bearer(a),
        json={"session_id": session_id_for("acme", "conv-a")},
    )
    assert retried.status_code == 200  # an end retried: answered again, not counted again
    assert (await client.get(of_workspace(SESSIONS, "acme"), headers=bearer(a))).status_code == 200
    assert (await client.get("/nowhere/acme-secret-path")).status_code == 404
    outsider = [
        (await client.get("/workspaces/other/sessions", headers=bearer(team.outsider))).status_code
        for _ in range(BURST + 1)
    ]
    assert outsider == [200] * BURST + [429]

    first = await scrape(client)
    second = await scrape(client)

    def requests(route: str, status: str, event: str = "") -> float:
        return value(first, "coordinator_requests_total", route=route, event=event, status=status)

    assert requests(HOOK, "200", "pre_tool") == 2
    assert requests(HOOK, "200", "post_tool") == 1
    assert requests(HOOK, "200", "start") == 1
    assert requests(HOOK, "200", "end") == 1
    assert requests(END, "200") == 2
    assert requests(END, "404") == 0
    assert requests(SESSIONS, "200") == 1 + BURST
    assert requests(SESSIONS, "429") == 1
    assert requests("unmatched", "404") == 1
    assert requests("/metrics", "200") == 0  # a scrape is counted once it is answered
    assert value(second, "coordinator_requests_total", route="/metrics", event="", status="200")
    total = sum(v for (name, _), v in first.items() if name == "coordinator_requests_total")
    assert total == 9 + BURST + 1

    def decisions(event: str, decision: str) -> float:
        return value(first, "coordinator_hook_decisions_total", event=event, decision=decision)

    assert decisions("pre_tool", "allow") == 1
    assert decisions("pre_tool", "deny") == 1
    assert decisions("post_tool", "allow") == 1
    assert decisions("post_tool", "deny") == 0
    assert value(first, "coordinator_sessions_started_total") == 2  # conv-b, then conv-a
    assert value(first, "coordinator_sessions_ended_total") == 2  # the end event, then /end
    assert value(first, "coordinator_rate_limited_total") == 1
    assert value(first, "coordinator_store_errors_total") == 0

    def latency_count(route: str, event: str = "") -> float:
        return value(first, "coordinator_request_duration_seconds_count", route=route, event=event)

    assert latency_count(HOOK, "pre_tool") == 2
    assert latency_count(HOOK, "end") == 1
    assert latency_count(SESSIONS) == 1 + BURST + 1
    inf = value(
        first,
        "coordinator_request_duration_seconds_bucket",
        route=HOOK,
        event="pre_tool",
        le="+Inf",
    )
    assert inf == 2
    assert 0 < value(
        first, "coordinator_request_duration_seconds_sum", route=HOOK, event="pre_tool"
    )

    # Bounded labels: route templates only, no workspace, no raw path, no key.
    routes = {dict(labels).get("route") for _, labels in first} - {None}
    assert routes == {HOOK, SESSIONS, END, "unmatched"}
    everything = " ".join(f"{name} {sorted(labels)}" for name, labels in second)
    for secret in ("acme", "other", "secret", team.dev_a, team.outsider):
        assert secret not in everything


@pytest.mark.anyio
async def test_an_unreachable_redis_is_counted_as_store_errors() -> None:
    app = create_app(Settings(redis_url=f"redis://127.0.0.1:{free_port()}"))
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
        assert (await client.get("/health")).status_code == 503
        body = {"event": "preToolUse", "conversation_id": "c", "file_path": "a.py"}
        answered = await client.post(HOOK, headers=bearer("ek_whatever"), json=body)
        assert answered.status_code == 503
        samples = await scrape(client)  # /metrics needs no Redis
    await app.state.store.aclose()
    assert value(samples, "coordinator_store_errors_total") == 2
    # The key could not be checked, so the body was never read: no event.
    hooked = {"route": HOOK, "event": "", "status": "503"}
    assert value(samples, "coordinator_requests_total", **hooked) == 1
    health = {"route": "/health", "event": "", "status": "503"}
    assert value(samples, "coordinator_requests_total", **health) == 1
    assert (
        value(samples, "coordinator_hook_decisions_total", event="pre_tool", decision="allow") == 0
    )


@pytest.mark.anyio
async def test_each_app_counts_apart(client: httpx.AsyncClient, redis: Redis, team: Team) -> None:
    await hook(client, team.dev_a, event="file_check", conversation_id="c")
    other = create_app(Settings(), redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(other), base_url="http://c") as c:
        samples = await scrape(c)
    await other.state.store.aclose()
    ours = await scrape(client)
    assert value(ours, "coordinator_requests_total", route=HOOK, event="heartbeat", status="200")
    assert not any(name == "coordinator_requests_total" for name, _ in samples)


@pytest.mark.anyio
async def test_a_metrics_token_guards_the_scrape(redis: Redis, team: Team) -> None:
    app = create_app(Settings(metrics_token="s3cret-token"), redis)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://c") as c:
        anonymous = await c.get("/metrics")
        with_api_key = await c.get("/metrics", headers=bearer(team.dev_a))
        wrong = await c.get("/metrics", headers=bearer("s3cret-tokenX"))
        allowed = await c.get("/metrics", headers=bearer("s3cret-token"))
    await app.state.store.aclose()
    for refused in (anonymous, with_api_key, wrong):
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized"
    assert allowed.status_code == 200
    samples = parse(allowed.text)
    assert (
        value(samples, "coordinator_requests_total", route="/metrics", event="", status="401") == 3
    )


@pytest.mark.real_redis
def test_a_live_server_serves_its_metrics(service: Service) -> None:
    headers = bearer(service.dev_a)
    body = {"event": "preToolUse", "conversation_id": "conv-a", "file_path": "src/app.py"}
    for _ in range(3):
        hooked = httpx.post(f"{service.url}{HOOK}", json=body, headers=headers)
        assert hooked.json() == {"permission": "allow"}
    other = {**body, "conversation_id": "conv-b"}
    denied = httpx.post(f"{service.url}{HOOK}", json=other, headers=bearer(service.dev_b))
    assert denied.json()["permission"] == "deny"

    response = httpx.get(f"{service.url}/metrics")

    assert response.status_code == 200
    samples = parse(response.text)
    pre = {"route": HOOK, "event": "pre_tool"}
    assert value(samples, "coordinator_requests_total", status="200", **pre) == 4
    assert value(samples, "coordinator_request_duration_seconds_count", **pre) == 4
    assert (
        value(samples, "coordinator_hook_decisions_total", event="pre_tool", decision="deny") == 1
    )
    assert value(samples, "coordinator_sessions_started_total") == 2
    assert value(samples, "process_cpu_seconds_total") > 0  # this replica's own process


@pytest.mark.real_redis
def test_open_event_streams_are_a_gauge(service: Service) -> None:
    def streams() -> float:
        response = httpx.get(f"{service.url}/metrics")
        return value(parse(response.text), "coordinator_event_streams")

    assert streams() == 0
    readers = []  # a line iterator dropped half-read would close its stream
    with httpx.Client(base_url=service.url, timeout=10) as http, contextlib.ExitStack() as open_:
        for api_key in (service.dev_a, service.dev_b):
            stream = open_.enter_context(
                http.stream("GET", of_workspace(EVENTS, "acme"), headers=bearer(api_key))
            )
            readers.append(stream.iter_lines())
            assert next(readers[-1]) == ": subscribed"
        assert streams() == 2
    # The replica notices the clients leave on its own time.
    deadline = time.monotonic() + 5
    while streams() != 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert streams() == 0


def test_the_request_series_read_as_prometheus_clients_own_would() -> None:
    """Metrics counts requests in plain numbers: its exposition is the one a Counter and a
    Histogram fed the same requests write (the _created timestamps aside)."""
    ours = Metrics()
    reference = CollectorRegistry()
    requests = Counter("coordinator_requests", REQUESTS_HELP, LABELS, registry=reference)
    latency = Histogram(
        "coordinator_request_duration_seconds",
        LATENCY_HELP,
        LABELS[:2],
        buckets=LATENCY_BUCKETS,
        registry=reference,
    )
    decisions = Counter(
        "coordinator_hook_decisions", DECISIONS_HELP, ["event", "decision"], registry=reference
    )
    for event in TOOL_EVENTS:
        for answer in DECISIONS:
            decisions.labels(event, answer)
    seen: list[tuple[str, str, int, float, str | None]] = [
        (HOOK, "pre_tool", 200, 0.0004, "allow"),
        (HOOK, "pre_tool", 200, 0.001, "deny"),  # on a bound: that bucket, as Histogram does
        (HOOK, "post_tool", 200, 0.0031, "allow"),
        ("/health", "", 503, 9.5, None),  # past every bound
        (HOOK, "pre_tool", 429, 0.02, None),
    ]
    for route, event, status, seconds, decision in seen:
        ours.count(route, event, status, seconds, decision)
        requests.labels(route, event, str(status)).inc()
        latency.labels(route, event).observe(seconds)
        if decision is not None:
            decisions.labels(event, decision).inc()

    def exposition(registry: CollectorRegistry) -> str:
        text = generate_latest(registry).decode()
        ours = ("coordinator_requests", "coordinator_request_duration", "coordinator_hook")
        lines = [
            line
            for line in text.splitlines()
            if (line.split(" ")[2] if line.startswith("#") else line).startswith(ours)
        ]
        return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", "\n".join(lines))

    assert exposition(ours.registry) == exposition(reference)
    assert "coordinator_requests_total{" in exposition(ours.registry)
