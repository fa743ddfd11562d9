"""Decode a hook request body, in the generic form or an agent's own, into one Event.

A body with ``event`` is the generic form; one with ``hook_event_name`` is what
Claude Code, Cursor and Codex send their hooks themselves (docs/agents.md, "Wiring the agents").
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Sequence
from typing import Annotated, TypeVar

import msgspec

from coordinator.agents import AGENTS, normalise_agent, recognise
from coordinator.errors import InvalidField, InvalidJson, UnknownEvent
from coordinator.shell import SHELL_TOOLS, shell_writes
from coordinator.symbol_claims import (
    Claim,
    SymbolRef,
    SymbolsField,
    folded,
    key_claims,
    symbols_by_file,
)

MAX_TASK = 200
MAX_FILES = 100
MAX_AGENT = 64
SLUG = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
WORKSPACE_ID = re.compile(r"ws_[A-Za-z0-9_-]{12}")
SESSION_ID = re.compile(r"sess_[0-9a-f]{24}")


class Kind(enum.Enum):
    START = "start"
    PROMPT = "prompt"
    PRE_TOOL = "pre_tool"
    POST_TOOL = "post_tool"
    END = "end"
    HEARTBEAT = "heartbeat"
    SUBAGENT_START = "subagent_start"
    SUBAGENT_STOP = "subagent_stop"


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
    "subagentStart": Kind.SUBAGENT_START,
    "SubagentStart": Kind.SUBAGENT_START,
    "subagentStop": Kind.SUBAGENT_STOP,
    "SubagentStop": Kind.SUBAGENT_STOP,
}
# The agents' own names beyond the generic table: Cursor's edit report and its loop end.
NATIVE_EVENTS: dict[str, Kind] = {
    **EVENTS,
    "afterFileEdit": Kind.POST_TOOL,
    "stop": Kind.END,
}

# Tools that change files, per agent; a shell (shell.SHELL_TOOLS) claims what its command
# clearly writes; any other tool (Read, Grep, MCP:...) claims nothing.
WRITE_TOOLS: dict[str, frozenset[str]] = {
    "claude-code": frozenset({"Write", "Edit", "MultiEdit", "NotebookEdit"}),
    "cursor": frozenset({"Write", "Delete", "Edit", "StrReplace"}),
    "codex": frozenset({"apply_patch"}),
}
ANY_WRITE_TOOL = frozenset().union(*WRITE_TOOLS.values())
# Tools that start a subagent; their ``description`` is the subagent's task.
SUBAGENT_TOOLS = frozenset({"Agent", "Task"})
# Greedy to the line's end, stripped after: a lazy ``(.+?)\s*$`` is quadratic in a long line.
_PATCH_FILE = re.compile(r"^\*\*\* (?:Add File|Update File|Delete File|Move to): (.+)$", re.M)

Text = Annotated[str, msgspec.Meta(max_length=4096)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class ToolInput(msgspec.Struct):
    file_path: str | None = None
    notebook_path: str | None = None
    command: object = None  # a patch for apply_patch; a string or a list for shells
    description: str | None = None  # the Agent tool's: its subagent's task


class HookBody(msgspec.Struct):
    """Both forms' fields; unknown ones are ignored (the agents add fields often)."""

    event: str | None = None
    hook_event_name: str | None = None
    conversation_id: Id | None = None
    session_id: Id | None = None
    agent_type: Annotated[str, msgspec.Meta(max_length=MAX_AGENT)] | None = None
    # A subagent's events add its id; the agents' own forms then mean the subagent's type
    # by ``agent_type`` (the generic form says ``subagent_type``).
    agent_id: Id | None = None
    subagent_id: Id | None = None
    subagent_type: Annotated[str, msgspec.Meta(max_length=MAX_AGENT)] | None = None
    workspace_slug: str | None = None
    task: Annotated[str, msgspec.Meta(max_length=MAX_TASK)] | None = None
    prompt: str | None = None  # its first line is the task, cut to MAX_TASK on purpose
    branch: Text | None = None
    cwd: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    workspace_roots: Annotated[list[str], msgspec.Meta(max_length=64)] | None = None
    file_path: str | None = None
    tool_name: Text | None = None
    tool_input: ToolInput | None = None
    symbols: SymbolsField | None = (
        None  # symbol_claims.py: the symbols each written file's edit touches
    )
    turn_id: object = None
    model: object = None
    # What names one event, so that the same event arriving twice is known (duplicate_id):
    # any JSON value is taken, only a string is read.
    tool_use_id: object = None
    generation_id: object = None


