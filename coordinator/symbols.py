"""The top-level symbols an edit touches, read with tree-sitter, so that two agents may
change two functions of one file.

A symbol is a function, a class, an interface, a type, an enum, a constant or another
top-level assignment, named as written; a method is ``Class.method`` (Go's
``func (s *Server) Run`` is ``Server.Run``, Rust's ``impl`` methods ``Type.method``). A
change inside a class but outside its methods (a field, the class line) is the class.
Comments, decorators and attributes right above a symbol belong to it.

``changed_symbols`` compares the file's text before and after the edit: both trees are
read and every changed stretch (a line diff) must lie inside symbols, on both sides. The
old text is parsed whole; of the new one only the top-level nodes around the change
(``_reparsed``): a bridge call, a process per tool call, pays for one parse of the file.
``replaced`` (Claude Code's Edit/MultiEdit, Cursor's StrReplace) and ``patched`` (a Codex
patch's hunks) give the text after; Write gives it itself. The answer is a sorted tuple
of names, or None for "claim the whole file": an unknown language, a parse error on
either side, a new file, a change outside every symbol (the imports, a module-level
statement, ``if __name__ …``), an old string that is missing or found twice, a patch
hunk that does not match. A new top-level symbol is claimed by its name.

Each grammar is loaded once per process, when a file of its language is first seen.
No ``typing`` at run time, nor tree-sitter's package (which imports it): the bridge
imports this module.
"""

from __future__ import annotations

import functools

from coordinator import grammars, languages
from coordinator.languages import language_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import tree_sitter

    from coordinator.grammars import Symbol

__all__ = ["Replace", "changed_symbols", "language_of", "patched", "replaced", "touched_symbols"]

MAX_TEXT = 2 << 20  # bytes; a bigger file is claimed whole


class Replace:
    """One string replacement of an edit tool (``every``: Claude Code's ``replace_all``)."""

    __slots__ = ("every", "new", "old")

    def __init__(self, old: str, new: str, every: bool = False) -> None:
        self.old, self.new, self.every = old, new, every

    def __repr__(self) -> str:
        return f"Replace({self.old!r}, {self.new!r}, {self.every})"


def changed_symbols(path: str, old: str | None, new: str | None) -> tuple[str, ...] | None:
    """The symbols that turning ``old`` into ``new`` touches; None: the whole file.

    ``old`` None is a new file, ``new`` None an edit whose result is unknown.
    """
    touched = touched_symbols(path, old, new)
    return None if touched is None else tuple(touched)


def touched_symbols(path: str, old: str | None, new: str | None) -> dict[str, str] | None:
    """As ``changed_symbols``, each name (sorted) with its kind (grammars.KINDS; '' if
    unsure), as the new text has it where both have the symbol."""
    language = language_of(path)
    if language is None or old is None or new is None:
        return None
    before, after = old.encode("utf-8", "surrogatepass"), new.encode("utf-8", "surrogatepass")
    region = _region(before, after)
    if region is None or max(len(before), len(after)) > MAX_TEXT:
        return None
    start, old_end, new_end = region
    parser = _parser(language)
    tree = parser.parse(before)
    if tree.root_node.has_error:
        return None
    old_symbols = grammars.symbols_around(language, tree.root_node, start, old_end)
    new_root = _reparsed(parser, tree, before, after, region)
    if new_root is None:
        return None
    new_symbols = grammars.symbols_around(language, new_root, start, new_end)
    names: dict[str, str] = {}
    for old_span, new_span in _changed_spans(before, after, region):
        if not (
            _touched(old_symbols, before, old_span, names)
            and _touched(new_symbols, after, new_span, names)
        ):
            return None
    return dict(sorted(names.items())) if names else None


def replaced(text: str, replacements: Sequence[Replace]) -> str | None:
    """The text after the replacements, made one after another as the edit tools make
    them; None when an old string is empty, missing, or found twice without ``every``."""
    for replacement in replacements:
        count = text.count(replacement.old) if replacement.old else 0
        if count == 0 or (count > 1 and not replacement.every):
            return None
        text = text.replace(replacement.old, replacement.new)
    return text


