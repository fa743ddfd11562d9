"""The commands that need the service's packages: serve, status, workspace and key admin.

``cli.py`` imports this only for them, so that ``coordinator hook`` starts fast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import logging
import os
import resource
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

import uvicorn
from redis.asyncio import Redis

from coordinator import status
from coordinator.admin import Admin
from coordinator.app import create_app
from coordinator.config import Settings
from coordinator.connection import Connection, Limits
from coordinator.errors import ConfigError, CoordinatorError, UsageError
from coordinator.events import check_slug
from coordinator.logs import logging_config
from coordinator.models import Revoked
from coordinator.transport import connect

DEMO_WORKSPACE = "demo"
log = logging.getLogger("coordinator.serve")
# Past this, requests still running at shutdown are cancelled (a Redis that hangs).
GRACEFUL_SHUTDOWN_S = 10
# An idle connection is closed after this (uvicorn's default): a proxy in front keeps its
# own idle connections for less, so that it never sends on one the replica is closing.
KEEP_ALIVE_S = 5
# Files a replica keeps open besides its clients' connections: Redis, logs, libraries.
SPARE_FILES = 64


def run(args: argparse.Namespace) -> None:
    """Run ``serve`` or an admin command, with settings from the environment."""
    settings = Settings.from_env(os.environ)
    if args.command == "serve":
        run_loop(serve(settings, args.host, args.port, access_log=args.access_log))
        return
    if settings.redis_url is None:
        raise ConfigError(
            "REDIS_URL is not set: workspaces and keys live in Redis "
            "(the embedded store exists only inside `coordinator serve`)"
        )
    if args.command == "status":
        try:
            asyncio.run(_status(args, settings))
        except KeyboardInterrupt:
            if args.watch is None:
                raise
            # Ctrl-C is how --watch ends: a normal end, without a traceback.
        return
    asyncio.run(_admin(args, settings))


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed (it comes with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


async def serve(settings: Settings, host: str, port: int, access_log: bool = True) -> None:
    """Run the service; with no REDIS_URL, on an embedded store with a demo workspace.
    Without ``access_log``, requests are logged only when they fail on the server's side."""
    redis: Redis | None = None
    if settings.embedded:
        redis = embedded_redis()
        admin = Admin(redis, settings)
        workspace = await admin.create_workspace(DEMO_WORKSPACE, "Demo")
        api_key, _ = await admin.create_key(workspace.slug, "Demo User")
        print(
            "coordinator: REDIS_URL is not set, so this runs on an embedded in-process store.\n"
            "Its state is NOT persisted and NOT shared with other processes.\n"
            f"Workspace {workspace.slug!r} ({workspace.id}), API key for 'Demo User':\n{api_key}",
            flush=True,
        )
    app = create_app(settings, redis)
    # A hook request makes a few hundred short-lived objects. At CPython's default
    # thresholds the cycle collector's full passes over the heap set the p99 (3-4x the
    # p50 in the benchmark; about 1.5x with these), so: exempt what start-up made, and
    # collect less often.
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    # Our JSON lines for uvicorn's too; its access log is off, one line per request is ours.
    log_config = logging_config(settings.log_level, request_lines=access_log)
    limits = Limits.from_settings(settings)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        access_log=False,
        log_config=log_config,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        timeout_keep_alive=KEEP_ALIVE_S,
        http=functools.partial(Connection, limits),  # type: ignore[arg-type]  # a factory
        ws="none",
    )
    log.debug("settings", extra={"fields": _loggable(settings)})
    _open_files_for(limits, settings.redis_pool_size)
    await Server(config, app.state.end_streams, settings.drain_s).serve()


class Server(uvicorn.Server):
    """uvicorn's server, which shuts down in two steps. First it stops listening, ends the
    open event streams (it waits for every open connection, and a stream would never close
    by itself) and drains: for ``drain_s`` seconds, or until no connection is left, each
    answer closes its connection (``Connection.drain``) and idle ones stay open, for their
    clients to close. Then uvicorn's shutdown closes what remains and waits for the
    requests in flight."""

    def __init__(
        self, config: uvicorn.Config, end_streams: Callable[[], None], drain_s: float
    ) -> None:
        super().__init__(config)
        self.end_streams = end_streams
        self.drain_s = drain_s

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # uvicorn's shutdown closes them again, harmlessly
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            if isinstance(connection, Connection):
                connection.drain()
        self.end_streams()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.drain_s
        while self.server_state.connections and not self.force_exit and loop.time() < deadline:
            await asyncio.sleep(0.05)
        await super().shutdown(sockets)


