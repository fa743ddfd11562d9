"""The symbols an agent's edit touches, read where the files are: the bridge and the
companion fill the event's ``symbols`` field with them (``symbol_claims.py``, docs/api.md), so
that two agents may edit two functions of one file.

Before the edit (PreToolUse) the file on disk is the old text and the tool input gives
the new one; after it (PostToolUse) the file is the new text and the old one is had by
undoing the edit. Claude Code's Edit and MultiEdit, Cursor's StrReplace: their string
replacements (``symbols.replaced``); Write: its content (after a Write, the old text
only when the agent's answer carries it); Codex's apply_patch: its hunks
(``symbols.patched``). A file that cannot be mapped (unknown language, new, unreadable,
too big, a parse error, a change outside every symbol, more than 32 symbols) is left
out of the field, and so claimed whole.

Standard library only at import: tree-sitter is loaded (``symbols.py``) only when a
write touches a file of a known language.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict

from coordinator.languages import language_of

TYPE_CHECKING = False  # typing costs the bridge milliseconds at every tool call
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    Versions = Callable[[str], tuple[str | None, str | None]]
    Symbols = dict[str, list[Any]]

PRE_TOOL = frozenset({"PreToolUse", "preToolUse"})
POST_TOOL = frozenset({"PostToolUse", "postToolUse", "afterFileEdit"})
REPLACING = frozenset({"Edit", "MultiEdit", "StrReplace"})
MAX_BYTES = 2 << 20  # symbols.MAX_TEXT
MAX_NAMES = 32  # symbol_claims.MAX_SYMBOLS
_UPDATED = re.compile(r"^\*\*\* Update File: (.+)$", re.M)


class Remembered:
    """What the PreToolUse of each tool call mapped, for its PostToolUse (the companion
    lives the whole session): the same claims, with no undoing to get wrong."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._by_call: OrderedDict[str, Symbols] = OrderedDict()

    def keep(self, call: str, symbols: Symbols) -> None:
        self._by_call[call] = symbols
        while len(self._by_call) > self.size:  # a denied call has no PostToolUse
            self._by_call.popitem(last=False)

    def take(self, call: str) -> Symbols | None:
        return self._by_call.pop(call, None)


def event_symbols(payload: Mapping[str, Any], remembered: Remembered | None = None) -> Symbols:
    """``{file as the event names it: [name or {"name", "kind"}...]}`` for each file the
    event's write maps to symbols; {} for any other event. Never raises."""
    name = payload.get("hook_event_name")
    if name not in PRE_TOOL and name not in POST_TOOL:
        return {}
    call = payload.get("tool_use_id")
    if remembered is not None and name in POST_TOOL and isinstance(call, str):
        known = remembered.take(call)
        if known is not None:
            return known
    try:
        found = _map(payload, before=name in PRE_TOOL)
    except Exception:  # a grammar missing, a tree-sitter bug: the whole file, as ever
        return {}
    if remembered is not None and name in PRE_TOOL and isinstance(call, str):
        remembered.keep(call, found)
    return found


def _map(payload: Mapping[str, Any], before: bool) -> Symbols:
    tool_input = payload.get("tool_input")
    cwd = payload.get("cwd")
    path, edits = payload.get("file_path"), payload.get("edits")
    if payload.get("hook_event_name") == "afterFileEdit":  # Cursor's: the edits, top-level
        changes = [(path, _replace_versions(edits, False))] if isinstance(path, str) else []
    elif isinstance(tool_input, dict):
        changes = _changes(str(payload.get("tool_name")), tool_input, payload, before)
    else:
        return {}
    found: Symbols = {}
    for path, versions in changes:
        if language_of(path) is None:
            continue
        text = _read(path, cwd if isinstance(cwd, str) else None)
        if text is None:
            continue
        from coordinator.symbols import touched_symbols

        touched = touched_symbols(path, *versions(text))
        if touched and len(touched) <= MAX_NAMES:
            found[path] = [{"name": n, "kind": k} if k else n for n, k in touched.items()]
    return found


def _changes(
    tool: str, tool_input: dict[str, Any], payload: Mapping[str, Any], before: bool
) -> list[tuple[str, Versions]]:
    """Each file the tool writes, as it names it, and how to get (old, new) from its text
    on disk."""
    if tool == "apply_patch":
        patch = tool_input.get("command")
        if not isinstance(patch, str):
            return []
        return [
            (path.strip(), _patch_versions(patch, path.strip(), before))
            for path in _UPDATED.findall(patch)
        ]
    path = tool_input.get("file_path")
    if not isinstance(path, str):
        return []
    if tool in REPLACING:
        edits = tool_input.get("edits") if tool == "MultiEdit" else [tool_input]
        return [(path, _replace_versions(edits, before))]
    if tool == "Write":
        content = tool_input.get("content")
        if before and isinstance(content, str):
            return [(path, lambda text: (text, content))]
        response = payload.get("tool_response")
        original = response.get("originalFile") if isinstance(response, dict) else None
        if not before and isinstance(original, str):
            return [(path, lambda text: (original, text))]
    return []


def _patch_versions(patch: str, path: str, before: bool) -> Versions:
    def versions(text: str) -> tuple[str | None, str | None]:
        from coordinator.symbols import patched

        if before:
            return text, patched(text, patch, path)
        return patched(text, patch, path, undo=True), text

    return versions


def _replace_versions(edits: object, before: bool) -> Versions:
    def versions(text: str) -> tuple[str | None, str | None]:
        from coordinator.symbols import Replace, replaced

        replacements = []
        for edit in edits if isinstance(edits, list) else [None]:
            if not isinstance(edit, dict):
                return None, None
            old, new = edit.get("old_string"), edit.get("new_string")
            if not isinstance(old, str) or not isinstance(new, str):
                return None, None
            replacements.append(Replace(old, new, edit.get("replace_all") is True))
        if before:
            return text, replaced(text, replacements)
        undo = [Replace(r.new, r.old, r.every) for r in reversed(replacements)]
        return replaced(text, undo), text

    return versions


def _read(path: str, cwd: str | None) -> str | None:
    """The file's text, if it is there, small enough and UTF-8."""
    full = os.path.join(cwd, path) if cwd and not os.path.isabs(path) else path
    try:
        if os.path.getsize(full) > MAX_BYTES:
            return None
        with open(full, encoding="utf-8", newline="") as source:
            return source.read()
    except (OSError, UnicodeDecodeError, ValueError):
        return None
