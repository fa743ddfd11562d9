"""The OpenAPI 3.1 description of the HTTP API, served at ``GET /openapi.json``.

Bodies and errors come from schemas.py, derived from the code; routes, parameters and what
the code checks beyond the Structs' types (slug and session id patterns) are written here.
tests/test_openapi.py checks that the paths are the app's routes and fuzzes a live server
against the document.
"""

from __future__ import annotations

from coordinator import __version__, routes
from coordinator.agents import AGENTS
from coordinator.board import HEADERS as BOARD_HEADERS
from coordinator.events import MAX_AGENT, SLUG, WORKSPACE_ID
from coordinator.pages import MAX_CURSOR
from coordinator.schemas import (
    Schema,
    answer_schemas,
    error_responses,
    json_answer,
    ref,
    request_schemas,
)
from coordinator.store import MAX_PAGE, PAGE_LIMIT


def _text(description: str) -> Schema:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def _board_file(description: str, media_type: str) -> Schema:
    """A file of the team board, with the headers every one of them carries."""
    return {
        "description": description,
        "headers": {
            name: {"required": True, "schema": {"type": "string", "const": value}}
            for name, value in BOARD_HEADERS.items()
        },
        "content": {media_type: {"schema": {"type": "string"}}},
    }


def _operation(
    summary: str,
    answers: dict[int, Schema],
    errors: tuple[int, ...],
    body: Schema | None = None,
    parameters: list[Schema] | None = None,
    public: bool = False,
) -> Schema:
    """One operation; authenticated ones may also answer 401 and 429."""
    if not public:
        errors = (401, *errors, 429)
    operation: Schema = {
        "summary": summary,
        "responses": {
            **{str(status): answer for status, answer in answers.items()},
            **{str(status): {"$ref": f"#/components/responses/{status}"} for status in errors},
        },
    }
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body}},
        }
    if parameters:
        operation["parameters"] = parameters
    if public:
        operation["security"] = []
    return operation


def _page(description: str, item: str) -> Schema:
    """A listing's page: a JSON array, with the live total and the next page's address."""
    answer = json_answer(description, {"type": "array", "items": ref(item)})
    answer["headers"] = {
        "X-Total-Count": {
            "description": "How many are live in all, on every page.",
            "required": True,
            "schema": {"type": "integer", "minimum": 0},
        },
        "Link": {
            "description": 'The next page, as `<path?limit=..&cursor=..>; rel="next"`; '
            "absent on the last page.",
            "schema": {"type": "string"},
        },
    }
    return answer


PAGE_PARAMETERS: list[Schema] = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "description": "Rows in the page (a page of sessions also ends once it lists 1,000 files).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": PAGE_LIMIT},
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "description": "Where the page starts: the cursor in the previous page's `Link` "
        "header (opaque). A listing is not a snapshot: a row renewed meanwhile moves to the "
        "front, and a page may repeat a row of the page before.",
        "schema": {"type": "string", "maxLength": MAX_CURSOR},
    },
]


