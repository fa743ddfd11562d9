"""``coordinator hook``: forward one agent hook event to the service, print its answer.

Cursor and Codex run hooks as commands (so does Claude Code for SessionStart). This
runs on every tool call, so it imports only the standard library, drops the bulky
parts of the payload before sending, and gives up quickly. It fails open: whatever
goes wrong, it prints the agent's valid "go ahead" answer with a visible warning and
exits 0, unless ``--fail-closed``, where a write is denied instead. It never prints
anything but one JSON object (Cursor blocks on invalid output).

Settings, first found wins: the flags; ``COORDINATOR_URL``, ``COORDINATOR_API_KEY``,
``COORDINATOR_TIMEOUT``; the JSON file ``$COORDINATOR_CONFIG`` or
``~/.config/coordinator/bridge.json`` (``{"url": ..., "api_key": ..., "timeout": 2}``).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from urllib.parse import urlsplit

from coordinator import edits, routes
from coordinator.agents import normalise_agent, recognise

# Not typing.TYPE_CHECKING: importing typing (or pathlib) costs milliseconds on every tool call.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_TIMEOUT = 2.0
MAX_INPUT = 8 << 20
# Fields that carry file contents or transcripts: the service never needs them.
BULKY = frozenset(
    {
        "content",
        "old_string",
        "new_string",
        "edits",
        "tool_response",
        "tool_output",
        "attachments",
        "transcript",
        "last_assistant_message",
    }
)
PRE_TOOL_EVENTS = frozenset({"PreToolUse", "preToolUse"})


class BridgeError(Exception):
    """Why the service's answer could not be had; shown to the user as the warning."""


def run(args: argparse.Namespace) -> int:
    """Read the event on stdin, print the answer; ``args`` as ``coordinator hook`` parses them."""
    raw = sys.stdin.buffer.read(MAX_INPUT)
    named = normalise_agent(args.agent)
    try:
        payload = json.loads(raw)
        if not isinstance(payload, dict):
            raise ValueError("not a JSON object")
    except ValueError:
        reason = "the agent sent no valid JSON event"
        answer = fallback(named or "claude-code", "", reason, args.fail_closed)
    else:
        agent = named or recognise(payload)
        try:
            config = settings(args.url, args.timeout)
            answer = forward(slim(payload, agent), agent, *config, companion=args.mcp)
        except BridgeError as exc:
            event = str(payload.get("hook_event_name", ""))
            answer = fallback(agent, event, str(exc), args.fail_closed)
    sys.stdout.write(json.dumps(answer, ensure_ascii=False) + "\n")
    return 0


def slim(
    payload: dict[str, Any], agent: str, remembered: edits.Remembered | None = None
) -> dict[str, Any]:
    """The payload without bulky fields, a patch cut to its file lines, the git branch, and
    the symbols a write touches (edits.py), read before its bulky fields go."""
    event = {key: value for key, value in payload.items() if key not in BULKY}
    symbols = edits.event_symbols(payload, remembered)
    if symbols:
        event["symbols"] = symbols
    tool_input = event.get("tool_input")
    if isinstance(tool_input, dict):
        tool_input = {key: value for key, value in tool_input.items() if key not in BULKY}
        command = tool_input.get("command")
        if event.get("tool_name") == "apply_patch" and isinstance(command, str):
            tool_input["command"] = "\n".join(
                line for line in command.splitlines() if line.startswith("*** ")
            )
        event["tool_input"] = tool_input
    cwd = event.get("cwd")
    repo = git_root(cwd if isinstance(cwd, str) else os.getcwd())
    if repo is not None:
        if "branch" not in event:
            branch = git_branch(repo)
            if branch:
                event["branch"] = branch
        if agent != "cursor" and "workspace_roots" not in event:
            event["workspace_roots"] = [repo]
    return event


def forward(
    event: Mapping[str, Any],
    agent: str,
    url: str,
    key: str,
    timeout: float,
    companion: bool = False,
) -> Any:
    """POST the event to the service; its answer, already in the agent's shape
    (``companion``: the agent has the companion's tools)."""
    target = routes.hook_url(url, agent, companion)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    try:
        status, body = post(target, json.dumps(event).encode(), headers, timeout)
    except (OSError, ValueError) as exc:
        raise BridgeError(
            f"cannot reach the service at {url}: {exc or type(exc).__name__}"
        ) from None
    if status != 200:
        raise BridgeError(f"the service answered {status}: {_error_text(body)}")
    try:
        answer = json.loads(body or b"{}")
    except ValueError:
        raise BridgeError("the service answered something that is not JSON") from None
    if not isinstance(answer, dict):
        raise BridgeError("the service answered something that is not a JSON object")
    return answer


