"""Which syntax nodes are symbols, per language: what ``symbols.py`` claims edits by.

Each reader turns one top-level node of a tree-sitter tree into symbols, or none: a node
that is no symbol (an import, a module-level statement) is outside every symbol, and an
edit there claims the whole file.
"""

from __future__ import annotations

import bisect

from coordinator.languages import GRAMMARS, SUFFIXES

TYPE_CHECKING = False  # typing (and tree-sitter's package, which imports it) cost a bridge call
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from tree_sitter import Node

__all__ = ["GRAMMARS", "KINDS", "SUFFIXES", "Symbol", "stretch", "symbols_around"]

# What may stand right above a symbol and belongs to it: doc comments, Rust's ``#[…]``,
# a TypeScript method's decorators (a class's own are inside its node, as Python's are).
_LEADING = frozenset({"comment", "line_comment", "block_comment", "attribute_item", "decorator"})


class Symbol:
    """A stretch of the file (bytes) that is one or more named symbols (``a, b = 1, 2``).

    A plain class: a NamedTuple's creation compiles its source, a millisecond per bridge call.
    """

    __slots__ = ("end", "kind", "members", "names", "start")

    def __init__(
        self,
        start: int,
        end: int,
        names: tuple[str, ...],
        members: tuple[Symbol, ...] = (),  # a class's methods, named ``Class.method``
        kind: str = "",  # symbol_claims.Kind: function, method, class... ('' when unsure)
    ) -> None:
        self.start, self.end, self.names, self.members, self.kind = start, end, names, members, kind

    def __repr__(self) -> str:
        return f"Symbol({self.start}, {self.end}, {self.names}, {self.members}, {self.kind!r})"


if TYPE_CHECKING:
    Window = tuple[int, int]  # the bytes edited: only the symbols near them are read
    Reader = Callable[[Node, Window], list[Symbol]]


# What kind of symbol each node is (symbol_claims.Kind), whatever the language; a function
# inside a class (impl, trait) is a method.
KINDS: dict[str, str] = {
    **dict.fromkeys(
        (
            "function_definition",
            "function_declaration",
            "generator_function_declaration",
            "function_signature",
            "function_item",
            "function_signature_item",
            "macro_definition",
        ),
        "function",
    ),
    **dict.fromkeys(
        ("method_definition", "method_signature", "abstract_method_signature"), "method"
    ),
    **dict.fromkeys(("method_declaration", "constructor_declaration"), "method"),
    "compact_constructor_declaration": "method",
    **dict.fromkeys(
        ("class_definition", "class_declaration", "abstract_class_declaration", "class"), "class"
    ),
    **dict.fromkeys(("record_declaration", "impl_item", "struct_item", "union_item"), "class"),
    **dict.fromkeys(
        ("interface_declaration", "annotation_type_declaration", "trait_item"), "interface"
    ),
    **dict.fromkeys(("type_alias_statement", "type_alias_declaration", "type_item"), "type"),
    **dict.fromkeys(("type_declaration", "type_spec"), "type"),
    **dict.fromkeys(("enum_declaration", "enum_item"), "enum"),
    **dict.fromkeys(("const_item", "static_item", "const_declaration", "const_spec"), "const"),
    **dict.fromkeys(("var_declaration", "var_spec", "variable_declaration"), "variable"),
    **dict.fromkeys(("internal_module", "module", "mod_item"), "module"),
}


def symbols_around(language: str, root: Node, start: int, end: int) -> list[Symbol]:
    """The symbols of the top-level nodes that bytes ``start:end`` touch, in order, with
    a neighbour each side (reading all of a long file's nodes would cost milliseconds)."""
    return list(_with_leading(_around(root, start, end), _READERS[language], (start, end)))


def stretch(root: Node, start: int, end: int, length: int) -> tuple[int, int]:
    """The bytes from two top-level nodes before those ``symbols_around`` reads for
    ``start:end`` to two after them (``length``: the text's), so that a parse of only
    these finds those nodes as a parse of the whole text does."""
    children, first, last = _span(root, start, end)
    low = children[first - 3].start_byte if first >= 3 else 0
    high = children[last + 2].end_byte if last + 2 < len(children) else length
    return low, max(high, end)


def _around(parent: Node, start: int, end: int) -> list[Node]:
    """``parent``'s children that bytes ``start:end`` touch, a neighbour each side, and
    the comments between the last of them and the node they stand above."""
    if start >= parent.end_byte or end <= parent.start_byte:
        return []
    children, first, last = _span(parent, start, end)
    return children[max(first - 1, 0) : last + 1]


