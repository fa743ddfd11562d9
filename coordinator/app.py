"""The HTTP API: routes, error mapping, and the app's lifespan."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coordinator import routes
from coordinator.asgi import (
    check_workspace,
    check_writer,
    error_answer,
    error_response,
    json_response,
    principal,
    read_body,
)
from coordinator.board import board_routes
from coordinator.claims import Claims
from coordinator.config import Settings
from coordinator.errors import CoordinatorError, InvalidField, SessionNotFound
from coordinator.events import decode_decision, decode_session_ref
from coordinator.health import Health
from coordinator.hooks import HookEndpoint, Shortcut
from coordinator.live import EventStream
from coordinator.metrics import Metrics
from coordinator.models import Page, Principal
from coordinator.observe import Observe, record_of
from coordinator.openapi import OPENAPI
from coordinator.render import OK
from coordinator.store import MAX_PAGE, PAGE_LIMIT, Store
from coordinator.transport import connect

MAX_DECISIONS = 200


class Api:
    """The route handlers, sharing one store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.checks = Health(store)

    async def _body(self, request: Request) -> bytes:
        return await read_body(request.scope, request.receive, self.settings.max_body_bytes)

    async def health(self, request: Request) -> Response:
        return json_response(await self.checks.answer())

    async def whoami(self, request: Request) -> Response:
        who = await self._principal(request)
        return json_response(await self.store.identity(who))

    async def heartbeat(self, request: Request) -> Response:
        who = await self._principal(request)
        check_writer(who)
        ref = decode_session_ref(await self._body(request))
        check_workspace(who, ref.workspace_slug)
        await self.store.heartbeat(who, ref.session_id)
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
        return await principal(request.scope, self.store)

    async def _workspace_reader(self, request: Request) -> Principal:
        who = await self._principal(request)
        check_workspace(who, request.path_params["ref"])
        return who


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


async def _coordinator_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, CoordinatorError)
    return error_answer(request.scope, exc)


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
    hook = HookEndpoint(api.store, settings.max_body_bytes)
    claims = Claims(api.store, settings)
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
        Route(routes.RESERVE, claims.reserve, methods=["POST"]),
        Route(routes.RELEASE, claims.release, methods=["POST"]),
        Route(routes.REQUEST, claims.request_file, methods=["POST"]),
        Route(routes.REQUESTS, claims.requests, methods=["GET"]),
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
