"""Race: many agents, two `coordinator serve` replicas, one Redis, a handful of files.

Sixty simulated agents (each its own conversation, four API keys) claim, re-claim, end and
go idle against two replicas picked at random per request, with TTLs of a second so that
reservations also lapse. The service is then judged from its answers alone.

Why the checks are sound. The client cannot see when Redis ran a script, only that it ran
between the moment the request was sent (``sent``, taken before the request is even queued)
and the moment its answer was read (``received``). Each check therefore only ever relies on
orderings that hold for every commit time inside those intervals; where the record cannot
tell, it gives the service the benefit of the doubt. T is the reservation TTL, MARGIN covers
the millisecond rounding of Redis's clock and of PX.

- A grant g of file f to A (an allowed pre/postToolUse: the script SETs the lock PX T)
  leaves A's lock alive during [commit g, commit g + T), since only A's own sessionEnd
  deletes a lock A holds, and nothing but the TTL shortens it. Renewals only lengthen it and
  are ignored: the window is a lower bound. So a grant h of f to B != A is a **double grant**
  when h certainly ran after g (g.received < h.sent), certainly before g's lock could lapse
  (h.received < g.sent + T - MARGIN), and A sent no sessionEnd between g and h's answer.
- A deny of f to C names a holder (the task of every agent is its conversation id, so the
  message names it and its user). That holder X must not be C, and must be **the holder by
  the record**: X was granted f by a request sent before the deny was answered; X's latest
  such grant was not certainly released (no end of X sent after that grant was answered and
  answered before the deny was sent); and X's lock had not certainly lapsed. Any event of X
  may renew its locks, so a lock lapses at the latest T after X's last event: it has
  certainly lapsed when X's last request sent before the deny was answered got its own
  answer more than T + MARGIN before the deny was sent.
- **No phantom conflict** is the last two clauses: after a release or a lapse, a deny must
  name someone granted after it. And C itself must not be denied a file it certainly still
  holds (its own grant, per the first rule, still alive and not released).

The run must also show that it raced: enough denies, enough grants that were possible only
because the previous holder had just released the file, and enough that were possible only
because the previous holder's reservation had lapsed.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import time
from bisect import bisect_left, bisect_right
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from coordinator.admin import Admin
from coordinator.config import Settings
from coordinator.models import session_id_for
from coordinator.routes import HOOK
from tests.helpers import bearer, provision, serve, stop

REPLICAS = 2
AGENTS = 60
OPERATIONS = 4_000
FILES = tuple(f"src/race/file_{i}.ts" for i in range(8))
EXTRA_USERS = ("Developer C", "Developer D")
USERS = ("Developer A", "Developer B", *EXTRA_USERS)  # the order of the keys
SESSION_TTL_S = 1.0
TTL = 1.5  # the reservation TTL, seconds
MARGIN = 0.05
EVENTS = {"start": "sessionStart", "pre": "preToolUse", "post": "postToolUse", "end": "sessionEnd"}
DENY = re.compile(
    r"File (?P<path>.+) is reserved by (?P<user>.+?)(?: — '(?P<task>.*)')? "
    r"\((?P<minutes>\d+) min remaining\)"
)


def conversation(agent: int) -> str:
    return f"race-agent-{agent:02d}"


class Call(msgspec.Struct, frozen=True):
    """One answered request, as the client saw it (times from time.monotonic())."""

    agent: int
    kind: str
    path: str | None
    sent: float
    received: float
    granted: bool = False
    holder: int | None = None  # the agent a deny names; None when it names none we know
    holder_user: str | None = None
    denied_path: str | None = None
    minutes: int = 0


def decode(agent: int, kind: str, path: str | None, sent: float, answer: Any) -> Call:
    """The record of one answer; raises on an answer the generic form never gives."""
    received = time.monotonic()
    if kind == "end":
        assert answer == {"ok": True}, answer
        return Call(agent, kind, path, sent, received)
    if kind == "start":
        assert answer["session_id"] == session_id_for("acme", conversation(agent)), answer
        return Call(agent, kind, path, sent, received)
    if answer == {"permission": "allow"}:
        return Call(agent, kind, path, sent, received, granted=True)
    assert answer["permission"] == "deny", answer
    match = DENY.fullmatch(answer["message"])
    assert match is not None, answer
    task = match["task"] or ""
    holder = int(task.removeprefix("race-agent-")) if task.startswith("race-agent-") else None
    return Call(
        agent, kind, path, sent, received, holder=holder, holder_user=match["user"],
        denied_path=match["path"], minutes=int(match["minutes"]),
    )  # fmt: skip


async def drive(urls: list[str], api_keys: list[str], seed: int) -> list[Call]:
    """Run the agents until OPERATIONS requests were answered; every answer, in order."""
    calls: list[Call] = []
    # Idle connections are dropped by the client well before uvicorn's 5 s keep-alive
    # timeout, so a busy machine cannot make a request race the server's close (ReadError).
    limits = httpx.Limits(
        max_connections=AGENTS, max_keepalive_connections=AGENTS, keepalive_expiry=2.0
    )
    async with httpx.AsyncClient(timeout=15, limits=limits) as http:

        async def send(agent: int, kind: str, path: str | None = None) -> Call:
            body: dict[str, str] = {"event": EVENTS[kind], "conversation_id": conversation(agent)}
            if kind != "end":
                body["task"] = conversation(agent)  # so that a deny names the agent
            if path is not None:
                body["file_path"] = path
            url = random.choice(urls)
            headers = bearer(api_keys[agent % len(api_keys)])
            sent = time.monotonic()
            response = await http.post(url + HOOK, json=body, headers=headers)
            assert response.status_code == 200, (response.status_code, response.text)
            call = decode(agent, kind, path, sent, response.json())
            calls.append(call)
            return call

        async def agent(number: int) -> None:
            """A holder works on its files, then ends, or goes quiet until its session
            or its reservations lapse; an agent holding nothing races for a file and,
            denied, backs off a little as a real agent would before trying again."""
            rng = random.Random(seed * 1_000 + number)
            held: set[str] = set()
            await asyncio.sleep(rng.uniform(0, 0.3))
            while len(calls) < OPERATIONS:
                roll = rng.random()
                if held:
                    if roll < 0.50:
                        await send(number, "post", rng.choice(sorted(held)))
                    elif roll < 0.65:
                        path = rng.choice(FILES)
                        if (await send(number, "pre", path)).granted:
                            held.add(path)
                    elif roll < 0.85:
                        await send(number, "end")
                        held.clear()
                    elif roll < 0.90:
                        # The session lapses while its reservations outlive it.
                        await asyncio.sleep(rng.uniform(SESSION_TTL_S + 0.05, TTL - 0.1))
                    else:
                        await asyncio.sleep(rng.uniform(TTL + 0.1, TTL + 0.5))
                        held.clear()
                elif roll < 0.05:
                    await send(number, "start")
                elif roll < 0.10:
                    await send(number, "end")
                else:
                    path = rng.choice(FILES)
                    if (await send(number, "pre", path)).granted:
                        held.add(path)
                    else:
                        await asyncio.sleep(rng.uniform(0.1, 0.5))
                await asyncio.sleep(rng.uniform(0, 0.02))

        async with asyncio.TaskGroup() as agents:
            for number in range(AGENTS):
                agents.create_task(agent(number))
    return calls


class Audit:
    """The invariants of the module docstring, checked over every answer of a run."""

    def __init__(self, calls: list[Call]) -> None:
        self.start = min(call.sent for call in calls)
        self.violations: list[str] = []
        self.after_release = self.after_expiry = 0
        self.by_agent: dict[int, list[Call]] = defaultdict(list)
        self.ends: dict[int, list[Call]] = defaultdict(list)
        self.grants: dict[str, list[Call]] = defaultdict(list)
        self.own_grants: dict[tuple[int, str], list[Call]] = defaultdict(list)
        for call in sorted(calls, key=lambda c: c.sent):
            self.by_agent[call.agent].append(call)
            if call.kind == "end":
                self.ends[call.agent].append(call)
            if call.granted and call.path is not None:
                self.grants[call.path].append(call)
                self.own_grants[call.agent, call.path].append(call)
        self.denies = [c for c in calls if c.kind in ("pre", "post") and not c.granted]

    def violation(self, what: str, *calls: Call) -> None:
        shown = ", ".join(
            f"{c.kind}({c.path}) by agent {c.agent} [{c.sent - self.start:.3f}, "
            f"{c.received - self.start:.3f}]" + (f" naming {c.holder}" if c.holder else "")
            for c in calls
        )
        self.violations.append(f"{what}: {shown}")

    def first_end_after(self, agent: int, moment: float) -> Call | None:
        """The agent's first sessionEnd sent after ``moment`` (its calls are sequential)."""
        ends = self.ends[agent]
        i = bisect_right([end.sent for end in ends], moment)
        return ends[i] if i < len(ends) else None

    def maybe_released(self, grant: Call, before: float) -> bool:
        """Whether an end of the grant's holder may have run before ``before``."""
        end = self.first_end_after(grant.agent, grant.received)
        return end is not None and end.sent < before

    def surely_released(self, grant: Call, before: float) -> bool:
        """Whether an end of the grant's holder certainly ran before ``before``."""
        end = self.first_end_after(grant.agent, grant.received)
        return end is not None and end.received < before

    def last_call(self, agent: int, before: float) -> Call | None:
        """The agent's last request sent before ``before``."""
        own = self.by_agent[agent]
        i = bisect_left([call.sent for call in own], before) - 1
        return own[i] if i >= 0 else None

    def lapsed(self, agent: int, at: float, before: float) -> bool:
        """Whether every lock of the agent had certainly lapsed by ``at``: its last event
        that may have run before ``before`` was answered more than T ago."""
        last = self.last_call(agent, before)
        return last is None or last.received + TTL + MARGIN < at

    def check(self) -> None:
        for grants in self.grants.values():
            self.check_grants(grants)
        for deny in self.denies:
            self.check_deny(deny)

    def check_grants(self, grants: list[Call]) -> None:
        sents = [g.sent for g in grants]
        by_answer = sorted(grants, key=lambda g: g.received)
        answers = [g.received for g in by_answer]
        for h in grants:
            released = False
            for g in grants[bisect_right(sents, h.received - TTL + MARGIN) :]:
                if g.sent >= h.sent:
                    break
                if g.agent == h.agent or g.received >= h.sent:
                    continue
                if self.surely_released(g, h.sent):
                    released = True
                elif not self.maybe_released(g, h.received):
                    self.violation("double grant", g, h)
            self.after_release += released
            i = bisect_left(answers, h.sent) - 1
            if i >= 0:
                previous = by_answer[i]
                if (
                    previous.agent != h.agent
                    and not self.maybe_released(previous, h.received)
                    and self.lapsed(previous.agent, h.sent, h.received)
                ):
                    self.after_expiry += 1

    def check_deny(self, deny: Call) -> None:
        assert deny.path is not None
        holder = deny.holder
        if holder is None or not 0 <= holder < AGENTS:
            return self.violation("deny names no known holder", deny)
        if holder == deny.agent:
            return self.violation("denied by its own reservation", deny)
        if deny.holder_user != USERS[holder % len(USERS)]:
            return self.violation(f"deny names user {deny.holder_user!r}", deny)
        if deny.denied_path != deny.path or deny.minutes != 1:
            return self.violation(f"deny says {deny.denied_path!r}, {deny.minutes} min", deny)
        grants = self.own_grants[holder, deny.path]
        i = bisect_left([g.sent for g in grants], deny.received) - 1
        if i < 0:
            return self.violation("deny names an agent never granted the file", deny)
        if self.surely_released(grants[i], deny.sent):
            return self.violation("deny names a holder that had released it", grants[i], deny)
        if self.lapsed(holder, deny.sent, deny.received):
            return self.violation("deny names a holder whose lock had lapsed", grants[i], deny)
        own = self.own_grants[deny.agent, deny.path]
        j = bisect_left([g.received for g in own], deny.sent) - 1
        if (
            j >= 0
            and own[j].sent + TTL - MARGIN > deny.received
            and not self.maybe_released(own[j], deny.received)
        ):
            self.violation("denied a file it certainly held", own[j], deny)
        return None


