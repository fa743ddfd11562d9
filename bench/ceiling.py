"""The framework's ceiling: a bare Starlette endpoint that reads the body and answers fixed JSON.

    python -m bench.ceiling --port 8090

Served exactly as ``coordinator serve`` is (uvicorn on uvloop, httptools, no access
log), so the two differ only in what the service does per request.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def hook(request: Request) -> Response:
    await request.body()
    return Response(b'{"permission":"allow"}', media_type="application/json")


app = Starlette(routes=[Route("/workspaces/sessions/hook", hook, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description="bare Starlette echo, the benchmark's ceiling")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