def patched(text: str, patch: str, path: str, undo: bool = False) -> str | None:
    """The text of ``path`` after a Codex ``apply_patch`` text's hunks for it (``undo``:
    before them, from the text after); None when the patch adds, deletes or moves it,
    names it nowhere, or a hunk does not match."""
    section = _patch_section(patch, path)
    if section is None:
        return None
    if undo:
        section = [(anchor, new, old) for anchor, old, new in section]
    lines = text.splitlines(keepends=True)
    cursor = 0
    for anchor, old, new in section:
        if anchor:
            found = _seek(lines, [anchor], cursor)
            if found is None:
                return None
            cursor = found + 1
        at = _seek(lines, old, cursor) if old else None
        if at is None:
            return None
        ending = "\r\n" if lines[at].endswith("\r\n") else "\n"
        lines[at : at + len(old)] = [line + ending for line in new]
        cursor = at + len(new)
    return "".join(lines)


# ---------------------------------------------------------------- reading the trees


@functools.cache
def _parser(language: str) -> tree_sitter.Parser:
    binding = languages.tree_sitter()
    parser: tree_sitter.Parser = binding.Parser(binding.Language(languages.grammar(language)))
    return parser


def _reparsed(
    parser: tree_sitter.Parser,
    tree: tree_sitter.Tree,
    before: bytes,
    after: bytes,
    region: tuple[int, int, int],
    whole: bool = False,
) -> tree_sitter.Node | None:
    """The new text's tree where ``symbols_around`` reads it; None on a parse error.

    Outside the region the new text is the old one, split into the same top-level nodes:
    only the stretch ``grammars.stretch`` gives, from its first line, is parsed (with
    tree-sitter's included ranges, which keep every offset and row those of the whole
    text). Re-parsing all of it, even incrementally, cost about as much as the first
    parse. When the stretch is most of the text (one Java class, one Rust ``impl``: a
    whole parse is dearer than an incremental one), does not parse (its ends may be what
    breaks it: a string opened in the region, closed further on), or ``whole``, all of
    the new text is parsed again, incrementally.
    """
    start, old_end, new_end = region
    low, high = grammars.stretch(tree.root_node, start, old_end, len(before))
    low, high = before.rfind(b"\n", 0, low) + 1, high + new_end - old_end
    if not whole and (high - low) * 2 < len(after):
        binding = languages.tree_sitter()
        span = binding.Range(_point(after, low), _point(after, high), low, high)
        # A parser of its own: the companion maps in worker threads, which share ``parser``.
        window: tree_sitter.Parser = binding.Parser(parser.language, included_ranges=[span])
        root = window.parse(after).root_node
        if not root.has_error:
            return root
    tree.edit(
        start,
        old_end,
        new_end,
        _point(before, start),
        _point(before, old_end),
        _point(after, new_end),
    )
    root = parser.parse(after, tree).root_node
    return None if root.has_error else root


def _touched(
    symbols: list[Symbol], data: bytes, span: tuple[int, int], names: dict[str, str]
) -> bool:
    """Add the names of the symbols ``span`` touches; False if part of it is outside them."""
    start, end = _trimmed(data, *span)
    if start == end:  # a pure insertion: it counts inside a function, else the other side says
        for symbol in symbols:
            inner = next((m for m in symbol.members if m.start < start < m.end), None)
            if inner is not None or (not symbol.members and symbol.start < start < symbol.end):
                _add(names, inner or symbol)
        return True
    return _cover(symbols, data, start, end, names, container=None)


def _cover(
    symbols: Sequence[Symbol],
    data: bytes,
    start: int,
    end: int,
    names: dict[str, str],
    container: Symbol | None,
) -> bool:
    """Whether the symbols cover ``data[start:end]`` but for whitespace (inside a class,
    what its members do not cover is the class's own)."""
    position = start
    for symbol in symbols:
        if symbol.end <= start or symbol.start >= end:
            continue
        if data[position : symbol.start].strip():
            if container is None:
                return False
            _add(names, container)
        low, high = max(start, symbol.start), min(end, symbol.end)
        if not symbol.members or not _cover(symbol.members, data, low, high, names, symbol):
            _add(names, symbol)
        position = max(position, symbol.end)
    if data[position:end].strip():
        if container is None:
            return False
        _add(names, container)
    return True


