"""The OpenAPI 3.1 description of the HTTP API, served at ``GET /openapi.json``.

Bodies are derived from the msgspec Structs that decode requests (events.py) and encode
answers (render.py, models.py), and error codes from errors.py, so the document follows
the code. Routes, parameters and what the code checks beyond the Structs' types (slug and
session id patterns) are written here. tests/test_openapi.py checks that the
paths are the app's routes and fuzzes a live server against the document.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime
from typing import Any, get_args

import msgspec

from coordinator import __version__
from coordinator.agents import AGENTS
from coordinator.auth import WORKSPACE_ID
from coordinator.board import HEADERS as BOARD_HEADERS
from coordinator.errors import CoordinatorError
from coordinator.events import (
    EVENTS,
    MAX_AGENT,
    NATIVE_EVENTS,
    SESSION_ID,
    SLUG,
    DecisionBody,
    HookBody,
    SessionRef,
)
from coordinator.models import Decision, Identity, Reservation, Session
from coordinator.render import (
    ClaudeAnswer,
    CursorAnswer,
    HookSpecific,
    Ok,
    Permission,
    Started,
)

Schema = dict[str, Any]
REF = "#/components/schemas/{name}"
ANSWERS: tuple[type[msgspec.Struct], ...] = (
    Started, Permission, Ok, ClaudeAnswer, HookSpecific, CursorAnswer, Session, Reservation,
    Decision, Identity,
)  # fmt: skip
ERRORS = {
    400: "The body is not JSON, or the event is not one the API knows.",
    401: "No API key, an unknown key, or a revoked one.",
    403: "The API key belongs to another workspace (the same answer whether or not it exists).",
    404: "No such route, or no such session.",
    413: "The body is over 1 MiB.",
    422: "A missing or mistyped field (named in the message), a bad slug, session id or path.",
    429: "The API key is over its request rate; the headers say when to come back.",
    503: "Redis is unreachable, too slow or refused the operation.",
}
TIME: Schema = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$",
    "description": "UTC, to the second",
}
RATE_HEADERS = {
    "Retry-After": "seconds to wait before the next request",
    "X-RateLimit-Limit": "the key's burst: requests it may make at once",
    "X-RateLimit-Remaining": "requests the key may make right now",
    "X-RateLimit-Reset": "seconds until the key's allowance is full again",
}


def ref(name: str) -> Schema:
    return {"$ref": REF.format(name=name)}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def anchored(pattern: re.Pattern[str]) -> str:
    """A Python pattern used with ``fullmatch``, as a JSON Schema pattern (unanchored)."""
    return f"^(?:{pattern.pattern})$"


def _schema_hook(cls: type) -> Schema:
    if cls is object:
        return {"description": "any JSON value"}
    raise NotImplementedError


def _components(types: tuple[type, ...]) -> dict[str, Schema]:
    _, components = msgspec.json.schema_components(
        types, schema_hook=_schema_hook, ref_template=REF
    )
    return components


def request_schemas() -> dict[str, Schema]:
    """The request bodies: the decoders' Structs, with what the code checks after decoding."""
    components = _components((HookBody, SessionRef, DecisionBody))
    slug = {"type": "string", "pattern": anchored(SLUG)}
    session_id = {"type": "string", "pattern": anchored(SESSION_ID)}
    hook = components.pop("HookBody")
    hook["properties"]["workspace_slug"] = nullable(slug)
    components["GenericHook"] = _variant(
        hook,
        "The generic form: the answers of the event table, whatever `agent_type` says.",
        required=["event", "conversation_id"],
        event={"type": "string", "enum": list(EVENTS)},
        conversation_id={"type": "string", "minLength": 1, "maxLength": 256},
    )
    native = _variant(
        hook,
        "What the agents send their hooks, unchanged: Claude Code and Codex name the "
        "conversation by `session_id` (PascalCase events), Cursor by `conversation_id` "
        "(camelCase events). Unknown fields are ignored; the answer is in the agent's own shape.",
        required=["hook_event_name"],
        event={"type": "null"},
        hook_event_name={"type": "string", "enum": list(NATIVE_EVENTS)},
    )
    native["anyOf"] = [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("session_id", "conversation_id")
    ]
    components["NativeHook"] = native
    for body in ("SessionRef", "DecisionBody"):
        components[body]["properties"]["workspace_slug"] = nullable(slug)
    components["SessionRef"]["properties"]["session_id"] = session_id
    components["DecisionBody"]["properties"]["session_id"] = nullable(session_id)
    components["DecisionBody"]["properties"]["text"]["description"] = "Not blank."
    return components


def _variant(base: Schema, description: str, required: list[str], **properties: Schema) -> Schema:
    schema = copy.deepcopy(base)
    schema.pop("title", None)
    schema["description"] = description
    schema["properties"].update(properties)
    schema["required"] = required
    return schema


