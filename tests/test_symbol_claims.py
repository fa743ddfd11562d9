"""Symbol-level claims: two sessions may hold two symbols of one file; the same symbol, or
a whole-file claim against any symbol claim of the file, conflict. On fakeredis and a
real Redis, through the store and through the hook route."""

from __future__ import annotations

import anyio
import httpx
import pytest
from redis.asyncio import Redis

from coordinator import keys
from coordinator.admin import Admin
from coordinator.config import Settings
from coordinator.errors import InvalidField
from coordinator.models import HookOutcome, Principal, digest_of, session_id_for
from coordinator.render import deny_message
from coordinator.routes import RESERVE
from coordinator.store import Store
from coordinator.symbol_claims import Claim, SymbolRef, folded, key_claims, split, symbols_by_file
from tests.helpers import Team, bearer, hook_response, send_hook

pytestmark = pytest.mark.anyio

FILE = "src/auth/tokens.py"


async def principal(store: Store, api_key: str) -> Principal:
    who = await store.principal(digest_of(api_key))
    assert who is not None
    return who


async def touch(
    store: Store, who: Principal, conversation: str, *claims: Claim | str, task: str = ""
) -> HookOutcome:
    sid = session_id_for(who.workspace, conversation)
    fields = {"user_name": who.user_name, "key_id": who.key_id}
    if task:
        fields["current_task"] = task
    return await store.touch(who, sid, conversation, fields, claims)


def fn(name: str, path: str = FILE, kind: str = "function") -> Claim:
    return Claim(path, name, kind)


async def test_two_symbols_of_one_file_coexist_and_one_symbol_conflicts(
    store: Store, team: Team
) -> None:
    a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
    assert (
        await touch(store, b, "conv-b", fn("refresh_token"), task="Add refresh tokens")
    ).conflict is None
    assert (await touch(store, a, "conv-a", fn("revoke_token"))).conflict is None
    denied = await touch(store, a, "conv-a", fn("refresh_token"))
    assert denied.conflict is not None
    assert (denied.conflict.file_path, denied.conflict.symbol) == (FILE, "refresh_token")
    assert denied.conflict.symbol_kind == "function"
    assert deny_message(denied.conflict) == (
        f"Function refresh_token in {FILE} is reserved by Developer B — 'Add refresh tokens' "
        "(10 min remaining)"
    )
    # Their own symbols again, or a new one: still theirs, no conflict.
    assert (
        await touch(store, b, "conv-b", fn("refresh_token"), fn("Session", kind="class"))
    ).conflict is None


async def test_a_whole_file_claim_and_a_symbol_claim_conflict_both_ways(
    store: Store, team: Team
) -> None:
    a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
    assert (await touch(store, b, "conv-b", fn("Session.expired", kind="method"))).conflict is None
    whole = await touch(store, a, "conv-a", FILE)
    assert whole.conflict is not None
    assert (whole.conflict.symbol, whole.conflict.holder.user_name) == (
        "Session.expired",
        "Developer B",
    )
    assert deny_message(whole.conflict).startswith(f"Method Session.expired in {FILE} is reserved")
    # All or nothing: the free file in the same claim was not taken.
    assert (await touch(store, a, "conv-a", "free.py", FILE)).conflict is not None
    assert [r.file_path for r in (await store.reservations(a)).items] == [FILE]

    assert (await touch(store, a, "conv-a", "other.py")).conflict is None
    partial = await touch(store, b, "conv-b", fn("main", "other.py"))
    assert partial.conflict is not None
    assert (partial.conflict.file_path, partial.conflict.symbol) == ("other.py", None)
    assert deny_message(partial.conflict).startswith("File other.py is reserved by Developer A")


async def test_a_session_holding_a_file_may_claim_its_symbols_and_the_reverse(
    store: Store, team: Team
) -> None:
    a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
    assert (await touch(store, a, "conv-a", fn("f"), fn("g"))).conflict is None
    assert (await touch(store, a, "conv-a", FILE)).conflict is None  # its own symbols
    assert (await touch(store, a, "conv-a", fn("h"))).conflict is None  # its own file
    assert (await touch(store, b, "conv-b", fn("z"))).conflict is not None  # A holds it whole


async def test_symbol_names_keep_their_case_while_paths_fold(store: Store, team: Team) -> None:
    a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
    assert (await touch(store, a, "conv-a", fn("Run", "main.go"))).conflict is None
    assert (await touch(store, b, "conv-b", fn("run", "main.go"))).conflict is None
    denied = await touch(store, b, "conv-b", fn("Run", "MAIN.go"))
    assert denied.conflict is not None and denied.conflict.symbol == "Run"
    assert (await touch(store, b, "conv-b", "Main.GO")).conflict is not None


