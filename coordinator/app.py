"""The HTTP API: routes, error mapping, and the app's lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any
from urllib.parse import parse_qsl, urlencode

import msgspec
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from coordinator import routes
from coordinator.auth import authenticate, check_workspace, check_writer
from coordinator.board import board_routes
from coordinator.config import Settings
from coordinator.errors import CoordinatorError, InvalidField, PayloadTooLarge, SessionNotFound
from coordinator.events import (
    Event,
    Kind,
    decode_decision,
    decode_hook,
    decode_session_ref,
    key_paths,
)
from coordinator.health import Health
from coordinator.live import EventStream
from coordinator.metrics import Metrics
from coordinator.models import Page, Principal, session_id_for
from coordinator.observe import Observe, RequestRecord, record_of
from coordinator.openapi import OPENAPI
from coordinator.render import OK, answer
from coordinator.store import MAX_PAGE, PAGE_LIMIT, Mode, Store, connect

MAX_DECISIONS = 200
_encoder = msgspec.json.Encoder()


def json_response(content: Any, status: int = 200) -> Response:
    return Response(_encoder.encode(content), status, media_type="application/json")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    response = json_response({"error": code, "message": message}, status)
    response.headers.update(headers or {})
    return response


class Api:
    """The route handlers, sharing one store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.checks = Health(store)

    async def read_body(self, declared_length: str, chunks: AsyncIterable[bytes]) -> bytes:
        limit = self.settings.max_body_bytes
        if declared_length.isdigit() and int(declared_length) > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes")
        body = bytearray()
        async for chunk in chunks:
            body += chunk
            if len(body) > limit:
                raise PayloadTooLarge(f"the body is over {limit} bytes")
        return bytes(body)

    async def _body(self, request: Request) -> bytes:
        return await self.read_body(request.headers.get("content-length", ""), request.stream())

    async def health(self, request: Request) -> Response:
        return json_response(await self.checks.answer())

    async def hook(
        self, who: Principal, body: bytes, agent: str | None, record: RequestRecord
    ) -> Any:
        """The answer to one hook event (served by HookEndpoint, not a Starlette route)."""
        check_writer(who)
        event = decode_hook(body, agent)
        record.event, record.agent = event.kind.value, event.agent_type
        check_workspace(who, event.workspace_slug)
        sid = session_id_for(who.workspace, event.conversation_id)
        paths = event.paths
        if event.roots and event.kind is Kind.START and event.agent_type == "claude-code":
            # Claude Code's start runs the bridge, which names the git root; its other hooks
            # post straight here and name none (the other agents name them at every event).
            await self.store.remember_roots(who, sid, event.roots)
        elif event.written and event.cwd and not event.roots:
            # Keyed from the roots its start named, if any, rather than from cwd: one file,
            # one key, whatever folder the agent works in.
            roots = await self.store.roots(who, sid)
            if roots:
                paths = key_paths(event.written, roots, event.cwd)
        if event.kind is Kind.END:
            record.ended = (await self.store.end_session(who, sid)).live
            return answer(event, sid, None)
        fields = {"user_name": who.user_name, "key_id": who.key_id}
        for name, value in (
            ("agent_type", event.agent_type),
            ("current_task", event.task),
            ("branch", event.branch),
            ("cwd", event.cwd),
        ):
            if value is not None:
                fields[name] = value
        outcome = await self.store.hook(
            who, sid, event.conversation_id, _mode(event, paths), fields, paths
        )
        record.started = outcome.created
        if event.kind in (Kind.PRE_TOOL, Kind.POST_TOOL):
            record.decision = "deny" if outcome.conflict or outcome.over_cap else "allow"
        return answer(event, sid, outcome)

    async def whoami(self, request: Request) -> Response:
        who = await self._principal(request)
        return json_response(await self.store.identity(who))

    async def heartbeat(self, request: Request) -> Response:
        who = await self._principal(request)
        check_writer(who)
        ref = decode_session_ref(await self._body(request))
        check_workspace(who, ref.workspace_slug)
        await self.store.hook(who, ref.session_id, "", "heartbeat")
        return json_response(OK)

    async def end(self, request: Request) -> Response:
        who = await self._principal(request)
        check_writer(who)
        ref = decode_session_ref(await self._body(request))
        check_workspace(who, ref.workspace_slug)
        ended = await self.store.end_session(who, ref.session_id)
        record_of(request.scope).ended = ended.live
        if not (ended.live or ended.released or ended.before):
            raise SessionNotFound(f"no live session {ref.session_id}")
        return json_response({"ok": True, "released": ended.released})

    async def sessions(self, request: Request) -> Response:
        who = await self._workspace_reader(request)
        limit, cursor = _page_params(request)
        return page_response(request, limit, await self.store.sessions(who, limit, cursor))

    async def reservations(self, request: Request) -> Response:
        who = await self._workspace_reader(request)
        limit, cursor = _page_params(request)
        return page_response(request, limit, await self.store.reservations(who, limit, cursor))

    async def decisions(self, request: Request) -> Response:
        who = await self._workspace_reader(request)
        limit = _limit(request, 20, MAX_DECISIONS)
        return json_response(await self.store.decisions(who, limit))

    async def add_decision(self, request: Request) -> Response:
        who = await self._principal(request)
        check_writer(who)
        body = decode_decision(await self._body(request))
        check_workspace(who, body.workspace_slug)
        decision = await self.store.add_decision(who, body.text.strip(), body.session_id)
        return json_response(decision, 201)

    async def _principal(self, request: Request) -> Principal:
        who = await authenticate(request.headers.get("authorization", ""), self.store)
        record_of(request.scope).workspace = who.workspace
        return who

    async def _workspace_reader(self, request: Request) -> Principal:
        who = await self._principal(request)
        check_workspace(who, request.path_params["ref"])
        return who


