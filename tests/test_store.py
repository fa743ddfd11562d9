"""The store's operations, on fakeredis and on a real Redis."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from coordinator import keys
from coordinator.admin import Admin
from coordinator.config import Settings
from coordinator.errors import SessionNotFound, Unauthorized
from coordinator.models import Principal, digest_of, session_id_for
from coordinator.paths import fold_case
from coordinator.store import Store
from tests.helpers import Team

pytestmark = pytest.mark.anyio


async def principal(store: Store, api_key: str) -> Principal:
    who = await store.principal(digest_of(api_key))
    assert who is not None
    return who


async def start(store: Store, who: Principal, conversation: str, task: str = "") -> str:
    sid = session_id_for(who.workspace, conversation)
    fields = {"user_name": who.user_name, "agent_type": "cursor"}
    if task:
        fields["current_task"] = task
    await store.start(who, sid, conversation, fields)
    return sid


async def claim(store: Store, who: Principal, conversation: str, *paths: str) -> str | None:
    """The holder's user name when denied, else None."""
    sid = session_id_for(who.workspace, conversation)
    outcome = await store.touch(who, sid, conversation, {"user_name": who.user_name}, paths)
    return outcome.conflict.holder.user_name if outcome.conflict else None


async def test_a_file_goes_to_the_first_claimant_only(store: Store, team: Team) -> None:
    a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
    await start(store, b, "conv-b", "Build JWT auth flow")
    assert await claim(store, b, "conv-b", "src/auth/login.ts") is None
    sid_a = session_id_for("acme", "conv-a")
    outcome = await store.touch(
        a, sid_a, "conv-a", {"user_name": a.user_name}, ["src/auth/login.ts"]
    )
    assert outcome.conflict is not None
    assert outcome.conflict.holder.session_id == session_id_for("acme", "conv-b")
    assert outcome.conflict.holder.current_task == "Build JWT auth flow"
    assert 590_000 < outcome.conflict.remaining_ms <= 600_000


async def test_a_conversation_never_conflicts_with_itself(store: Store, team: Team) -> None:
    a = await principal(store, team.dev_a)
    assert await claim(store, a, "conv-a", "a.ts") is None
    assert await claim(store, a, "conv-a", "a.ts", "b.ts") is None


async def test_a_multi_file_claim_is_all_or_nothing(store: Store, team: Team) -> None:
    a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
    assert await claim(store, b, "conv-b", "held.ts") is None
    assert await claim(store, a, "conv-a", "free.ts", "held.ts") == "Developer B"
    assert [r.file_path for r in (await store.reservations(a)).items] == ["held.ts"]
    assert await claim(store, b, "conv-b2", "free.ts") is None


async def test_ending_releases_only_what_the_session_still_holds(
    store: Store, team: Team, redis: Redis
) -> None:
    a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
    assert await claim(store, a, "conv-a", "mine.ts", "lost.ts") is None
    await redis.delete(keys.lock("acme", "lost.ts"))  # as if it had expired
    assert await claim(store, b, "conv-b", "lost.ts") is None
    ended = await store.end_session(a, session_id_for("acme", "conv-a"))
    assert (ended.live, ended.released) == (True, 1)  # the claim created the session
    holders = {r.file_path: r.user_name for r in (await store.reservations(a)).items}
    assert holders == {"lost.ts": "Developer B"}


async def test_activity_refreshes_own_locks_but_never_a_lock_of_another(
    store: Store, team: Team, redis: Redis
) -> None:
    a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
    assert await claim(store, a, "conv-a", "mine.ts", "lost.ts") is None
    await redis.pexpire(keys.lock("acme", "mine.ts"), 5_000)
    await redis.delete(keys.lock("acme", "lost.ts"))
    assert await claim(store, b, "conv-b", "lost.ts") is None
    await redis.pexpire(keys.lock("acme", "lost.ts"), 5_000)
    await start(store, a, "conv-a")  # any event of the holder counts as activity
    assert await redis.pttl(keys.lock("acme", "mine.ts")) > 590_000
    assert await redis.pttl(keys.lock("acme", "lost.ts")) <= 5_000
    assert await redis.smembers(keys.files("acme", session_id_for("acme", "conv-a"))) == {"mine.ts"}


async def test_heartbeat_of_an_unknown_session_creates_nothing(
    store: Store, team: Team, redis: Redis
) -> None:
    a = await principal(store, team.dev_a)
    sid = session_id_for("acme", "nobody")
    with pytest.raises(SessionNotFound):
        await store.heartbeat(a, sid)
    assert not await redis.exists(keys.session("acme", sid))


async def test_a_revoked_key_stops_working_even_when_cached(
    store: Store, admin: Admin, team: Team
) -> None:
    a = await principal(store, team.dev_a)
    await start(store, a, "conv-a")
    await admin.revoke_key(team.dev_a)  # the admin revokes it, not through this replica
    with pytest.raises(Unauthorized):
        await start(store, a, "conv-a")
    assert await store.principal(a.digest) is None


