"""The team board: one page, its script and its style, served from the package.

The files live in ``coordinator/static/`` (package data, no build step) and are read once
when the app is made. The page holds no inline script or style, so its Content Security
Policy allows nothing but this origin's own files and requests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coordinator import routes

# path -> (file in coordinator/static, media type)
ASSETS = {
    routes.BOARD: ("index.html", "text/html"),
    routes.BOARD_SCRIPT: ("board.js", "text/javascript"),
    routes.BOARD_STYLE: ("board.css", "text/css"),
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # The page and its script change together with the server: never serve a stale pair.
    "Cache-Control": "no-store",
}


def asset(name: str) -> bytes:
    """A file of ``coordinator/static``."""
    return (resources.files("coordinator") / "static" / name).read_bytes()


def _endpoint(body: bytes, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve_asset(request: Request) -> Response:
        return Response(body, media_type=media_type, headers=HEADERS)

    return serve_asset


def board_routes() -> list[Route]:
    """``GET /``, ``/board.js`` and ``/board.css``; none needs a key (the page asks for one)."""
    return [
        Route(path, _endpoint(asset(name), media_type), methods=["GET"])
        for path, (name, media_type) in ASSETS.items()
    ]