async def test_listings_show_symbols(store: Store, team: Team) -> None:
    a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
    await touch(store, a, "conv-a", fn("refresh_token"), fn("Session", kind="class"), "notes.py")
    await touch(store, b, "conv-b", fn("revoke_token"))
    rows = {(r.file_path, r.symbol, r.user_name) for r in (await store.reservations(a)).items}
    assert rows == {
        (FILE, "refresh_token", "Developer A"),
        (FILE, "Session", "Developer A"),
        ("notes.py", None, "Developer A"),
        (FILE, "revoke_token", "Developer B"),
    }
    sessions = {s.user_name: s for s in (await store.sessions(a)).items}
    mine = sessions["Developer A"]
    assert mine.reserved_files == ["notes.py", FILE]
    assert mine.reserved_symbols == {FILE: ["Session", "refresh_token"]}
    assert mine.current_file == FILE  # the path, not the stored claim
    sid_b = session_id_for("acme", "conv-b")
    briefing = (await store.start(b, sid_b, "conv-b", {"user_name": b.user_name})).briefing
    assert briefing is not None
    assert {(lock.file_path, lock.symbol) for lock in briefing.locks} == {
        (FILE, "refresh_token"),
        (FILE, "Session"),
        ("notes.py", None),
    }


async def test_a_symbol_claim_counts_toward_the_caps(
    redis: Redis, admin: Admin, team: Team
) -> None:
    store = Store(redis, Settings(rate_per_s=0, max_files_per_session=2))
    try:
        a = await principal(store, team.dev_a)
        assert (await touch(store, a, "conv-a", fn("f"), "b.py")).over_cap is None
        over = await touch(store, a, "conv-a", fn("g"))
        assert over.over_cap is not None and (over.over_cap.scope, over.over_cap.held) == (
            "session",
            2,
        )
    finally:
        await store.aclose()


async def test_ending_releases_symbols_and_a_whole_file_claim_then_goes_through(
    store: Store, team: Team, redis: Redis
) -> None:
    a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
    await touch(store, b, "conv-b", fn("refresh_token"), fn("revoke_token"))
    assert (await touch(store, a, "conv-a", FILE)).conflict is not None
    ended = await store.end_session(b, session_id_for("acme", "conv-b"))
    assert ended.released == 2
    assert not await redis.exists(keys.file_symbols("acme", FILE))
    assert (await touch(store, a, "conv-a", FILE)).conflict is None


async def test_a_lapsed_symbol_claim_frees_the_file(redis: Redis, admin: Admin, team: Team) -> None:
    store = Store(redis, Settings(rate_per_s=0, reservation_ttl_ms=300))
    try:
        a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
        await touch(store, b, "conv-b", fn("refresh_token"))
        assert (await touch(store, a, "conv-a", FILE)).conflict is not None
        await anyio.sleep(0.5)
        assert (await touch(store, a, "conv-a", FILE)).conflict is None
        assert (await touch(store, b, "conv-b", fn("refresh_token"))).conflict is not None
    finally:
        await store.aclose()


async def test_renewal_keeps_a_symbol_claim_and_its_file_index_alive(
    redis: Redis, admin: Admin, team: Team
) -> None:
    store = Store(redis, Settings(rate_per_s=0, reservation_ttl_ms=1_200))
    try:
        a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
        await touch(store, b, "conv-b", fn("refresh_token"))
        for _ in range(4):  # past the TTL in all, but renewed every quarter of it or so
            await anyio.sleep(0.4)
            await touch(store, b, "conv-b")
        assert await redis.pttl(keys.file_symbols("acme", FILE)) > 0
        assert (await touch(store, a, "conv-a", FILE)).conflict is not None
    finally:
        await store.aclose()


async def test_revoking_the_holders_key_releases_its_symbols(
    store: Store, admin: Admin, team: Team
) -> None:
    a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
    await touch(store, b, "conv-b", fn("refresh_token"), fn("revoke_token"))
    revoked = await admin.revoke_key(team.dev_b)
    assert revoked.files_released == 2
    assert (await touch(store, a, "conv-a", FILE)).conflict is None


async def test_a_symbol_taken_since_is_news_at_the_next_prompt(store: Store, team: Team) -> None:
    a, b = await principal(store, team.dev_a), await principal(store, team.dev_b)
    sid_a = session_id_for("acme", "conv-a")
    await touch(store, b, "conv-b", fn("refresh_token"))
    assert (await touch(store, a, "conv-a", FILE)).conflict is not None  # told: B holds it
    await store.prompt(a, sid_a, "conv-a", {"user_name": a.user_name})
    await store.end_session(b, session_id_for("acme", "conv-b"))
    await touch(store, b, "conv-c", fn("refresh_token"), task="Rotate keys")
    news = (await store.prompt(a, sid_a, "conv-a", {"user_name": a.user_name})).news
    assert news is not None
    assert [(t.file_path, t.symbol, t.symbol_kind) for t in news.taken] == [
        (FILE, "refresh_token", "function")
    ]


