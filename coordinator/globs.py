"""What ``reserve`` may claim beyond files: directories (``src/api/``) and globs
(``src/**/*.test.ts``), each keyed like a file (relative to the project root) and
compiled to a matcher the Lua scripts run (``lua/claims.lua``).

A matcher is a few anchored Lua patterns (a path matching any one is covered), the
pattern's literal head (up to its first wildcard) and literal tail (after its last),
which decide whether two claims may overlap. Everything is case-folded as lock keys are.

Glob syntax: ``*`` (any characters but ``/``), ``?`` (one of them), ``[abc]``, ``[a-z]``,
``[!a]`` (a class), ``**`` as a whole segment (any number of directories, none too).
Brace alternatives (``{a,b}``) are refused: reserve each pattern on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from coordinator.errors import InvalidField
from coordinator.paths import fold_case, normalise_file

WILDCARDS = frozenset("*?[")
# A wildcard, or a brace (refused later, but a pattern): one search, not a loop per character.
_SPECIAL = re.compile(r"[*?\[{}]")
MAX_DOUBLE_STARS = 3  # each doubles the Lua patterns of a glob
_LUA_MAGIC = frozenset("^$()%.[]*+-?")


class BadGlob(InvalidField):
    code = "invalid_glob"


def is_pattern(path: str) -> bool:
    """Whether a path given to reserve names a directory (a trailing slash) or a glob."""
    return path.rstrip().endswith(("/", "\\")) or _SPECIAL.search(path) is not None


def claim_key(path: str, roots: Sequence[str] = (), cwd: str | None = None) -> tuple[str, str]:
    """The key of one thing to reserve and its matcher ('' for a plain file)."""
    if not is_pattern(path):
        return normalise_file(path, roots, cwd), ""
    if any(c in path for c in "\t\n\r"):
        raise BadGlob(f"{path!r}: a pattern may not hold tabs or line breaks")
    if "{" in path or "}" in path:
        raise BadGlob(f"{path!r}: brace alternatives are not supported; reserve each pattern")
    directory = path.rstrip().endswith(("/", "\\"))
    key = normalise_file(path, roots, cwd)
    if directory:
        key += "/"
    return key, matcher(key)


def matcher(key: str) -> str:
    """The matcher of a directory key (``src/api/``) or a glob key, as claims.lua reads it:
    the Lua patterns, one a line, a tab, the literal head, a tab, the literal tail."""
    folded = fold_case(key)
    if folded.endswith("/"):
        return f"^{_escape(folded)}\t{folded}\t"
    segments = folded.split("/")
    if sum(1 for s in segments if s == "**") > MAX_DOUBLE_STARS:
        raise BadGlob(f"{key!r}: at most {MAX_DOUBLE_STARS} '**' segments are allowed")
    patterns = [""]
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "**":
            # Any number of directories, none included; at the end, anything below.
            tails = [".*"] if last else ["", ".*/"]
        else:
            if "**" in segment:
                raise BadGlob(f"{key!r}: '**' must be a whole path segment, as in src/**/x.ts")
            tails = [_segment(segment, key) + ("" if last else "/")]
        patterns = [p + t for p in patterns for t in tails]
    first = min((folded.index(c) for c in WILDCARDS if c in folded), default=len(folded))
    last_wild = max(folded.rfind(c) for c in "*?]")
    tail = folded[last_wild + 1 :]
    return "\n".join(f"^{p}$" for p in patterns) + f"\t{folded[:first]}\t{tail}"


def _segment(segment: str, key: str) -> str:
    out, i = [], 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = segment.find("]", i + 2 if segment[i + 1 : i + 2] in ("!", "^") else i + 1)
            if end < 0:
                raise BadGlob(f"{key!r}: '[' opens a character class that never closes")
            body = segment[i + 1 : end]
            negate = body[:1] in ("!", "^")
            body = body[1:] if negate else body
            if not body or "/" in body:
                raise BadGlob(f"{key!r}: the class [{body}] is empty or holds '/'")
            escaped = "".join(
                ch if ch == "-" and 0 < j < len(body) - 1 else _escape(ch)
                for j, ch in enumerate(body)
            )
            out.append(f"[^/{escaped}]" if negate else f"[{escaped}]")
            i = end
        else:
            out.append(_escape(c))
        i += 1
    return "".join(out)


def _escape(text: str) -> str:
    return "".join("%" + c if c in _LUA_MAGIC else c for c in text)
