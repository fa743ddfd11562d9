"""The HTTP API, on fakeredis and on a real Redis."""

from __future__ import annotations

import httpx
import pytest
from redis.asyncio import Redis

from coordinator import keys
from coordinator.app import create_app
from coordinator.config import Settings
from coordinator.models import session_id_for
from coordinator.routes import (
    DECIDE,
    DECISIONS,
    END,
    HEARTBEAT,
    HOOK,
    RESERVATIONS,
    SESSIONS,
    of_workspace,
)
from tests.helpers import Team, bearer, hook_response
from tests.servers import free_port

pytestmark = pytest.mark.anyio


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error", "message"} and body["message"]
    code: str = body["error"]
    return code


async def test_the_story_of_two_developers(client: httpx.AsyncClient, team: Team) -> None:
    started = await hook_response(
        client,
        team.dev_b,
        event="sessionStart",
        agent_type="cursor",
        workspace_slug="acme",
        conversation_id="conv-b",
        task="Build JWT auth flow",
    )
    assert started.status_code == 200
    assert started.json()["session_id"] == session_id_for("acme", "conv-b")
    claimed = await hook_response(
        client,
        team.dev_b,
        event="preToolUse",
        conversation_id="conv-b",
        cwd="/home/b/repo",
        file_path="/home/b/repo/src/auth/login.ts",
    )
    assert claimed.json() == {"permission": "allow"}
    decided = await client.post(
        DECIDE, headers=bearer(team.dev_b), json={"text": "Use JWT for auth"}
    )
    assert decided.status_code == 201
    assert decided.json()["user_name"] == "Developer B"

    briefing = await hook_response(
        client, team.dev_a, event="SessionStart", agent_type="claude-code", conversation_id="conv-a"
    )
    assert briefing.json()["additional_context"] == (
        "Team briefing:\n\nActive agents:\n  - Developer B (Cursor): Build JWT auth flow\n\n"
        "Locked files:\n  - src/auth/login.ts (Developer B)\n\n"
        "Recent decisions:\n  - Use JWT for auth (Developer B, just now)"
    )
    denied = await hook_response(
        client,
        team.dev_a,
        event="PreToolUse",
        conversation_id="conv-a",
        tool_name="Edit",
        cwd="/Users/a/work/repo",
        tool_input={"file_path": "/Users/a/work/repo/src/auth/login.ts"},
    )
    assert denied.json() == {
        "permission": "deny",
        "message": "File src/auth/login.ts is reserved by Developer B — 'Build JWT auth flow' "
        "(10 min remaining)",
    }

    ended = await hook_response(client, team.dev_b, event="sessionEnd", conversation_id="conv-b")
    assert ended.json() == {"ok": True}
    retried = await hook_response(
        client,
        team.dev_a,
        event="PostToolUse",
        conversation_id="conv-a",
        tool_name="Write",
        tool_input={"file_path": "src/auth/login.ts"},
    )
    assert retried.json() == {"permission": "allow"}


async def test_listings(client: httpx.AsyncClient, team: Team) -> None:
    await hook_response(
        client,
        team.dev_a,
        event="sessionStart",
        agent_type="codex",
        conversation_id="conv-a",
        branch="feature/jwt",
    )
    await hook_response(
        client,
        team.dev_a,
        event="UserPromptSubmit",
        conversation_id="conv-a",
        prompt="Add refresh tokens\nand tests",
    )
    await hook_response(
        client, team.dev_a, event="postToolUse", conversation_id="conv-a", file_path="a.ts"
    )
    for ref in ("acme", team.workspace_id):
        sessions = await client.get(SESSIONS.format(ref=ref), headers=bearer(team.dev_a))
        [session] = sessions.json()
        assert session["user_name"] == "Developer A"
        assert (session["agent_type"], session["branch"]) == ("codex", "feature/jwt")
        assert session["current_task"] == "Add refresh tokens"
        assert (session["current_file"], session["reserved_files"]) == ("a.ts", ["a.ts"])
        assert session["last_heartbeat"].endswith("Z") and len(session["last_heartbeat"]) == 20
    reservations = await client.get(of_workspace(RESERVATIONS, "acme"), headers=bearer(team.dev_b))
    [reservation] = reservations.json()
    assert reservation["file_path"] == "a.ts"
    assert reservation["session_id"] == session_id_for("acme", "conv-a")
    assert reservation["conversation_id"] == "conv-a"
    assert reservation["current_task"] == "Add refresh tokens"
    assert reservation["expires_at"].endswith("Z")


