from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator import symbols
from coordinator.grammars import GRAMMARS, SUFFIXES, stretch
from coordinator.symbols import (
    Replace,
    changed_symbols,
    language_of,
    patched,
    replaced,
    touched_symbols,
)

PYTHON = '''"""A module."""

import os
from typing import Any

LIMIT = 10
A, B = 1, 2


# How tokens are refreshed.
@functools.cache
def refresh_token(user: str) -> str:
    return user + "-token"


def revoke_token(user: str) -> None:
    print("revoked", user)


# Sessions and their expiry.
# (A section's comment: a blank line parts it from what follows.)

class Session:
    timeout = 30

    def __init__(self, user: str) -> None:
        self.user = user

    @property
    def expired(self) -> bool:
        def inner() -> bool:
            return False

        return inner()


if __name__ == "__main__":
    refresh_token("me")
'''


def edit(path: str, text: str, old: str, new: str, every: bool = False) -> tuple[str, ...] | None:
    return changed_symbols(path, text, replaced(text, [Replace(old, new, every)]))


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('user + "-token"', 'user + "-tok"', ["refresh_token"]),
        ('print("revoked", user)', 'print("gone", user)', ["revoke_token"]),
        ("self.user = user", "self.user = user.strip()", ["Session.__init__"]),
        ("return False", "return True", ["Session.expired"]),  # a nested function: its method
        ("    @property\n", "    @functools.cached_property\n", ["Session.expired"]),
        ("timeout = 30", "timeout = 60", ["Session"]),
        ("class Session:", "class Session(Base):", ["Session"]),
        ("@functools.cache", "@functools.lru_cache", ["refresh_token"]),  # its decorator
        ("# How tokens are refreshed.", "# How tokens are renewed.", ["refresh_token"]),
        ("# Sessions and their expiry.", "# Sessions.", None),
        ("LIMIT = 10", "LIMIT = 20", ["LIMIT"]),
        ("A, B = 1, 2", "A, B = 1, 3", ["A", "B"]),
        # Spanning two functions: both.
        (
            'user + "-token"\n\n\ndef revoke_token(user: str) -> None:',
            'user + "-t"\n\n\ndef revoke_token(user: str, why: str) -> None:',
            ["refresh_token", "revoke_token"],
        ),
        # A function added between two others is its own symbol; the others are untouched.
        (
            "def revoke_token(",
            "def rotate_token(user: str) -> str:\n    return user\n\n\ndef revoke_token(",
            ["rotate_token"],
        ),
        ('"""A module."""', '"""The module."""', None),  # outside every symbol
        ("import os\n", "import os\nimport sys\n", None),  # the imports
        ('refresh_token("me")', 'refresh_token("you")', None),  # if __name__ …
        ("return user", "return user(", None),  # the result does not parse
        ("user: str", "name: str", None),  # found several times: ambiguous
        ("not in the file", "x", None),
    ],
)
def test_python_edits_map_to_their_symbols(old: str, new: str, expected: list[str] | None) -> None:
    assert edit("src/auth/tokens.py", PYTHON, old, new) == (
        tuple(expected) if expected is not None else None
    )


def test_two_functions_of_one_file_differ_and_one_function_is_the_same() -> None:
    first = edit("a.py", PYTHON, 'user + "-token"', 'user + "-x"')
    second = edit("a.py", PYTHON, 'print("revoked", user)', "pass")
    again = edit("a.py", PYTHON, "def refresh_token(user: str)", "def refresh_token(user)")
    assert first == again == ("refresh_token",)
    assert second == ("revoke_token",)


def test_replace_all_maps_every_occurrence() -> None:
    assert edit("a.py", PYTHON, "user: str", "name: str", every=True) == (
        "Session.__init__",
        "refresh_token",
        "revoke_token",
    )


def test_multi_edit_applies_one_after_another() -> None:
    edits = [Replace("return False", "return None"), Replace("return None", "return 0")]
    after = replaced(PYTHON, edits)
    assert after is not None and "return 0" in after
    assert changed_symbols("a.py", PYTHON, after) == ("Session.expired",)
    assert replaced(PYTHON, [Replace("return False", "x"), Replace("return False", "y")]) is None
    assert replaced(PYTHON, [Replace("", "x")]) is None


