"""Decode a hook request body and normalise it into one Event."""

from __future__ import annotations

import enum
import re
from typing import Annotated, TypeVar

import msgspec

from coordinator.errors import InvalidField, InvalidJson, UnknownEvent
from coordinator.paths import normalise_file

MAX_TASK = 200
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
SESSION_ID = re.compile(r"sess_[0-9a-f]{24}")


class Kind(enum.Enum):
    START = "start"
    PROMPT = "prompt"
    PRE_TOOL = "pre_tool"
    POST_TOOL = "post_tool"
    END = "end"
    HEARTBEAT = "heartbeat"


EVENTS: dict[str, Kind] = {
    "sessionStart": Kind.START,
    "SessionStart": Kind.START,
    "beforeSubmitPrompt": Kind.PROMPT,
    "UserPromptSubmit": Kind.PROMPT,
    "preToolUse": Kind.PRE_TOOL,
    "PreToolUse": Kind.PRE_TOOL,
    "postToolUse": Kind.POST_TOOL,
    "PostToolUse": Kind.POST_TOOL,
    "sessionEnd": Kind.END,
    "SessionEnd": Kind.END,
    "Stop": Kind.END,
    "file_check": Kind.HEARTBEAT,
}

# Tools that change files; any other tool (Read, Grep, Shell, MCP:...) claims nothing.
WRITE_TOOLS = frozenset(
    {"Write", "Edit", "MultiEdit", "NotebookEdit", "Delete", "StrReplace", "apply_patch"}
)

Text = Annotated[str, msgspec.Meta(max_length=4096)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class ToolInput(msgspec.Struct):
    file_path: str | None = None
    notebook_path: str | None = None


class HookBody(msgspec.Struct):
    """The generic form; unknown fields are ignored (agents add fields often)."""

    event: str
    conversation_id: Id
    agent_type: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    workspace_slug: str | None = None
    task: str | None = None
    prompt: str | None = None
    branch: Text | None = None
    cwd: str | None = None
    file_path: str | None = None
    tool_name: Text | None = None
    tool_input: ToolInput | None = None


class SessionRef(msgspec.Struct):
    session_id: str
    workspace_slug: str | None = None


class DecisionBody(msgspec.Struct):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    workspace_slug: str | None = None
    session_id: str | None = None


class Event(msgspec.Struct, frozen=True):
    """One hook event, whatever shape it came in."""

    kind: Kind
    conversation_id: str
    workspace_slug: str | None = None
    agent_type: str | None = None
    task: str | None = None
    branch: str | None = None
    cwd: str | None = None
    paths: tuple[str, ...] = ()


_hook_decoder = msgspec.json.Decoder(HookBody)
_session_ref_decoder = msgspec.json.Decoder(SessionRef)
_decision_decoder = msgspec.json.Decoder(DecisionBody)


def decode_hook(body: bytes) -> Event:
    hook = _decode(_hook_decoder, body)
    kind = EVENTS.get(hook.event)
    if kind is None:
        raise UnknownEvent(f"unknown event {hook.event!r}; accepted: {', '.join(EVENTS)}")
    text = hook.prompt if kind is Kind.PROMPT and hook.task is None else hook.task
    return Event(
        kind=kind,
        conversation_id=hook.conversation_id,
        workspace_slug=check_slug(hook.workspace_slug),
        agent_type=normalise_agent(hook.agent_type),
        task=first_line(text),
        branch=(hook.branch or "").strip() or None,
        cwd=hook.cwd,
        paths=_written_paths(kind, hook),
    )


def decode_session_ref(body: bytes) -> SessionRef:
    ref = _decode(_session_ref_decoder, body)
    check_slug(ref.workspace_slug)
    check_session_id(ref.session_id)
    return ref


def decode_decision(body: bytes) -> DecisionBody:
    decision = _decode(_decision_decoder, body)
    check_slug(decision.workspace_slug)
    if decision.session_id is not None:
        check_session_id(decision.session_id)
    if not decision.text.strip():
        raise InvalidField("text must not be blank")
    return decision


def check_slug(slug: str | None) -> str | None:
    if slug is not None and not SLUG.fullmatch(slug):
        raise InvalidField(f"workspace_slug {slug!r} must match [a-z0-9][a-z0-9-]{{0,62}}")
    return slug


def check_session_id(session_id: str) -> str:
    if not SESSION_ID.fullmatch(session_id):
        raise InvalidField("session_id must look like sess_ followed by 24 hex digits")
    return session_id


def first_line(text: str | None) -> str | None:
    """A task as the briefing shows it: its first non-blank line, at most 200 characters."""
    if text is None:
        return None
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:MAX_TASK]
    return None


def normalise_agent(agent: str | None) -> str | None:
    if agent is None or not agent.strip():
        return None
    name = agent.strip().lower().replace("_", "-").replace(" ", "-")
    return "claude-code" if name in ("claude", "claudecode") else name


def _written_paths(kind: Kind, hook: HookBody) -> tuple[str, ...]:
    if kind not in (Kind.PRE_TOOL, Kind.POST_TOOL):
        return ()
    if hook.tool_name is not None and hook.tool_name not in WRITE_TOOLS:
        return ()
    tool_input = hook.tool_input or ToolInput()
    path = hook.file_path or tool_input.file_path or tool_input.notebook_path
    if path is None:
        return ()
    return (normalise_file(path, [hook.cwd] if hook.cwd else []),)


T = TypeVar("T")


def _decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidField(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}") from None
