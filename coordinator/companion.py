"""``coordinator mcp``: the companion, a stdio MCP server an agent starts once per session.

It lets the agent take part instead of only being stopped: see who works on what
(``team_status``), claim files, directories and globs before starting (``reserve``), give
them back (``release``), ask for a file someone else holds and queue for it
(``request_file``), and record a decision (``decide``). It also answers Codex's
``mcp_tool`` hooks (``hook``), so an event costs a round trip on a kept connection
instead of a Python start per event. It talks to the service with the user's key and
the bridge's settings (``COORDINATOR_URL``, ``COORDINATOR_API_KEY``,
``COORDINATOR_TIMEOUT``, the config file), and logs to stderr only: stdout is the
protocol.

A tool is a method of ``Companion`` (one service call or a few, and the words for the
agent) and a line in ``build_server``; a failure is a ``ToolError`` whose message the
agent reads, never a traceback.
"""

from __future__ import annotations

import argparse
import email.utils
import json
import logging
import os
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
import msgspec
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from coordinator import bridge, edits, routes
from coordinator.agents import AGENTS
from coordinator.client import Answer, ServiceClient, ServiceError
from coordinator.models import (
    Decision,
    FileRequest,
    Identity,
    Released,
    Requested,
    Reservation,
    Reserved,
    Session,
)
from coordinator.overview import TeamView

SERVER_NAME = "coordinator"
HOOK_TOOL = "hook"
KINDS = ("architecture", "approach", "convention", "bugfix", "other")
MAX_DECISION = 500  # the service's limit on a decision's text
LISTED = 500  # rows of each listing team_status reads
MAX_TURNS = 1_000  # subagents' turns remembered
MAX_PATHS = 100  # the service's limit on one reserve

log = logging.getLogger("coordinator.companion")
T = TypeVar("T")

INSTRUCTIONS = (
    "Coordinates you with the other coding agents on this team. Call team_status before "
    "planning work that spans several files, to see who works on what and which files are "
    "reserved; a file someone else reserved will be refused to you. Call reserve to claim "
    "the files or directories (src/api/) you are about to change, release when done, and "
    "request_file to queue for a file someone else holds. Call decide to record a decision "
    "the team should follow (it appears in every agent's briefing)."
)
# Claude Code starts its MCP servers with its own session id in their environment.
CLAUDE_SESSION = "CLAUDE_CODE_SESSION_ID"


