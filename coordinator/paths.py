"""File paths as reservation keys: relative to the project root, POSIX style.

Two developers whose checkouts live in different places must contend for the same
key, so a path under a root loses the root; a path outside every root is kept,
normalised. Windows forms (``C:\\repo\\a.ts``, ``/c:/repo``) are folded to ``c:/repo/a.ts``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from coordinator.errors import InvalidPath

MAX_PATH = 1024
_DRIVE = re.compile(r"^/?([A-Za-z]):(?=/|$)")


def normalise_file(path: str, roots: Sequence[str] = ()) -> str:
    """The key of ``path``: relative to the longest root holding it, else as given, normalised.

    Raises InvalidPath for a NUL, an over-long or empty path, one that names a root
    itself, or one whose ``..`` climbs above where it starts.
    """
    parts, absolute = _split(path, "file_path")
    if absolute:
        best: list[str] | None = None
        for root in roots:
            root_parts, root_absolute = _split(root, "cwd")
            holds = root_absolute and parts[: len(root_parts)] == root_parts
            if holds and (best is None or len(root_parts) > len(best)):
                best = root_parts
        if best is not None:
            parts = parts[len(best) :]
            absolute = False
    if not parts:
        raise InvalidPath(f"file_path {path!r} names a directory, not a file")
    joined = "/".join(parts)
    return joined if not absolute or _DRIVE.match(joined) else "/" + joined


def _split(path: str, field: str) -> tuple[list[str], bool]:
    if "\0" in path:
        raise InvalidPath(f"{field} must not contain a NUL character")
    if len(path) > MAX_PATH:
        raise InvalidPath(f"{field} is {len(path)} characters long; at most {MAX_PATH} are allowed")
    text = path.replace("\\", "/").strip()
    if not text:
        raise InvalidPath(f"{field} must not be empty")
    drive = _DRIVE.match(text)
    if drive:
        text = drive.group(1).lower() + ":" + text[drive.end() :]
    absolute = text.startswith("/") or drive is not None
    parts: list[str] = []
    for part in text.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts or (drive and len(parts) == 1):
                raise InvalidPath(f"{field} {path!r} climbs above its root with '..'")
            parts.pop()
        else:
            parts.append(part)
    return parts, absolute
