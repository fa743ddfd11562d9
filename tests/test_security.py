"""Workspace isolation on every route (the event stream included), revocation, and keys
kept only as digests."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from coordinator.admin import Admin
from coordinator.config import Settings
from coordinator.errors import SessionOfAnotherKey
from coordinator.models import digest_of, session_id_for
from coordinator.routes import (
    DECIDE,
    DECISIONS,
    END,
    EVENTS,
    HEARTBEAT,
    HOOK,
    SESSIONS,
    of_workspace,
)
from coordinator.store import Store
from tests.event_feed import open_feed
from tests.helpers import Service, Team, bearer, hook

pytestmark = pytest.mark.anyio


async def snapshot(client: httpx.AsyncClient, api_key: str) -> list[Any]:
    auth = bearer(api_key)
    routes = ("sessions", "reservations", "decisions")
    return [(await client.get(f"/workspaces/acme/{r}", headers=auth)).json() for r in routes]


async def test_a_key_of_another_workspace_can_read_or_change_nothing(
    client: httpx.AsyncClient, team: Team
) -> None:
    await hook(
        client, team.dev_a, event="preToolUse", conversation_id="a", file_path="a.ts", task="T"
    )
    await client.post(DECIDE, headers=bearer(team.dev_a), json={"text": "Use X"})
    before = await snapshot(client, team.dev_a)
    sid = session_id_for("acme", "a")  # what an outsider might guess, or read in a log
    auth = bearer(team.outsider)
    attempts: list[tuple[str, str, dict[str, Any], set[int]]] = [
        ("GET", of_workspace(SESSIONS, "acme"), {}, {403}),
        ("GET", f"/workspaces/{team.workspace_id}/reservations", {}, {403}),
        ("GET", of_workspace(DECISIONS, "acme"), {}, {403}),
        ("POST", HEARTBEAT, {"session_id": sid}, {404}),
        ("POST", END, {"session_id": sid}, {404}),
        ("POST", END, {"session_id": sid, "workspace_slug": "acme"}, {403}),
        ("POST", DECIDE, {"text": "No X", "workspace_slug": "acme"}, {403}),
        ("POST", HOOK, {"event": "sessionEnd", "conversation_id": "a", "workspace_slug": "acme"},
         {403}),
        ("POST", HOOK, {"event": "preToolUse", "conversation_id": "a", "file_path": "a.ts",
                        "workspace_slug": team.workspace_id}, {422}),
    ]  # fmt: skip
    for method, path, body, statuses in attempts:
        response = await client.request(method, path, headers=auth, json=body)
        assert response.status_code in statuses, (path, body, response.text)
    # Its own conversation "a" and its own decision land in its own workspace only.
    await hook(client, team.outsider, event="sessionEnd", conversation_id="a")
    await client.post(DECIDE, headers=auth, json={"text": "No X"})
    assert await snapshot(client, team.dev_a) == before
    assert before[1][0]["file_path"] == "a.ts" and before[2][0]["text"] == "Use X"


async def test_revoking_a_key_ends_its_sessions_and_releases_their_files(
    client: httpx.AsyncClient, admin: Admin, team: Team
) -> None:
    await hook(client, team.dev_a, event="preToolUse", conversation_id="a1", file_path="one.ts")
    await hook(client, team.dev_a, event="preToolUse", conversation_id="a2", file_path="two.ts")
    await hook(client, team.dev_b, event="preToolUse", conversation_id="b", file_path="b.ts")
    denied = await hook(
        client, team.dev_b, event="preToolUse", conversation_id="b", file_path="one.ts"
    )
    assert denied["permission"] == "deny"

    revoked = await admin.revoke_key(team.dev_a)

    assert (revoked.sessions_ended, revoked.files_released) == (2, 2)
    refused = await client.post(
        HOOK, headers=bearer(team.dev_a), json={"event": "sessionStart", "conversation_id": "a1"}
    )
    assert refused.status_code == 401
    allowed = await hook(
        client, team.dev_b, event="preToolUse", conversation_id="b", file_path="one.ts"
    )
    assert allowed == {"permission": "allow"}
    sessions, reservations, _ = await snapshot(client, team.dev_b)
    assert [s["user_name"] for s in sessions] == ["Developer B"]
    assert sorted(r["file_path"] for r in reservations) == ["b.ts", "one.ts"]


async def test_revoking_releases_what_an_idle_session_of_the_key_still_holds(
    redis: Redis, team: Team
) -> None:
    # Sessions go idle long before their reservations expire (SPEC_NOTES).
    short = Store(redis, Settings(rate_per_s=0, session_ttl_ms=50))
    who = await short.principal(digest_of(team.dev_a))
    assert who is not None
    sid = session_id_for("acme", "a")
    await short.touch(who, sid, "a", {"key_id": who.key_id}, ["kept.ts"])
    await redis.delete(f"coord:{{acme}}:session:{sid}")  # as if its TTL had run out

    admin = Admin(redis, Settings())
    revoked = await admin.revoke_key(team.dev_a)
    await admin.aclose()
    await short.aclose()

    assert (revoked.sessions_ended, revoked.files_released) == (0, 1)
    assert await redis.exists("coord:{acme}:lock:kept.ts") == 0


async def test_api_keys_are_kept_only_as_digests(
    client: httpx.AsyncClient, redis: Redis, team: Team
) -> None:
    for conversation, api_key in enumerate((team.dev_a, team.dev_b)):
        await hook(client, api_key, event="sessionStart", conversation_id=str(conversation))
        await hook(client, api_key, event="preToolUse", conversation_id=f"c{conversation}",
                   file_path=f"f{conversation}")  # fmt: skip
    everything = []
    async for key in redis.scan_iter("*"):
        everything.append(key)
        match await redis.type(key):
            case "hash":
                fields = await redis.hgetall(key)
                everything += [*fields, *fields.values()]
            case "string":
                everything.append(await redis.get(key))
            case "zset":
                everything += await redis.zrange(key, 0, -1)
            case "set":
                everything += await redis.smembers(key)
            case "list":
                everything += await redis.lrange(key, 0, -1)
    dump = "\n".join(everything)
    assert digest_of(team.dev_a) in dump
    for api_key in (team.dev_a, team.dev_b, team.outsider):
        assert api_key.removeprefix("ek_") not in dump


@pytest.mark.real_redis
async def test_a_key_of_another_workspace_gets_no_stream_and_no_event(
    service: Service, redis_url: str
) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    admin = Admin(redis, Settings())
    await admin.create_workspace("other")
    outsider, _ = await admin.create_key("other", "Outsider")
    acme = await admin.workspace("acme")
    await admin.aclose()
    await redis.aclose()
    assert acme is not None
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
        for ref in ("acme", acme.id):
            refused = await http.get(EVENTS.format(ref=ref), headers=bearer(outsider))
            assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
        async with contextlib.AsyncExitStack() as stack:
            feed = await open_feed(http, service.url, outsider, stack, ref="other")
            await hook(http, service.dev_a, event="preToolUse", conversation_id="a", file_path="x")
            await http.post(DECIDE, headers=bearer(service.dev_a),
                            json={"text": "Acme only"})  # fmt: skip
            await http.post(DECIDE, headers=bearer(outsider), json={"text": "Ours"})
            # Redis delivers in publishing order: acme's events would have come first.
            first = await feed.event()
            assert (first["type"], first["text"], first["user"]) == ("decision", "Ours", "Outsider")


def test_only_the_key_that_started_a_session_can_act_for_it(service: Service) -> None:
    """Bob reads Alice's conversation id from the listing and tries everything with it."""
    alice, bob = bearer(service.dev_a), bearer(service.dev_b)
    with httpx.Client(base_url=service.url, timeout=10) as http:

        def listings() -> list[Any]:
            routes = ("sessions", "reservations")
            return [http.get(f"/workspaces/acme/{route}", headers=bob).json() for route in routes]

        started = http.post(HOOK, headers=alice, json={
            "event": "preToolUse", "conversation_id": "alice-conv", "file_path": "src/login.ts",
            "task": "Login"})  # fmt: skip
        assert started.json() == {"permission": "allow"}
        before = listings()
        [session] = before[0]
        conversation, sid = session["conversation_id"], session["id"]
        attempts: list[tuple[str, dict[str, Any]]] = [
            (HOOK, {"event": "sessionEnd", "conversation_id": conversation}),
            (HOOK, {"event": "preToolUse", "conversation_id": conversation, "file_path": "b.ts"}),
            (HOOK, {"event": "sessionStart", "conversation_id": conversation}),
            (HOOK + "?agent=claude-code", {"hook_event_name": "SessionEnd",
                                           "session_id": conversation}),
            (HEARTBEAT, {"session_id": sid}),
            (END, {"session_id": sid}),
        ]  # fmt: skip
        for path, body in attempts:
            refused = http.post(path, headers=bob, json=body)
            assert refused.status_code == 403, (path, body, refused.text)
            assert refused.json()["error"] == "session_of_another_key"
        assert listings() == before  # nothing changed, not even the session's last heartbeat
        ended = http.post(END, headers=alice, json={"session_id": sid})
        assert ended.json() == {"ok": True, "released": 1}