class Companion:
    """One agent session's link to the service: a kept connection, who the key speaks
    for, and the agent's own session id once a hook has named it."""

    def __init__(
        self,
        client: ServiceClient | None,
        problem: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.problem = problem  # why there is no client (no key, a bad URL...)
        self.identity: Identity | None = None
        environ = os.environ if env is None else env
        # The agent's conversation: Codex's hooks name it (they come through here); Claude
        # Code's is in the environment it started this process with.
        self.session_id: str | None = environ.get(CLAUDE_SESSION) or None
        self.agent: str | None = "claude-code" if self.session_id else None
        self.cwd: str | None = os.getcwd()
        # Codex subagents' turns (their start names it) → (agent id, agent type): their
        # other events name no agent, only their turn.
        self.subagent_turns: dict[str, tuple[str, str]] = {}
        # Each write's symbols, mapped once at its PreToolUse, for its PostToolUse.
        self.remembered = edits.Remembered()

    async def team_status(self) -> str:
        me = await self._identity()
        ws = me.workspace
        sessions = await self._get(routes.of_workspace(routes.SESSIONS, ws), limit=LISTED)
        held = await self._get(routes.of_workspace(routes.RESERVATIONS, ws), limit=LISTED)
        decided = await self._get(routes.of_workspace(routes.DECISIONS, ws), limit=10)
        asked = await self._get(routes.of_workspace(routes.REQUESTS, ws))
        active = _decode(sessions, list[Session])
        reserved = _decode(held, list[Reservation])
        view = TeamView(
            me,
            active,
            _total(sessions, active),
            reserved,
            _total(held, reserved),
            _decode(decided, list[Decision]),
            _service_time(decided),
            _decode(asked, list[FileRequest]),
        )
        return view.text(self.session_id)

    async def reserve(self, paths: list[str], task: str | None, minutes: float | None) -> str:
        if not paths:
            raise ToolError("paths is empty: name the files, directories (src/api/) or globs")
        if len(paths) > MAX_PATHS:
            raise ToolError(f"reserve at most {MAX_PATHS} paths at once, not {len(paths)}")
        body: dict[str, Any] = {"paths": paths}
        if task:
            body["task"] = task
        if minutes is not None:
            body["minutes"] = minutes
        answer = await self._claim(routes.RESERVE, body)
        reserved = _decode(answer, Reserved)
        until = reserved.expires_at.strftime("%H:%M UTC")
        return (
            f"Reserved for you until at least {until} (renewed while you work): "
            f"{', '.join(reserved.reserved)}. Others are refused edits there; call release "
            f"when you are done."
        )

    async def release(self, paths: list[str] | None) -> str:
        body: dict[str, Any] = {"paths": paths} if paths else {}
        released = _decode(await self._claim(routes.RELEASE, body), Released).released
        if not released:
            return "You held nothing to release."
        return f"Released: {', '.join(released)}. Anyone waiting for them is told."

    async def request_file(self, path: str, note: str | None) -> str:
        if not path.strip():
            raise ToolError("path is empty: name the file you want")
        body: dict[str, Any] = {"path": path}
        if note:
            body["note"] = note
        asked = _decode(await self._claim(routes.REQUEST, body), Requested)
        holder = asked.holder.user_name or "another agent"
        held = f"held for {holder} (next in line)" if asked.next_in_line else f"held by {holder}"
        if asked.via and not asked.next_in_line:
            held += f" as part of {asked.via}"
        return (
            f"You are number {asked.position} in line for {asked.file_path} ({held}). "
            f"They are told at their next step; when it frees it is held for you for a short "
            f"while and you are told. Work on something else meanwhile."
        )

    async def _claim(self, route: str, body: dict[str, Any]) -> Answer:
        """A claim route's call for this agent's conversation."""
        if not self.session_id:
            raise ToolError(
                "coordinator: this agent's session is not known yet (its hooks name it); "
                "run coordinator install for this agent, or try again after its first step"
            )
        me = await self._identity()
        full = {**body, "conversation_id": self.session_id, "workspace_slug": me.workspace}
        if self.cwd:
            full["cwd"] = self.cwd
        if self.agent:
            full["agent_type"] = self.agent
        return await self._call(lambda client: client.post(route, full))

    async def decide(self, text: str, kind: str | None) -> str:
        text = " ".join(text.split())
        if not text:
            raise ToolError("text is empty: say what was decided, in a sentence")
        if kind is not None and kind not in KINDS:
            raise ToolError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
        # The service keeps a decision's text only; the kind leads it, as the board shows it.
        recorded = f"[{kind}] {text}" if kind else text
        if len(recorded) > MAX_DECISION:
            raise ToolError(
                f"the decision is {len(recorded)} characters; at most {MAX_DECISION} are kept"
            )
        me = await self._identity()
        body = {"text": recorded, "workspace_slug": me.workspace}
        answer = await self._call(lambda client: client.post(routes.DECIDE, body))
        decision = _decode(answer, Decision)
        return f"Recorded for team {me.workspace}: {decision.text}"

    async def hook(self, event: dict[str, Any], agent: str = "codex") -> str:
        """An agent's hook event (Codex's, or Claude Code's writes), answered as the bridge
        would: the service's answer, or on any failure the agent's "go ahead" with a
        visible warning (fail open). A write's symbols are mapped here, with the grammars
        loaded once for the session."""
        if event.get("session_id"):
            self.session_id, self.agent = str(event["session_id"]), "codex"
        if event.get("cwd"):
            self.cwd = str(event["cwd"])
        name = str(event.get("hook_event_name", ""))
        turn = str(event.pop("turn_id", "") or "")
        if event.get("agent_id") and turn:
            if len(self.subagent_turns) >= MAX_TURNS:
                self.subagent_turns.clear()
            self.subagent_turns[turn] = (str(event["agent_id"]), str(event.get("agent_type", "")))
        elif turn in self.subagent_turns:
            event["agent_id"], event["agent_type"] = self.subagent_turns[turn]
        if self.client is None:
            return json.dumps(bridge.fallback(agent, name, self.problem or "", False))
        slim = await anyio.to_thread.run_sync(bridge.slim, event, agent, self.remembered)
        target = routes.hook_url("", agent, companion=True)
        try:
            answer = await self._raw(lambda client: client.post(target, slim))
            reply = json.loads(answer.body or b"{}")
            if not isinstance(reply, dict):
                raise ValueError("the service answered something that is not a JSON object")
        except (ServiceError, ValueError) as exc:
            log.warning("hook %s: %s", name, exc)
            return json.dumps(bridge.fallback(agent, name, str(exc), False))
        return json.dumps(reply, ensure_ascii=False)

    async def _identity(self) -> Identity:
        if self.identity is None:
            self.identity = _decode(await self._call(lambda c: c.get(routes.WHOAMI)), Identity)
        return self.identity

    async def _get(self, path: str, **query: str | int) -> Answer:
        return await self._call(lambda client: client.get(path, **query))

    async def _call(self, request: Callable[[ServiceClient], Answer]) -> Answer:
        """A service call for a tool: any failure becomes the tool's error message."""
        try:
            return await self._raw(request)
        except ServiceError as exc:
            raise ToolError(f"coordinator: {exc}") from None

    async def _raw(self, request: Callable[[ServiceClient], Answer]) -> Answer:
        client = self.client
        if client is None:
            raise ServiceError(self.problem or "not configured")
        # The client blocks; a worker thread keeps the protocol's loop answering meanwhile.
        return await anyio.to_thread.run_sync(request, client)


def build_server(companion: Companion) -> MCPServer:
    """The MCP server with the companion's tools. More tools (reserve, release,
    request_file) are one method on Companion and one function here each."""
    server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS)

    @server.tool(structured_output=False)
    async def team_status() -> str:
        """Who on the team is active on what, which files are reserved (by holder and
        directory), the recent decisions, and what you hold. Call it before planning."""
        return await companion.team_status()

    @server.tool(structured_output=False)
    async def decide(text: str, kind: str | None = None) -> str:
        """Record a decision the whole team should follow; every agent's briefing shows it.
        kind: architecture, approach, convention, bugfix or other."""
        return await companion.decide(text, kind)

    @server.tool(structured_output=False)
    async def reserve(
        paths: list[str], task: str | None = None, minutes: float | None = None
    ) -> str:
        """Claim files, directories (with a trailing slash: src/api/) and globs
        (src/**/*.test.ts) before you change them, all or nothing: others are refused edits
        there. task: what you are doing. minutes: how long to hold them at least (1-240)."""
        return await companion.reserve(paths, task, minutes)

    @server.tool(structured_output=False)
    async def release(paths: list[str] | None = None) -> str:
        """Give back some (paths, as you reserved them) or all of your reservations now;
        whoever waits for them gets them."""
        return await companion.release(paths)

    @server.tool(structured_output=False)
    async def request_file(path: str, note: str | None = None) -> str:
        """Ask the holder of a file for it and queue for it (first come first): the holder is
        told; when it frees it is held for you for a short while. note: why you need it."""
        return await companion.request_file(path, note)

    @server.tool(name=HOOK_TOOL, structured_output=False)
    async def hook(
        hook_event_name: str,
        session_id: str,
        cwd: str = "",
        prompt: str = "",
        tool_name: str = "",
        command: str = "",
        tool_use_id: str = "",
        agent_id: str = "",
        agent_type: str = "",
        turn_id: str = "",
        tool_input: str = "",
        agent: str = "codex",
    ) -> str:
        """Run by the agent's hooks (coordinator install wires them), not by the model.
        ``tool_input``: the whole tool input as JSON text (Claude Code fills an object's
        ``${tool_input}`` so; Codex fails the hook instead, and names ``command``)."""
        event: dict[str, Any] = {"hook_event_name": hook_event_name, "session_id": session_id}
        for key, value in (
            ("cwd", cwd),
            ("prompt", prompt),
            ("tool_name", tool_name),
            ("tool_use_id", tool_use_id),
            ("agent_id", agent_id),
            ("agent_type", agent_type),
            ("turn_id", turn_id),
        ):
            if value:
                event[key] = value
        if tool_name:
            event["tool_input"] = _tool_input(tool_input) or {"command": command}
        if agent not in AGENTS:
            raise ToolError(f"agent {agent!r} is not one of {', '.join(AGENTS)}")
        return await companion.hook(event, agent)

    return server


