"""Directory and glob claims, and the request queues, in the store (lua/claims.lua), on
fakeredis and on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from coordinator import keys
from coordinator.admin import Admin
from coordinator.config import Settings
from coordinator.globs import claim_key
from coordinator.models import HookOutcome, Principal, Requested, Reserved, session_id_for
from coordinator.store import Store
from tests.helpers import Team
from tests.test_store import principal

pytestmark = pytest.mark.anyio

SHORT = Settings(rate_per_s=0, reservation_ttl_ms=600, hand_off_grace_ms=600)


@pytest.fixture
async def quick(redis: Redis) -> AsyncIterator[Store]:
    """A store whose reservations and hand-offs last 0.6 s."""
    store = Store(redis, SHORT)
    yield store
    await store.aclose()


def sid(conversation: str) -> str:
    return session_id_for("acme", conversation)


async def reserve(
    store: Store, who: Principal, conversation: str, *paths: str
) -> Reserved | HookOutcome:
    fields = {"user_name": who.user_name, "key_id": who.key_id}
    claims = [claim_key(p) for p in paths]
    return await store.reserve(who, sid(conversation), conversation, fields, claims)


async def write(store: Store, who: Principal, conversation: str, path: str) -> HookOutcome:
    """A hook's claim of one file, taking the session's notes."""
    fields = {"user_name": who.user_name, "key_id": who.key_id}
    return await store.touch(who, sid(conversation), conversation, fields, [path], notes=True)


async def holder(store: Store, who: Principal, conversation: str, path: str) -> str | None:
    """Who the write of ``path`` is refused for (the user name), or None if it went through."""
    outcome = await write(store, who, conversation, path)
    if outcome.conflict is None:
        return None
    name = outcome.conflict.holder.user_name or "?"
    return f"{name} (next)" if outcome.conflict.next_in_line else name


async def ask(store: Store, who: Principal, conversation: str, path: str) -> Requested:
    fields = {"user_name": who.user_name, "agent_type": "codex", "key_id": who.key_id}
    answer = await store.request_file(who, sid(conversation), conversation, fields, path, "pls")
    assert isinstance(answer, Requested), answer
    return answer


async def team_of(store: Store, team: Team) -> tuple[Principal, Principal]:
    return await principal(store, team.dev_a), await principal(store, team.dev_b)


async def test_a_directory_claim_covers_the_files_under_it_both_ways(
    store: Store, team: Team
) -> None:
    a, b = await team_of(store, team)
    assert isinstance(await reserve(store, a, "conv-a", "src/api/"), Reserved)
    assert await holder(store, b, "conv-b", "src/api/users/list.ts") == "Developer A"
    assert await holder(store, b, "conv-b", "SRC/Api/x.ts") == "Developer A"  # any case
    assert await holder(store, b, "conv-b", "src/apiary.ts") is None  # not under it
    assert await holder(store, a, "conv-a", "src/api/x.ts") is None  # its own
    # The other way: a directory over a file someone else holds is refused, whole.
    refused = await reserve(store, b, "conv-b", "lib/", "src/")
    assert isinstance(refused, HookOutcome) and refused.conflict is not None
    assert refused.conflict.holder.user_name == "Developer A"
    assert refused.conflict.via == "src/api/x.ts" or refused.conflict.via == "src/api/"
    assert isinstance(await reserve(store, a, "conv-a", "lib/"), Reserved)  # lib/ was free


async def test_a_glob_claim_covers_the_files_it_matches(store: Store, team: Team) -> None:
    a, b = await team_of(store, team)
    assert isinstance(await reserve(store, a, "conv-a", "src/**/*.test.ts"), Reserved)
    assert await holder(store, b, "conv-b", "src/a.test.ts") == "Developer A"
    assert await holder(store, b, "conv-b", "src/x/y/A.Test.TS") == "Developer A"
    assert await holder(store, b, "conv-b", "src/a.ts") is None
    assert await holder(store, b, "conv-b", "lib/a.test.ts") is None
    # A held file matching a glob refuses the glob.
    refused = await reserve(store, a, "conv-a", "src/*.ts")
    assert isinstance(refused, HookOutcome) and refused.conflict is not None
    assert refused.conflict.holder.user_name == "Developer B"
    assert refused.conflict.via == "src/a.ts"


async def test_overlapping_directory_and_glob_claims_conflict(store: Store, team: Team) -> None:
    a, b = await team_of(store, team)
    assert isinstance(await reserve(store, a, "conv-a", "src/api/"), Reserved)
    for pattern in ("src/", "src/api/v2/", "src/**/*.ts", "src/api/*.py"):
        refused = await reserve(store, b, "conv-b", pattern)
        assert isinstance(refused, HookOutcome), pattern
        assert refused.conflict is not None and refused.conflict.via == "src/api/"
    assert isinstance(await reserve(store, b, "conv-b", "lib/**/*.ts", "docs/"), Reserved)


async def test_release_frees_a_directory_claim(store: Store, team: Team) -> None:
    a, b = await team_of(store, team)
    await reserve(store, a, "conv-a", "src/api/", "README.md")
    assert await store.release(a, sid("conv-a"), ["src/api/"]) is not None
    assert await holder(store, b, "conv-b", "src/api/x.ts") is None
    assert await holder(store, b, "conv-b", "README.md") == "Developer A"
    # Not the holder: nothing is released.
    assert await store.release(b, sid("conv-b"), ["README.md"]) == "README.md"
    released = await store.release(a, sid("conv-a"))
    assert released.released == ["README.md"]  # type: ignore[union-attr]


async def test_the_holder_is_told_who_waits_and_the_first_in_line_gets_the_file(
    store: Store, team: Team, admin: Admin
) -> None:
    a, b = await team_of(store, team)
    c_key, _ = await admin.create_key("acme", "Developer C")
    c = await principal(store, c_key)
    await reserve(store, a, "conv-a", "src/api/")
    queued = await ask(store, b, "conv-b", "src/api/h.ts")
    assert (queued.position, queued.holder.user_name, queued.via) == (1, "Developer A", "src/api/")
    assert (await ask(store, c, "conv-c", "src/api/h.ts")).position == 2
    assert (await ask(store, b, "conv-b", "src/api/h.ts")).position == 1  # asked again
    told = (await write(store, a, "conv-a", "src/api/other.ts")).notes
    assert [(n.kind, n.by, n.path, n.via) for n in told] == [
        ("waiting", "Developer B", "src/api/h.ts", "src/api/"),
        ("waiting", "Developer C", "src/api/h.ts", "src/api/"),
    ]
    assert (await write(store, a, "conv-a", "src/api/other.ts")).notes == []  # told once
    await store.release(a, sid("conv-a"))
    assert await holder(store, c, "conv-c", "src/api/h.ts") == "Developer B (next)"
    assert await holder(store, a, "conv-a", "src/api/h.ts") == "Developer B (next)"
    outcome = await write(store, b, "conv-b", "src/api/h.ts")
    assert outcome.conflict is None
    assert [(n.kind, n.path) for n in outcome.notes] == [("free", "src/api/h.ts")]
    assert await holder(store, c, "conv-c", "src/api/h.ts") == "Developer B"
    # B is done: C, next in line, gets it.
    await store.release(b, sid("conv-b"))
    assert await holder(store, a, "conv-a", "src/api/h.ts") == "Developer C (next)"
    assert await holder(store, c, "conv-c", "src/api/h.ts") is None
    assert await store.requests(a) == []


async def test_a_hand_off_lapses_after_its_grace_to_the_next_in_line(
    quick: Store, team: Team, admin: Admin
) -> None:
    a, b = await team_of(quick, team)
    c = await principal(quick, (await admin.create_key("acme", "Developer C"))[0])
    await write(quick, a, "conv-a", "x.ts")
    await ask(quick, b, "conv-b", "x.ts")
    await ask(quick, c, "conv-c", "x.ts")
    await quick.release(a, sid("conv-a"))
    assert await holder(quick, a, "conv-a", "x.ts") == "Developer B (next)"
    await asyncio.sleep(0.8)  # B's grace ends, unused; C's session is renewed meanwhile
    await quick.touch(c, sid("conv-c"), "conv-c", {"user_name": c.user_name})
    assert await holder(quick, a, "conv-a", "x.ts") == "Developer C (next)"
    assert await holder(quick, c, "conv-c", "x.ts") is None


async def test_a_lapsed_holder_passes_the_file_to_the_first_in_line(
    quick: Store, team: Team
) -> None:
    a, b = await team_of(quick, team)
    await write(quick, a, "conv-a", "x.ts")
    await ask(quick, b, "conv-b", "x.ts")
    await asyncio.sleep(0.8)  # A's lock lapses (no sweeper: the next claim finds it gone)
    await quick.touch(b, sid("conv-b"), "conv-b", {"user_name": b.user_name})
    assert await holder(quick, a, "conv-a", "x.ts") == "Developer B (next)"
    outcome = await write(quick, b, "conv-b", "x.ts")
    assert outcome.conflict is None and [n.kind for n in outcome.notes] == ["free"]


async def test_a_waiter_that_ends_leaves_the_queue(store: Store, team: Team, admin: Admin) -> None:
    a, b = await team_of(store, team)
    c = await principal(store, (await admin.create_key("acme", "Developer C"))[0])
    await write(store, a, "conv-a", "x.ts")
    await ask(store, b, "conv-b", "x.ts")
    await ask(store, c, "conv-c", "x.ts")
    await store.end_session(b, sid("conv-b"))
    [open_request] = await store.requests(a)
    assert [w.user_name for w in open_request.waiters] == ["Developer C"]
    await store.end_session(a, sid("conv-a"))  # the holder ends: C is next
    assert await holder(store, a, "conv-a2", "x.ts") == "Developer C (next)"
    await store.end_session(c, sid("conv-c"))  # C ends while it is held for C: free
    assert await holder(store, a, "conv-a2", "x.ts") is None


async def test_a_revoked_waiter_leaves_the_queue(store: Store, team: Team, admin: Admin) -> None:
    a, b = await team_of(store, team)
    await write(store, a, "conv-a", "x.ts")
    await ask(store, b, "conv-b", "x.ts")
    await admin.revoke_key(team.dev_b)
    await store.release(a, sid("conv-a"))
    assert await holder(store, a, "conv-a", "x.ts") is None
    assert await store.requests(a) == []


async def test_nothing_to_request(store: Store, team: Team) -> None:
    b = await principal(store, team.dev_b)
    fields = {"user_name": b.user_name}
    assert await store.request_file(b, sid("conv-b"), "conv-b", fields, "free.ts") == ("free", 0)
    await write(store, b, "conv-b", "mine.ts")
    assert await store.request_file(b, sid("conv-b"), "conv-b", fields, "mine.ts") == ("yours", 0)


async def test_a_longer_reserve_is_never_shortened_by_renewals(
    quick: Store, team: Team, redis: Redis
) -> None:
    a = await principal(quick, team.dev_a)
    fields = {"user_name": a.user_name, "key_id": a.key_id}
    claims = [claim_key("src/api/"), claim_key("a.ts")]
    assert isinstance(await quick.reserve(a, sid("conv-a"), "conv-a", fields, claims, 1), Reserved)
    await write(quick, a, "conv-a", "a.ts")  # a write renews what it holds
    await quick.start(a, sid("conv-a"), "conv-a", fields)  # a start renews everything
    for path in ("src/api/", "a.ts"):
        assert await redis.pttl(keys.lock("acme", path)) > 30_000, path  # 1 min, not 0.6 s
    assert await redis.pttl(keys.files("acme", sid("conv-a"))) > 30_000
