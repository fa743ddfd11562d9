"""The ``coordinator`` command: serve, and manage workspaces and API keys."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

import uvicorn
from redis.asyncio import Redis

from coordinator import __version__
from coordinator.app import create_app
from coordinator.config import Settings
from coordinator.errors import ConfigError, CoordinatorError
from coordinator.events import check_slug
from coordinator.store import Store, connect

DEMO_WORKSPACE = "demo"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
        if args.command == "serve":
            asyncio.run(serve(settings, args.host, args.port))
        else:
            if settings.redis_url is None:
                raise ConfigError(
                    "REDIS_URL is not set: workspaces and keys live in Redis "
                    "(the embedded store exists only inside `coordinator serve`)"
                )
            asyncio.run(_admin(args, settings))
    except CoordinatorError as exc:
        print(f"coordinator: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


async def serve(settings: Settings, host: str, port: int) -> None:
    """Run the service; with no REDIS_URL, on an embedded store with a demo workspace."""
    redis: Redis | None = None
    if settings.embedded:
        redis = embedded_redis()
        store = Store(redis, settings)
        workspace = await store.create_workspace(DEMO_WORKSPACE, "Demo")
        api_key, _ = await store.create_key(workspace.slug, "Demo User")
        print(
            "coordinator: REDIS_URL is not set, so this runs on an embedded in-process store.\n"
            "Its state is NOT persisted and NOT shared with other processes.\n"
            f"Workspace {workspace.slug!r} ({workspace.id}), API key for 'Demo User':\n{api_key}",
            flush=True,
        )
    config = uvicorn.Config(create_app(settings, redis), host=host, port=port, log_level="info")
    await uvicorn.Server(config).serve()


def embedded_redis() -> Redis:
    import fakeredis  # only the embedded store needs it

    return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True)


async def _admin(args: argparse.Namespace, settings: Settings) -> None:
    redis = connect(settings)
    try:
        store = Store(redis, settings)
        match args.command, args.action:
            case "workspaces", "create":
                ws = await store.create_workspace(_slug(args.slug), args.name)
                print(f"created workspace {ws.slug} ({ws.id})")
            case "keys", "create":
                api_key, info = await store.create_key(_slug(args.workspace), args.user)
                print(f"created key {info.key_id} for {info.user_name} in {info.workspace}")
                print(api_key)
            case "keys", "revoke":
                info = await store.revoke_key(args.key)
                print(f"revoked key {info.key_id} of {info.user_name} in {info.workspace}")
            case "keys", "list":
                for info in await store.list_keys(_slug(args.workspace)):
                    created = f"{info.created_at:%Y-%m-%dT%H:%M:%SZ}"
                    print(f"{info.key_id}  {created}  {info.user_name}")
    finally:
        await redis.aclose()


def _slug(slug: str) -> str:
    try:
        check_slug(slug)
    except CoordinatorError as exc:
        raise ConfigError(exc.message) from None
    return slug


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coordinator", description="Coordination service for teams of AI coding agents."
    )
    parser.add_argument("--version", action="version", version=f"coordinator {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="run the HTTP service")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8080)

    workspaces = commands.add_parser("workspaces", help="manage workspaces (needs REDIS_URL)")
    ws_actions = workspaces.add_subparsers(dest="action", required=True)
    create_ws = ws_actions.add_parser("create", help="create a workspace")
    create_ws.add_argument("slug")
    create_ws.add_argument("--name")

    keys_cmd = commands.add_parser("keys", help="manage API keys (needs REDIS_URL)")
    key_actions = keys_cmd.add_subparsers(dest="action", required=True)
    create_key = key_actions.add_parser(
        "create", help="create a key; printed alone on the last line"
    )
    create_key.add_argument("--workspace", required=True)
    create_key.add_argument("--user", required=True)
    revoke_key = key_actions.add_parser("revoke", help="revoke a key")
    revoke_key.add_argument("key")
    list_keys = key_actions.add_parser("list", help="list a workspace's keys (never the keys)")
    list_keys.add_argument("--workspace", required=True)
    return parser
