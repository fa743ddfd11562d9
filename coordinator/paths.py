"""File paths as reservation keys: relative to the project root, POSIX style.

Two developers whose checkouts live in different places must contend for the same
key, so a path under a root loses the root; a path outside every root is kept,
normalised. Windows forms (``C:\\repo\\a.ts``, ``/c:/repo``) are folded to ``c:/repo/a.ts``,
and text to Unicode NFC: macOS hands out decomposed names (``e`` + U+0301) for the file
another tool spells composed (``é``), and one file must be one key.

Keys compare case-insensitively (macOS and Windows see ``src/File.ts`` and ``src/file.ts``
as one file; a false conflict between two Linux files that differ only in case is the
safe error, a missed one is not), but listings show a path as the agent wrote it: the
lock of a path is named by its ``fold_case`` form, here and in the Lua scripts alike.
"""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections.abc import Sequence

from coordinator.errors import InvalidPath

MAX_PATH = 1024
_DRIVE = re.compile(r"[A-Za-z]:")  # a path part
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def fold_case(path: str) -> str:
    """The form in which two paths name one lock: ASCII letters lower-cased, nothing else.

    Lua's ``string.lower`` in Redis (C locale) folds A-Z only and leaves every byte of a
    non-ASCII letter alone; the scripts build lock keys from stored paths with it, so this
    side must fold exactly as much. Non-ASCII case variants (``É``/``é``) stay two keys.
    """
    if path.isascii():  # then lower() folds exactly A-Z, at a fraction of translate's cost
        return path.lower()
    return path.translate(_ASCII_LOWER)


def normalise_file(path: str, roots: Sequence[str] = (), cwd: str | None = None) -> str:
    """The key of ``path``: relative to the longest root holding it, else as given, normalised.

    A relative path is taken from ``cwd`` (as Codex's patches are) and must stay in a root.
    Raises InvalidPath for a NUL, an over-long or empty path, one that names a root
    or a drive itself, one whose ``..`` climbs above its root, and a relative one whose
    key would read as a Windows drive (``x/../c:/y``), so that a key is its own key.
    """
    segments, absolute = _segments(path, "file_path")
    absolute_roots = [parts for parts, is_absolute in map(_root, roots) if is_absolute]
    base, base_absolute = _root(cwd) if cwd else ((), False)
    if not absolute and base_absolute:
        parts, absolute = _resolve([*base, *segments], True, path)
        if not any(_holds(root, parts) for root in absolute_roots):
            raise InvalidPath(f"file_path {path!r}, taken from cwd {cwd!r}, is outside every root")
    else:
        parts, absolute = _resolve(segments, absolute, path)
    if absolute:
        holding = [root for root in absolute_roots if _holds(root, parts)]
        if holding:
            parts = parts[len(max(holding, key=len)) :]
            absolute = False
    drive = _DRIVE.fullmatch(parts[0]) if parts else None
    if not parts or (drive and len(parts) == 1):
        raise InvalidPath(f"file_path {path!r} names a directory, not a file")
    if drive and not absolute:
        raise InvalidPath(f"file_path {path!r} starts with {parts[0]!r}, which reads as a drive")
    key = "/" + "/".join(parts) if absolute and not drive else "/".join(parts)
    if len(key) > MAX_PATH:  # a long cwd, or NFC, can lengthen a path that was short enough
        raise InvalidPath(
            f"file_path {path!r} is {len(key)} characters long once resolved; "
            f"at most {MAX_PATH} are allowed"
        )
    return key


def is_outside(key: str) -> bool:
    """Whether a key from ``normalise_file`` lies outside every root: it stayed absolute."""
    head = key.split("/", 1)[0]
    return key.startswith("/") or _DRIVE.fullmatch(head) is not None


@functools.lru_cache(maxsize=1024)
def _root(root: str) -> tuple[tuple[str, ...], bool]:
    """A root (or cwd) as parts; an agent sends the same few on every event, so cached."""
    parts, absolute = _resolve(*_segments(root, "root"), root)
    return tuple(parts), absolute


def _holds(root: tuple[str, ...], parts: list[str]) -> bool:
    """Whether ``root`` holds ``parts``, compared as keys are (``fold_case``): under the
    root ``c:/repo``, Windows's ``C:/REPO/w.ts`` is ``w.ts``, not a path of its own."""
    if len(parts) < len(root):
        return False
    return all(a == b or fold_case(a) == fold_case(b) for a, b in zip(root, parts, strict=False))


def _segments(path: str, field: str) -> tuple[list[str], bool]:
    """The path's parts, ``..`` still in, and whether it is absolute."""
    if "\0" in path:
        raise InvalidPath(f"{field} must not contain a NUL character")
    if len(path) > MAX_PATH:
        raise InvalidPath(f"{field} is {len(path)} characters long; at most {MAX_PATH} are allowed")
    if not path.isascii():
        path = unicodedata.normalize("NFC", path)
    text = path.replace("\\", "/").strip()
    if not text:
        raise InvalidPath(f"{field} must not be empty")
    # Whitespace around each part goes too, so that a key's parts never start or end with it
    # and a key, normalised again, is itself; likewise a drive is the first part however
    # many slashes come before it (``C:/``, ``/c:/``, ``//C:/``).
    parts = (part.strip() for part in text.split("/"))
    segments = [part for part in parts if part not in ("", ".")]
    drive = bool(segments) and _DRIVE.fullmatch(segments[0]) is not None
    return segments, text.startswith("/") or drive


def _resolve(segments: list[str], absolute: bool, original: str) -> tuple[list[str], bool]:
    """``..`` applied; climbing above the start (or a drive) is refused."""
    floor = 1 if segments and _DRIVE.fullmatch(segments[0]) else 0
    parts: list[str] = []
    for part in segments:
        if part != "..":
            parts.append(part)
        elif len(parts) > floor:
            parts.pop()
        else:
            raise InvalidPath(f"{original!r} climbs above its root with '..'")
    if parts and _DRIVE.fullmatch(parts[0]):
        parts[0] = parts[0].lower()  # one drive, one spelling (``/x/../C:/a`` too)
    return parts, absolute