def test_write_diffs_old_and_new_content() -> None:
    new = PYTHON.replace("timeout = 30", "timeout = 31").replace("return False", "return 1")
    assert changed_symbols("a.py", PYTHON, new) == ("Session", "Session.expired")
    revoke = 'def revoke_token(user: str) -> None:\n    print("revoked", user)\n\n\n'
    removed = PYTHON.replace(revoke, "")
    assert changed_symbols("a.py", PYTHON, removed) == ("revoke_token",)
    assert changed_symbols("a.py", PYTHON, PYTHON) is None  # nothing changed: nothing to map
    assert changed_symbols("a.py", None, PYTHON) is None  # a new file
    assert changed_symbols("a.py", PYTHON, None) is None
    assert changed_symbols("a.py", PYTHON, PYTHON + "\n\n\nprint('x')\n") is None
    broken = "def f(:\n  pass\n"
    assert changed_symbols("a.py", broken, broken + "\n\ndef g(): pass\n") is None


def test_crlf_and_non_ascii_text() -> None:
    text = "# é\r\ndef a():\r\n    return 'ü'\r\n\r\n\r\ndef b():\r\n    return 2\r\n"
    assert edit("a.py", text, "return 2", "return 3") == ("b",)
    assert edit("a.py", text, "'ü'", "'ö'") == ("a",)


@pytest.mark.parametrize("path", ["notes.md", "Makefile", "a.c", "a.PY.txt", "dir.py/x"])
def test_unknown_languages_claim_the_whole_file(path: str) -> None:
    assert language_of(path) is None
    assert changed_symbols(path, "x = 1\n", "x = 2\n") is None


def test_every_suffix_has_a_grammar_that_loads() -> None:
    assert set(SUFFIXES.values()) == set(GRAMMARS)
    assert language_of("C:\\repo\\App.TSX") == "tsx"
    for suffix, language in SUFFIXES.items():
        assert language_of("x" + suffix) == language


TYPESCRIPT = """import { db } from "./db";

export const LIMIT = 10;

/** Adds an item. */
export function addItem(id: string): void {
  db.push(id);
}

export class Cart {
  items: string[] = [];

  @logged
  total(): number {
    return this.items.length;
  }

  clear(): void {
    this.items = [];
  }
}

export interface Item {
  id: string;
}

export type Id = string;

enum Color {
  Red,
}

namespace Legacy {
  export const x = 1;
}

export default function () {
  return 0;
}
"""

TSX = """import React from "react";

export function App() {
  return <div className="app">hi</div>;
}

const Row = ({ n }: { n: number }) => <li>{n}</li>;

export default Row;
"""

JAVASCRIPT = """const fs = require("fs");

function read(path) {
  return fs.readFileSync(path);
}

function* ids() {
  yield 1;
}

class Store {
  static size = 0;

  get(key) {
    return key;
  }
}

module.exports = { read };
"""

GO = """package main

import "fmt"

const (
\tA = 1
\tB = 2
)

type Server struct {
\tport int
}

// Run serves.
func (s *Server) Run() error {
\treturn nil
}

func (s Server[T]) Port() int {
\treturn s.port
}

func main() {
\tfmt.Println(A)
}
"""

RUST = """use std::fmt;

/// A point.
#[derive(Debug)]
pub struct Point {
    x: i32,
}

impl Point {
    pub fn new() -> Self {
        Point { x: 0 }
    }

    fn norm(&self) -> i32 {
        self.x
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.x)
    }
}

trait Shape {
    fn area(&self) -> f64;
}

pub fn origin() -> Point {
    Point::new()
}

const MAX: i32 = 10;
"""

JAVA = """package shop;

import java.util.List;

/** A cart. */
public class Cart {
    private int count;

    public Cart() {
        count = 0;
    }

    @Override
    public String toString() {
        return "cart";
    }

    public void add(int n) {
        count += n;
    }
}

enum Size {
    SMALL;

    int weight() {
        return 1;
    }
}
"""


