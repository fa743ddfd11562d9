"""What every route does with the raw ASGI request: who sent it and which workspace it may
touch, its body, its JSON answer.

The hook route and the event stream are bare ASGI apps (no Request object: the hook is
on every edit an agent makes, the stream must watch for disconnects); the other routes
pass their Request's scope and receive. Either way a request is authenticated, read and
answered by these functions, once.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from coordinator.errors import (
    CoordinatorError,
    Forbidden,
    InvalidField,
    PayloadTooLarge,
    ReadOnlyKey,
    Unauthorized,
)
from coordinator.events import SLUG, WORKSPACE_ID
from coordinator.models import Principal, digest_of
from coordinator.observe import record_of
from coordinator.store import Store

_encoder = msgspec.json.Encoder()
_JSON = (b"content-type", b"application/json")


def header(scope: Scope, name: bytes) -> bytes:
    """A request header's value (``name`` lower case, as ASGI gives them); empty if absent."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for key, value in headers:
        if key == name:
            return value
    return b""


def query_param(scope: Scope, name: str) -> str | None:
    """The query string's last non-empty value of ``name``, as ``parse_qsl`` reads it."""
    query_string: bytes = scope["query_string"]
    if not query_string:
        return None
    text = query_string.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text)).get(name)
    # Nothing to unquote (an agent's ?agent=cursor): parse_qsl's result, without its cost.
    found = None
    for pair in text.split("&"):
        key, _, value = pair.partition("=")
        if key == name and value:
            found = value
    return found


async def principal(scope: Scope, store: Store) -> Principal:
    """Who the request speaks for, from its ``Authorization`` header; its workspace is
    noted in the request's record (the log line)."""
    who = await authenticate(header(scope, b"authorization").decode("latin-1"), store)
    record_of(scope).workspace = who.workspace
    return who


async def authenticate(authorization: str, store: Store) -> Principal:
    """The principal of a request's ``Authorization: Bearer ek_...`` header."""
    scheme, _, api_key = authorization.partition(" ")
    if scheme.lower() != "bearer" or not api_key.strip():
        raise Unauthorized("send your API key as 'Authorization: Bearer ek_...'")
    # Only the digest is ever looked up or kept, so the lookup leaks no timing of the key.
    who = await store.principal(digest_of(api_key.strip()))
    if who is None:
        raise Unauthorized("unknown API key")
    return who


def check_writer(who: Principal) -> None:
    """Every write route asks: a read-only key (a wall screen's board) may only read."""
    if who.read_only:
        raise ReadOnlyKey("this API key is read-only: it reads listings and events, writes nothing")


def check_workspace(who: Principal, ref: str | None) -> None:
    """A key names one workspace; naming another, existing or not, is the same 403."""
    if ref is None:
        return
    if not (SLUG.fullmatch(ref) or WORKSPACE_ID.fullmatch(ref)):
        raise InvalidField(f"{ref!r} is neither a workspace slug nor a workspace id")
    if not who.owns(ref):
        raise Forbidden("this API key belongs to another workspace")


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole body, refused with PayloadTooLarge once over ``limit`` bytes, whether its
    length was declared or not; ClientDisconnect if the client leaves first."""
    declared = header(scope, b"content-length")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is over {limit} bytes")
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        body += message.get("body", b"")
        if len(body) > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes")
        if not message.get("more_body", False):
            return bytes(body)


async def send_json(send: Send, content: Any) -> None:
    """A 200 with ``content`` as JSON, sent straight to the server (no Response object)."""
    body = _encoder.encode(content)
    length = (b"content-length", str(len(body)).encode())
    await send({"type": "http.response.start", "status": 200, "headers": [_JSON, length]})
    await send({"type": "http.response.body", "body": body})


def json_response(content: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(content), status, media_type="application/json")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """``{"error": code, "message": message}``, the body of every refusal."""
    response = json_response({"error": code, "message": message}, status)
    response.headers.update(headers or {})
    return response


def error_answer(scope: Scope, exc: CoordinatorError) -> Response:
    """The answer to a CoordinatorError, with its status and headers; its code is noted
    in the request's record."""
    record_of(scope).error = exc.code
    return error_response(exc.status, exc.code, exc.message, exc.headers())