def _span(parent: Node, start: int, end: int) -> tuple[list[Node], int, int]:
    """``parent``'s children, the first that ends after ``start``, and the first that
    starts at or after ``end`` and is no comment."""
    # Not first_named_child_for_byte: in tree-sitter 0.26.1, given a byte past the node's
    # end, it returns a node whose first use crashes the interpreter.
    children = parent.named_children
    first = bisect.bisect_right([child.end_byte for child in children], start)
    last = first
    while last < len(children) and (
        children[last].start_byte < end or children[last].type in _LEADING
    ):
        last += 1
    return children, first, last


def _with_leading(nodes: Iterable[Node], read: Reader, window: Window) -> Iterator[Symbol]:
    """Each node's symbols, the first stretched up over the comments right above it: on
    lines of their own, with no blank line between them or before the symbol."""
    leading: int | None = None
    last_row = -2  # where the node before ends
    for node in nodes:
        row = node.start_point.row
        if leading is not None and row > last_row + 1:
            leading = None  # a blank line: what came before stands alone
        if node.type in _LEADING:
            if leading is None and row > last_row:
                leading = node.start_byte
            last_row = node.end_point.row
            continue
        symbols = read(node, window)
        for index, symbol in enumerate(symbols):
            if index == 0 and leading is not None:
                symbol = Symbol(leading, symbol.end, symbol.names, symbol.members, symbol.kind)
            yield symbol
        leading = None
        last_row = node.end_point.row


def _text(node: Node | None) -> str | None:
    return None if node is None or node.text is None else node.text.decode("utf-8", "replace")


def _named(
    node: Node, name: str | None, members: Iterable[Symbol] = (), kind: str | None = None
) -> list[Symbol]:
    if not name:
        return []
    found = kind if kind is not None else KINDS.get(node.type, "")
    return [Symbol(node.start_byte, node.end_byte, (name,), tuple(members), found)]


def _members(
    owner: str, body: Node | None, kinds: frozenset[str], read: Reader, window: Window
) -> list[Symbol]:
    """A class's (impl's, trait's) member symbols, named ``owner.member``."""
    if body is None:
        return []

    def member(node: Node, window: Window) -> list[Symbol]:
        if node.type not in kinds:
            return []
        named = read(node, window)
        return [
            Symbol(
                s.start,
                s.end,
                tuple(f"{owner}.{n}" for n in s.names),
                s.members,
                "method" if s.kind == "function" else s.kind,
            )
            for s in named
        ]

    return list(_with_leading(_around(body, *window), member, window))


def _by_name(node: Node, window: Window) -> list[Symbol]:
    return _named(node, _text(node.child_by_field_name("name")))


def _first_type(node: Node | None) -> str | None:
    """The type a receiver or an ``impl`` is for: ``*Server`` and ``Server[T]`` are Server."""
    stack = [node] if node is not None else []
    while stack:
        current = stack.pop()
        if current.type == "type_identifier":
            return _text(current)
        stack.extend(reversed(current.named_children))
    return None


# ---------------------------------------------------------------- Python


def _python(node: Node, window: Window) -> list[Symbol]:
    inner = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
    if inner is None:
        return []
    match inner.type:
        case "function_definition" | "type_alias_statement":
            field = "name" if inner.type == "function_definition" else "left"
            return _named(node, _text(inner.child_by_field_name(field)), kind=KINDS[inner.type])
        case "class_definition":
            name = _text(inner.child_by_field_name("name"))
            body = inner.child_by_field_name("body")
            kinds = frozenset({"function_definition", "decorated_definition"})
            members = _members(name or "", body, kinds, _python, window)
            return _named(node, name, members, kind="class")
        case "expression_statement" if inner.named_child_count == 1:
            names = _assigned(inner.named_children[0])
            kind = "const" if all(name.isupper() for name in names) else "variable"
            return [Symbol(node.start_byte, node.end_byte, tuple(names), (), kind)] if names else []
    return []


def _assigned(node: Node) -> list[str]:
    """The names ``a = b = 1``, ``a, b = …`` and ``X: int = 1`` bind; [] if not only names."""
    if node.type != "assignment":
        return []
    left = node.child_by_field_name("left")
    if left is None:
        return []
    targets = left.named_children if left.type in ("pattern_list", "tuple_pattern") else [left]
    if any(target.type != "identifier" for target in targets):
        return []
    names = [name for name in map(_text, targets) if name]
    right = node.child_by_field_name("right")
    return names + (_assigned(right) if right is not None else [])


# ---------------------------------------------------------------- TypeScript, JavaScript

_SCRIPT_NAMED = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "function_signature",
        "interface_declaration",
        "type_alias_declaration",
        "enum_declaration",
        "internal_module",
        "module",
    }
)
_SCRIPT_CLASSES = frozenset({"class_declaration", "abstract_class_declaration", "class"})
_SCRIPT_METHODS = frozenset({"method_definition", "method_signature", "abstract_method_signature"})