def _open_files_for(limits: Limits, pool_size: int) -> None:
    """Let the process hold the connections the limits allow, raising its soft limit on
    open files toward the hard one (a default of 1024 is common); where the hard limit is
    lower, fewer connections, and a warning. Out of files, accept() fails and the server
    resets whoever comes next."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = limits.max_connections + pool_size + SPARE_FILES
    if soft != resource.RLIM_INFINITY and soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        allowed = max(1, soft - pool_size - SPARE_FILES)
        log.warning(
            "open files are limited to %d (ulimit -n): serving at most %d connections, "
            "not the %d of COORDINATOR_MAX_CONNECTIONS",
            soft,
            allowed,
            limits.max_connections,
        )
        limits.max_connections = allowed


def _loggable(settings: Settings) -> dict[str, object]:
    """The settings, less what may be secret: the Redis URL's credentials, the token."""
    redis = "embedded"
    if settings.redis_url is not None:
        url = urlsplit(settings.redis_url)
        redis = f"{url.scheme}://{url.hostname}:{url.port or 6379}{url.path}"
    return {
        "redis": redis,
        "session_ttl_ms": settings.session_ttl_ms,
        "reservation_ttl_ms": settings.reservation_ttl_ms,
        "rate_per_s": settings.rate_per_s,
        "rate_burst": settings.rate_burst,
        "metrics_token": settings.metrics_token is not None,
    }


def embedded_redis() -> Redis:
    import fakeredis  # only the embedded store needs it

    return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)


@contextlib.asynccontextmanager
async def _admin_of(settings: Settings) -> AsyncIterator[Admin]:
    """The admin on REDIS_URL for one admin command, closed with its connections after it."""
    redis = connect(settings)
    admin = Admin(redis, settings)
    try:
        yield admin
    finally:
        await admin.aclose()
        await redis.aclose()


async def _admin(args: argparse.Namespace, settings: Settings) -> None:
    async with _admin_of(settings) as admin:
        match args.command, args.action:
            case "workspaces", "create":
                ws = await admin.create_workspace(_slug(args.slug), args.name)
                print(f"created workspace {ws.slug} ({ws.id})")
            case "keys", "create":
                api_key, info = await admin.create_key(
                    _slug(args.workspace), args.user, args.read_only
                )
                kind = "read-only key" if info.read_only else "key"
                print(f"created {kind} {info.key_id} for {info.user_name} in {info.workspace}")
                print(api_key)
            case "keys", "revoke":
                revoked = await _revoke(admin, args.key)
                info = revoked.key
                print(
                    f"revoked key {info.key_id} of {info.user_name} in {info.workspace}; "
                    f"ended {revoked.sessions_ended} sessions, "
                    f"released {revoked.files_released} files"
                )
            case "keys", "list":
                for info in await admin.list_keys(_slug(args.workspace)):
                    created = f"{info.created_at:%Y-%m-%dT%H:%M:%SZ}"
                    kind = "read-only " if info.read_only else "read-write"
                    print(f"{info.key_id}  {created}  {kind}  {info.user_name}")


async def _revoke(admin: Admin, ref: str) -> Revoked:
    """``keys revoke``'s argument: ``-`` (the key on stdin), a key id, or the key itself."""
    if ref == "-":
        api_key = sys.stdin.readline().strip()
        if not api_key:
            raise UsageError("no API key on stdin (`keys revoke -` reads one line)")
        return await admin.revoke_key(api_key)
    if ref.startswith("ek_"):  # still accepted, though the shell's history now holds it
        return await admin.revoke_key(ref)
    return await admin.revoke_key_id(ref)


async def _status(args: argparse.Namespace, settings: Settings) -> None:
    async with _admin_of(settings) as admin:
        if args.watch is None:
            await status.show(admin, args.workspace, args.json, sys.stdout)
        else:
            await status.watch(admin, args.workspace, args.json, args.watch, sys.stdout)


def _slug(slug: str) -> str:
    try:
        check_slug(slug)
    except CoordinatorError as exc:
        raise ConfigError(exc.message) from None
    return slug