@pytest.mark.parametrize(
    ("path", "text", "old", "new", "expected"),
    [
        ("src/cart.ts", TYPESCRIPT, "db.push(id)", "db.unshift(id)", ["addItem"]),
        ("src/cart.ts", TYPESCRIPT, "/** Adds an item. */", "/** Adds one. */", ["addItem"]),
        ("src/cart.ts", TYPESCRIPT, "items.length", "items.length + 0", ["Cart.total"]),
        ("src/cart.ts", TYPESCRIPT, "@logged", "@traced", ["Cart.total"]),
        ("src/cart.ts", TYPESCRIPT, "this.items = [];", "this.items.length = 0;", ["Cart.clear"]),
        ("src/cart.ts", TYPESCRIPT, "items: string[] = [];", "items: Id[] = [];", ["Cart"]),
        ("src/cart.ts", TYPESCRIPT, "id: string;\n}", "id: Id;\n}", ["Item"]),
        ("src/cart.ts", TYPESCRIPT, "= string;", "= number;", ["Id"]),
        ("src/cart.ts", TYPESCRIPT, "Red,", "Red,\n  Blue,", ["Color"]),
        ("src/cart.ts", TYPESCRIPT, "LIMIT = 10", "LIMIT = 20", ["LIMIT"]),
        ("src/cart.ts", TYPESCRIPT, "x = 1", "x = 2", ["Legacy"]),
        ("src/cart.ts", TYPESCRIPT, "return 0;", "return 1;", ["default"]),
        ("src/cart.ts", TYPESCRIPT, '"./db"', '"./store"', None),
        ("src/App.tsx", TSX, 'className="app"', 'className="main"', ["App"]),
        ("src/App.tsx", TSX, "<li>{n}</li>", "<li key={n}>{n}</li>", ["Row"]),
        ("src/App.tsx", TSX, "export default Row;", "export default App;", ["default"]),
        ("src/App.tsx", TSX, "<div", "<div <", None),  # does not parse
        ("lib/store.js", JAVASCRIPT, "readFileSync(path)", "readFileSync(path, 'utf8')", ["read"]),
        ("lib/store.js", JAVASCRIPT, "yield 1;", "yield 2;", ["ids"]),
        ("lib/store.js", JAVASCRIPT, "return key;", "return key + 1;", ["Store.get"]),
        ("lib/store.js", JAVASCRIPT, "size = 0", "size = 1", ["Store"]),
        ("lib/store.js", JAVASCRIPT, "{ read }", "{ read, ids }", None),
        ("main.go", GO, "return nil", 'return fmt.Errorf("x")', ["Server.Run"]),
        ("main.go", GO, "// Run serves.", "// Run serves forever.", ["Server.Run"]),
        ("main.go", GO, "return s.port", "return s.port + 1", ["Server.Port"]),
        ("main.go", GO, "B = 2", "B = 3", ["B"]),
        ("main.go", GO, "port int", "port uint16", ["Server"]),
        ("main.go", GO, "fmt.Println(A)", "fmt.Println(B)", ["main"]),
        ("main.go", GO, 'import "fmt"', 'import "os"', None),
        ("src/point.rs", RUST, "self.x\n", "self.x * 2\n", ["Point.norm"]),
        ("src/point.rs", RUST, "Point { x: 0 }", "Point { x: 1 }", ["Point.new"]),
        ("src/point.rs", RUST, "#[derive(Debug)]", "#[derive(Debug, Clone)]", ["Point"]),
        ("src/point.rs", RUST, "/// A point.", "/// A 1-D point.", ["Point"]),
        ("src/point.rs", RUST, '"{}"', '"({})"', ["Point.fmt"]),
        ("src/point.rs", RUST, "-> f64", "-> f32", ["Shape.area"]),
        ("src/point.rs", RUST, "Point::new()", "Point { x: 1 }", ["origin"]),
        ("src/point.rs", RUST, "MAX: i32 = 10", "MAX: i32 = 11", ["MAX"]),
        ("src/point.rs", RUST, "use std::fmt;", "use std::fmt::{self};", None),
        ("Cart.java", JAVA, "count += n;", "count -= n;", ["Cart.add"]),
        ("Cart.java", JAVA, '"cart"', '"Cart"', ["Cart.toString"]),
        ("Cart.java", JAVA, "count = 0;", "count = 1;", ["Cart.Cart"]),
        ("Cart.java", JAVA, "private int count;", "private long count;", ["Cart"]),
        ("Cart.java", JAVA, "return 1;", "return 2;", ["Size.weight"]),
        ("Cart.java", JAVA, "/** A cart. */", "/** The cart. */", ["Cart"]),
        ("Cart.java", JAVA, "java.util.List", "java.util.Map", None),
    ],
)
def test_each_language_maps_edits_to_symbols(
    path: str, text: str, old: str, new: str, expected: list[str] | None
) -> None:
    assert edit(path, text, old, new) == (tuple(expected) if expected is not None else None)