async def test_heartbeat_and_end_by_session_id(client: httpx.AsyncClient, team: Team) -> None:
    sid = (
        await hook_response(client, team.dev_a, event="sessionStart", conversation_id="c")
    ).json()["session_id"]
    await hook_response(
        client, team.dev_a, event="preToolUse", conversation_id="c", file_path="x.ts"
    )
    auth = bearer(team.dev_a)
    beat = await client.post(HEARTBEAT, headers=auth, json={"session_id": sid})
    assert beat.json() == {"ok": True}
    end = await client.post(END, headers=auth, json={"workspace_slug": "acme", "session_id": sid})
    assert end.json() == {"ok": True, "released": 1}
    assert (await client.get(of_workspace(RESERVATIONS, "acme"), headers=auth)).json() == []
    gone = await client.post(HEARTBEAT, headers=auth, json={"session_id": sid})
    assert (gone.status_code, error_of(gone)) == (404, "session_not_found")
    # An end is idempotent: a retry (its client timed out on the first) answers as the first.
    again = await client.post(END, headers=auth, json={"session_id": sid})
    assert (again.status_code, again.json()) == (200, {"ok": True, "released": 1})
    never = session_id_for("acme", "never-started")
    for route in ("heartbeat", "end"):
        unknown = await client.post(
            f"/workspaces/sessions/{route}", headers=auth, json={"session_id": never}
        )
        assert (unknown.status_code, error_of(unknown)) == (404, "session_not_found")


async def test_an_end_from_an_unknown_conversation_creates_nothing(
    client: httpx.AsyncClient, team: Team, redis: Redis
) -> None:
    for event in ("sessionEnd", "SessionEnd", "Stop"):
        ended = await hook_response(client, team.dev_a, event=event, conversation_id="ghost")
        assert ended.json() == {"ok": True}
    assert not await redis.exists(keys.session("acme", session_id_for("acme", "ghost")))


async def test_decisions_listing_and_limits(client: httpx.AsyncClient, team: Team) -> None:
    auth = bearer(team.dev_a)
    for text in ("one", "two", "three"):
        await client.post(DECIDE, headers=auth, json={"text": text})
    listed = await client.get("/workspaces/acme/decisions?limit=2", headers=auth)
    assert [d["text"] for d in listed.json()] == ["three", "two"]
    for limit in ("0", "201", "x"):
        bad = await client.get(f"/workspaces/acme/decisions?limit={limit}", headers=auth)
        assert (bad.status_code, error_of(bad)) == (422, "invalid_field")
    for text in ("x" * 501, "   "):
        long = await client.post(DECIDE, headers=auth, json={"text": text})
        assert long.status_code == 422


async def test_every_route_needs_a_key(client: httpx.AsyncClient, team: Team) -> None:
    routes = [
        ("POST", HOOK),
        ("POST", HEARTBEAT),
        ("POST", END),
        ("POST", DECIDE),
        ("GET", of_workspace(SESSIONS, "acme")),
        ("GET", of_workspace(RESERVATIONS, "acme")),
        ("GET", of_workspace(DECISIONS, "acme")),
    ]
    for method, path in routes:
        for headers in ({}, bearer("ek_not-a-key"), {"Authorization": "Basic abc"}):
            response = await client.request(method, path, headers=headers, json={})
            assert (response.status_code, error_of(response)) == (401, "unauthorized"), path


