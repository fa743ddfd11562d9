"""What one session, one API key and one idle workspace may cost: the caps on files held,
the listings' pages, an end retried, and a workspace whose every TTL passed. On fakeredis
and a real Redis; the scripts' times at the caps on a real `coordinator serve`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from coordinator import keys
from coordinator.admin import Admin
from coordinator.app import create_app
from coordinator.config import Settings
from coordinator.models import digest_of, session_id_for
from coordinator.routes import DECIDE, DECISIONS, END, HOOK, RESERVATIONS, of_workspace
from coordinator.store import Store
from tests.helpers import Team, bearer, provision, send_hook, serve, stop

pytestmark = pytest.mark.anyio


@pytest.fixture
def settings() -> Settings:
    """Small caps, no rate limit."""
    return Settings(
        rate_per_s=0,
        max_files_per_session=5,
        max_files_per_key=8,
    )


def write(conversation: str, *paths: str, **more: Any) -> dict[str, Any]:
    lines = "".join(f"*** Add File: {path}\n+x\n" for path in paths)
    return {
        "event": "preToolUse",
        "conversation_id": conversation,
        "tool_name": "apply_patch",
        "tool_input": {"command": f"*** Begin Patch\n{lines}*** End Patch\n"},
        "cwd": "/srv/repo",
        **more,
    }


async def held(client: httpx.AsyncClient, api_key: str) -> set[str]:
    listed = await client.get("/workspaces/acme/reservations?limit=1000", headers=bearer(api_key))
    return {r["file_path"] for r in listed.json()}


async def test_a_claim_past_the_session_cap_is_denied_naming_it(
    client: httpx.AsyncClient, team: Team
) -> None:
    files = [f"src/f{i}.ts" for i in range(6)]
    assert await send_hook(client, team.dev_a, write("conv", *files[:3])) == {"permission": "allow"}
    denied = await send_hook(client, team.dev_a, write("conv", *files[3:]))
    assert denied["permission"] == "deny"
    assert "COORDINATOR_MAX_FILES_PER_SESSION = 5" in denied["message"]
    assert "holds 3 files" in denied["message"]
    # All or nothing: none of the three was claimed; what it holds it may still write.
    assert await held(client, team.dev_a) == set(files[:3])
    assert await send_hook(client, team.dev_a, write("conv", *files[:3])) == {"permission": "allow"}
    assert await send_hook(client, team.dev_a, write("conv", *files[3:5])) == {
        "permission": "allow"
    }
    # Each agent's own answer shape carries the deny.
    native = {
        "hook_event_name": "PreToolUse",
        "session_id": "conv",
        "tool_name": "Write",
        "tool_input": {"file_path": "/srv/repo/src/f5.ts"},
        "cwd": "/srv/repo",
    }
    answer = await client.post(f"{HOOK}?agent=claude-code", headers=bearer(team.dev_a), json=native)
    output = answer.json()["hookSpecificOutput"]
    assert output["permissionDecision"] == "deny"
    assert "COORDINATOR_MAX_FILES_PER_SESSION" in output["permissionDecisionReason"]


async def test_the_key_cap_counts_every_session_of_the_key(
    client: httpx.AsyncClient, team: Team
) -> None:
    first = [f"a/{i}.ts" for i in range(5)]
    second = [f"b/{i}.ts" for i in range(4)]
    assert await send_hook(client, team.dev_a, write("one", *first)) == {"permission": "allow"}
    denied = await send_hook(client, team.dev_a, write("two", *second))
    assert denied["permission"] == "deny"
    assert "COORDINATOR_MAX_FILES_PER_KEY = 8" in denied["message"]
    assert "the sessions of this API key hold 5 files" in denied["message"]
    # Another key of the workspace has caps of its own.
    assert await send_hook(client, team.dev_b, write("three", *second)) == {"permission": "allow"}
    # Ending a session gives its files back to the key's count.
    ended = await client.post(
        END,
        headers=bearer(team.dev_a),
        json={"session_id": session_id_for("acme", "one")},
    )
    assert ended.json() == {"ok": True, "released": 5}
    fresh = [f"c/{i}.ts" for i in range(4)]
    assert await send_hook(client, team.dev_a, write("two", *fresh)) == {"permission": "allow"}


async def test_an_end_retried_answers_as_the_first(client: httpx.AsyncClient, team: Team) -> None:
    await send_hook(client, team.dev_a, write("conv", "x.ts", "y.ts"))
    sid = session_id_for("acme", "conv")
    for _ in range(2):
        end = await client.post(END, headers=bearer(team.dev_a), json={"session_id": sid})
        assert (end.status_code, end.json()) == (200, {"ok": True, "released": 2})
    assert await held(client, team.dev_a) == set()


@contextlib.asynccontextmanager
async def serving(settings: Settings, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app with these settings (the module's ``client`` has small caps)."""
    app = create_app(settings, redis)
    transport = httpx.ASGITransport(app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://coordinator") as http:
            yield http
    finally:
        await app.state.store.aclose()


async def test_a_decision_retried_is_stored_once(client: httpx.AsyncClient, team: Team) -> None:
    decide = {"text": "Use JWT", "session_id": session_id_for("acme", "conv")}
    stored = []
    for _ in range(2):
        answer = await client.post(DECIDE, headers=bearer(team.dev_a), json=decide)
        assert answer.status_code == 201
        stored.append(answer.json())
    assert stored[0] == stored[1]
    # Another person's, or another text, is another decision.
    await client.post(DECIDE, headers=bearer(team.dev_b), json=decide)
    await client.post(DECIDE, headers=bearer(team.dev_a), json={"text": "Use JWT"})
    listed = await client.get(of_workspace(DECISIONS, "acme"), headers=bearer(team.dev_a))
    assert [(d["user_name"], d["text"]) for d in listed.json()] == [
        ("Developer A", "Use JWT"),
        ("Developer B", "Use JWT"),
        ("Developer A", "Use JWT"),
    ]


async def pages(
    client: httpx.AsyncClient, api_key: str, route: str, limit: int
) -> list[list[dict[str, Any]]]:
    """Every page of a listing, following its Link headers (at most 50)."""
    found: list[list[dict[str, Any]]] = []
    url: str | None = f"/workspaces/acme/{route}?limit={limit}"
    for _ in range(50):
        if url is None:
            return found
        answer = await client.get(url, headers=bearer(api_key))
        assert answer.status_code == 200, answer.text
        found.append(answer.json())
        link = answer.headers.get("link")
        url = link[1 : link.index(">")] if link else None
    raise AssertionError("a listing's cursor never ended")


async def test_listings_come_in_pages_that_cover_every_row_once(redis: Redis, team: Team) -> None:
    async with serving(Settings(rate_per_s=0), redis) as client:
        # 250 files in three claims: a claim's files share one expiry, so pages split ties.
        files = [f"src/{i:03}.ts" for i in range(250)]
        for n, start in enumerate(range(0, 250, 100)):
            body = write(f"conv-{n}", *files[start : start + 100])
            assert await send_hook(client, team.dev_a, body) == {"permission": "allow"}
        route = "/workspaces/acme/reservations?limit=40"
        first = await client.get(route, headers=bearer(team.dev_a))
        assert first.headers["x-total-count"] == "250"
        listed = await pages(client, team.dev_a, "reservations", 40)
        assert [len(page) for page in listed] == [40] * 6 + [10]
        paths = [r["file_path"] for page in listed for r in page]
        assert sorted(paths) == files
        # Sessions: two a page, each with every file it holds.
        for n in range(3, 6):
            await send_hook(
                client, team.dev_a, {"event": "sessionStart", "conversation_id": f"c{n}"}
            )
        sessions = await pages(client, team.dev_a, "sessions", 2)
        assert [len(page) for page in sessions] == [2, 2, 2]
        counts = sorted(len(s["reserved_files"]) for page in sessions for s in page)
        assert counts == [0, 0, 0, 50, 100, 100]
        for bad in ("limit=0", "limit=1001", "limit=x", "cursor=nonsense"):
            answer = await client.get(
                f"/workspaces/acme/sessions?{bad}", headers=bearer(team.dev_a)
            )
            assert answer.status_code == 422, bad
            assert answer.json()["error"] == "invalid_field"


async def test_an_idle_workspace_keeps_only_its_record_keys_and_decisions(
    redis: Redis, team: Team
) -> None:
    # TTLs long enough that a loaded machine (load 13 on 2 cores) does not let the keys lapse
    # before the check that they exist, short enough to wait out.
    short = Settings(rate_per_s=0, session_ttl_ms=2_000, reservation_ttl_ms=2_500)
    async with serving(short, redis) as client:
        for n in range(3):
            await send_hook(
                client, team.dev_a, {"event": "sessionStart", "conversation_id": f"c{n}"}
            )
            await send_hook(client, team.dev_a, write(f"c{n}", f"src/{n}.ts", "docs/{n}.md"))
            await send_hook(
                client,
                team.dev_a,
                {"event": "beforeSubmitPrompt", "conversation_id": f"c{n}", "prompt": "go"},
            )
        await send_hook(client, team.dev_a, {"event": "sessionEnd", "conversation_id": "c0"})
        # A Claude Code start through the bridge names its roots; its http hooks then don't.
        claude = {"session_id": "cc", "cwd": "/srv/repo/src"}
        started = await client.post(
            f"{HOOK}?agent=claude-code",
            headers=bearer(team.dev_a),
            json={**claude, "hook_event_name": "SessionStart", "workspace_roots": ["/srv/repo"]},
        )
        assert started.status_code == 200, started.text
        edit = {"tool_name": "Write", "tool_input": {"file_path": "/srv/repo/src/a.ts"}}
        edited = await client.post(
            f"{HOOK}?agent=claude-code",
            headers=bearer(team.dev_a),
            json={**claude, "hook_event_name": "PreToolUse", **edit},
        )
        assert edited.status_code == 200, edited.text
        assert "src/a.ts" in await held(client, team.dev_a)
        assert await redis.exists(keys.roots("acme", session_id_for("acme", "cc")))
        decided = await client.post(DECIDE, headers=bearer(team.dev_a), json={"text": "Use JWT"})
        assert decided.status_code == 201
        await client.get(of_workspace(RESERVATIONS, "acme"), headers=bearer(team.dev_a))
        assert len(await scan(redis, "coord:{acme}:*")) > 3
        await asyncio.sleep(3.0)  # every TTL (2.5 s at most) has passed, with a margin
        left = await scan(redis, "coord:{acme}:*")
        expected = [keys.workspace("acme"), keys.workspace_keys("acme"), keys.decisions("acme")]
        assert left == sorted(expected)


async def scan(redis: Redis, pattern: str) -> list[str]:
    return sorted([key async for key in redis.scan_iter(match=pattern, count=1000)])


@pytest.fixture
def slow_log(real_redis_sync: SyncRedis) -> Iterator[SyncRedis]:
    """The real Redis, logging every command's time; its settings restored after."""
    before = {str(k): str(v) for k, v in real_redis_sync.config_get("slowlog-*").items()}
    real_redis_sync.config_set("slowlog-log-slower-than", 0)
    real_redis_sync.config_set("slowlog-max-len", 10_000)
    real_redis_sync.slowlog_reset()
    yield real_redis_sync
    for name, value in before.items():
        real_redis_sync.config_set(name, value)


def test_no_script_works_more_at_the_default_caps_than_its_claim_asks(
    redis_url: str, slow_log: SyncRedis, tmp_path: Path
) -> None:
    """A real `coordinator serve` on the real Redis, at the default caps (500 files a
    session), four times over: fill a session to the cap (the claim past it is denied),
    renew its locks, list, end it. Each script's work is counted in Redis commands (its
    own calls, from INFO commandstats), which no other job on the machine can change: a
    claim of 100 files costs a few commands per file, whatever the session already holds,
    and a renewal, a listing or an end a few per file held. Their times are measured by
    bench.bounds (docs/operations.md, "Operating it safely"), not asserted here."""
    dev_a, _ = asyncio.run(provision(redis_url))
    env = {**os.environ, "REDIS_URL": redis_url, "COORDINATOR_RATE_LIMIT": "0",
           "COORDINATOR_RESERVATION_TTL": "2"}  # fmt: skip
    server, port = serve(env, tmp_path / "serve.log")
    work: dict[str, list[float]] = {}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for round_ in range(4):
                conversation = f"hostile-{round_}"
                phases: dict[str, float] = {}
                for n in range(6):
                    files = [f"gen/{n * 100 + i}.ts" for i in range(100)]
                    body = write(conversation, *files)
                    slow_log.config_resetstat()
                    answer = http.post(HOOK, headers=bearer(dev_a), json=body)
                    verdict = answer.json()["permission"]
                    assert verdict == ("deny" if n == 5 else "allow"), (n, answer.text)
                    phases[f"claim {n}"] = commands_per_run(slow_log)
                message = answer.json()["message"]
                assert "COORDINATOR_MAX_FILES_PER_SESSION = 500" in message
                assert slow_log.zcard(keys.locks_index("acme")) == 500
                time.sleep(0.6)  # a quarter of the reservation TTL: the next event renews all
                prompt = {"event": "beforeSubmitPrompt", "conversation_id": conversation,
                          "prompt": "go"}  # fmt: skip
                slow_log.config_resetstat()
                http.post(HOOK, headers=bearer(dev_a), json=prompt).raise_for_status()
                phases["renew"] = commands_per_run(slow_log)
                for route in ("sessions", "reservations?limit=1000"):
                    slow_log.config_resetstat()
                    http.get(f"/workspaces/acme/{route}", headers=bearer(dev_a)).raise_for_status()
                    phases[route.partition("?")[0]] = commands_per_run(slow_log)
                end = {"event": "sessionEnd", "conversation_id": conversation}
                slow_log.config_resetstat()
                http.post(HOOK, headers=bearer(dev_a), json=end).raise_for_status()
                phases["end"] = commands_per_run(slow_log)
                assert slow_log.zcard(keys.locks_index("acme")) == 0
                for name, commands in phases.items():
                    work.setdefault(name, []).append(commands)
    finally:
        stop(server)
    # A claim of 100 new files costs the same at 0 held as at 400, and the one past the cap
    # less (it is refused before it claims).
    claims = [max(work[f"claim {n}"]) for n in range(5)]
    assert max(claims) <= 1.5 * min(claims) and max(claims) < 100 * PER_FILE, work
    assert max(work["claim 5"]) < min(claims), work
    # What walks the 500 files held does so a bounded number of times per file.
    for name in ("renew", "sessions", "reservations", "end"):
        assert 500 <= max(work[name]) < 500 * PER_FILE, (name, work[name])


# Redis commands a script may spend on one file. Measured: a claim 8.3 a file (833 for 100
# files at 0 held, 823 at 400), a renewal 2.5, an end 2, a listing 1 or less; the bound
# leaves room for new work per claim, not for work that grows with what is held.
PER_FILE = 15
NOT_SCRIPTS = {"evalsha", "evalsha_ro", "eval", "config|resetstat", "info", "zcard", "ping"}


def commands_per_run(redis: SyncRedis) -> float:
    """The commands the scripts ran since the last CONFIG RESETSTAT, per script run."""
    stats = redis.info("commandstats")
    runs = sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha",))
    inner = sum(
        row["calls"]
        for name, row in stats.items()
        if name.removeprefix("cmdstat_") not in NOT_SCRIPTS
    )
    assert runs >= 1, stats
    return float(inner / runs)


def test_a_claim_of_paths_held_under_another_case_reads_the_files_once(
    redis_url: str, real_redis_sync: SyncRedis
) -> None:
    """Re-casing the 100 paths of a claim must not walk a full session's files 100 times
    (a 19 ms script at the cap, measured): Redis's own command counts say how often."""

    async def claim_recased() -> int:
        redis = Redis.from_url(redis_url, decode_responses=True)
        store = Store(redis, Settings(redis_url=redis_url, rate_per_s=0))
        admin = Admin(redis, Settings(redis_url=redis_url))
        try:
            await admin.create_workspace("acme")
            key, _ = await admin.create_key("acme", "A")
            who = await store.principal(digest_of(key))
            assert who is not None
            sid = session_id_for("acme", "conv")
            for n in range(5):
                paths = [f"gen/{n * 100 + i}.ts" for i in range(100)]
                await store.touch(who, sid, "conv", {}, paths)
            await redis.config_resetstat()
            upper = [f"GEN/{i}.TS" for i in range(100)]
            outcome = await store.touch(who, sid, "conv", {}, upper)
            assert outcome.conflict is None and outcome.over_cap is None
            stats = await redis.info("commandstats")
            return int(stats.get("cmdstat_smembers", {}).get("calls", 0))
        finally:
            await store.aclose()
            await admin.aclose()
            await redis.aclose()

    assert asyncio.run(claim_recased()) <= 1


async def test_a_page_of_sessions_ends_once_it_lists_a_thousand_files(
    redis: Redis, team: Team
) -> None:
    async with serving(Settings(rate_per_s=0), redis) as client:
        for n in range(3):  # three sessions of 500 files each, the cap
            for start in range(0, 500, 100):
                files = [f"s{n}/{i}.ts" for i in range(start, start + 100)]
                assert await send_hook(client, team.dev_a, write(f"conv-{n}", *files)) == {
                    "permission": "allow"
                }
        listed = await pages(client, team.dev_a, "sessions", 100)
        assert [[len(s["reserved_files"]) for s in page] for page in listed] == [[500, 500], [500]]


def test_a_revocation_walks_a_bounded_share_of_the_workspace_per_script_call(
    redis_url: str, real_redis_sync: SyncRedis
) -> None:
    """Revoking a key whose sessions hold 2,000 files, in a workspace where another key's
    hold 5,000 and 700 more sessions hold none: no script call runs more than a bounded
    number of commands (Redis's own counts, between the steps), and once done every lock of
    the revoked key is gone and none of the other's was touched. One call over the whole
    workspace, as before, ran 18,808."""

    async def revoke_in_steps() -> tuple[list[int], int, int, int]:
        redis = Redis.from_url(redis_url, decode_responses=True)
        store = Store(redis, Settings(redis_url=redis_url, rate_per_s=0))
        admin = Admin(redis, Settings(redis_url=redis_url))
        try:
            await admin.create_workspace("acme")
            principals = []
            for name in ("A", "B"):
                key, _ = await admin.create_key("acme", name)
                who = await store.principal(digest_of(key))
                assert who is not None
                principals.append(who)
            dev_a, dev_b = principals

            async def session(who: Any, conversation: str, files: int) -> None:
                sid = session_id_for("acme", conversation)
                fields = {"user_name": who.user_name, "key_id": who.key_id}
                await store.touch(who, sid, conversation, fields)
                for start in range(0, files, 100):
                    paths = [f"{conversation}/{start + i}.ts" for i in range(100)]
                    outcome = await store.touch(who, sid, conversation, fields, paths)
                    assert outcome.conflict is None and outcome.over_cap is None

            for n in range(10):
                await session(dev_b, f"b{n}", 500)
            for n in range(700):  # A's idle sessions among B's
                await session(dev_a if n % 100 == 0 else dev_b, f"idle{n}", 0)
            for n in range(4):
                await session(dev_a, f"a{n}", 500)
            b_files = keys.key_files("acme", dev_b.key_id)
            b_locks = [str(path) for path in await redis.zrange(b_files, 0, -1)]
            assert len(b_locks) == 5_000
            assert await redis.zcard(keys.locks_index("acme")) == 7_000

            commands, ended, released = [], 0, 0
            await redis.config_resetstat()
            async for step_ended, step_released in admin.revoke_steps("acme", dev_a.digest):
                stats = await redis.info("commandstats")
                ours = ("cmdstat_config", "cmdstat_info", "cmdstat_evalsha", "cmdstat_eval")
                run = [int(v["calls"]) for k, v in stats.items() if not k.startswith(ours)]
                commands.append(sum(run))
                ended, released = ended + step_ended, released + step_released
                await redis.config_resetstat()
            a_locks = [keys.lock("acme", f"a{n}/{i}.ts") for n in range(4) for i in range(500)]
            assert await redis.exists(*a_locks, keys.key_files("acme", dev_a.key_id)) == 0
            owners = await redis.mget([keys.lock("acme", path) for path in b_locks])
            b_sessions = {session_id_for("acme", f"b{n}") for n in range(10)}
            b_kept = sum(owner in b_sessions for owner in owners)
            assert await redis.zcard(keys.locks_index("acme")) == 5_000
            assert await redis.zcard(b_files) == 5_000
            assert await redis.zcard(keys.sessions_index("acme")) == 10 + 693
            return commands, ended, released, b_kept
        finally:
            await store.aclose()
            await admin.aclose()
            await redis.aclose()

    commands, ended, released, b_kept = asyncio.run(revoke_in_steps())
    assert (ended, released, b_kept) == (11, 2_000, 5_000)
    # A step walks at most 500 of the key's files (3 commands each) and releases at most a
    # session's cap (500) past 500 files (2 commands each: a GET, a PUBLISH), or walks 500
    # sessions (measured: 1,021 at most; one call over the whole workspace ran 18,808).
    assert len(commands) > 4, commands
    assert max(commands) <= 4_000, commands