def run(args: argparse.Namespace) -> int:
    """``coordinator mcp``: serve the companion on stdin/stdout until the agent closes it."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="coordinator mcp: %(message)s"
    )
    try:
        url, key, timeout = bridge.settings(args.url, args.timeout)
        companion = Companion(ServiceClient(url, key, timeout))
    except (bridge.BridgeError, ServiceError) as exc:
        # Serve anyway: the agent loads its tools, and each call says what to fix.
        log.warning("%s", exc)
        companion = Companion(None, str(exc))
    build_server(companion).run("stdio")
    return 0


def _tool_input(text: str) -> dict[str, Any] | None:
    try:
        found = json.loads(text) if text else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


def _decode(answer: Answer, kind: type[T]) -> T:
    try:
        return msgspec.json.decode(answer.body, type=kind)
    except msgspec.DecodeError as exc:
        raise ToolError(f"coordinator: the service answered something unexpected ({exc})") from None


def _total(answer: Answer, rows: list[Any]) -> int:
    """How many the listing holds in all (its X-Total-Count), at least the rows read."""
    try:
        return max(int(answer.headers.get("X-Total-Count", "")), len(rows))
    except ValueError:
        return len(rows)


def _service_time(answer: Answer) -> datetime:
    """The service's clock (its Date header), so ages do not depend on this machine's."""
    date = answer.headers.get("Date")
    try:
        return email.utils.parsedate_to_datetime(date) if date else datetime.now(UTC)
    except (TypeError, ValueError):
        return datetime.now(UTC)
