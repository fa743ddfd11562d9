"""``POST /workspaces/sessions/hook``: one hook event, from the request to the agent's answer.

An agent waits on this route at every edit, so it is served as a bare ASGI app, and
``Shortcut`` hands it its requests past Starlette's router. The path of one event:
``HookEndpoint`` authenticates and reads the body (asgi.py), decodes the event
(events.py), makes the store's one call for it (store.py) and sends the agent's answer
(render.py).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from coordinator.asgi import (
    check_workspace,
    check_writer,
    error_answer,
    principal,
    query_param,
    read_body,
    send_json,
)
from coordinator.errors import CoordinatorError
from coordinator.events import Event, Kind, decode_hook, duplicate_id
from coordinator.models import Principal, session_id_for, subagent_id_for
from coordinator.observe import RequestRecord, record_of
from coordinator.render import answer
from coordinator.store import Store
from coordinator.symbol_claims import key_claims


class HookEndpoint:
    """The hook route as a bare ASGI app: no Request object, no per-request wrappers."""

    def __init__(self, store: Store, max_body_bytes: int) -> None:
        self.store = store
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = record_of(scope)
        try:
            who = await principal(scope, self.store)
            body = await read_body(scope, receive, self.max_body_bytes)
            companion = query_param(scope, "mcp") == "1"
            content = await self.answer(who, body, query_param(scope, "agent"), record, companion)
        except CoordinatorError as exc:
            await error_answer(scope, exc)(scope, receive, send)
            return
        except ClientDisconnect:
            return
        await send_json(send, content)

    async def answer(
        self,
        who: Principal,
        body: bytes,
        agent: str | None,
        record: RequestRecord,
        companion: bool = False,
    ) -> Any:
        """The answer to one hook event, in the form its agent reads; ``companion``: the
        agent has the companion's tools (``?mcp=1`` on the hook URL, docs/agents.md)."""
        check_writer(who)
        event = decode_hook(body, agent)
        record.event, record.agent = event.kind.value, event.agent_type
        check_workspace(who, event.workspace_slug)
        sid = session_id_for(who.workspace, event.conversation_id)
        # A subagent holds files as (conversation, agent id): a session of its own, whose
        # parent is the conversation's session (keys.py).
        parent = None
        if event.agent_id is not None:
            parent, sid = sid, subagent_id_for(who.workspace, event.conversation_id, event.agent_id)
        claims = event.claims
        if event.roots and event.kind is Kind.START and event.agent_type == "claude-code":
            # Claude Code's start runs the bridge, which names the git root; its other hooks
            # post straight here and name none (the other agents name them at every event).
            await self.store.remember_roots(who, sid, event.roots)
        elif event.written and event.cwd and not event.roots:
            # Keyed from the roots its start named, if any, rather than from cwd: one file,
            # one key, whatever folder the agent works in.
            roots = await self.store.roots(who, parent or sid)
            if roots:
                claims = key_claims(event.written, event.symbols, roots, event.cwd, event.shell)
        if parent is not None and event.kind in (Kind.END, Kind.SUBAGENT_STOP):
            # A subagent's end is its stop: its files pass to its parent, which goes on.
            await self.store.hand_over(who, sid, parent)
            return answer(event, sid, None)
        if event.kind is Kind.END:
            record.ended = (await self.store.end_session(who, sid)).live
            return answer(event, sid, None)
        fields = {"user_name": who.user_name, "key_id": who.key_id}
        for name, value in (
            ("agent_type", event.agent_type),
            ("current_task", event.task),
            ("branch", event.branch),
            ("cwd", event.cwd),
            ("parent", parent),
            ("agent_id", event.agent_id),
            ("subagent_type", event.subagent_type),
        ):
            if value is not None:
                fields[name] = value
        # Each event its own operation: a write claims its files; a start is briefed; a
        # prompt hears what changed; any other event touches its session.
        members = [claim.member for claim in claims]
        conversation, once = event.conversation_id, duplicate_id(event, members)
        notes = carries_context(event)
        if claims:
            outcome = await self.store.touch(who, sid, conversation, fields, claims, notes, once)
        elif event.kind is Kind.START:
            outcome = await self.store.start(who, sid, conversation, fields, notes, once)
        elif event.kind is Kind.PROMPT:
            outcome = await self.store.prompt(who, sid, conversation, fields, notes, once)
        elif event.kind is Kind.SUBAGENT_START and parent is not None:
            outcome = await self.store.start_subagent(who, sid, conversation, fields)
        elif event.subagent_task is not None:
            task = event.subagent_task
            outcome = await self.store.announce_subagent(who, sid, conversation, task, fields)
        else:
            outcome = await self.store.touch(who, sid, conversation, fields, (), notes, once)
        if outcome.duplicate:  # answered as the first time; counted then
            record.event = "duplicate"
            return answer(event, sid, outcome)
        record.started = outcome.created
        if event.kind in (Kind.PRE_TOOL, Kind.POST_TOOL):
            record.decision = "deny" if outcome.conflict or outcome.over_cap else "allow"
        return answer(event, sid, outcome, companion)


def carries_context(event: Event) -> bool:
    """Whether the answer to ``event`` can tell its agent something (the session's notes
    are taken only then): Claude Code and Codex at a start, a prompt and after a tool;
    Cursor at a start and after a tool; the generic form at a start."""
    match event.native:
        case None:
            return event.kind is Kind.START
        case "cursor":
            return event.kind in (Kind.START, Kind.POST_TOOL)
    return event.kind in (Kind.START, Kind.PROMPT, Kind.POST_TOOL)


class Shortcut:
    """Serves POST to one path straight from the app's edge, past Starlette's router and
    exception middleware: on the hook route they cost a sizeable share of the CPU
    (BENCHMARKS.md). The same endpoint stays in the route table, so other methods still
    get a 405."""

    def __init__(self, app: ASGIApp, path: str, endpoint: ASGIApp) -> None:
        self.app = app
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path and scope["method"] == "POST":
            scope["endpoint"] = self.endpoint  # as the router would: it names the route
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)