PATCH = """*** Begin Patch
*** Update File: src/auth/tokens.py
@@ def refresh_token(user: str) -> str:
-    return user + "-token"
+    return user + "-fresh"
@@ class Session:
     def __init__(self, user: str) -> None:
-        self.user = user
+        self.user = user.lower()
*** Add File: src/new.py
+x = 1
*** End Patch
"""


def test_codex_patches_map_by_their_hunks() -> None:
    after = patched(PYTHON, PATCH, "src/auth/tokens.py")
    assert after is not None
    assert 'user + "-fresh"' in after and "user.lower()" in after
    assert changed_symbols("src/auth/tokens.py", PYTHON, after) == (
        "Session.__init__",
        "refresh_token",
    )


def test_patch_hunks_without_an_anchor_and_with_loose_whitespace() -> None:
    patch = (
        "*** Begin Patch\n*** Update File: a.py\n@@\n"
        " def revoke_token(user: str) -> None:   \n"
        '-    print("revoked", user)\n+    print("revoked!", user)\n'
        "*** End of File\n*** End Patch\n"
    )
    after = patched(PYTHON, patch, "a.py")
    assert after is not None and "revoked!" in after
    assert changed_symbols("a.py", PYTHON, after) == ("revoke_token",)


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        (PATCH, "src/new.py"),  # added: a new file
        (PATCH, "elsewhere.py"),  # not in the patch
        ("*** Begin Patch\n*** Delete File: a.py\n*** End Patch\n", "a.py"),
        (
            "*** Begin Patch\n*** Update File: a.py\n*** Move to: b.py\n"
            "@@\n-LIMIT = 10\n+LIMIT = 1\n*** End Patch\n",
            "a.py",
        ),
        ("*** Begin Patch\n*** Update File: a.py\n@@\n-not there\n+x\n*** End Patch\n", "a.py"),
        ("*** Begin Patch\n*** Update File: a.py\n@@ def nowhere():\n-LIMIT = 10\n+x\n", "a.py"),
        ("*** Begin Patch\n*** Update File: a.py\n@@\n+only added\n*** End Patch\n", "a.py"),
    ],
)
def test_patches_that_cannot_be_placed_claim_the_whole_file(patch: str, path: str) -> None:
    assert patched(PYTHON, patch, path) is None


def test_hunks_apply_in_order() -> None:
    text = "def a():\n    return 1\n\n\ndef b():\n    return 1\n"
    patch = (
        "*** Begin Patch\n*** Update File: m.py\n@@ def b():\n-    return 1\n+    return 2\n"
        "*** End Patch\n"
    )
    after = patched(text, patch, "m.py")
    assert after == "def a():\n    return 1\n\n\ndef b():\n    return 2\n"
    assert changed_symbols("m.py", text, after) == ("b",)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(
        [
            ("a.py", PYTHON),
            ("a.ts", TYPESCRIPT),
            ("a.tsx", TSX),
            ("a.js", JAVASCRIPT),
            ("a.go", GO),
            ("a.rs", RUST),
            ("A.java", JAVA),
        ]
    ),
    st.integers(min_value=0, max_value=2000),
    st.integers(min_value=0, max_value=60),
    st.sampled_from(["", "x", "\n", "}", "(", " ", "é", "def f():\n    pass\n", "fn q() {}\n"]),
)
def test_any_edit_maps_to_names_or_the_whole_file(
    source: tuple[str, str], at: int, length: int, insert: str
) -> None:
    path, text = source
    at = min(at, len(text))
    after = text[:at] + insert + text[at + length :]
    found = changed_symbols(path, text, after)
    assert found is None or (found == tuple(sorted(set(found))) and all(found))


