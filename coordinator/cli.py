"""The ``coordinator`` command.

Only the standard library is imported up front: ``coordinator hook`` runs on every
tool call of every agent, and ``install`` needs nothing more either.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence  # already imported by argparse; typing is not

from coordinator import __version__
from coordinator.agents import AGENTS


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # `hook` runs on every tool call: building the other commands' parsers would cost
    # it several milliseconds (bench/bridge.py).
    args = _parser(only_hook=argv[:1] == ["hook"]).parse_args(argv)
    match args.command:
        case "hook":
            from coordinator import bridge

            return bridge.run(args)
        case "install":
            return _install(args)
        case "mcp":
            from coordinator import companion

            return companion.run(args)
    from coordinator.commands import run
    from coordinator.errors import CoordinatorError

    try:
        run(args)
    except CoordinatorError as exc:
        print(f"coordinator: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


def _install(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coordinator import install, install_mcp

    url = args.url or os.environ.get("COORDINATOR_URL") or "http://127.0.0.1:8080"
    command = args.bridge_command or install.bridge_command()
    project = None if args.user else Path(args.project or ".").resolve()
    path = install.config_path(args.agent, project)
    companion = not args.no_mcp
    reports = [install.install(args.agent, path, url, command, companion)]
    if companion:
        reports += install_mcp.install_companion(args.agent, project, url, command)
    lines = [f"{args.agent}:", *(line for report in reports for line in report.lines())]
    lines.append(install.NEXT_STEPS[args.agent])
    if companion and args.agent == "claude-code" and project is not None:
        lines.append(install_mcp.UNTRUSTED_GRANT)
    twice = install.runs_twice(project) if args.agent in ("cursor", "claude-code") else None
    if twice is not None:
        lines.append("Warning: " + twice)
    print("\n".join(lines))
    return 0


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0.05):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (at least 0.05)")
    return seconds


def _parser(only_hook: bool = False) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="coordinator", description="Coordination service for teams of AI coding agents."
    )
    parser.add_argument("--version", action="version", version=f"coordinator {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    hook = commands.add_parser(
        "hook", help="forward an agent's hook event (JSON on stdin) and print the answer"
    )
    hook.add_argument("--agent", choices=AGENTS, help="the agent running this hook")
    hook.add_argument("--url", help="the service (default $COORDINATOR_URL, then the config file)")
    hook.add_argument("--timeout", help="seconds to wait for the service (default 2)")
    hook.add_argument(
        "--fail-closed", action="store_true", help="deny writes when the service cannot answer"
    )
    hook.add_argument(
        "--mcp",
        action="store_true",
        help="the agent has the companion's tools (a deny then says to call request_file)",
    )
    if only_hook:
        return parser

    mcp = commands.add_parser(
        "mcp", help="the companion: a stdio MCP server giving an agent coordinator's tools"
    )
    mcp.add_argument("--url", help="the service (default $COORDINATOR_URL, then the config file)")
    mcp.add_argument("--timeout", help="seconds to wait for the service (default 2)")

    serve_cmd = commands.add_parser("serve", help="run the HTTP service")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8080)
    serve_cmd.add_argument(
        "--no-access-log",
        dest="access_log",
        action="store_false",
        help="log a request only when it fails on the server's side (5xx)",
    )

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
    create_key.add_argument(
        "--read-only",
        action="store_true",
        help="a key that reads listings and events (a wall screen's board) and writes nothing",
    )
    revoke_key = key_actions.add_parser(
        "revoke", help="revoke a key, ending its sessions and freeing their files"
    )
    revoke_key.add_argument(
        "key",
        metavar="KEY_ID",
        help="the key's id as `keys list` shows it (or enough of its head to name one key), "
        "or - to read the key itself from stdin (it stays out of the shell's history)",
    )
    list_keys = key_actions.add_parser("list", help="list a workspace's keys (never the keys)")
    list_keys.add_argument("--workspace", required=True)

    status = commands.add_parser(
        "status", help="who works on what, read from Redis (needs REDIS_URL)"
    )
    status.add_argument("--workspace", metavar="SLUG", help="only this workspace (slug or id)")
    status.add_argument(
        "--watch",
        nargs="?",
        const=2.0,
        type=_seconds,
        metavar="SECONDS",
        help="redraw every SECONDS (default 2) until Ctrl-C",
    )
    status.add_argument("--json", action="store_true", help="JSON, for scripts")

    install = commands.add_parser("install", help="wire an agent's hooks to this service")
    install.add_argument("agent", choices=AGENTS)
    where = install.add_mutually_exclusive_group()
    where.add_argument("--project", metavar="DIR", help="the project's own hook file (default: .)")
    where.add_argument("--user", action="store_true", help="the user's hook file instead")
    install.add_argument("--url", help="the service (default $COORDINATOR_URL or :8080)")
    install.add_argument(
        "--bridge-command", help="how the agent runs coordinator (default: found on PATH)"
    )
    install.add_argument(
        "--no-mcp",
        action="store_true",
        help="hooks only: do not register the companion (coordinator mcp) as an MCP server",
    )
    return parser