def test_the_audit_catches_both_classic_bugs() -> None:
    """The audit is only as good as what it can catch: a double holder and a deny that
    survives a release are flagged, and the same record without the bug is not."""
    file = FILES[0]
    grant = Call(1, "pre", file, sent=0.00, received=0.01, granted=True)
    rival = Call(2, "pre", file, sent=0.50, received=0.51, granted=True)
    audit = Audit([grant, rival])
    audit.check()
    assert [v.split(":")[0] for v in audit.violations] == ["double grant"]

    end = Call(1, "end", None, sent=0.20, received=0.21)
    audit = Audit([grant, end, rival])
    audit.check()
    assert audit.violations == [] and audit.after_release == 1

    def deny_by(holder: int, at: float) -> Call:
        return Call(
            2, "pre", file, sent=at, received=at + 0.01, holder=holder,
            holder_user=USERS[holder % len(USERS)], denied_path=file, minutes=1,
        )  # fmt: skip

    audit = Audit([grant, end, deny_by(1, at=0.30)])
    audit.check()
    assert [v.split(":")[0] for v in audit.violations] == [
        "deny names a holder that had released it"
    ]

    audit = Audit([grant, deny_by(1, at=TTL + 0.2)])
    audit.check()
    assert [v.split(":")[0] for v in audit.violations] == [
        "deny names a holder whose lock had lapsed"
    ]

    audit = Audit([grant, deny_by(1, at=0.30)])
    audit.check()
    assert audit.violations == []