async def test_another_key_cannot_take_over_the_files_of_an_idle_session(
    redis: Redis, team: Team
) -> None:
    store = Store(redis, Settings(rate_per_s=0))
    alice, bob = [await store.principal(digest_of(key)) for key in (team.dev_a, team.dev_b)]
    assert alice is not None and bob is not None
    sid = session_id_for("acme", "a")
    await store.touch(alice, sid, "a", {"key_id": alice.key_id}, ["kept.ts"])
    await redis.delete(f"coord:{{acme}}:session:{sid}")  # gone idle; its reservation lives on
    fields = {"key_id": bob.key_id}
    for attempt in (
        store.touch(bob, sid, "a", fields, ["kept.ts"]),
        store.start(bob, sid, "a", fields),
        store.heartbeat(bob, sid),
    ):
        with pytest.raises(SessionOfAnotherKey):
            await attempt
    with pytest.raises(SessionOfAnotherKey):
        await store.end_session(bob, sid)
    assert await redis.get("coord:{acme}:lock:kept.ts") == sid
    assert not await redis.exists(f"coord:{{acme}}:session:{sid}")
    ended = await store.end_session(alice, sid)
    assert (ended.live, ended.released) == (False, 1)
    await store.aclose()


async def test_a_read_only_key_reads_everything_and_writes_nothing(
    client: httpx.AsyncClient, admin: Admin, team: Team
) -> None:
    await hook(client, team.dev_a, event="preToolUse", conversation_id="a", file_path="a.ts")
    await client.post(DECIDE, headers=bearer(team.dev_a), json={"text": "Use X"})
    wall, info = await admin.create_key("acme", "Wall screen", read_only=True)
    assert info.read_only
    before = await snapshot(client, team.dev_a)
    assert await snapshot(client, wall) == before
    assert (await client.get("/whoami", headers=bearer(wall))).json()["user_name"] == "Wall screen"
    sid = session_id_for("acme", "wall")
    writes: list[tuple[str, dict[str, Any]]] = [
        (HOOK, {"event": "sessionStart", "conversation_id": "wall"}),
        (HOOK, {"event": "preToolUse", "conversation_id": "wall", "file_path": "b.ts"}),
        (HOOK, {"event": "preToolUse", "conversation_id": "a", "file_path": "a.ts"}),
        (HOOK, {"event": "sessionEnd", "conversation_id": "a"}),
        (HOOK + "?agent=codex", {"hook_event_name": "SessionStart", "session_id": "wall"}),
        (HEARTBEAT, {"session_id": sid}),
        (END, {"session_id": session_id_for("acme", "a")}),
        (DECIDE, {"text": "No X"}),
    ]
    for path, body in writes:
        refused = await client.post(path, headers=bearer(wall), json=body)
        assert (refused.status_code, refused.json()["error"]) == (403, "read_only_key"), path
    assert await snapshot(client, team.dev_a) == before