async def test_a_key_reaches_only_its_own_workspace(client: httpx.AsyncClient, team: Team) -> None:
    auth = bearer(team.outsider)
    answers = set()
    for ref in ("acme", team.workspace_id, "no-such-workspace"):
        for route in ("sessions", "reservations", "decisions"):
            response = await client.get(f"/workspaces/{ref}/{route}", headers=auth)
            answers.add((response.status_code, response.text))
    assert answers == {
        (403, '{"error":"forbidden","message":"this API key belongs to another workspace"}')
    }
    body = {"event": "sessionStart", "conversation_id": "c", "workspace_slug": "acme"}
    assert (await client.post(HOOK, headers=auth, json=body)).status_code == 403
    # The same conversation id in two workspaces is two sessions: no conflict across them.
    await hook_response(
        client, team.dev_a, event="preToolUse", conversation_id="c", file_path="a.ts"
    )
    other = await hook_response(
        client, team.outsider, event="preToolUse", conversation_id="c", file_path="a.ts"
    )
    assert other.json() == {"permission": "allow"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (b'{"event": "sessionBegin", "conversation_id": "c"}', 400, "unknown_event"),
        (b'{"event": "sessionStart"}', 422, "invalid_field"),
        (b'{"event": "sessionStart", "conversation_id": 7}', 422, "invalid_field"),
        (b'["sessionStart"]', 422, "invalid_field"),
        (
            b'{"event":"sessionStart","conversation_id":"c","workspace_slug":"Acme!"}',
            422,
            "invalid_field",
        ),
        (
            b'{"event":"preToolUse","conversation_id":"c","file_path":"../../etc/passwd"}',
            422,
            "invalid_path",
        ),
        (
            b'{"event":"preToolUse","conversation_id":"c","file_path":"a\\u0000b"}',
            422,
            "invalid_path",
        ),
    ],
)
async def test_bad_input_gets_a_clear_error(
    client: httpx.AsyncClient, team: Team, body: bytes, status: int, code: str
) -> None:
    response = await client.post(HOOK, headers=bearer(team.dev_a), content=body)
    assert (response.status_code, error_of(response)) == (status, code)


async def test_bad_input_loses_nothing(client: httpx.AsyncClient, team: Team) -> None:
    await hook_response(
        client, team.dev_a, event="preToolUse", conversation_id="c", file_path="kept.ts"
    )
    await hook_response(
        client, team.dev_a, event="preToolUse", conversation_id="c", file_path="../x"
    )
    listed = await client.get(of_workspace(RESERVATIONS, "acme"), headers=bearer(team.dev_a))
    assert [r["file_path"] for r in listed.json()] == ["kept.ts"]


async def test_a_body_over_one_mib_is_refused(client: httpx.AsyncClient, team: Team) -> None:
    huge = b'{"event":"sessionStart","conversation_id":"c","task":"' + b"x" * (1 << 20) + b'"}'
    response = await client.post(HOOK, headers=bearer(team.dev_a), content=huge)
    assert (response.status_code, error_of(response)) == (413, "payload_too_large")


async def test_malformed_session_ids_and_unknown_routes(
    client: httpx.AsyncClient, team: Team
) -> None:
    auth = bearer(team.dev_a)
    bad = await client.post(END, headers=auth, json={"session_id": "x:*"})
    assert (bad.status_code, error_of(bad)) == (422, "invalid_field")
    missing = await client.get("/nowhere", headers=auth)
    assert (missing.status_code, error_of(missing)) == (404, "not_found")
    wrong = await client.get(HOOK, headers=auth)
    assert (wrong.status_code, error_of(wrong)) == (405, "method_not_allowed")


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
async def test_health_and_hooks_answer_503_when_redis_is_down(scheme: str) -> None:
    """A lone Redis and a cluster of which no node answers fail alike."""
    app = create_app(Settings(redis_url=f"{scheme}://127.0.0.1:{free_port()}"))
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://c") as client:
        health = await client.get("/health")
        assert (health.status_code, error_of(health)) == (503, "store_unavailable")
        hooked = await hook_response(
            client, "ek_whatever", event="sessionStart", conversation_id="c"
        )
        assert (hooked.status_code, error_of(hooked)) == (503, "store_unavailable")