async def team_keys(redis_url: str) -> list[str]:
    """Provision workspace 'acme' and a key for each of USERS, in that order."""
    dev_a, dev_b = await provision(redis_url)
    redis = Redis.from_url(redis_url, decode_responses=True)
    admin = Admin(redis, Settings(redis_url=redis_url))
    extra = [(await admin.create_key("acme", user))[0] for user in EXTRA_USERS]
    await admin.aclose()
    await redis.aclose()
    return [dev_a, dev_b, *extra]


@pytest.mark.real_redis
def test_agents_racing_for_few_files_on_two_replicas(
    redis_url: str,
    real_redis_sync: SyncRedis,  # flushed: the run starts from a clean store
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api_keys = asyncio.run(team_keys(redis_url))
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "COORDINATOR_SESSION_TTL": str(SESSION_TTL_S),
        "COORDINATOR_RESERVATION_TTL": str(TTL),
        "COORDINATOR_RATE_LIMIT": "0",
    }
    servers = []
    try:
        for replica in range(REPLICAS):
            servers.append(serve(env, tmp_path / f"serve-{replica}.log"))
        urls = [f"http://127.0.0.1:{port}" for _, port in servers]
        seed = int(os.environ.get("RACE_SEED", time.time_ns() % 1_000_000))
        began = time.monotonic()
        calls = asyncio.run(drive(urls, api_keys, seed))
        seconds = time.monotonic() - began
    finally:
        for server, _ in servers:
            stop(server)

    audit = Audit(calls)
    audit.check()
    grants = sum(call.granted for call in calls)
    denies = len(audit.denies)
    releases = sum(len(ends) for ends in audit.ends.values())
    with capsys.disabled():  # the numbers, in CI's log too
        print(
            f"\nrace: seed={seed} operations={len(calls)} replicas={REPLICAS} agents={AGENTS} "
            f"files={len(FILES)} grants={grants} denies={denies} ends={releases} "
            f"grants_after_release={audit.after_release} grants_after_expiry={audit.after_expiry} "
            f"violations={len(audit.violations)} seconds={seconds:.1f}"
        )
    assert audit.violations == [], "\n".join(audit.violations[:20])
    assert len(calls) >= OPERATIONS
    # Floors well under what a run shows (about 500 grants, 2,900 denies, 250 grants
    # after a release and 20 after a lapse), so that the run cannot pass by not racing.
    # Grants after a release fall with the load too (80-95 were seen at a load average
    # of 10-13 on 2 cores, 155 at 5-6): that floor only asks that hand-overs happen.
    # Few grants after a lapse are *certain* when the machine is loaded (3-7 were seen
    # with a load average of 5-6 on 2 cores), so that floor only asks that lapses happen.
    assert denies > 1_000 and grants > 250
    assert audit.after_release > 30
    assert audit.after_expiry > 0
