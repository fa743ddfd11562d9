"""What reading shell commands and source files costs (coordinator.shell, coordinator.symbols).

    python -m bench.parsing [--runs 200] [--lines 2000]

Prints, each a median over ``--runs``: the time ``shell_writes`` takes for typical
commands (the service does it on every shell tool event); each grammar's load, in a
fresh interpreter (what a bridge call pays once, a companion once per process); and the
time ``changed_symbols`` adds to one Edit of a ``--lines`` file in each language once the
grammar is loaded (both sides parsed, the line diff, the mapping).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial

from coordinator.events import MAX_FILES
from coordinator.grammars import GRAMMARS
from coordinator.shell import shell_writes
from coordinator.symbols import Replace, changed_symbols, replaced

COMMANDS = [
    "sed -i s/a/b/ src/x.py",
    "echo hi > src/y.py",
    "grep -rn foo src | head -20",
    "cd pkg && npm test -- --watch=false 2>&1 | tail -5",
    "git status && git diff --stat",
    "python -m pytest tests/test_x.py -x -q",
    "cp a.py b.py && mv b.py src/ && rm -f a.py",
    'for f in src/*.py; do wc -l "$f"; done',
]
# One function of each language, repeated to ``--lines`` with its name numbered.
UNITS = {
    "a.py": "def f{i}(a, b):\n    x = a + b\n    if x > 10:\n        return x\n    return -x\n\n\n",
    "a.ts": "export function f{i}(a: number): number {{\n  const x = a * 2;\n  return x;\n}}\n\n",
    "a.tsx": 'export function F{i}() {{\n  return <div id="{i}">x</div>;\n}}\n\n',
    "a.js": "function f{i}(a) {{\n  const x = a * 2;\n  return x;\n}}\n\n",
    "a.go": "func f{i}(a int) int {{\n\tx := a * 2\n\treturn x\n}}\n\n",
    "a.rs": "fn f{i}(a: i32) -> i32 {{\n    let x = a * 2;\n    x\n}}\n\n",
    "A.java": "    int f{i}(int a) {{\n        int x = a * 2;\n        return x;\n    }}\n\n",
}
HEADS = {"a.go": "package main\n\n", "A.java": "class A {\n"}
TAILS = {"A.java": "}\n"}


def median_seconds(call: Callable[[], object], runs: int) -> float:
    """The median CPU time of ``call``: on a loaded machine, wall time measures the others."""
    times = []
    for _ in range(runs):
        start = time.process_time()
        call()
        times.append(time.process_time() - start)
    return statistics.median(times)


def source(path: str, lines: int) -> str:
    unit = UNITS[path]
    count = max(1, lines // unit.count("\n"))
    body = "".join(unit.format(i=i) for i in range(count))
    return HEADS.get(path, "") + body + TAILS.get(path, "")


def grammar_load_ms(language: str, runs: int) -> float:
    """One grammar's import and load in a fresh interpreter, less the interpreter's start."""
    module, function = GRAMMARS[language]
    probe = (
        "import time; t = time.process_time(); import tree_sitter, importlib; "
        f"tree_sitter.Language(getattr(importlib.import_module({module!r}), {function!r})()); "
        "print(time.process_time() - t)"
    )
    times = [
        float(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout)
        for _ in range(runs)
    ]
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--lines", type=int, default=2000)
    args = parser.parse_args()
    print("shell_writes, median µs per command:")
    for command in COMMANDS:
        seconds = median_seconds(partial(shell_writes, command, limit=MAX_FILES), args.runs)
        print(f"  {seconds * 1e6:7.0f}  {command}")
    print("grammar load in a fresh interpreter (tree_sitter import included), median ms:")
    for language in GRAMMARS:
        print(f"  {grammar_load_ms(language, max(3, args.runs // 20)):7.1f}  {language}")
    print(f"changed_symbols for one Edit of a {args.lines}-line file, grammar loaded, median ms:")
    for path in UNITS:
        text = source(path, args.lines)
        middle = args.lines // UNITS[path].count("\n") // 2
        header = ("F" if path.endswith(".tsx") else "f") + f"{middle}("
        edit = [Replace(header, header.replace("(", "_renamed("))]  # the middle function
        after = replaced(text, edit)
        touched = changed_symbols(path, text, after)  # loads the grammar
        seconds = median_seconds(partial(changed_symbols, path, text, after), args.runs)
        print(f"  {seconds * 1e3:7.2f}  {path} ({text.count(chr(10))} lines) -> {touched}")


if __name__ == "__main__":
    main()
