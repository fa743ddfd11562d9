from __future__ import annotations

import msgspec
import pytest

from coordinator.errors import InvalidField, InvalidJson, InvalidPath, UnknownEvent
from coordinator.events import EVENTS, MAX_FILES, Kind, decode_hook


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


def shell(tool: str, command: object, agent: str = "claude-code", **fields: object) -> bytes:
    return body(
        hook_event_name="preToolUse" if agent == "cursor" else "PreToolUse",
        session_id="s",
        tool_name=tool,
        tool_input={"command": command},
        **fields,
    )


@pytest.mark.parametrize(
    ("tool", "agent"), [("Bash", "claude-code"), ("Bash", "codex"), ("Shell", "cursor")]
)
def test_a_shell_command_claims_what_it_clearly_writes(tool: str, agent: str) -> None:
    event = decode_hook(shell(tool, "sed -i s/a/b/ src/x.py && ls > out.txt", cwd="/r"), agent)
    assert (event.paths, event.shell) == (("src/x.py", "out.txt"), True)
    assert decode_hook(shell(tool, "cat src/x.py | grep a", cwd="/r"), agent).paths == ()


def test_a_shell_command_is_read_from_cwd_under_the_roots() -> None:
    fields = {"cwd": "/p/repo/sub", "workspace_roots": ["/p/repo"]}
    event = decode_hook(shell("Shell", "echo x > a.ts; rm ../b.ts", "cursor", **fields), "cursor")
    assert event.paths == ("sub/a.ts", "b.ts")


def test_the_generic_form_reads_a_shell_command_too() -> None:
    event = decode_hook(body(event="preToolUse", tool_name="Bash", cwd="/r",
                             tool_input={"command": "touch a.py"}))  # fmt: skip
    assert event.paths == ("a.py",)
    post = decode_hook(body(event="postToolUse", tool_name="Shell", cwd="/r",
                            tool_input={"command": "tee b.py < a.py"}))  # fmt: skip
    assert post.paths == ("b.py",)


@pytest.mark.parametrize(
    "command",
    [
        "echo x > ../../etc/passwd",  # climbs above the root
        "echo x > /tmp/out.log",  # outside the project
        "cp a.py /home/me/backup.py",
        "rm C:/Windows/x.dll",
        "echo x > " + "d/" * 600 + "f",  # too long a key
        "echo x > ' '",  # blank: no file
        "(cd / && rm etc/x)",
    ],
)
def test_a_shell_path_that_is_no_project_key_is_skipped_not_refused(command: str) -> None:
    event = decode_hook(shell("Bash", f"{command}; touch ok.py", cwd="/r"), "claude-code")
    assert event.paths == ("ok.py",)


def test_a_shell_event_never_fails_on_its_command() -> None:
    for command in [None, 3, {"x": 1}, ["bash", 3], "", "(((", "rm " + "f " * 500]:
        event = decode_hook(shell("Bash", command, cwd="/r"), "claude-code")
        assert event.kind is Kind.PRE_TOOL
    many = decode_hook(shell("Bash", "rm " + " ".join(f"f{i}" for i in range(300)), cwd="/r"))
    assert len(many.paths) == MAX_FILES  # cut, not refused as an edit of 300 files would be
    assert many.paths[:2] == ("f0", "f1")


def test_an_edit_path_is_still_refused_as_before() -> None:
    with pytest.raises(InvalidPath):
        decode_hook(body(event="preToolUse", tool_name="Edit", cwd="/r",
                         tool_input={"file_path": "../../x"}))  # fmt: skip


def test_other_events_of_a_shell_claim_nothing() -> None:
    payload = body(hook_event_name="UserPromptSubmit", session_id="s", tool_name="Bash",
                   tool_input={"command": "rm a.py"}, cwd="/r")  # fmt: skip
    assert decode_hook(payload, "claude-code").paths == ()
