"""The framework's ceiling: a bare Starlette endpoint that reads the body and answers fixed JSON.

    python -m bench.ceiling --port 8090 [--redis-url redis://127.0.0.1:6379/0]

With ``--redis-url`` the endpoint also makes one script call (``return 1``) over
coordinator's pipelined connection: the issue's reference point of "Starlette + one
pipelined EVALSHA", which separates the cost of the transport from the hook's own work.
Served as ``coordinator serve`` is (uvicorn on uvloop, httptools, no access log).
"""

from __future__ import annotations

import argparse
import hashlib
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from coordinator.commands import run_loop
from coordinator.pipeline import Pipeline

ANSWER = b'{"permission":"allow"}'
SCRIPT = "return 1"
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()


def ceiling(pipeline: Pipeline | None) -> Starlette:
    async def bare(request: Request) -> Response:
        await request.body()
        return Response(ANSWER, media_type="application/json")

    async def one_script_call(request: Request) -> Response:
        await request.body()
        assert pipeline is not None
        await pipeline.script(SHA, SCRIPT, [], [])
        return Response(ANSWER, media_type="application/json")

    endpoint: Callable[[Request], Awaitable[Response]] = (
        bare if pipeline is None else one_script_call
    )
    return Starlette(routes=[Route("/workspaces/sessions/hook", endpoint, methods=["POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description="bare Starlette echo, the benchmark's ceiling")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--redis-url", help="also make one pipelined script call per request")
    args = parser.parse_args()
    pipeline = None
    if args.redis_url:
        url = urlsplit(args.redis_url)
        pipeline = Pipeline(url.hostname or "127.0.0.1", url.port or 6379, timeout_s=2)
    app = ceiling(pipeline)
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, access_log=False)
    run_loop(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
