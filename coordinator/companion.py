"""``coordinator mcp``: the companion, a stdio MCP server an agent starts once per session.

It lets the agent take part instead of only being stopped: see who works on what
(``team_status``) and record a decision (``decide``). It also answers Codex's
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
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio.to_thread
import msgspec
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from coordinator import bridge, routes
from coordinator.client import Answer, ServiceClient, ServiceError
from coordinator.models import Decision, Identity, Reservation, Session
from coordinator.overview import TeamView

SERVER_NAME = "coordinator"
HOOK_TOOL = "hook"
KINDS = ("architecture", "approach", "convention", "bugfix", "other")
MAX_DECISION = 500  # the service's limit on a decision's text
LISTED = 500  # rows of each listing team_status reads
MAX_TURNS = 1_000  # subagents' turns remembered

log = logging.getLogger("coordinator.companion")
T = TypeVar("T")

INSTRUCTIONS = (
    "Coordinates you with the other coding agents on this team. Call team_status before "
    "planning work that spans several files, to see who works on what and which files are "
    "reserved; a file someone else reserved will be refused to you. Call decide to record "
    "a decision the team should follow (it appears in every agent's briefing)."
)


class Companion:
    """One agent session's link to the service: a kept connection, who the key speaks
    for, and the agent's own session id once a hook has named it."""

    def __init__(self, client: ServiceClient | None, problem: str | None = None) -> None:
        self.client = client
        self.problem = problem  # why there is no client (no key, a bad URL...)
        self.identity: Identity | None = None
        self.session_id: str | None = None
        # Codex subagents' turns (their start names it) → (agent id, agent type): their
        # other events name no agent, only their turn.
        self.subagent_turns: dict[str, tuple[str, str]] = {}

    async def team_status(self) -> str:
        me = await self._identity()
        ws = me.workspace
        sessions = await self._get(routes.of_workspace(routes.SESSIONS, ws), limit=LISTED)
        held = await self._get(routes.of_workspace(routes.RESERVATIONS, ws), limit=LISTED)
        decided = await self._get(routes.of_workspace(routes.DECISIONS, ws), limit=10)
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
        )
        return view.text(self.session_id)

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

    async def hook(self, event: dict[str, Any]) -> str:
        """Codex's hook event, answered as the bridge would: the service's answer, or
        on any failure the agent's "go ahead" with a visible warning (fail open)."""
        if event.get("session_id"):
            self.session_id = str(event["session_id"])
        name = str(event.get("hook_event_name", ""))
        turn = str(event.pop("turn_id", "") or "")
        if event.get("agent_id") and turn:
            if len(self.subagent_turns) >= MAX_TURNS:
                self.subagent_turns.clear()
            self.subagent_turns[turn] = (str(event["agent_id"]), str(event.get("agent_type", "")))
        elif turn in self.subagent_turns:
            event["agent_id"], event["agent_type"] = self.subagent_turns[turn]
        if self.client is None:
            return json.dumps(bridge.fallback("codex", name, self.problem or "", False))
        slim = bridge.slim(event, "codex")
        target = routes.hook_url("", "codex")
        try:
            answer = await self._raw(lambda client: client.post(target, slim))
            reply = json.loads(answer.body or b"{}")
            if not isinstance(reply, dict):
                raise ValueError("the service answered something that is not a JSON object")
        except (ServiceError, ValueError) as exc:
            log.warning("hook %s: %s", name, exc)
            return json.dumps(bridge.fallback("codex", name, str(exc), False))
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
    ) -> str:
        """Run by the agent's hooks (coordinator install wires them), not by the model."""
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
            event["tool_input"] = {"command": command}
        return await companion.hook(event)

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
