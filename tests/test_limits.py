"""Every input limit, through the HTTP API: at the limit it works; one past it is a
4xx naming the field and the limit, and nothing is stored. On fakeredis and a real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from coordinator.config import MIB
from coordinator.events import MAX_FILES, MAX_TASK
from coordinator.paths import MAX_PATH
from coordinator.routes import DECIDE, END, HEARTBEAT, HOOK, RESERVATIONS, SESSIONS, of_workspace
from tests.helpers import Team, bearer

pytestmark = pytest.mark.anyio


def start(**fields: Any) -> dict[str, Any]:
    return {"event": "sessionStart", "conversation_id": "conv", **fields}


def write(path: str, **fields: Any) -> dict[str, Any]:
    return {"event": "preToolUse", "conversation_id": "conv", "file_path": path, **fields}


def patch(files: int, **fields: Any) -> dict[str, Any]:
    lines = "".join(f"*** Add File: src/f{i}.ts\n+x\n" for i in range(files))
    return {
        "tool_name": "apply_patch",
        "tool_input": {"command": f"*** Begin Patch\n{lines}*** End Patch\n"},
        "cwd": "/srv/repo",
        **fields,
    }


def codex_patch(files: int) -> dict[str, Any]:
    return patch(files, hook_event_name="PreToolUse", session_id="codex-1", agent_type="codex")


def generic_patch(files: int) -> dict[str, Any]:
    return patch(files, event="preToolUse", conversation_id="conv")


def roots(count: int) -> list[str]:
    return [f"/srv/repo{i}" for i in range(count)]


def native(**fields: Any) -> dict[str, Any]:
    return {"hook_event_name": "SessionStart", "agent_type": "claude-code", **fields}


async def stored(redis: Redis) -> set[bytes | str]:
    """Every key in the store: a refused request must leave it as it was."""
    return set(await redis.keys("*"))


def assert_refused(response: httpx.Response, status: int, code: str, *named: str) -> None:
    body = response.json()
    assert (response.status_code, body["error"]) == (status, code), body
    assert set(body) == {"error", "message"}
    for word in named:
        assert word in body["message"], (word, body["message"])


# One past the limit, at the limit, the error code, and what the message must name.
HOOK_LIMITS = {
    "file_path": (
        write("a" * (MAX_PATH + 1)),
        write("a" * MAX_PATH),
        "invalid_path",
        ["file_path", str(MAX_PATH)],
    ),
    "file_path resolved from cwd": (
        write("x" * 100, cwd="/srv/repo/" + "d/" * 500, workspace_roots=["/srv/repo"]),
        write("x" * 14, cwd="/srv/repo/" + "d/" * 505, workspace_roots=["/srv/repo"]),
        "invalid_path",
        ["once resolved", str(MAX_PATH)],
    ),
    "files in a Codex patch": (
        codex_patch(MAX_FILES + 1),
        codex_patch(MAX_FILES),
        "invalid_field",
        [str(MAX_FILES), "files"],
    ),
    "files in a generic patch": (
        generic_patch(MAX_FILES + 1),
        generic_patch(MAX_FILES),
        "invalid_field",
        [str(MAX_FILES), "files"],
    ),
    "task": (
        start(task="t" * (MAX_TASK + 1)),
        start(task="t" * MAX_TASK),
        "invalid_field",
        ["task", str(MAX_TASK)],
    ),
    "conversation_id": (
        start(conversation_id="c" * 257),
        start(conversation_id="c" * 256),
        "invalid_field",
        ["conversation_id", "256"],
    ),
    "native session_id": (
        native(session_id="s" * 257),
        native(session_id="s" * 256),
        "invalid_field",
        ["session_id", "256"],
    ),
    "workspace_roots": (
        start(workspace_roots=roots(65)),
        start(workspace_roots=roots(64)),
        "invalid_field",
        ["workspace_roots", "64"],
    ),
    "workspace root": (
        write("a.ts", workspace_roots=["/" + "r" * MAX_PATH]),
        write("a.ts", workspace_roots=["/" + "r" * (MAX_PATH - 1)]),
        "invalid_path",
        ["root", str(MAX_PATH)],
    ),
    "cwd": (
        start(cwd="/" + "d" * MAX_PATH),
        start(cwd="/" + "d" * (MAX_PATH - 1)),
        "invalid_field",
        ["cwd", str(MAX_PATH)],
    ),
    "agent_type": (
        start(agent_type="a" * 65),
        start(agent_type="a" * 64),
        "invalid_field",
        ["agent_type", "64"],
    ),
    "branch": (
        start(branch="b" * 4097),
        start(branch="b" * 4096),
        "invalid_field",
        ["branch", "4096"],
    ),
}


@pytest.mark.parametrize(("over", "at", "code", "named"), HOOK_LIMITS.values(), ids=HOOK_LIMITS)
async def test_hook_limits(
    client: httpx.AsyncClient,
    team: Team,
    redis: Redis,
    over: dict[str, Any],
    at: dict[str, Any],
    code: str,
    named: list[str],
) -> None:
    before = await stored(redis)
    refused = await client.post(HOOK, headers=bearer(team.dev_a), json=over)
    assert_refused(refused, 422, code, *named)
    assert await stored(redis) == before
    accepted = await client.post(HOOK, headers=bearer(team.dev_a), json=at)
    assert accepted.status_code == 200, accepted.text
    assert await stored(redis) != before


async def test_a_patch_at_the_limit_claims_every_file(
    client: httpx.AsyncClient, team: Team
) -> None:
    await client.post(HOOK, headers=bearer(team.dev_a), json=codex_patch(MAX_FILES))
    listed = await client.get(of_workspace(RESERVATIONS, "acme"), headers=bearer(team.dev_a))
    assert len(listed.json()) == MAX_FILES


async def test_a_prompt_is_cut_to_a_task_on_purpose(client: httpx.AsyncClient, team: Team) -> None:
    prompt = "p" * 10_000 + "\nsecond line"
    answered = await client.post(
        HOOK,
        headers=bearer(team.dev_a),
        json={"event": "UserPromptSubmit", "conversation_id": "conv", "prompt": prompt},
    )
    assert answered.status_code == 200
    sessions = await client.get(of_workspace(SESSIONS, "acme"), headers=bearer(team.dev_a))
    assert [s["current_task"] for s in sessions.json()] == ["p" * MAX_TASK]


async def test_the_agent_named_in_the_url_is_limited_too(
    client: httpx.AsyncClient, team: Team, redis: Redis
) -> None:
    before = await stored(redis)
    refused = await client.post(
        f"{HOOK}?agent={'a' * 65}", headers=bearer(team.dev_a), json=start()
    )
    assert_refused(refused, 422, "invalid_field", "agent", "64")
    assert await stored(redis) == before


def padded(size: int) -> bytes:
    """A session start of exactly ``size`` bytes."""
    empty = msgspec.json.encode(start(padding=""))
    return msgspec.json.encode(start(padding="x" * (size - len(empty))))


async def in_chunks(body: bytes) -> AsyncIterator[bytes]:
    for offset in range(0, len(body), 64 * 1024):
        yield body[offset : offset + 64 * 1024]


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
@pytest.mark.parametrize("route", [HOOK, DECIDE, HEARTBEAT])
async def test_a_body_over_one_mib_is_a_413_and_stores_nothing(
    client: httpx.AsyncClient, team: Team, redis: Redis, declared: bool, route: str
) -> None:
    body = padded(MIB + 1)
    before = await stored(redis)
    content = body if declared else in_chunks(body)
    refused = await client.post(route, headers=bearer(team.dev_a), content=content)
    assert_refused(refused, 413, "payload_too_large", str(MIB))
    assert await stored(redis) == before


async def test_a_body_of_exactly_one_mib_is_accepted(client: httpx.AsyncClient, team: Team) -> None:
    body = padded(MIB)
    assert len(body) == MIB
    for content in (body, in_chunks(body)):
        answered = await client.post(HOOK, headers=bearer(team.dev_a), content=content)
        assert answered.status_code == 200, answered.text


async def test_decision_text_is_at_most_500_characters(
    client: httpx.AsyncClient, team: Team, redis: Redis
) -> None:
    auth = bearer(team.dev_a)
    before = await stored(redis)
    for text, named in (("d" * 501, "500"), ("", "1"), ("   ", "blank")):
        refused = await client.post(DECIDE, headers=auth, json={"text": text})
        assert_refused(refused, 422, "invalid_field", "text", named)
    assert await stored(redis) == before
    accepted = await client.post(DECIDE, headers=auth, json={"text": "d" * 500})
    assert accepted.status_code == 201
    assert accepted.json()["text"] == "d" * 500


@pytest.mark.parametrize("route", [HEARTBEAT, END, DECIDE])
async def test_a_session_id_must_be_sess_and_24_hex_digits(
    client: httpx.AsyncClient, team: Team, redis: Redis, route: str
) -> None:
    before = await stored(redis)
    for session_id in ("sess_" + "a" * 25, "sess_" + "a" * 10_000, "sess_" + "A" * 24):
        body = {"session_id": session_id, "text": "a decision"}
        refused = await client.post(route, headers=bearer(team.dev_a), json=body)
        assert_refused(refused, 422, "invalid_field", "session_id", "24 hex")
    assert await stored(redis) == before


@pytest.mark.parametrize(
    "body",
    [b'{"x": ' + b"[" * 5000 + b"]" * 5000 + b"}", b'{"session_id": "\xff"}'],
    ids=["deep", "not-utf-8"],
)
@pytest.mark.parametrize("route", [HOOK, DECIDE, END])
async def test_deep_or_undecodable_json_is_a_400_not_a_500(
    client: httpx.AsyncClient, team: Team, redis: Redis, body: bytes, route: str
) -> None:
    before = await stored(redis)
    refused = await client.post(route, headers=bearer(team.dev_a), content=body)
    assert_refused(refused, 400, "invalid_json")
    assert await stored(redis) == before