def _script(node: Node, window: Window) -> list[Symbol]:
    outer, inner = node, node
    if inner.type == "export_statement":
        declaration = inner.child_by_field_name("declaration")
        if declaration is None:  # ``export default <expression>``, or ``export { a }``
            value = inner.child_by_field_name("value")
            named = value is not None and value.child_by_field_name("name") is not None
            return (
                _script_symbol(outer, value, window)
                if named
                else _named(outer, "default" if value is not None else None, kind="variable")
            )
        inner = declaration
    if inner.type in ("ambient_declaration", "expression_statement") and inner.named_child_count:
        inner = inner.named_children[0]
    return _script_symbol(outer, inner, window)


def _script_symbol(outer: Node, inner: Node | None, window: Window) -> list[Symbol]:
    if inner is None:
        return []
    name = _text(inner.child_by_field_name("name"))
    if inner.type in _SCRIPT_NAMED:
        return _named(outer, name and name.strip("'\""), kind=KINDS.get(inner.type, ""))
    if inner.type in _SCRIPT_CLASSES:
        body = inner.child_by_field_name("body")
        members = _members(name or "", body, _SCRIPT_METHODS, _by_name, window)
        return _named(outer, name, members, kind="class")
    if inner.type in ("lexical_declaration", "variable_declaration"):
        declared = [d.child_by_field_name("name") for d in inner.named_children]
        if all(d is not None and d.type == "identifier" for d in declared):
            names = tuple(n for n in map(_text, declared) if n)
            kind = "const" if inner.children and inner.children[0].type == "const" else "variable"
            return [Symbol(outer.start_byte, outer.end_byte, names, (), kind)] if names else []
    return []


# ---------------------------------------------------------------- Go


def _go(node: Node, window: Window) -> list[Symbol]:
    match node.type:
        case "function_declaration":
            return _by_name(node, window)
        case "method_declaration":
            owner = _first_type(node.child_by_field_name("receiver"))
            name = _text(node.child_by_field_name("name"))
            return _named(node, owner and name and f"{owner}.{name}")
        case "type_declaration" | "const_declaration" | "var_declaration":
            specs = [spec for spec in node.named_children if spec.type != "comment"]
            if specs and specs[0].type.endswith("_spec_list"):  # ``var ( … )``
                specs = [spec for spec in specs[0].named_children if spec.type != "comment"]
            symbols = [_go_spec(spec) for spec in specs]
            if len(symbols) == 1 and symbols[0] is not None:
                only = symbols[0]
                return [Symbol(node.start_byte, node.end_byte, only.names, (), only.kind)]
            return [symbol for symbol in symbols if symbol is not None]
    return []


def _go_spec(spec: Node) -> Symbol | None:
    names = tuple(n for n in map(_text, spec.children_by_field_name("name")) if n)
    return (
        Symbol(spec.start_byte, spec.end_byte, names, (), KINDS.get(spec.type, ""))
        if names
        else None
    )


# ---------------------------------------------------------------- Rust

_RUST_NAMED = frozenset(
    {
        "function_item",
        "function_signature_item",
        "struct_item",
        "enum_item",
        "union_item",
        "type_item",
        "const_item",
        "static_item",
        "mod_item",
        "macro_definition",
    }
)
_RUST_METHODS = frozenset({"function_item", "function_signature_item", "const_item", "type_item"})


def _rust(node: Node, window: Window) -> list[Symbol]:
    if node.type in _RUST_NAMED:
        return _by_name(node, window)
    if node.type in ("impl_item", "trait_item"):
        field = "type" if node.type == "impl_item" else "name"
        owner = _first_type(node.child_by_field_name(field))
        body = node.child_by_field_name("body")
        return _named(node, owner, _members(owner or "", body, _RUST_METHODS, _by_name, window))
    return []


# ---------------------------------------------------------------- Java

_JAVA_TYPES = frozenset(
    {
        "class_declaration",
        "interface_declaration",
        "enum_declaration",
        "record_declaration",
        "annotation_type_declaration",
    }
)
_JAVA_MEMBERS = _JAVA_TYPES | {
    "method_declaration",
    "constructor_declaration",
    "compact_constructor_declaration",
}


def _java(node: Node, window: Window) -> list[Symbol]:
    if node.type not in _JAVA_TYPES:
        return []
    name = _text(node.child_by_field_name("name"))
    body = node.child_by_field_name("body")
    members = _members(name or "", body, _JAVA_MEMBERS, _by_name, window)
    for part in body.named_children if body is not None else ():
        if part.type == "enum_body_declarations":  # an enum's methods come after its constants
            members += _members(name or "", part, _JAVA_MEMBERS, _by_name, window)
    return _named(node, name, members)


_READERS: dict[str, Reader] = {
    "python": _python,
    "typescript": _script,
    "tsx": _script,
    "javascript": _script,
    "go": _go,
    "rust": _rust,
    "java": _java,
}
