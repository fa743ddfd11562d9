from __future__ import annotations

import msgspec
import pytest

from coordinator.errors import InvalidField, InvalidJson, InvalidPath, UnknownEvent
from coordinator.events import EVENTS, Kind, decode_hook


def body(**fields: object) -> bytes:
    return msgspec.json.encode({"conversation_id": "c1", **fields})


@pytest.mark.parametrize("name", list(EVENTS))
def test_every_documented_spelling_is_accepted(name: str) -> None:
    assert decode_hook(body(event=name)).kind is EVENTS[name]


def test_write_paths_come_from_file_path_or_tool_input() -> None:
    top = decode_hook(body(event="preToolUse", file_path="/r/a.ts", cwd="/r"))
    tool = decode_hook(body(event="PreToolUse", tool_name="Edit", tool_input={"file_path": "b.ts"}))
    notebook = decode_hook(
        body(event="PostToolUse", tool_name="NotebookEdit", tool_input={"notebook_path": "n.ipynb"})
    )
    assert (top.paths, tool.paths, notebook.paths) == (("a.ts",), ("b.ts",), ("n.ipynb",))


@pytest.mark.parametrize("tool", ["Read", "Grep", "Shell", "Bash", "MCP:github"])
def test_tools_that_do_not_write_claim_nothing(tool: str) -> None:
    event = decode_hook(body(event="preToolUse", tool_name=tool, tool_input={"file_path": "a.ts"}))
    assert event.paths == ()


def test_pre_tool_use_without_a_path_claims_nothing() -> None:
    assert decode_hook(body(event="preToolUse", tool_name="Shell")).paths == ()


def test_prompt_becomes_a_trimmed_first_line_task() -> None:
    prompt = "\n  Build JWT auth flow  \nwith refresh tokens"
    assert decode_hook(body(event="UserPromptSubmit", prompt=prompt)).task == "Build JWT auth flow"
    long = decode_hook(body(event="beforeSubmitPrompt", prompt="x" * 500))
    assert long.task == "x" * 200


def test_agent_names_are_normalised() -> None:
    assert decode_hook(body(event="sessionStart", agent_type="Claude_Code")).agent_type == (
        "claude-code"
    )
    assert decode_hook(body(event="sessionStart")).agent_type is None


def test_unknown_fields_are_ignored() -> None:
    event = decode_hook(body(event="sessionStart", model="gpt-5.5", whatever={"x": 1}))
    assert event.kind is Kind.START


def test_malformed_json_is_a_400() -> None:
    with pytest.raises(InvalidJson):
        decode_hook(b'{"event": ')


def test_unknown_event_lists_the_accepted_ones() -> None:
    with pytest.raises(UnknownEvent, match="sessionStart, SessionStart"):
        decode_hook(body(event="sessionBegin"))


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"event": "sessionStart", "conversation_id": None}, "conversation_id"),
        ({"conversation_id": "c1"}, "event"),
        ({"event": 3, "conversation_id": "c1"}, "event"),
        ({"event": "sessionStart", "conversation_id": ""}, "conversation_id"),
        ({"event": "sessionStart", "conversation_id": "c", "workspace_slug": "Bad_Slug"}, "slug"),
        ({"event": "preToolUse", "conversation_id": "c", "tool_input": "x"}, "tool_input"),
    ],
)
def test_missing_or_mistyped_fields_are_named(fields: dict[str, object], named: str) -> None:
    payload = {k: v for k, v in fields.items() if v is not None}
    with pytest.raises(InvalidField, match=named):
        decode_hook(msgspec.json.encode(payload))


def test_a_path_escaping_the_root_is_refused() -> None:
    with pytest.raises(InvalidPath):
        decode_hook(body(event="preToolUse", file_path="../../etc/passwd"))


@pytest.mark.parametrize(
    ("payload", "agent"),
    [
        ({"hook_event_name": "preToolUse", "conversation_id": "c"}, "cursor"),
        ({"hook_event_name": "PreToolUse", "session_id": "s", "conversation_id": "c"}, "cursor"),
        ({"hook_event_name": "PreToolUse", "session_id": "s", "turn_id": "t"}, "codex"),
        ({"hook_event_name": "SessionStart", "session_id": "s", "model": "gpt-5.5"}, "codex"),
        ({"hook_event_name": "SessionStart", "session_id": "s"}, "claude-code"),
        ({"hook_event_name": "SessionEnd", "session_id": "s", "agent_type": "codex"}, "codex"),
    ],
)
def test_the_agent_is_recognised_when_nothing_names_it(
    payload: dict[str, object], agent: str
) -> None:
    assert decode_hook(msgspec.json.encode(payload)).native == agent


def test_the_url_names_the_agent_before_anything_else() -> None:
    payload = {"hook_event_name": "SessionEnd", "session_id": "s", "agent_type": "cursor"}
    event = decode_hook(msgspec.json.encode(payload), "codex")
    assert (event.native, event.conversation_id) == ("codex", "s")


def test_patch_paths_are_all_read_and_taken_from_cwd() -> None:
    patch = (
        "*** Begin Patch\n*** Update File: a.ts\n@@\n-x\n+y\n*** Update File: b.ts\n"
        "*** Move to: c/d.ts\n*** Delete File: /srv/repo/e.ts\n*** Add File: a.ts\n*** End Patch\n"
    )
    payload = {
        "hook_event_name": "PreToolUse",
        "session_id": "s",
        "turn_id": "t",
        "cwd": "/srv/repo",
        "tool_name": "apply_patch",
        "tool_input": {"command": patch},
    }
    assert decode_hook(msgspec.json.encode(payload)).paths == ("a.ts", "b.ts", "c/d.ts", "e.ts")


def test_one_write_names_each_lock_once_as_first_written() -> None:
    patch = "*** Update File: src/App.ts\n*** Update File: src/app.ts\n*** Add File: b.ts\n"
    event = decode_hook(
        body(hook_event_name="PreToolUse", session_id="s", tool_name="apply_patch",
             tool_input={"command": patch}, cwd="/r"),
        "codex",
    )  # fmt: skip
    assert event.paths == ("src/App.ts", "b.ts")