# Per language: an edit spanning two symbols claims both, one that leaves the file unparsable
# claims it whole, and an annotation or decorator belongs to what it decorates.
@pytest.mark.parametrize(
    ("path", "text", "old", "new", "expected"),
    [
        (
            "a.ts",
            TYPESCRIPT,
            "db.push(id);\n}\n\nexport class Cart {",
            "db.add(id);\n}\n\nexport class Cart extends Base {",
            ["Cart", "addItem"],
        ),
        ("a.ts", TYPESCRIPT, "db.push(id);", "db.push(id;", None),
        ("a.tsx", TSX, 'className="app">hi</div>;\n}', 'className="app">hey</div>;\n}', ["App"]),
        (
            "a.tsx",
            TSX,
            "hi</div>;\n}\n\nconst Row",
            "hey</div>;\n}\n\nconst Line",
            ["App", "Line", "Row"],
        ),  # a rename: both names
        (
            "a.js",
            JAVASCRIPT,
            "readFileSync(path);\n}\n\nfunction* ids() {\n  yield 1;",
            "readFileSync(path, 1);\n}\n\nfunction* ids() {\n  yield 2;",
            ["ids", "read"],
        ),
        ("a.js", JAVASCRIPT, "return key;", "return key +;", None),
        (
            "a.js",
            JAVASCRIPT,
            "  get(key) {\n    return key;",
            "  get(key) {\n    return key;\n  }\n\n  set(key) {\n    return key;",
            ["Store.set"],  # a method added: only it
        ),
        (
            "a.go",
            GO,
            "return nil\n}\n\nfunc (s Server[T]) Port() int {\n\treturn s.port",
            "return nil // ok\n}\n\nfunc (s Server[T]) Port() int {\n\treturn s.port + 0",
            ["Server.Port", "Server.Run"],
        ),
        ("a.go", GO, "return s.port", "return s.port +", None),
        (
            "a.rs",
            RUST,
            "Point { x: 0 }\n    }\n\n    fn norm(&self) -> i32 {\n        self.x",
            "Point { x: 1 }\n    }\n\n    fn norm(&self) -> i32 {\n        self.x + 1",
            ["Point.new", "Point.norm"],
        ),
        ("a.rs", RUST, "self.x\n", "self.x +\n", None),
        ("A.java", JAVA, "@Override", "@Deprecated", ["Cart.toString"]),
        (
            "A.java",
            JAVA,
            'return "cart";\n    }\n\n    public void add(int n) {\n        count += n;',
            'return "Cart";\n    }\n\n    public void add(int n) {\n        count -= n;',
            ["Cart.add", "Cart.toString"],
        ),
        ("A.java", JAVA, "count += n;", "count += ;", None),
        (
            "a.py",
            PYTHON,
            "    @property\n",
            "    @property\n    @functools.cache\n",
            ["Session.expired"],
        ),
    ],
)
def test_each_language_spans_two_symbols_and_refuses_a_parse_error(
    path: str, text: str, old: str, new: str, expected: list[str] | None
) -> None:
    assert edit(path, text, old, new) == (tuple(expected) if expected is not None else None)