def _add(names: dict[str, str], symbol: Symbol) -> None:
    for name in symbol.names:
        names[name] = symbol.kind


def _trimmed(data: bytes, start: int, end: int) -> tuple[int, int]:
    chunk = data[start:end]
    stripped = chunk.strip()
    if not stripped:
        return start, start
    lead = len(chunk) - len(chunk.lstrip())
    return start + lead, start + lead + len(stripped)


def _region(before: bytes, after: bytes) -> tuple[int, int, int] | None:
    """The whole lines that differ: (start, end in ``before``, end in ``after``), or None."""
    if before == after:
        return None
    prefix = _common_prefix(memoryview(before), memoryview(after))
    suffix = _common_prefix(memoryview(before[prefix:])[::-1], memoryview(after[prefix:])[::-1])
    start = before.rfind(b"\n", 0, prefix) + 1
    old_end, new_end = len(before) - suffix, len(after) - suffix
    if old_end > start and before[old_end - 1 : old_end] != b"\n":
        line_end = before.find(b"\n", old_end)
        grow = (len(before) if line_end < 0 else line_end + 1) - old_end
        old_end, new_end = old_end + grow, new_end + grow
    return start, old_end, new_end


def _common_prefix(a: memoryview, b: memoryview) -> int:
    """How many bytes ``a`` and ``b`` share from the start (halving: memcmp does the work)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def _point(data: bytes, offset: int) -> tuple[int, int]:
    """tree-sitter's (row, column in bytes) of an offset."""
    return data.count(b"\n", 0, offset), offset - (data.rfind(b"\n", 0, offset) + 1)


def _changed_spans(
    before: bytes, after: bytes, region: tuple[int, int, int]
) -> Iterator[tuple[tuple[int, int], tuple[int, int]]]:
    """Each changed stretch of lines in the region, as (start, end) in ``before`` and in
    ``after``: a line diff, so that an edit of two functions is two stretches."""
    start, old_end, new_end = region
    old = before[start:old_end].splitlines(keepends=True)
    new = after[start:new_end].splitlines(keepends=True)
    if not set(old).intersection(new):  # difflib would find one stretch: spare its import
        yield (start, old_end), (start, new_end)
        return
    import difflib

    old_offsets, new_offsets = _offsets(old, start), _offsets(new, start)
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag != "equal":
            yield (old_offsets[i1], old_offsets[i2]), (new_offsets[j1], new_offsets[j2])


def _offsets(lines: list[bytes], start: int) -> list[int]:
    offsets = [start]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    return offsets


# ---------------------------------------------------------------- Codex patches

Hunk = tuple[str, list[str], list[str]]  # (the ``@@`` line's anchor, old lines, new lines)


def _patch_section(patch: str, path: str) -> list[Hunk] | None:
    hunks: list[Hunk] = []
    inside = False
    for line in patch.splitlines():
        if line.startswith("*** ") and line != "*** End of File":
            if inside:
                if line.startswith("*** Move to: "):
                    return None
                break
            inside = (
                line == f"*** Update File: {path}" or line.strip() == f"*** Update File: {path}"
            )
        elif inside and line.startswith("@@"):
            hunks.append((line[2:].strip(), [], []))
        elif inside:
            if not hunks:
                hunks.append(("", [], []))
            _, old, new = hunks[-1]
            mark, body = line[:1], line[1:]
            if mark in (" ", "") or mark == "-":
                old.append(body)
            if mark in (" ", "") or mark == "+":
                new.append(body)
    return hunks or None


def _seek(lines: list[str], wanted: list[str], start: int) -> int | None:
    """Where ``wanted`` starts at or after ``start``: exactly, else ignoring line ends, else
    surrounding whitespace (Codex's own patch tool is as lenient)."""
    for fold in (_line_end, str.rstrip, str.strip):
        target = [fold(line) for line in wanted]
        for at in range(start, len(lines) - len(wanted) + 1):
            if all(fold(lines[at + k]) == target[k] for k in range(len(wanted))):
                return at
    return None


def _line_end(line: str) -> str:
    return line.rstrip("\r\n")