class SessionRef(msgspec.Struct):
    session_id: str
    workspace_slug: str | None = None


class DecisionBody(msgspec.Struct):
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=500)]
    workspace_slug: str | None = None
    session_id: str | None = None


class Event(msgspec.Struct, frozen=True):
    """One hook event, whatever shape it came in.

    ``native`` names the agent whose own answer shape is expected, None for the generic form.
    ``agent_id`` names the subagent that sent it (None: the conversation's own agent), of
    type ``subagent_type``; ``subagent_task`` is the task of a subagent the event starts
    (the Agent tool's description).
    ``paths`` are the keys of the files it writes, taken from ``roots`` (the project roots
    the body named), else from ``cwd``; ``written`` are those files as the body named them,
    to key again from the roots its conversation's start named when the body named none.
    ``shell``: they were read from a shell command, so a path that is no valid key, or lies
    outside the project, is skipped rather than refused (``key_paths``).
    ``claims`` are what it claims of them (whole files, or the ``symbols`` of each
    ``written`` file, () where it is claimed whole).
    """

    kind: Kind
    name: str
    conversation_id: str
    native: str | None = None
    workspace_slug: str | None = None
    agent_type: str | None = None
    task: str | None = None
    branch: str | None = None
    cwd: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    paths: tuple[str, ...] = ()
    roots: tuple[str, ...] = ()
    written: tuple[str, ...] = ()
    agent_id: str | None = None
    subagent_type: str | None = None
    subagent_task: str | None = None
    shell: bool = False
    tool_use_id: str | None = None
    generation_id: str | None = None
    symbols: tuple[tuple[SymbolRef, ...], ...] = ()
    claims: tuple[Claim, ...] = ()


_hook_decoder = msgspec.json.Decoder(HookBody)
_session_ref_decoder = msgspec.json.Decoder(SessionRef)
_decision_decoder = msgspec.json.Decoder(DecisionBody)


def decode_hook(body: bytes, agent: str | None = None) -> Event:
    """The event of a hook request; ``agent`` is the URL's ``?agent=``, which wins."""
    if agent is not None and len(agent) > MAX_AGENT:
        raise InvalidField(f"?agent= is {len(agent)} characters; at most {MAX_AGENT} are allowed")
    hook = _decode(_hook_decoder, body)
    if hook.hook_event_name is not None and hook.event is None:
        return _native(hook, agent)
    if hook.event is None:
        raise InvalidField("Object missing required field `event` (or `hook_event_name`)")
    kind = EVENTS.get(hook.event)
    if kind is None:
        raise UnknownEvent(f"unknown event {hook.event!r}; accepted: {', '.join(EVENTS)}")
    if hook.conversation_id is None:
        raise InvalidField("Object missing required field `conversation_id`")
    agent_type = normalise_agent(agent or hook.agent_type)
    subagent = (hook.agent_id or hook.subagent_id, hook.subagent_type)
    return _event(kind, hook, hook.conversation_id, None, agent_type, ANY_WRITE_TOOL, subagent)


def _native(hook: HookBody, agent: str | None) -> Event:
    name = hook.hook_event_name or ""
    kind = NATIVE_EVENTS.get(name)
    if kind is None:
        accepted = ", ".join(NATIVE_EVENTS)
        raise UnknownEvent(f"unknown hook_event_name {name!r}; accepted: {accepted}")
    agent_id = hook.agent_id or hook.subagent_id
    # In a subagent's event, agent_type is the subagent's type, not the agent's name.
    named = agent or (hook.agent_type if agent_id is None else None)
    agent_type = normalise_agent(named) or recognise(msgspec.structs.asdict(hook))
    subagent = (agent_id, hook.subagent_type or (hook.agent_type if agent_id else None))
    if agent_type not in AGENTS:
        raise InvalidField(f"agent {agent_type!r} is not one of {', '.join(AGENTS)}")
    conversation = hook.conversation_id if agent_type == "cursor" else None
    conversation = conversation or hook.session_id
    if conversation is None:
        field = "conversation_id" if agent_type == "cursor" else "session_id"
        raise InvalidField(f"Object missing required field `{field}`")
    write_tools = WRITE_TOOLS[agent_type]
    return _event(kind, hook, conversation, agent_type, agent_type, write_tools, subagent)