@pytest.mark.real_redis
async def test_a_read_only_key_follows_the_event_stream(service: Service, redis_url: str) -> None:
    redis = Redis.from_url(redis_url, decode_responses=True)
    admin = Admin(redis, Settings())
    wall, _ = await admin.create_key("acme", "Wall screen", read_only=True)
    await admin.aclose()
    await redis.aclose()
    async with httpx.AsyncClient(base_url=service.url, timeout=10) as http:
        async with contextlib.AsyncExitStack() as stack:
            feed = await open_feed(http, service.url, wall, stack)
            await hook(http, service.dev_a, event="preToolUse", conversation_id="a", file_path="x")
            started = await feed.event()
            assert (started["type"], started["user"]) == ("started", "Developer A")


async def test_only_the_owner_sets_the_roots_of_a_conversation(redis: Redis, team: Team) -> None:
    store = Store(redis, Settings(rate_per_s=0))
    alice, bob = [await store.principal(digest_of(key)) for key in (team.dev_a, team.dev_b)]
    assert alice is not None and bob is not None
    sid = session_id_for("acme", "a")
    await store.remember_roots(alice, sid, ["/home/a/repo"])
    await store.start(alice, sid, "a", {"key_id": alice.key_id})
    await redis.delete(f"coord:{{acme}}:session:{sid}")  # idle: the roots still name Alice
    with pytest.raises(SessionOfAnotherKey):
        await store.remember_roots(bob, sid, ["/home/b/elsewhere"])
    fresh = Store(redis, Settings(rate_per_s=0))  # no cache: read from Redis
    assert await fresh.roots(alice, sid) == ("/home/a/repo",)
    assert await fresh.roots(bob, sid) == ()
    await fresh.aclose()
    await store.aclose()


async def test_roots_named_through_another_replica_count_once_trusted_ones_age(
    redis: Redis, team: Team, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("coordinator.store._NO_ROOTS_CACHED_S", 0.0)
    monkeypatch.setattr("coordinator.store._ROOTS_CACHED_S", 0.0)
    one, two = Store(redis, Settings(rate_per_s=0)), Store(redis, Settings(rate_per_s=0))
    try:
        alice = await one.principal(digest_of(team.dev_a))
        assert alice is not None
        sid = session_id_for("acme", "a")
        assert await two.roots(alice, sid) == ()  # no start yet
        await one.remember_roots(alice, sid, ["/home/a/repo"])
        assert await two.roots(alice, sid) == ("/home/a/repo",)
        await one.remember_roots(alice, sid, ["/home/a/other-checkout"])  # resumed elsewhere
        assert await two.roots(alice, sid) == ("/home/a/other-checkout",)
    finally:
        await one.aclose()
        await two.aclose()
