"""What an event claims: whole files, or symbols within them (two agents, two functions,
one file).

An agent side that has the files (the bridge, the companion) maps an edit to the
top-level symbols it touches (``symbols.py``) and sends them with the event as
``symbols``: ``{"<path as the event names it>": ["refresh_token", {"name": "Session",
"kind": "class"}]}``. A written file the field does not name is claimed whole.

In Redis a claim is one string: a path, or the path, ``SYMBOL`` (a NUL, which no path
holds) and the symbol's name, so that every set and index of held files holds claims
alike (``lib.lua``'s ``split_claim``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

import msgspec

from coordinator.errors import InvalidField, InvalidPath
from coordinator.paths import fold_case, is_outside, normalise_file

SYMBOL = "\0"
MAX_NAME = 200
MAX_SYMBOLS = 32  # per file: an edit touching more is claimed whole by the agent side
MAX_CLAIMS = 200  # per event
# A symbol's name: no control character (and so no NUL), no surrounding blanks.
_NAME = re.compile(r"[^\x00-\x20\x7f](?:[^\x00-\x1f\x7f]*[^\x00-\x20\x7f])?")
Kind = Literal[
    "function", "method", "class", "interface", "type", "enum", "const", "variable", "module"
]
KIND_LABELS = {
    "function": "Function",
    "method": "Method",
    "class": "Class",
    "interface": "Interface",
    "type": "Type",
    "enum": "Enum",
    "const": "Constant",
    "variable": "Variable",
    "module": "Module",
}


class SymbolRef(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A symbol with its kind (a bare name in the body is a symbol of unknown kind)."""

    name: str
    kind: Kind | None = None


SymbolsField = dict[
    Annotated[str, msgspec.Meta(max_length=1024)],
    Annotated[list[str | SymbolRef], msgspec.Meta(min_length=1, max_length=MAX_SYMBOLS)],
]


class Claim(msgspec.Struct, frozen=True):
    """A file (``symbol`` None), or one symbol of it, as one lock."""

    path: str
    symbol: str | None = None
    kind: str | None = None

    @property
    def member(self) -> str:
        """The claim as the scripts hold it."""
        return self.path if self.symbol is None else f"{self.path}{SYMBOL}{self.symbol}"


def split(member: str) -> tuple[str, str | None]:
    """A stored claim's path and symbol (None: the whole file)."""
    path, sep, symbol = member.partition(SYMBOL)
    return path, (symbol if sep else None)


def folded(member: str) -> str:
    """What names a claim's lock: the path case-folded (``paths.fold_case``), the symbol's
    name as it is (``Run`` and ``run`` are two Go functions)."""
    path, sep, symbol = member.partition(SYMBOL)
    return fold_case(path) + sep + symbol


def display(path: str, symbol: str | None) -> str:
    """A claim as the text views show it: ``src/a.py``, or ``src/a.py#refresh_token``."""
    return path if symbol is None else f"{path}#{symbol}"


def label(kind: str | None) -> str:
    return KIND_LABELS.get(kind or "", "Symbol")


def symbols_by_file(
    written: Sequence[str], given: Mapping[str, list[str | SymbolRef]] | None
) -> tuple[tuple[SymbolRef, ...], ...]:
    """The symbols of each written file, in ``written``'s order (() for the whole file).
    Every path ``given`` names must be one the event writes, and each name valid."""
    if not given:
        return ((),) * len(written)
    unknown = sorted(set(given) - set(written))
    if unknown:
        raise InvalidField(
            f"symbols names {unknown[0]!r}, which this event does not write; name a file "
            f"as its tool_input (or patch) names it"
        )
    found = []
    for path in written:
        refs = tuple(SymbolRef(ref) if isinstance(ref, str) else ref for ref in given.get(path, ()))
        for ref in refs:
            if len(ref.name) > MAX_NAME or not _NAME.fullmatch(ref.name):
                raise InvalidField(
                    f"symbol {ref.name[:50]!r} of {path!r} must be 1 to {MAX_NAME} characters, "
                    "with no control character nor blanks around it"
                )
        found.append(refs)
    return tuple(found)


def key_claims(
    written: Sequence[str],
    symbols: Sequence[tuple[SymbolRef, ...]],
    roots: Sequence[str],
    cwd: str | None,
    lenient: bool = False,
) -> tuple[Claim, ...]:
    """The claims of the files written, keyed relative to ``roots`` (``paths.normalise_file``):
    one per file claimed whole, one per symbol otherwise. A file claimed whole by one of
    the event's spellings of it is whole; each file as first written. ``lenient`` (a
    shell command's files): a path that is no valid key, or lies outside every root, is
    skipped rather than refused (events.key_paths)."""
    files: dict[str, tuple[str, dict[str, SymbolRef] | None]] = {}
    for path, refs in zip(written, symbols or ((),) * len(written), strict=True):
        try:
            key = normalise_file(path, roots, cwd)
        except InvalidPath:
            if lenient:
                continue
            raise
        if lenient and is_outside(key):
            continue
        first, named = files.setdefault(fold_case(key), (key, {}))
        if named is None:
            continue
        if not refs:
            files[fold_case(key)] = (first, None)
            continue
        for ref in refs:
            named.setdefault(ref.name, ref)
    claims: list[Claim] = []
    for key, named in files.values():
        if named is None:
            claims.append(Claim(key))
        else:
            claims += [Claim(key, ref.name, ref.kind) for ref in named.values()]
    if len(claims) > MAX_CLAIMS:
        raise InvalidField(f"one event may claim at most {MAX_CLAIMS} files and symbols")
    return tuple(claims)