def post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> tuple[int, bytes]:
    """One HTTP POST, all of it within ``timeout`` seconds: (status, body).

    Plain HTTP is spoken over a socket here, because urllib's import alone costs
    this command a third of its budget; https takes the standard client.
    """
    parts = urlsplit(url)
    target = f"{parts.path or '/'}?{parts.query}" if parts.query else parts.path or "/"
    if parts.scheme == "https":
        import http.client

        connection = http.client.HTTPSConnection(parts.netloc, timeout=timeout)
        connection.request("POST", target, body, dict(headers))
        response = connection.getresponse()
        return response.status, response.read()
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    deadline = time.monotonic() + timeout
    received = bytearray()
    with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout) as sock:
        sock.sendall(request)
        while True:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    head, _, payload = bytes(received).partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/") or not rest[:3].isdigit():
        raise ValueError("no HTTP answer")
    if "transfer-encoding: chunked" in (line.lower() for line in header_lines):
        payload = _dechunk(payload)
    return int(rest[:3]), payload


def _dechunk(data: bytes) -> bytes:
    body = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        body += data[:size]
        data = data[size + 2 :]
    return bytes(body)


def fallback(agent: str, event: str, reason: str, fail_closed: bool) -> dict[str, Any]:
    """The agent's own valid answer when the service could not give one."""
    pre_tool = event in PRE_TOOL_EVENTS
    if fail_closed and pre_tool:
        message = f"coordinator: {reason}. Writes are blocked until it answers (--fail-closed)."
        if agent == "cursor":
            return {"permission": "deny", "user_message": message, "agent_message": message}
        return {
            "hookSpecificOutput": {
                "hookEventName": event,
                "permissionDecision": "deny",
                "permissionDecisionReason": message,
            }
        }
    warning = f"coordinator: {reason}. Continuing without coordination."
    if agent != "cursor":
        return {"systemMessage": warning}
    if pre_tool:
        return {"permission": "allow", "user_message": warning}
    return {"continue": True} if event == "beforeSubmitPrompt" else {}


def git_root(start: str) -> str | None:
    """The nearest folder holding ``.git``, found without running git."""
    folder = os.path.abspath(start)
    while True:
        if os.path.exists(os.path.join(folder, ".git")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def git_branch(repo: str) -> str | None:
    """The checked-out branch, read from HEAD (a worktree's ``.git`` file points to it)."""
    git = os.path.join(repo, ".git")
    try:
        if os.path.isfile(git):
            with open(git) as pointer:
                git = os.path.join(repo, pointer.read().removeprefix("gitdir:").strip())
        with open(os.path.join(git, "HEAD")) as head_file:
            head = head_file.read().strip()
    except OSError:
        return None
    if head.startswith("ref: refs/heads/"):
        return head.removeprefix("ref: refs/heads/")
    return head[:12] or None  # detached: the commit


def settings(url_flag: str | None, timeout_flag: str | None) -> tuple[str, str, float]:
    """(URL, API key, timeout) from the flags, the environment, then the config file;
    the companion (``coordinator mcp``) reads the same."""
    config = _config_file()
    url = url_flag or os.environ.get("COORDINATOR_URL") or config.get("url") or DEFAULT_URL
    key = os.environ.get("COORDINATOR_API_KEY") or config.get("api_key")
    if not key:
        raise BridgeError("no API key: set COORDINATOR_API_KEY or api_key in the config file")
    raw_timeout = timeout_flag or os.environ.get("COORDINATOR_TIMEOUT") or config.get("timeout")
    try:
        timeout = float(raw_timeout or DEFAULT_TIMEOUT)
    except ValueError:
        raise BridgeError(f"the timeout {raw_timeout!r} is not a number of seconds") from None
    return str(url), str(key), timeout


def _config_file() -> dict[str, Any]:
    path = os.environ.get("COORDINATOR_CONFIG") or "~/.config/coordinator/bridge.json"
    try:
        with open(os.path.expanduser(path), "rb") as config_file:
            config = json.loads(config_file.read())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise BridgeError(f"cannot read the config file {path}: {exc}") from None
    return config if isinstance(config, dict) else {}


def _error_text(body: bytes) -> str:
    try:
        error = json.loads(body)
        return f"{error['error']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return body[:200].decode("utf-8", "replace") or "no answer"