def _event(
    kind: Kind,
    hook: HookBody,
    conversation: str,
    native: str | None,
    agent_type: str | None,
    write_tools: frozenset[str],
    subagent: tuple[str | None, str | None],
) -> Event:
    text = hook.prompt if kind is Kind.PROMPT and hook.task is None else hook.task
    shell = kind in (Kind.PRE_TOOL, Kind.POST_TOOL) and hook.tool_name in SHELL_TOOLS
    if shell:
        command = hook.tool_input.command if hook.tool_input is not None else None
        written = shell_writes(command, limit=MAX_FILES)
    else:
        written = _written_paths(kind, hook, write_tools)
    roots = tuple(hook.workspace_roots or ())
    subagent_task = None
    if kind is Kind.PRE_TOOL and hook.tool_name in SUBAGENT_TOOLS and hook.tool_input:
        subagent_task = first_line(hook.tool_input.description)
    base = roots or ((hook.cwd,) if hook.cwd else ())
    symbols = symbols_by_file(written, hook.symbols)
    claims = key_claims(written, symbols, base, hook.cwd, lenient=shell)
    return Event(
        kind=kind,
        name=hook.hook_event_name or hook.event or "",
        conversation_id=conversation,
        native=native,
        workspace_slug=check_slug(hook.workspace_slug),
        agent_type=agent_type,
        task=first_line(text),
        branch=(hook.branch or "").strip() or None,
        cwd=hook.cwd,
        paths=tuple(dict.fromkeys(claim.path for claim in claims)),
        roots=roots,
        written=written,
        agent_id=subagent[0],
        subagent_type=subagent[1],
        subagent_task=subagent_task,
        shell=shell,
        tool_use_id=_text(hook.tool_use_id),
        generation_id=_text(hook.generation_id),
        symbols=symbols,
        claims=claims,
    )


def _written_paths(kind: Kind, hook: HookBody, write_tools: frozenset[str]) -> tuple[str, ...]:
    """The files the event writes, as the body names them."""
    if kind not in (Kind.PRE_TOOL, Kind.POST_TOOL):
        return ()
    tool_input = hook.tool_input or ToolInput()
    if hook.tool_name == "apply_patch":
        raw = patch_files(tool_input.command) if "apply_patch" in write_tools else []
    elif hook.tool_name is None or hook.tool_name in write_tools:
        path = hook.file_path or tool_input.file_path or tool_input.notebook_path
        raw = [path] if path else []
    else:
        raw = []
    if len(raw) > MAX_FILES:
        raise InvalidField(f"one write may touch at most {MAX_FILES} files, not {len(raw)}")
    return tuple(raw)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def duplicate_id(event: Event, paths: Sequence[str]) -> str | None:
    """What names this event among its conversation's, so that the same event arriving
    twice (Cursor running Claude Code's hooks as well as its own) is answered once; None
    for an event with nothing to name it, or an end (ends are idempotent by themselves).

    The kind (``preToolUse`` and ``PreToolUse`` are one), the tool call's ``tool_use_id``
    or else Cursor's ``generation_id`` (one generation makes many tool calls), and the
    files written, as a short digest. Two events that differ in any of them are two."""
    if event.kind in (Kind.END, Kind.HEARTBEAT):
        return None
    if event.tool_use_id is not None:
        named = ["tool", event.tool_use_id]
    elif event.generation_id is not None:
        named = ["generation", event.generation_id]
    else:
        return None
    parts = [event.kind.value, *named, *map(folded, paths)]  # paths, or claims of symbols
    text = "\0".join(parts).encode("utf-8", "surrogatepass")
    return hashlib.blake2b(text, digest_size=12).hexdigest()


def key_paths(
    written: Sequence[str], roots: Sequence[str], cwd: str | None, *, lenient: bool = False
) -> tuple[str, ...]:
    """The keys of the files written, relative to ``roots``: one per lock, in order, each
    as first written. ``lenient`` (a shell command's files): a path that is no valid key
    is skipped, not refused, and so is one outside every root (``/tmp/out.log``), which is
    no project file two developers could share."""
    return tuple(claim.path for claim in key_claims(written, (), roots, cwd, lenient=lenient))


def patch_files(patch: object) -> list[str]:
    """Every file an apply_patch text adds, updates, deletes or moves to."""
    if not isinstance(patch, str):
        raise InvalidField("tool_input.command of apply_patch must be the patch text")
    return [name.strip() for name in _PATCH_FILE.findall(patch)]


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


T = TypeVar("T")


def _decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidField(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InvalidJson(f"the body is not valid UTF-8: {exc.reason}") from None
    except RecursionError:
        raise InvalidJson("the body's JSON is nested too deeply") from None
