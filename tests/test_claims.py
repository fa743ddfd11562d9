"""The claim routes (reserve, release, request a file, the open requests) and what the
hooks say of them, over HTTP on fakeredis and a real Redis."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from coordinator.routes import HOOK, RELEASE, REQUEST, REQUESTS, RESERVE, of_workspace
from tests.helpers import Team, bearer
from tests.test_native import claude, claude_edit, codex

pytestmark = pytest.mark.anyio
REPO = "/Users/a/work/repo"  # the cwd of test_native's payloads


async def post(client: httpx.AsyncClient, key: str, route: str, **body: Any) -> httpx.Response:
    return await client.post(route, headers=bearer(key), json=body)


async def edit(
    client: httpx.AsyncClient, key: str, event: str, path: str, session: str, mcp: bool = True
) -> dict[str, Any]:
    params = {"agent": "claude-code", **({"mcp": "1"} if mcp else {})}
    body = claude_edit(event, f"{REPO}/{path}", session)
    response = await client.post(HOOK, headers=bearer(key), json=body, params=params)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def reason(answer: dict[str, Any]) -> str:
    return str(answer.get("hookSpecificOutput", {}).get("permissionDecisionReason", ""))


def context(answer: dict[str, Any]) -> str:
    return str(answer.get("hookSpecificOutput", {}).get("additionalContext", ""))


async def test_a_directory_reserved_denies_writes_inside_it_with_advice(
    client: httpx.AsyncClient, team: Team
) -> None:
    reserved = await post(
        client,
        team.dev_a,
        RESERVE,
        conversation_id="a-1",
        paths=["src\\api\\"],
        cwd=REPO,
        task="Rework the API",
    )
    assert reserved.status_code == 200, reserved.text
    assert reserved.json()["reserved"] == ["src/api/"]
    denied = await edit(client, team.dev_b, "PreToolUse", "src/API/users.ts", "b-1")
    assert reason(denied) == (
        "File src/API/users.ts is reserved by Developer A — 'Rework the API' "
        "(10 min remaining, as part of src/api/). "
        "Work on something else, or call request_file to be next in line."
    )
    plain = await edit(client, team.dev_b, "PreToolUse", "src/api/users.ts", "b-1", mcp=False)
    assert reason(plain).endswith("as part of src/api/)")  # no companion: no tool advice
    # A file held refuses a directory over it, naming both.
    await edit(client, team.dev_b, "PreToolUse", "lib/util.ts", "b-1")
    refused = await post(client, team.dev_a, RESERVE, conversation_id="a-1", paths=["lib/"])
    assert refused.status_code == 409
    assert refused.json()["error"] == "reserved"
    assert "lib/ overlaps lib/util.ts, reserved by Developer B" in refused.json()["message"]


async def test_request_release_and_hand_off(client: httpx.AsyncClient, team: Team) -> None:
    await post(client, team.dev_a, RESERVE, conversation_id="a-1", paths=["src/api/"], cwd=REPO)
    asked = await post(
        client,
        team.dev_b,
        REQUEST,
        conversation_id="b-1",
        path=f"{REPO}/src/api/h.ts",
        cwd=REPO,
        note="need the handler",
        agent_type="codex",
    )
    assert asked.status_code == 200, asked.text
    assert asked.json()["position"] == 1 and asked.json()["via"] == "src/api/"
    listed = await client.get(of_workspace(REQUESTS, "acme"), headers=bearer(team.dev_a))
    [queue] = listed.json()
    assert queue["file_path"] == "src/api/h.ts"
    assert queue["holder"]["user_name"] == "Developer A"
    assert [w["user_name"] for w in queue["waiters"]] == ["Developer B"]
    # The holder's next event that carries context tells it who waits.
    told = await edit(client, team.dev_a, "PostToolUse", "src/api/other.ts", "a-1")
    assert "Developer B (Codex) is waiting for src/api/h.ts — 'need the handler'" in context(told)
    assert 'release(["src/api/"])' in context(told)
    released = await post(client, team.dev_a, RELEASE, conversation_id="a-1", paths=["src/api/"])
    assert released.json() == {"released": ["src/api/"]}
    third = await edit(client, team.dev_a, "PreToolUse", "src/api/h.ts", "c-1")
    assert "reserved for Developer B (next in line)" in reason(third)
    prompt = claude("UserPromptSubmit", "b-1", prompt="go on")
    told_b = await client.post(
        HOOK, headers=bearer(team.dev_b), json=prompt, params={"agent": "claude-code"}
    )
    assert "src/api/h.ts is free and held for you" in context(told_b.json())


async def test_the_claim_routes_errors(client: httpx.AsyncClient, team: Team) -> None:
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        (team.dev_a, RESERVE, {"paths": ["src/{a,b}.ts"]}, 422, "invalid_glob"),
        (team.dev_a, RESERVE, {"paths": [f"f{i}.ts" for i in range(101)]}, 422, "invalid_field"),
        (team.dev_a, RESERVE, {"paths": []}, 422, "invalid_field"),
        (team.dev_a, RESERVE, {"paths": ["a.ts"], "minutes": 0}, 422, "invalid_field"),
        (team.dev_a, RELEASE, {"paths": ["nope.ts"]}, 409, "not_holder"),
        (team.dev_a, REQUEST, {"path": "free.ts"}, 409, "not_reserved"),
        (team.dev_a, REQUEST, {"path": "src/"}, 422, "invalid_field"),
        (team.dev_a, REQUEST, {"path": "../../etc"}, 422, "invalid_path"),
        (team.outsider, RESERVE, {"paths": ["a.ts"], "workspace_slug": "acme"}, 403, "forbidden"),
        ("nope", RESERVE, {"paths": ["a.ts"]}, 401, "unauthorized"),
    ]
    for key, route, body, status, code in cases:
        response = await post(client, key, route, conversation_id="a-1", **body)
        assert (response.status_code, response.json()["error"]) == (status, code), (route, body)
        assert response.json()["message"]
    bad = await client.post(RESERVE, headers=bearer(team.dev_a), content=b"{")
    assert bad.status_code == 400


async def test_codex_is_told_its_file_is_free_at_its_next_prompt(
    client: httpx.AsyncClient, team: Team
) -> None:
    await edit(client, team.dev_a, "PreToolUse", "x.ts", "a-1")
    await post(client, team.dev_b, REQUEST, conversation_id="codex-1", path="x.ts")
    await post(client, team.dev_a, RELEASE, conversation_id="a-1")
    body = codex("UserPromptSubmit", prompt="next")
    answer = await client.post(
        HOOK, headers=bearer(team.dev_b), json=body, params={"agent": "codex"}
    )
    assert "x.ts is free and held for you" in context(answer.json())