class HookEndpoint:
    """``POST /workspaces/sessions/hook`` as a bare ASGI app: no Request object, no
    per-request wrappers. An agent waits on this route at every edit."""

    def __init__(self, api: Api) -> None:
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        record = record_of(scope)
        try:
            who = await authenticate(
                headers.get(b"authorization", b"").decode("latin-1"), self.api.store
            )
            record.workspace = who.workspace
            declared = headers.get(b"content-length", b"").decode("latin-1")
            body = await self.api.read_body(declared, _chunks(receive))
            agent = _query_param(scope["query_string"], "agent")
            content = _encoder.encode(await self.api.hook(who, body, agent, record))
        except CoordinatorError as exc:
            record.error = exc.code
            response = error_response(exc.status, exc.code, exc.message, exc.headers())
            await response(scope, receive, send)
            return
        except ClientDisconnect:
            return
        length = str(len(content)).encode()
        headers_out = [(b"content-type", b"application/json"), (b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers_out})
        await send({"type": "http.response.body", "body": content})


class Shortcut:
    """Serves POST to one path straight from the app's edge, past Starlette's router and
    exception middleware: on the hook route they cost a sizeable share of the CPU
    (BENCHMARKS.md). The same endpoint stays in the route table, so other methods still
    get a 405."""

    def __init__(self, app: ASGIApp, path: str, endpoint: ASGIApp) -> None:
        self.app = app
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path and scope["method"] == "POST":
            scope["endpoint"] = self.endpoint  # as the router would: it names the route
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def _query_param(query_string: bytes, name: str) -> str | None:
    if not query_string:
        return None
    return dict(parse_qsl(query_string.decode("latin-1"))).get(name)


def _limit(request: Request, default: int, most: int) -> int:
    raw = request.query_params.get("limit", str(default))
    # isdigit() alone passes "²" and 5,000-digit numbers, on which int() raises.
    limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 4 else 0
    if not 1 <= limit <= most:
        raise InvalidField(f"limit must be a whole number from 1 to {most}")
    return limit


def _page_params(request: Request) -> tuple[int, str | None]:
    return _limit(request, PAGE_LIMIT, MAX_PAGE), request.query_params.get("cursor") or None


def page_response(request: Request, limit: int, page: Page[Any]) -> Response:
    """A listing's page: its rows as the body (a JSON array), the live total in
    ``X-Total-Count``, and the next page's address in ``Link: <...>; rel="next"``."""
    response = json_response(page.items)
    response.headers["X-Total-Count"] = str(page.total)
    if page.next_cursor is not None:
        query = urlencode({"limit": limit, "cursor": page.next_cursor})
        response.headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    return response


def _mode(event: Event, paths: tuple[str, ...]) -> Mode:
    if paths:
        return "claim"
    match event.kind:
        case Kind.START:
            return "start"
        case Kind.PROMPT:
            return "prompt"
    return "touch"


async def _coordinator_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CoordinatorError)
    record_of(request.scope).error = exc.code
    return error_response(exc.status, exc.code, exc.message, exc.headers())


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
    record_of(request.scope).error = code
    # A 405 carries the route's methods in Allow (RFC 9110); Starlette puts it in exc.headers.
    return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


async def _server_error(request: Request, exc: Exception) -> Response:
    return error_response(500, "internal_error", "the server failed; the error was logged")


def create_app(settings: Settings, redis: Redis | None = None) -> Starlette:
    """The ASGI app; without ``redis`` it opens (and owns) a client to ``settings.redis_url``."""
    client = redis
    if client is None:
        client = connect(settings)
    api = Api(Store(client, settings), settings)
    hook = HookEndpoint(api)
    events = EventStream(api.store, settings.events_keepalive_s, settings.streams_per_key)
    metrics = Metrics(settings.metrics_token, events.open_streams)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if not settings.embedded:
            await api.checks.check_at_start()
        yield
        await api.store.aclose()
        if redis is None:
            await client.aclose()

    table = [
        Route(routes.HEALTH, api.health, methods=["GET"]),
        Route(routes.OPENAPI, lambda _: json_response(OPENAPI), methods=["GET"]),
        Route(routes.METRICS, metrics.scrape, methods=["GET"]),
        Route(routes.HOOK, hook, methods=["POST"]),
        Route(routes.HEARTBEAT, api.heartbeat, methods=["POST"]),
        Route(routes.END, api.end, methods=["POST"]),
        Route(routes.DECIDE, api.add_decision, methods=["POST"]),
        Route(routes.SESSIONS, api.sessions, methods=["GET"]),
        Route(routes.RESERVATIONS, api.reservations, methods=["GET"]),
        Route(routes.DECISIONS, api.decisions, methods=["GET"]),
        Route(routes.EVENTS, events, methods=["GET"]),
        Route(routes.WHOAMI, api.whoami, methods=["GET"]),
        *board_routes(),
    ]
    handlers = {
        CoordinatorError: _coordinator_error,
        HTTPException: _http_error,
        Exception: _server_error,
    }
    templates = {route.endpoint: route.path for route in table}
    middleware = [
        Middleware(Observe, metrics=metrics, routes=templates),
        Middleware(Shortcut, path=routes.HOOK, endpoint=hook),
    ]
    app = Starlette(
        routes=table, exception_handlers=handlers, middleware=middleware, lifespan=lifespan
    )
    app.state.store = api.store
    # The server calls it as it shuts down: it waits for open streams, which never end.
    app.state.end_streams = events.close_all
    app.state.metrics = metrics
    return app
