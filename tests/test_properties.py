"""Properties of path keys and of the decoders, checked on generated input.

Whatever a client sends, the answer is a key or a 4xx: never another exception.
A key never leaves its root, is its own key, and one file has one key however
it is spelled. Runs derandomised, so CI sees the same examples every time.
"""

from __future__ import annotations

import functools
import json
import posixpath
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from coordinator.asgi import query_param
from coordinator.errors import CoordinatorError, InvalidJson, InvalidPath
from coordinator.events import (
    EVENTS,
    MAX_FILES,
    MAX_TASK,
    NATIVE_EVENTS,
    Event,
    decode_decision,
    decode_hook,
    decode_session_ref,
    patch_files,
)
from coordinator.paths import MAX_PATH, fold_case, normalise_file

T = TypeVar("T")
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, max_examples=300)
DRIVE = re.compile(r"[A-Za-z]:(?=/|$)")
ROOTS = ["/ws/repo", "C:\\ws\\repo", "/p:/repo"]


def outcome(call: Callable[[], T]) -> T | None:
    """The call's value, or None for a CoordinatorError of 4xx; anything else fails."""
    try:
        return call()
    except CoordinatorError as exc:
        assert 400 <= exc.status < 500, (type(exc).__name__, exc.message)
        assert exc.message
        return None


def is_absolute(key: str) -> bool:
    return key.startswith("/") or DRIVE.match(key) is not None


def spelled_absolute(path: str) -> bool:
    """A path starting with a slash or whose first part is a drive (``./C:/x`` too)."""
    text = path.replace("\\", "/").strip()
    parts = [part.strip() for part in text.split("/") if part.strip() not in ("", ".")]
    return text.startswith("/") or bool(parts and DRIVE.fullmatch(parts[0]))


def assert_is_a_key(key: str, roots: Sequence[str]) -> None:
    """A key: clean segments, inside its root when relative, and its own key."""
    assert key and "\0" not in key
    body = key[1:] if key.startswith("/") else key
    for part in body.split("/"):
        assert part not in ("", ".", ".."), key
        assert part == part.strip(), key
    assert key == unicodedata.normalize("NFC", key)
    if not is_absolute(key):
        assert posixpath.normpath(posixpath.join("/root", key)).startswith("/root/"), key
    assert normalise_file(key, roots) == key


# -- Paths ----------------------------------------------------------------------------

PATHISH = st.text(alphabet="/\\.:aAcCé \t\n\0\u0301\u2028", max_size=24)
PIECES = st.sampled_from(
    ["..", ".", "", " ", "a", "b.ts", "c:", "C:", "P:", "ws", "repo", "é", "e\u0301", "\\", "~"]
)
JOINED = st.lists(PIECES, max_size=8).flatmap(
    lambda parts: st.sampled_from(["/", "\\", "//"]).map(lambda sep: sep.join(parts))
)
LONG = st.integers(MAX_PATH - 2, MAX_PATH + 2).map(lambda n: ("ab/" * n)[:n])
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=40)
PATHS = st.one_of(ANY_TEXT, PATHISH, JOINED, LONG, st.sampled_from(ROOTS).map(lambda r: r + "/x"))
A_ROOT = st.one_of(st.sampled_from([*ROOTS, "/", "C:\\", "/ws", "rel/dir"]), PATHISH, JOINED)


@DETERMINISTIC
@given(PATHS, st.lists(A_ROOT, max_size=3), st.none() | A_ROOT)
@example("/ws/repo/ a.ts", ["/ws/repo"], None)
@example("./c:/x", ["C:\\"], None)
@example("x/../c:", [], None)
@example("/x/../A:/0", [], None)
@example("x" * 100, ["/ws/repo"], "/ws/repo/" + "d/" * 500)
def test_a_path_becomes_a_key_or_a_4xx(path: str, roots: list[str], cwd: str | None) -> None:
    key = outcome(lambda: normalise_file(path, roots, cwd))
    if key is None:
        return
    assert_is_a_key(key, roots)
    if not spelled_absolute(path):
        assert not is_absolute(key), "a relative path stays in its root"


SEGMENT = st.text(st.characters(exclude_characters="/\\\0"), min_size=1, max_size=10).filter(
    lambda s: s == s.strip() and s not in (".", "..") and not DRIVE.fullmatch(s)
)