@pytest.mark.parametrize(
    ("path", "text", "old", "new", "expected"),
    [
        ("a.py", PYTHON, 'user + "-token"', 'user + "-t"', {"refresh_token": "function"}),
        ("a.py", PYTHON, "return False", "return True", {"Session.expired": "method"}),
        ("a.py", PYTHON, "timeout = 30", "timeout = 3", {"Session": "class"}),
        ("a.py", PYTHON, "LIMIT = 10", "LIMIT = 1", {"LIMIT": "const"}),
        ("a.ts", TYPESCRIPT, "id: string;\n}", "id: Id;\n}", {"Item": "interface"}),
        ("a.ts", TYPESCRIPT, "= string;", "= number;", {"Id": "type"}),
        ("a.ts", TYPESCRIPT, "Red,", "Red, Blue,", {"Color": "enum"}),
        ("a.ts", TYPESCRIPT, "LIMIT = 10", "LIMIT = 1", {"LIMIT": "const"}),
        ("a.ts", TYPESCRIPT, "items.length", "items.length + 0", {"Cart.total": "method"}),
        ("a.go", GO, "return nil", "return nil // ok", {"Server.Run": "method"}),
        ("a.go", GO, "port int", "port uint", {"Server": "type"}),
        ("a.rs", RUST, "MAX: i32 = 10", "MAX: i32 = 1", {"MAX": "const"}),
        ("a.rs", RUST, "-> f64", "-> f32", {"Shape.area": "method"}),
        ("A.java", JAVA, "count += n;", "count -= n;", {"Cart.add": "method"}),
        ("A.java", JAVA, "private int count;", "private long count;", {"Cart": "class"}),
    ],
)
def test_symbols_carry_their_kind(
    path: str, text: str, old: str, new: str, expected: dict[str, str]
) -> None:
    assert touched_symbols(path, text, replaced(text, [Replace(old, new)])) == expected


# The new text is parsed only around the edit (symbols._reparsed): whatever the edit,
# the answer must be the one a parse of the whole new text gives. The samples sit between
# small functions, so that the parsed stretch is a part of the file.
FILLERS = {
    "a.py": "def f{i}(a):\n    return a\n\n\n",
    "a.ts": "export function f{i}(a: number): number {{\n  return a;\n}}\n\n",
    "a.tsx": "function F{i}() {{\n  return <p>{i}</p>;\n}}\n\n",
    "a.js": "function f{i}(a) {{\n  return `${{a}}`;\n}}\n\n",
    "a.go": "func f{i}(a int) int {{\n\treturn a\n}}\n\n",
    "a.rs": "fn f{i}(a: i32) -> i32 {{\n    a\n}}\n\n",
    "A.java": "class F{i} {{\n    int f(int a) {{\n        return a;\n    }}\n}}\n\n",
}
SAMPLES = {
    "a.py": PYTHON,
    "a.ts": TYPESCRIPT,
    "a.tsx": TSX,
    "a.js": JAVASCRIPT,
    "a.go": GO,
    "a.rs": RUST,
    "A.java": JAVA,
}


def padded(path: str) -> str:
    filler = [FILLERS[path].format(i=i) for i in range(20)]
    return "".join(filler[:10]) + SAMPLES[path] + "\n" + "".join(filler[10:])


@pytest.mark.parametrize("path", sorted(SAMPLES))
def test_only_a_stretch_around_the_edit_is_parsed_again(path: str) -> None:
    text = padded(path).encode()
    tree = symbols._parser(language_of(path) or "").parse(text)
    assert not tree.root_node.has_error
    function = [FILLERS[path].format(i=i).encode() for i in (12, 15, 18)]
    at = text.index(function[1]) + 3  # the edited function's, two each side, two more
    low, high = stretch(tree.root_node, at, at + 2, len(text))
    assert low == text.index(function[0])
    assert high == text.index(function[2]) + len(function[2].rstrip())


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(sorted(SAMPLES)),
    st.integers(min_value=0, max_value=6000),
    st.integers(min_value=0, max_value=80),
    st.sampled_from(
        ["", "x", "\n", "}", "{", "(", '"""', "/*", "`", "'", "\\\n", "def g():\n", "  y\n"]
    ),
)
def test_the_stretch_answers_as_the_whole_text(
    path: str, at: int, length: int, insert: str
) -> None:
    text = padded(path)
    at = min(at, len(text))
    after = text[:at] + insert + text[at + length :]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(symbols, "_reparsed", functools.partial(symbols._reparsed, whole=True))
        whole = touched_symbols(path, text, after)
    assert touched_symbols(path, text, after) == whole