def paths() -> dict[str, Schema]:
    workspace = {
        "name": "ref",
        "in": "path",
        "required": True,
        "description": "The workspace's slug or its `ws_` id; any other workspace is a 403.",
        "schema": {
            "type": "string",
            "pattern": f"^(?:{SLUG.pattern}|{WORKSPACE_ID.pattern})$",
            "examples": ["my-startup"],
        },
    }
    agent = {
        "name": "agent",
        "in": "query",
        "required": False,
        "description": "The agent that sent the body: "
        + ", ".join(f"`{name}`" for name in AGENTS)
        + " (or a spelling such as `Claude_Code`). It wins over `agent_type` and over "
        "recognising a native body; in the generic form it only labels the session.",
        "schema": {"type": "string", "maxLength": MAX_AGENT, "examples": list(AGENTS)},
    }
    limit = {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20},
    }
    generic = ("Started", "Permission", "Ok")
    hook_answer = {"anyOf": [ref(name) for name in (*generic, "ClaudeAnswer", "CursorAnswer")]}
    listing = (403, 404, 422, 503)
    return {
        routes.HEALTH: {
            "get": _operation(
                "Is the service up, does Redis answer, and is it safe (no eviction, not full)?",
                {200: json_answer("Up; `degraded` names what is unsafe in `problems`.", _health())},
                (503,),
                public=True,
            )
        },
        routes.OPENAPI: {
            "get": _operation(
                "This document.",
                {200: json_answer("The OpenAPI description.", {"type": "object"})},
                (),
                public=True,
            )
        },
        routes.METRICS: {
            "get": _operation(
                "This replica's metrics, in Prometheus text format. Open, unless the service "
                "runs with COORDINATOR_METRICS_TOKEN: then only to `Authorization: Bearer "
                "<that token>` (not an API key), else a 401.",
                {200: _text("The metrics.")},
                (401,),
                public=True,
            )
        },
        routes.BOARD: {
            "get": _operation(
                "The team board: a page that asks for an API key, then shows its workspace "
                "live (docs/operations.md, Team board).",
                {200: _board_file("The page.", "text/html")},
                (),
                public=True,
            )
        },
        routes.BOARD_SCRIPT: {
            "get": _operation(
                "The team board's script.",
                {200: _board_file("The script.", "text/javascript")},
                (),
                public=True,
            )
        },
        routes.BOARD_STYLE: {
            "get": _operation(
                "The team board's style.",
                {200: _board_file("The style sheet.", "text/css")},
                (),
                public=True,
            )
        },
        routes.WHOAMI: {
            "get": _operation(
                "Who the API key speaks for: its workspace (slug, id, name) and person.",
                {200: json_answer("The key's workspace and person.", ref("Identity"))},
                (503,),
            )
        },
        routes.HOOK: {
            "post": _operation(
                "One hook event: the generic form (`event`) or an agent's own (`hook_event_name`).",
                {200: json_answer("The generic form's answer, or the agent's own.", hook_answer)},
                (400, 403, 413, 422, 503, 507),
                body={"anyOf": [ref("GenericHook"), ref("NativeHook")]},
                parameters=[agent],
            )
        },
        routes.HEARTBEAT: {
            "post": _operation(
                "Keep a session and its reservations alive.",
                {200: json_answer("Done.", ref("Ok"))},
                (400, 403, 404, 413, 422, 503, 507),
                body=ref("SessionRef"),
            )
        },
        routes.END: {
            "post": _operation(
                "End a session and release its reservations.",
                {200: json_answer("Ended; `released` files were freed.", _ended())},
                (400, 403, 404, 413, 422, 503),
                body=ref("SessionRef"),
            )
        },
        routes.DECIDE: {
            "post": _operation(
                "Record a team decision.",
                {201: json_answer("The stored decision.", ref("Decision"))},
                (400, 403, 413, 422, 503, 507),
                body=ref("DecisionBody"),
            )
        },
        routes.RESERVE: {
            "post": _operation(
                "Reserve files, directories (`src/api/`) and globs (`src/**/*.ts`) for a "
                "conversation, all or nothing.",
                {200: json_answer("All of them are the conversation's.", ref("Reserved"))},
                (400, 403, 409, 413, 422, 503, 507),
                body=ref("ReserveBody"),
            )
        },
        routes.RELEASE: {
            "post": _operation(
                "Release some (`paths`) or all of a conversation's reservations; a file "
                "others queue for passes to the first in line.",
                {200: json_answer("What was released.", ref("Released"))},
                (400, 403, 409, 413, 422, 503),
                body=ref("ReleaseBody"),
            )
        },
        routes.REQUEST: {
            "post": _operation(
                "Ask the holder of a file for it and join its first-come queue.",
                {200: json_answer("The place in the queue.", ref("Requested"))},
                (400, 403, 409, 413, 422, 503, 507),
                body=ref("RequestBody"),
            )
        },
        routes.REQUESTS: {
            "get": _operation(
                "Open requests: each requested file, its holder and who waits for it.",
                {
                    200: json_answer(
                        "The open requests.", {"type": "array", "items": ref("FileRequest")}
                    )
                },
                listing,
                parameters=[workspace],
            )
        },
        routes.SESSIONS: {
            "get": _operation(
                "Live sessions, newest first, a page at a time.",
                {200: _page("A page of the sessions.", "Session")},
                listing,
                parameters=[workspace, *PAGE_PARAMETERS],
            )
        },
        routes.RESERVATIONS: {
            "get": _operation(
                "Live file reservations, longest-lived first, a page at a time.",
                {200: _page("A page of the reservations.", "Reservation")},
                listing,
                parameters=[workspace, *PAGE_PARAMETERS],
            )
        },
        routes.DECISIONS: {
            "get": _operation(
                "Decisions, newest first.",
                {200: json_answer("The decisions.", {"type": "array", "items": ref("Decision")})},
                listing,
                parameters=[workspace, limit],
            )
        },
        routes.EVENTS: {"get": _stream_operation(listing, workspace)},
    }


def _stream_operation(errors: tuple[int, ...], workspace: Schema) -> Schema:
    operation = _operation(
        "The workspace's state changes as they happen, as Server-Sent Events.",
        {200: _event_stream()},
        errors,
        parameters=[workspace],
    )
    # Its own 429: a key over its rate (with the rate headers), or one that holds as many
    # streams on this replica as it may (without them).
    operation["responses"]["429"] = json_answer(
        "`rate_limited`: as on every route, with its headers; `too_many_streams`: the key "
        "has COORDINATOR_STREAMS_PER_KEY streams open on this replica already.",
        ref("Error"),
    )
    return operation


def _event_stream() -> Schema:
    return {
        "description": "An endless stream: `: subscribed` once no later event can be missed, "
        "then `event: <type>` and `data: <one line of JSON>` per change (`started`, "
        "`reserved`, `released`, `task`, `decision`, `ended`), and a `: keepalive` comment "
        "when nothing happened for a while. It ends when the key is revoked, Redis fails, "
        "the client falls 1,000 events behind or the server stops. A reservation that lapses "
        "publishes nothing: use its `expires_at_ms`.",
        "headers": {
            "Cache-Control": {"schema": {"const": "no-store"}},
            "X-Accel-Buffering": {"schema": {"const": "no"}},
        },
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }


def _health() -> Schema:
    return {
        "type": "object",
        "properties": {
            "status": {"enum": ["ok", "degraded"]},
            "version": {"type": "string"},
            "maxmemory_policy": {"type": ["string", "null"]},
            "store_full": {"type": "boolean"},
            "problems": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["status", "version", "maxmemory_policy", "store_full", "problems"],
        "additionalProperties": False,
    }


def _ended() -> Schema:
    return {
        "type": "object",
        "properties": {"ok": {"const": True}, "released": {"type": "integer", "minimum": 0}},
        "required": ["ok", "released"],
        "additionalProperties": False,
    }


def build_document() -> Schema:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "coordinator",
            "version": __version__,
            "description": "Sessions and file reservations for teams of AI coding agents. "
            'Every error is `{"error": code, "message": text}`; a method a route does not '
            "serve is a 405 `method_not_allowed`.",
        },
        "paths": paths(),
        "components": {
            "schemas": {**request_schemas(), **answer_schemas()},
            "responses": error_responses(),
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key, `ek_...`, of the workspace the request names.",
                }
            },
        },
        "security": [{"bearerAuth": []}],
    }


OPENAPI = build_document()