@DETERMINISTIC
@given(st.lists(SEGMENT, min_size=1, max_size=6))
@example(["src", "e\u0301.ts"])
def test_one_file_has_one_key_however_it_is_spelled(segments: list[str]) -> None:
    path = "/".join(segments)
    windows = path.replace("/", "\\")
    spellings = [
        (path, None),
        ("./" + path, None),
        (path.replace("/", "//"), None),
        (path.replace("/", "/./"), None),
        ("zz/../" + path, None),
        (windows, None),
        (f"  {path}\n", None),
        (unicodedata.normalize("NFD", path), None),
        (unicodedata.normalize("NFC", path), None),
        ("/ws/repo/" + path, None),
        ("/ws/other/../repo/./" + path, None),
        ("C:\\ws\\repo\\" + windows, None),
        ("c:/ws/repo/" + path, None),
        ("/C:/ws/repo/" + path, None),
        ("P:/repo/" + path, None),
        (path, "/ws/repo"),
        ("../" + path, "/ws/repo/sub"),
        (windows, "C:\\ws\\repo"),
    ]
    keys = {outcome(functools.partial(normalise_file, p, ROOTS, c)) for p, c in spellings}
    assert keys == {unicodedata.normalize("NFC", path)}


# -- Decoders ---------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
AGENTS = st.none() | st.sampled_from(["claude-code", "cursor", "codex", "Claude_Code", "vim", ""])
ALL_DECODERS: list[Callable[[bytes], Any]] = [
    decode_hook,
    lambda body: decode_hook(body, "codex"),
    decode_session_ref,
    decode_decision,
]


def assert_is_an_event(event: Event, payload: Any) -> None:
    assert 1 <= len(event.conversation_id) <= 256
    assert event.task is None or (0 < len(event.task) <= MAX_TASK and "\n" not in event.task)
    assert len(event.paths) <= MAX_FILES
    assert len(set(event.paths)) == len(event.paths)
    roots = payload.get("workspace_roots") or ([payload["cwd"]] if payload.get("cwd") else [])
    for key in event.paths:
        assert_is_a_key(key, roots)


@DETERMINISTIC
@given(st.binary(max_size=200))
@example(b'{"event": "sessionStart", "conversation_id": "c", "x": ' + b"[" * 10_000 + b"]" * 10_000)
@example(b'{"event": "sessionStart", "conversation_id": "\xff"}')
def test_any_bytes_decode_or_are_a_4xx(body: bytes) -> None:
    for decode in ALL_DECODERS:
        outcome(functools.partial(decode, body))


@DETERMINISTIC
@given(JSON)
def test_any_json_decodes_or_is_a_4xx(value: Any) -> None:
    body = json.dumps(value).encode()  # NaN, big integers and lone surrogates included
    for decode in ALL_DECODERS:
        outcome(functools.partial(decode, body))


def patch_text(ops: list[tuple[str, str]]) -> str:
    lines = "".join(f"*** {op}: {path}\n" for op, path in ops)
    return f"*** Begin Patch\n{lines}*** End Patch\n"


OPS = st.sampled_from(["Add File", "Update File", "Delete File", "Move to", "Frobnicate"])
TOOL_INPUT = st.fixed_dictionaries(
    {},
    optional={
        "file_path": PATHS,
        "notebook_path": PATHS,
        "command": st.lists(st.tuples(OPS, PATHS), max_size=5).map(patch_text) | JSON,
        "content": ANY_TEXT,
    },
)
PAYLOAD = st.fixed_dictionaries(
    {},
    optional={
        "event": st.sampled_from([*EVENTS, "sessionBegin"]) | ANY_TEXT,
        "hook_event_name": st.sampled_from([*NATIVE_EVENTS, "Notification"]) | ANY_TEXT,
        "conversation_id": ANY_TEXT,
        "session_id": ANY_TEXT | st.sampled_from(["sess_" + "a" * 24, "s"]),
        "agent_type": AGENTS,
        "workspace_slug": st.sampled_from(["acme", "Bad_Slug"]) | ANY_TEXT,
        "task": ANY_TEXT,
        "prompt": ANY_TEXT,
        "branch": ANY_TEXT,
        "cwd": A_ROOT,
        "workspace_roots": st.lists(A_ROOT, max_size=3),
        "file_path": PATHS,
        "tool_name": st.sampled_from(["Write", "Edit", "MultiEdit", "apply_patch", "Read"]),
        "tool_input": TOOL_INPUT,
        "turn_id": JSON,
        "model": JSON,
        "text": ANY_TEXT,
    },
)


