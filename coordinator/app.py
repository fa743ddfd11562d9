"""The HTTP API: routes, error mapping, and the app's lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import msgspec
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coordinator import __version__
from coordinator.auth import authenticate, check_workspace
from coordinator.config import Settings
from coordinator.errors import CoordinatorError, InvalidField, PayloadTooLarge, SessionNotFound
from coordinator.events import Event, Kind, decode_decision, decode_hook, decode_session_ref
from coordinator.models import Principal, session_id_for
from coordinator.render import OK, answer
from coordinator.store import Mode, Store, connect

MAX_DECISIONS = 200
_encoder = msgspec.json.Encoder()


def json_response(content: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(content), status, media_type="application/json")


def error_response(status: int, code: str, message: str) -> Response:
    return json_response({"error": code, "message": message}, status)


class Api:
    """The route handlers, sharing one store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"the body is over {limit} bytes")
        return bytes(body)

    async def health(self, request: Request) -> Response:
        await self.store.ping()
        return json_response({"status": "ok", "version": __version__})

    async def hook(self, request: Request) -> Response:
        who = await authenticate(request, self.store)
        event = decode_hook(await self._body(request), request.query_params.get("agent"))
        check_workspace(who, event.workspace_slug)
        sid = session_id_for(who.workspace, event.conversation_id)
        if event.kind is Kind.END:
            await self.store.end_session(who, sid)
            return json_response(answer(event, sid, None))
        fields = {"user_name": who.user_name}
        for name, value in (
            ("agent_type", event.agent_type),
            ("current_task", event.task),
            ("branch", event.branch),
            ("cwd", event.cwd),
        ):
            if value is not None:
                fields[name] = value
        outcome = await self.store.hook(
            who, sid, event.conversation_id, _mode(event), fields, event.paths
        )
        return json_response(answer(event, sid, outcome))

    async def heartbeat(self, request: Request) -> Response:
        who = await authenticate(request, self.store)
        ref = decode_session_ref(await self._body(request))
        check_workspace(who, ref.workspace_slug)
        await self.store.hook(who, ref.session_id, "", "heartbeat")
        return json_response(OK)

    async def end(self, request: Request) -> Response:
        who = await authenticate(request, self.store)
        ref = decode_session_ref(await self._body(request))
        check_workspace(who, ref.workspace_slug)
        live, released = await self.store.end_session(who, ref.session_id)
        if not live and not released:
            raise SessionNotFound(f"no live session {ref.session_id}")
        return json_response({"ok": True, "released": released})

    async def sessions(self, request: Request) -> Response:
        who = await self._workspace_reader(request)
        return json_response(await self.store.sessions(who))

    async def reservations(self, request: Request) -> Response:
        who = await self._workspace_reader(request)
        return json_response(await self.store.reservations(who))

    async def decisions(self, request: Request) -> Response:
        who = await self._workspace_reader(request)
        raw = request.query_params.get("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_DECISIONS:
            raise InvalidField(f"limit must be a whole number from 1 to {MAX_DECISIONS}")
        return json_response(await self.store.decisions(who, int(raw)))

    async def add_decision(self, request: Request) -> Response:
        who = await authenticate(request, self.store)
        body = decode_decision(await self._body(request))
        check_workspace(who, body.workspace_slug)
        decision = await self.store.add_decision(who, body.text.strip(), body.session_id)
        return json_response(decision, 201)

    async def _workspace_reader(self, request: Request) -> Principal:
        who = await authenticate(request, self.store)
        check_workspace(who, request.path_params["ref"])
        return who


def _mode(event: Event) -> Mode:
    if event.paths:
        return "claim"
    match event.kind:
        case Kind.START:
            return "start"
        case Kind.PROMPT:
            return "prompt"
    return "touch"


async def _coordinator_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CoordinatorError)
    return error_response(exc.status, exc.code, exc.message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    return error_response(exc.status_code, code, str(exc.detail))


async def _server_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "internal_error", "the server failed; the error was logged")


def create_app(settings: Settings, redis: Redis | None = None) -> Starlette:
    """The ASGI app; without ``redis`` it opens (and owns) a client to ``settings.redis_url``."""
    client = redis
    if client is None:
        client = connect(settings)
    api = Api(Store(client, settings), settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if redis is None:
            await client.aclose()

    routes = [
        Route("/health", api.health, methods=["GET"]),
        Route("/workspaces/sessions/hook", api.hook, methods=["POST"]),
        Route("/workspaces/sessions/heartbeat", api.heartbeat, methods=["POST"]),
        Route("/workspaces/sessions/end", api.end, methods=["POST"]),
        Route("/workspaces/decisions", api.add_decision, methods=["POST"]),
        Route("/workspaces/{ref}/sessions", api.sessions, methods=["GET"]),
        Route("/workspaces/{ref}/reservations", api.reservations, methods=["GET"]),
        Route("/workspaces/{ref}/decisions", api.decisions, methods=["GET"]),
    ]
    handlers = {
        CoordinatorError: _coordinator_error,
        HTTPException: _http_error,
        Exception: _server_error,
    }
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.store = api.store
    return app
