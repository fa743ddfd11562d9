"""The schemas of the OpenAPI document (openapi.py): request and answer bodies derived from
the msgspec Structs that decode and encode them, and the error answers from errors.py, so
that the document follows the code.
"""

from __future__ import annotations

import copy
import re
from datetime import datetime
from typing import Any, get_args

import msgspec

from coordinator.claims import ReleaseBody, RequestBody, ReserveBody
from coordinator.errors import CoordinatorError
from coordinator.events import (
    EVENTS,
    NATIVE_EVENTS,
    SESSION_ID,
    SLUG,
    DecisionBody,
    HookBody,
    SessionRef,
)
from coordinator.models import (
    Decision,
    FileRequest,
    Holder,
    Identity,
    Released,
    Requested,
    Reservation,
    Reserved,
    Session,
    Waiter,
)
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
    Decision, Identity, Reserved, Released, Requested, FileRequest, Holder, Waiter,
)  # fmt: skip
ERRORS = {
    400: "The body is not JSON, or the event is not one the API knows.",
    401: "No API key, an unknown key, or a revoked one.",
    403: "`forbidden`: the API key belongs to another workspace (the same answer whether or "
    "not it exists). `session_of_another_key`: the session was started by another API key, "
    "the only one that may send its events, heartbeat or end it. `read_only_key`: a "
    "read-only key asked for a write.",
    404: "No such route, or no such session.",
    409: "`reserved`: another holds what a reserve names (the message names the holder and "
    "what to do). `not_holder`: release named something the session does not hold. "
    "`not_reserved`: a request for a file nobody else holds. `conflict`: a cap or a full queue.",
    413: "The body is over 1 MiB.",
    422: "A missing or mistyped field (named in the message), a bad slug, session id or path.",
    429: "The API key is over its request rate; the headers say when to come back.",
    503: "Redis is unreachable, too slow or refused the operation.",
    507: "Redis is full (at its maxmemory): nothing more can be stored; reads and ends work.",
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
    components = _components(
        (HookBody, SessionRef, DecisionBody, ReserveBody, ReleaseBody, RequestBody)
    )
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
    for body in ("SessionRef", "DecisionBody", "ReserveBody", "ReleaseBody", "RequestBody"):
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


def json_answer(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_responses() -> dict[str, Schema]:
    responses = {}
    for status, description in ERRORS.items():
        codes = error_codes(status)
        error = {"type": "string", "enum": codes} if codes else {"type": "string"}
        schema = {"allOf": [ref("Error"), {"properties": {"error": error}}]}
        responses[str(status)] = json_answer(description, schema)
    responses["429"]["headers"] = {
        name: {"description": text, "required": True, "schema": {"type": "integer", "minimum": 0}}
        for name, text in RATE_HEADERS.items()
    }
    return responses