def test_claims_are_keyed_like_paths_and_a_whole_file_wins() -> None:
    given: dict[str, list[str | SymbolRef]] = {"/repo/a.py": ["f", SymbolRef("C", "class")]}
    symbols = symbols_by_file(["/repo/a.py", "/repo/A.py", "/repo/b.py"], given)
    claims = key_claims(["/repo/a.py", "/repo/A.py", "/repo/b.py"], symbols, ["/repo"], None)
    assert claims == (Claim("a.py"), Claim("b.py"))  # A.py is a.py, written whole
    only = key_claims(["/repo/a.py"], symbols[:1], ["/repo"], None)
    assert only == (Claim("a.py", "f"), Claim("a.py", "C", "class"))
    assert split(only[1].member) == ("a.py", "C")
    assert folded(Claim("SRC/A.py", "Run").member) == "src/a.py\0Run"


@pytest.mark.parametrize(
    "symbols",
    [
        {"elsewhere.py": ["f"]},  # a file the event does not write
        {FILE: [""]},
        {FILE: [" f"]},
        {FILE: ["a\0b"]},
        {FILE: ["a\nb"]},
        {FILE: ["x" * 201]},
    ],
)
def test_bad_symbol_names_are_refused(symbols: dict[str, list[str]]) -> None:
    with pytest.raises(InvalidField):
        symbols_by_file([FILE], symbols)  # type: ignore[arg-type]


def pre_tool(conversation: str, symbols: object = None, path: str = FILE) -> dict[str, object]:
    body: dict[str, object] = {
        "event": "preToolUse",
        "conversation_id": conversation,
        "file_path": path,
        "task": f"task of {conversation}",
    }
    if symbols is not None:
        body["symbols"] = symbols
    return body


async def test_the_hook_route_claims_symbols_and_denies_naming_one(
    client: httpx.AsyncClient, team: Team
) -> None:
    b = await send_hook(
        client,
        team.dev_b,
        pre_tool("conv-b", {FILE: [{"name": "refresh_token", "kind": "function"}]}),
    )
    assert b == {"permission": "allow"}
    assert await send_hook(client, team.dev_a, pre_tool("conv-a", {FILE: ["revoke_token"]})) == {
        "permission": "allow"
    }
    same = await send_hook(client, team.dev_a, pre_tool("conv-a", {FILE: ["refresh_token"]}))
    assert same == {
        "permission": "deny",
        "message": f"Function refresh_token in {FILE} is reserved by Developer B — "
        "'task of conv-b' (10 min remaining)",
    }
    whole = await send_hook(client, team.dev_a, pre_tool("conv-a"))  # no symbols: the whole file
    assert whole["permission"] == "deny" and "refresh_token" in whole["message"]
    listed = await client.get("/workspaces/acme/reservations", headers=bearer(team.dev_a))
    assert {(r["file_path"], r["symbol"]) for r in listed.json()} == {
        (FILE, "refresh_token"),
        (FILE, "revoke_token"),
    }
    sessions = await client.get("/workspaces/acme/sessions", headers=bearer(team.dev_a))
    assert {s["user_name"]: s["reserved_symbols"] for s in sessions.json()} == {
        "Developer A": {FILE: ["revoke_token"]},
        "Developer B": {FILE: ["refresh_token"]},
    }


@pytest.mark.parametrize(
    "symbols",
    [
        {"other.py": ["f"]},
        {FILE: []},
        {FILE: [""]},
        {FILE: [{"name": "f", "kind": "gadget"}]},
        {FILE: [{"name": "f", "colour": "red"}]},
        {FILE: [f"f{i}" for i in range(33)]},
        {FILE: "f"},
        ["f"],
        {FILE: [1]},
    ],
)
async def test_bad_symbols_are_a_422(
    client: httpx.AsyncClient, team: Team, symbols: object
) -> None:
    response = await hook_response(client, team.dev_a, **pre_tool("conv-a", symbols))
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_field"


async def test_directory_and_glob_claims_conflict_with_symbol_claims_both_ways(
    client: httpx.AsyncClient, team: Team
) -> None:
    # A symbol held under a directory: reserving the directory (or a glob over the file)
    # is refused, naming the symbol.
    assert await send_hook(client, team.dev_b, pre_tool("conv-b", {FILE: ["Run"]})) == {
        "permission": "allow"
    }
    for pattern in ("src/auth/", "src/**/*.py"):
        refused = await client.post(
            RESERVE,
            headers=bearer(team.dev_a),
            json={"conversation_id": "conv-a", "paths": [pattern]},
        )
        assert refused.status_code == 409, refused.text
        assert f"overlaps {FILE}#Run, reserved by Developer B" in refused.json()["message"]
    # A directory held: a symbol claim of a file under it is denied, naming the directory.
    reserved = await client.post(
        RESERVE,
        headers=bearer(team.dev_a),
        json={"conversation_id": "conv-a", "paths": ["lib/"]},
    )
    assert reserved.status_code == 200, reserved.text
    denied = await send_hook(
        client, team.dev_b, pre_tool("conv-b", {"lib/x.py": ["f"]}, "lib/x.py")
    )
    assert denied["permission"] == "deny"
    assert denied["message"].startswith("File lib/x.py is reserved by Developer A")
    assert "as part of lib/" in denied["message"]