@DETERMINISTIC
@given(PAYLOAD, AGENTS)
def test_plausible_payloads_decode_to_sound_events_or_are_a_4xx(
    payload: dict[str, Any], agent: str | None
) -> None:
    body = json.dumps(payload).encode()  # lone surrogates included, as escapes
    event = outcome(lambda: decode_hook(body, agent))
    if event is not None:
        assert_is_an_event(event, payload)
    outcome(lambda: decode_session_ref(body))
    outcome(lambda: decode_decision(body))


# -- Regressions the properties found -------------------------------------------------------


@pytest.mark.parametrize("decode", ALL_DECODERS)
@pytest.mark.parametrize(
    "body",
    [
        b'{"event": "sessionStart", "conversation_id": "c", "x": ' + b"[" * 100_000,
        b'{"tool_input": {"command": ' + b'{"a": ' * 100_000,
        b'{"session_id": "\xff\xfe"}',
    ],
)
def test_deep_nesting_and_bad_utf8_are_a_400_not_a_500(
    decode: Callable[[bytes], Any], body: bytes
) -> None:
    with pytest.raises(InvalidJson):
        decode(body)


def test_a_long_patch_line_is_read_in_linear_time() -> None:
    line = "*** Update File: a" + " " * 200_000 + "b\n"
    started = time.perf_counter()
    assert patch_files(line + "*** Add File: c.ts \r\n") == ["a" + " " * 200_000 + "b", "c.ts"]
    assert time.perf_counter() - started < 2  # the lazy regex took minutes


@pytest.mark.parametrize("path", ["c:", "C:\\", "/c:/", "./c:", "x/../c:", "x/../c:/y", "/r/c:/y"])
def test_a_drive_is_not_a_file_and_no_relative_key_reads_as_one(path: str) -> None:
    with pytest.raises(InvalidPath):
        normalise_file(path, ["/r"])


@pytest.mark.parametrize(
    "path", ["C:/x", "/C:/x", "//C:/x", "/ C:/x", "./C:/x", "c:\\x", "/y/../C:/x"]
)
def test_a_drive_is_the_first_part_however_many_slashes_come_first(path: str) -> None:
    assert normalise_file(path, ["/r"]) == "c:/x"


def test_whitespace_around_any_part_is_dropped() -> None:
    assert normalise_file("/ws/repo/ src /a.ts ", ["/ws/repo"]) == "src/a.ts"
    assert normalise_file("x/../ a.ts") == "a.ts"


def test_a_key_made_long_by_its_cwd_is_refused() -> None:
    with pytest.raises(InvalidPath, match="1100 characters long once resolved"):
        normalise_file("x" * 100, ["/ws/repo"], "/ws/repo/" + "d/" * 500)


def test_composed_and_decomposed_names_are_one_key() -> None:
    assert normalise_file("src/e\u0301.ts") == normalise_file("src/\u00e9.ts") == "src/\u00e9.ts"


def test_a_relative_path_outside_every_root_says_so() -> None:
    with pytest.raises(InvalidPath, match="outside every root"):
        normalise_file("a.ts", ["/repo"], "/elsewhere")


@DETERMINISTIC
@given(st.text(st.sampled_from([*"ab=&;%+ 2éx"]), max_size=24))
@example("agent=cursor&agent=&agent=codex")
def test_a_query_parameter_reads_as_parse_qsl_reads_it(query: str) -> None:
    """query_param splits a query with nothing to unquote by hand: the same answer."""
    scope = {"query_string": query.encode("latin-1")}
    assert query_param(scope, "agent") == dict(parse_qsl(query)).get("agent")
    assert query_param(scope, "a") == dict(parse_qsl(query)).get("a")


@DETERMINISTIC
@given(st.text(max_size=40) | st.text(st.characters(max_codepoint=127), max_size=40))
def test_fold_case_lowers_ascii_letters_and_nothing_else(path: str) -> None:
    """As Lua's string.lower does in Redis (the C locale): A-Z, and no other character."""
    expected = "".join(c.lower() if "A" <= c <= "Z" else c for c in path)
    assert fold_case(path) == expected