async def test_the_briefing_is_bounded_and_leaves_out_the_caller(store: Store, team: Team) -> None:
    b = await principal(store, team.dev_b)
    for i in range(23):
        await start(store, b, f"conv-{i}", f"task {i}")
        assert await claim(store, b, f"conv-{i}", f"file-{i}.ts") is None
    for i in range(7):
        await store.add_decision(b, f"decision {i}", None)
    a = await principal(store, team.dev_a)
    await claim(store, a, "conv-a", "own.ts")
    outcome = await store.start(a, session_id_for("acme", "conv-a"), "conv-a")
    briefing = outcome.briefing
    assert briefing is not None
    assert (len(briefing.agents), briefing.agents_total) == (20, 23)
    assert len({agent.current_task for agent in briefing.agents}) == 20
    # Files are read up to the scan (200), for render to group: all 23 here.
    assert (len(briefing.locks), briefing.locks_total) == (23, 23)
    assert "own.ts" not in {lock.file_path for lock in briefing.locks}
    assert briefing.folders == [""]  # where the caller holds files: own.ts, at the root
    assert [d.text for d in briefing.decisions] == [f"decision {i}" for i in range(6, 1, -1)]


async def test_the_briefing_reads_the_newest_files_up_to_its_scan(redis: Redis, team: Team) -> None:
    store = Store(redis, Settings(rate_per_s=0, briefing_scan=5))
    try:
        b = await principal(store, team.dev_b)
        for i in range(8):
            assert await claim(store, b, "conv-b", f"src/b/file-{i}.ts") is None
        a = await principal(store, team.dev_a)
        await claim(store, a, "conv-a", "src/api/one.ts", "src/api/two.ts", "docs/x.md")
        outcome = await store.start(a, session_id_for("acme", "conv-a"), "conv-a")
    finally:
        await store.aclose()
    briefing = outcome.briefing
    assert briefing is not None
    assert briefing.locks_total == 8
    # The newest five (the last claimed live longest), the caller's own left out.
    assert [lock.file_path for lock in briefing.locks] == [
        f"src/b/file-{i}.ts" for i in range(7, 2, -1)
    ]
    assert {lock.user_name for lock in briefing.locks} == {"Developer B"}
    assert sorted(briefing.folders) == ["docs", "src/api"]


async def test_decisions_are_newest_first_and_capped(
    store: Store, team: Team, redis: Redis
) -> None:
    a = await principal(store, team.dev_a)
    for i in range(205):
        await store.add_decision(a, f"d{i}", None)
    assert await redis.llen(keys.decisions("acme")) == 200
    newest = await store.decisions(a, 3)
    assert [d.text for d in newest] == ["d204", "d203", "d202"]
    assert newest[0].user_name == "Developer A"


async def test_sessions_list_their_live_reservations(store: Store, team: Team) -> None:
    a = await principal(store, team.dev_a)
    sid = await start(store, a, "conv-a", "Refactor")
    assert await claim(store, a, "conv-a", "b.ts", "a.ts") is None
    [session] = (await store.sessions(a)).items
    assert (session.id, session.user_name, session.current_task) == (sid, "Developer A", "Refactor")
    assert (session.current_file, session.reserved_files) == ("b.ts", ["a.ts", "b.ts"])
    assert session.last_heartbeat is not None


async def test_paths_that_differ_only_in_case_are_one_lock(store: Store, team: Team) -> None:
    a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
    assert await claim(store, b, "conv-b", "src/File.ts") is None
    assert await claim(store, a, "conv-a", "src/file.ts") == "Developer B"
    assert await claim(store, a, "conv-a", "SRC/FILE.TS", "free.ts") == "Developer B"
    # Listings show the path as its holder wrote it.
    assert [r.file_path for r in (await store.reservations(a)).items] == ["src/File.ts"]


async def test_a_session_holds_one_lock_under_the_spelling_it_first_claimed(
    store: Store, team: Team, redis: Redis
) -> None:
    a = await principal(store, team.dev_a)
    assert await claim(store, a, "conv-a", "src/File.ts") is None
    assert await claim(store, a, "conv-a", "src/file.ts") is None
    assert [r.file_path for r in (await store.reservations(a)).items] == ["src/File.ts"]
    [session] = (await store.sessions(a)).items
    assert session.reserved_files == ["src/File.ts"]
    ended = await store.end_session(a, session_id_for("acme", "conv-a"))
    assert (ended.live, ended.released) == (True, 1)
    assert not await redis.exists(keys.lock("acme", "src/file.ts"))
    assert (await store.reservations(a)).items == []


async def test_lua_folds_a_path_exactly_as_python_does(redis: Redis) -> None:
    path = "Src/ÉCOLE/Straße/İ/Ǆ.TS"
    folded = await redis.eval("return string.lower(ARGV[1])", 0, path)
    assert folded == fold_case(path) == "src/École/straße/İ/Ǆ.ts"
