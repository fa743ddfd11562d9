"""The agent side's mapping of a write to symbols (edits.py), before and after the edit,
for each agent's write tools; and that the bridge sends it with the event."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from coordinator import bridge
from coordinator.edits import Remembered, event_symbols

SOURCE = """import os


def refresh_token(user: str) -> str:
    return user + "-token"


def revoke_token(user: str) -> None:
    print("revoked", user)


class Session:
    def expired(self) -> bool:
        return False
"""
REFRESH = ('return user + "-token"', 'return user + "-fresh"')
REVOKE = ('print("revoked", user)', 'print("gone", user)')


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tokens.py").write_text(SOURCE)
    (tmp_path / "notes.md").write_text("# notes\n")
    return tmp_path


def pre(tool: str, tool_input: dict[str, Any], cwd: Path, **more: Any) -> dict[str, Any]:
    return {
        "hook_event_name": "PreToolUse",
        "session_id": "s1",
        "cwd": str(cwd),
        "tool_name": tool,
        "tool_input": tool_input,
        **more,
    }


def post(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "hook_event_name": "PostToolUse"}


def apply(project: Path, old: str, new: str) -> None:
    path = project / "src" / "tokens.py"
    path.write_text(path.read_text().replace(old, new))


def test_claude_edit_maps_before_and_after(project: Path) -> None:
    file = str(project / "src" / "tokens.py")
    event = pre(
        "Edit", {"file_path": file, "old_string": REFRESH[0], "new_string": REFRESH[1]}, project
    )
    assert event_symbols(event) == {file: [{"name": "refresh_token", "kind": "function"}]}
    apply(project, *REFRESH)
    # After the edit the old string is gone: the edit is undone to find the old text.
    assert event_symbols(post(event)) == {file: [{"name": "refresh_token", "kind": "function"}]}


def test_multi_edit_spanning_a_function_and_a_method(project: Path) -> None:
    file = str(project / "src" / "tokens.py")
    edits = [
        {"old_string": REVOKE[0], "new_string": REVOKE[1]},
        {"old_string": "return False", "new_string": "return True"},
    ]
    event = pre("MultiEdit", {"file_path": file, "edits": edits}, project)
    assert event_symbols(event) == {
        file: [
            {"name": "Session.expired", "kind": "method"},
            {"name": "revoke_token", "kind": "function"},
        ]
    }


def test_write_diffs_old_and_new_content(project: Path) -> None:
    file = str(project / "src" / "tokens.py")
    event = pre("Write", {"file_path": file, "content": SOURCE.replace(*REVOKE)}, project)
    assert event_symbols(event) == {file: [{"name": "revoke_token", "kind": "function"}]}
    apply(project, *REVOKE)
    assert event_symbols(post(event)) == {}  # after a Write the old text is gone: whole file
    answered = {**post(event), "tool_response": {"originalFile": SOURCE}}
    assert event_symbols(answered) == {file: [{"name": "revoke_token", "kind": "function"}]}


def test_the_companion_remembers_what_a_call_mapped_for_its_post_tool_use(project: Path) -> None:
    file = str(project / "src" / "tokens.py")
    event = pre("Write", {"file_path": file, "content": SOURCE.replace(*REVOKE)}, project)
    event["tool_use_id"] = "toolu_1"
    remembered = Remembered(size=2)
    expected = {file: [{"name": "revoke_token", "kind": "function"}]}
    assert event_symbols(event, remembered) == expected
    apply(project, *REVOKE)
    assert event_symbols(post(event), remembered) == expected
    assert event_symbols(post(event), remembered) == {}  # taken once
    for call in ("a", "b", "c"):
        remembered.keep(call, expected)
    assert remembered.take("a") is None and remembered.take("c") == expected  # bounded


def test_codex_patch_maps_by_hunks_before_and_after(project: Path) -> None:
    patch = (
        "*** Begin Patch\n*** Update File: src/tokens.py\n@@ def revoke_token(user: str) -> None:\n"
        f"-    {REVOKE[0]}\n+    {REVOKE[1]}\n*** Add File: src/new.py\n+x = 1\n*** End Patch\n"
    )
    event = pre("apply_patch", {"command": patch}, project)
    assert event_symbols(event) == {"src/tokens.py": [{"name": "revoke_token", "kind": "function"}]}
    apply(project, *REVOKE)
    assert event_symbols(post(event)) == {
        "src/tokens.py": [{"name": "revoke_token", "kind": "function"}]
    }


def test_cursor_str_replace_and_after_file_edit(project: Path) -> None:
    file = str(project / "src" / "tokens.py")
    event = {
        "hook_event_name": "preToolUse",
        "conversation_id": "c1",
        "tool_name": "StrReplace",
        "tool_input": {"file_path": file, "old_string": REFRESH[0], "new_string": REFRESH[1]},
    }
    assert event_symbols(event) == {file: [{"name": "refresh_token", "kind": "function"}]}
    apply(project, *REFRESH)
    after = {
        "hook_event_name": "afterFileEdit",
        "file_path": file,
        "edits": [{"old_string": REFRESH[0], "new_string": REFRESH[1]}],
    }
    assert event_symbols(after) == {file: [{"name": "refresh_token", "kind": "function"}]}


@pytest.mark.parametrize(
    ("tool", "tool_input"),
    [
        (
            "Edit",
            {"file_path": "src/tokens.py", "old_string": "import os", "new_string": "import re"},
        ),
        ("Edit", {"file_path": "src/tokens.py", "old_string": "absent", "new_string": "x"}),
        ("Edit", {"file_path": "src/tokens.py", "old_string": "user", "new_string": "u"}),  # twice
        ("Edit", {"file_path": "src/tokens.py", "old_string": "-> str:", "new_string": "-> (:"}),
        ("Edit", {"file_path": "notes.md", "old_string": "notes", "new_string": "n"}),
        ("Write", {"file_path": "src/new.py", "content": "def f(): pass\n"}),  # a new file
        ("NotebookEdit", {"notebook_path": "a.ipynb"}),
        ("Edit", {"file_path": "src/tokens.py", "old_string": 3, "new_string": "x"}),
        ("Read", {"file_path": "src/tokens.py"}),
    ],
)
def test_what_cannot_be_mapped_is_left_whole(
    project: Path, tool: str, tool_input: dict[str, Any]
) -> None:
    assert event_symbols(pre(tool, tool_input, project)) == {}


def test_more_symbols_than_the_service_takes_is_the_whole_file(project: Path) -> None:
    many = "".join(f"def f{i}():\n    return {i}\n\n\n" for i in range(40))
    (project / "many.py").write_text(many)
    content = many.replace("return", "return -")
    assert event_symbols(pre("Write", {"file_path": "many.py", "content": content}, project)) == {}


def test_the_bridge_sends_the_symbols_and_drops_the_contents(project: Path) -> None:
    file = str(project / "src" / "tokens.py")
    event = pre(
        "Edit", {"file_path": file, "old_string": REFRESH[0], "new_string": REFRESH[1]}, project
    )
    sent = bridge.slim(event, "claude-code")
    assert sent["symbols"] == {file: [{"name": "refresh_token", "kind": "function"}]}
    assert "old_string" not in sent["tool_input"]
    assert "symbols" not in bridge.slim(pre("Read", {"file_path": file}, project), "claude-code")


def test_the_bridge_loads_no_parser_for_a_tool_call_that_needs_none(project: Path) -> None:
    """Only a write of a file in a known language pays for tree-sitter."""
    probe = (
        "import json, sys; from coordinator import bridge; "
        "bridge.slim(json.loads(sys.argv[1]), 'claude-code'); "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('tree_sitter'))))"
    )
    markdown = pre(
        "Edit", {"file_path": "notes.md", "old_string": "notes", "new_string": "n"}, project
    )
    python = pre(
        "Edit",
        {"file_path": "src/tokens.py", "old_string": REFRESH[0], "new_string": REFRESH[1]},
        project,
    )
    loaded = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", probe, json.dumps(event)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        for event in (markdown, python)
    ]
    assert loaded[0] == []
    # The grammar's compiled part alone (languages.grammar), not its package or another.
    assert "tree_sitter_python._binding" in loaded[1] and "tree_sitter_python" not in loaded[1]
    assert not any(name.startswith("tree_sitter_go") for name in loaded[1])