def answer_schemas() -> dict[str, Schema]:
    """The answers' Structs as encoded: exactly their fields, each present unless the
    Struct omits defaults, times as ``YYYY-MM-DDTHH:MM:SSZ``."""
    components = _components(ANSWERS)
    for struct in ANSWERS:
        schema = components[struct.__name__]
        schema["additionalProperties"] = False
        fields = msgspec.structs.fields(struct)
        if not struct.__struct_config__.omit_defaults:
            schema["required"] = [field.encode_name for field in fields]
        for field in fields:
            if field.type is datetime:
                schema["properties"][field.encode_name] = TIME
            elif datetime in get_args(field.type):
                schema["properties"][field.encode_name] = nullable(TIME)
    components["Error"] = {
        "type": "object",
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
        "required": ["error", "message"],
        "additionalProperties": False,
    }
    return components


def error_codes(status: int) -> list[str]:
    """The ``error`` codes an answer with this status may carry."""
    codes = set()
    pending = [CoordinatorError]
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if cls.status == status:
            codes.add(cls.code)
    return sorted(codes)


def error_responses() -> dict[str, Schema]:
    responses = {}
    for status, description in ERRORS.items():
        codes = error_codes(status)
        error = {"type": "string", "enum": codes} if codes else {"type": "string"}
        schema = {"allOf": [ref("Error"), {"properties": {"error": error}}]}
        responses[str(status)] = {
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    responses["429"]["headers"] = {
        name: {"description": text, "required": True, "schema": {"type": "integer", "minimum": 0}}
        for name, text in RATE_HEADERS.items()
    }
    return responses


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


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
        "/health": {
            "get": _operation(
                "Is the service up, and does Redis answer?",
                {200: _json("Up.", _health())},
                (503,),
                public=True,
            )
        },
        "/openapi.json": {
            "get": _operation(
                "This document.",
                {200: _json("The OpenAPI description.", {"type": "object"})},
                (),
                public=True,
            )
        },
        "/metrics": {
            "get": _operation(
                "This replica's metrics, in Prometheus text format. Open, unless the service "
                "runs with COORDINATOR_METRICS_TOKEN: then only to `Authorization: Bearer "
                "<that token>` (not an API key), else a 401.",
                {200: _text("The metrics.")},
                (401,),
                public=True,
            )
        },
        "/": {
            "get": _operation(
                "The team board: a page that asks for an API key, then shows its workspace "
                "live (README, Team board).",
                {200: _board_file("The page.", "text/html")},
                (),
                public=True,
            )
        },
        "/board.js": {
            "get": _operation(
                "The team board's script.",
                {200: _board_file("The script.", "text/javascript")},
                (),
                public=True,
            )
        },
        "/board.css": {
            "get": _operation(
                "The team board's style.",
                {200: _board_file("The style sheet.", "text/css")},
                (),
                public=True,
            )
        },
        "/whoami": {
            "get": _operation(
                "Who the API key speaks for: its workspace (slug, id, name) and person.",
                {200: _json("The key's workspace and person.", ref("Identity"))},
                (503,),
            )
        },
        "/workspaces/sessions/hook": {
            "post": _operation(
                "One hook event: the generic form (`event`) or an agent's own (`hook_event_name`).",
                {200: _json("The generic form's answer, or the agent's own.", hook_answer)},
                (400, 403, 413, 422, 503),
                body={"anyOf": [ref("GenericHook"), ref("NativeHook")]},
                parameters=[agent],
            )
        },
        "/workspaces/sessions/heartbeat": {
            "post": _operation(
                "Keep a session and its reservations alive.",
                {200: _json("Done.", ref("Ok"))},
                (400, 403, 404, 413, 422, 503),
                body=ref("SessionRef"),
            )
        },
        "/workspaces/sessions/end": {
            "post": _operation(
                "End a session and release its reservations.",
                {200: _json("Ended; `released` files were freed.", _ended())},
                (400, 403, 404, 413, 422, 503),
                body=ref("SessionRef"),
            )
        },
        "/workspaces/decisions": {
            "post": _operation(
                "Record a team decision.",
                {201: _json("The stored decision.", ref("Decision"))},
                (400, 403, 413, 422, 503),
                body=ref("DecisionBody"),
            )
        },
        "/workspaces/{ref}/sessions": {
            "get": _operation(
                "Live sessions, newest first.",
                {200: _json("The sessions.", {"type": "array", "items": ref("Session")})},
                listing,
                parameters=[workspace],
            )
        },
        "/workspaces/{ref}/reservations": {
            "get": _operation(
                "Live file reservations.",
                {200: _json("The reservations.", {"type": "array", "items": ref("Reservation")})},
                listing,
                parameters=[workspace],
            )
        },
        "/workspaces/{ref}/decisions": {
            "get": _operation(
                "Decisions, newest first.",
                {200: _json("The decisions.", {"type": "array", "items": ref("Decision")})},
                listing,
                parameters=[workspace, limit],
            )
        },
        "/workspaces/{ref}/events": {"get": _stream_operation(listing, workspace)},
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
    operation["responses"]["429"] = _json(
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
        "properties": {"status": {"const": "ok"}, "version": {"type": "string"}},
        "required": ["status", "version"],
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
