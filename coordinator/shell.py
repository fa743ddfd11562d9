"""The files a shell command clearly writes, read from its syntax tree (tree-sitter-bash).

Claude Code's ``Bash``, Codex's shell (its hooks see ``Bash`` too) and Cursor's ``Shell``
send the command as ``tool_input.command``: a string, or an argv list (``["bash", "-lc",
"…"]``, older Codex). ``shell_writes`` names the files it writes, relative to the event's
``cwd`` (or absolute, as written), for ``paths.normalise_file`` to key.

Recognised: output redirections (``>``, ``>>``, ``>|``, ``&>``, ``&>>``, ``2> f``; not
``/dev/*``, not ``>&2``); ``sed -i``/``-i.bak``/``--in-place`` (and BSD's ``-i ''``);
``tee [-a]``; ``cp``, ``mv`` (its sources too, which disappear), ``install``, ``ln``
(``-t DIR`` and a directory destination: ``DIR/name``); ``rm``, ``touch``, ``truncate``;
``dd of=``; ``git checkout [<tree>] -- paths``, ``git restore``, ``git rm``, ``git mv``
(``git -C dir``). Anywhere in pipelines, ``&&``/``||``/``;`` lists, subshells, ``$( )``,
``if``/``for``/``while`` bodies, ``bash -c '…'`` and behind ``sudo``, ``env``, ``time``,
``nohup``, ``nice``, ``timeout``, ``command``, ``exec``. A literal ``cd dir`` (or
``pushd``) moves the base of the relative paths after it; a ``cd`` inside a subshell or
``$( )`` does not leak out of it.

Not detected, so claims nothing: a target that is not a literal word (a variable, a glob,
``~``, a brace expansion, a command substitution); what a program writes by itself
(``python - <<EOF … open('p', 'w')``, ``python -c``, ``node -e``, ``make``, formatters,
``npm install``, ``git stash``/``reset``/``merge``, ``patch``, ``find -delete``, ``xargs
rm``, ``perl -i``); the files inside a directory that ``rm -r``/``cp -r`` names (the
directory is named, as its own path). A command that does not parse, a relative path
after a ``cd`` that cannot be followed (``cd "$DIR"``, ``cd -``, ``popd``), and a command
over ``MAX_COMMAND`` bytes or ``MAX_NODES`` syntax nodes claim nothing: an unclear command is
never blocked.
"""

from __future__ import annotations

import functools
import posixpath
import re
from collections.abc import Iterator

import tree_sitter
import tree_sitter_bash

from coordinator import shell_writers

MAX_COMMAND = 64 * 1024
# Syntax nodes walked for one command: the walk costs a few µs a node, in the service's event
# loop; 2,000 are hundreds of commands, far beyond what an agent sends at once.
MAX_NODES = 2000
MAX_SCRIPTS = 8  # nested ``bash -c '…'`` scripts parsed for one command
SHELL_TOOLS = frozenset({"Bash", "Shell"})  # Claude Code and Codex (as hooks name it); Cursor

_WRITE_REDIRECTS = frozenset({">", ">>", ">|", "&>", "&>>", ">&"})
# Nodes whose commands run in a child process: a ``cd`` inside does not move the caller.
_CHILD_SCOPES = frozenset({"subshell", "command_substitution", "process_substitution"})
# Nodes whose body may run or not: a ``cd`` inside leaves the base unknown.
_MAYBE_SCOPES = frozenset(
    {
        "if_statement",
        "while_statement",
        "for_statement",
        "c_style_for_statement",
        "case_statement",
        "function_definition",
    }
)
_UNQUOTED_SPECIAL = re.compile(r"[*?\[{}]|^~")
_ESCAPE = re.compile(r"\\(.)", re.S)
_DQ_ESCAPE = re.compile(r'\\([$`"\\\n])')

Cwd = str | None  # "" = the event's cwd; relative or absolute; None = not known


@functools.cache
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))


def shell_writes(command: object, *, limit: int) -> tuple[str, ...]:
    """The files ``command`` clearly writes, in order, each once, at most ``limit`` of them.

    ``command`` is a shell tool's ``tool_input.command``: a string, or an argv list.
    Relative paths are relative to the event's ``cwd`` (``cd sub && rm a`` gives
    ``sub/a``); anything unclear, or not a string nor a list of strings, gives nothing.
    """
    walk = _Walk()
    if isinstance(command, str):
        walk.script(command, "")
    elif isinstance(command, list) and all(isinstance(arg, str) for arg in command):
        if sum(map(len, command)) <= MAX_COMMAND:
            walk.argv(list(command), "")
    if walk.failed:
        return ()
    return tuple(dict.fromkeys(walk.paths))[:limit]


class _Walk:
    """One command's walk: the paths found so far, and whether the whole is unclear."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.failed = False
        self.scripts = 0
        self.nodes = 0

    def script(self, text: str, cwd: Cwd) -> Cwd:
        """Walk a shell script's tree in the order it runs; returns the ``cwd`` it ends in."""
        self.scripts += 1
        data = text.encode("utf-8", "surrogatepass")
        if len(data) > MAX_COMMAND or self.scripts > MAX_SCRIPTS:
            self.failed = True
            return None
        tree = _parser().parse(data)
        if tree.root_node.has_error:
            self.failed = True
            return None
        return self._nodes(tree.root_node, cwd)

    def _nodes(self, root: tree_sitter.Node, cwd: Cwd) -> Cwd:
        # Iterative: ``a && b && …`` nests one level per command, too deep for recursion.
        stack: list[tree_sitter.Node | tuple[str, Cwd]] = [root]
        while stack and not self.failed:
            item = stack.pop()
            self.nodes += 1
            if self.nodes > MAX_NODES:
                self.failed = True
                break
            if isinstance(item, tuple):
                action, saved = item
                if action == "restore" or cwd != saved:
                    cwd = saved if action == "restore" else None
                continue
            node = item
            if node.type in ("heredoc_body", "comment"):
                continue
            if node.type in _CHILD_SCOPES:
                stack.append(("restore", cwd))
            elif node.type in _MAYBE_SCOPES:
                stack.append(("settle", cwd))
            elif node.type == "command":
                cwd = self._command(node, cwd)
            elif node.type == "file_redirect":
                self._redirect(node, cwd)
            stack.extend(reversed(node.named_children))
        return cwd

    def _command(self, node: tree_sitter.Node, cwd: Cwd) -> Cwd:
        name = node.child_by_field_name("name")
        if name is None:
            return cwd
        if self.nodes + node.named_child_count > MAX_NODES:  # its words are read before walked
            self.failed = True
            return cwd
        words = [
            _literal(name),
            *(_literal(arg) for arg in node.children_by_field_name("argument")),
        ]
        return self.argv(words, cwd)

    def argv(self, words: list[str | None], cwd: Cwd) -> Cwd:
        """A simple command's words (None: not a literal); returns the ``cwd`` after it."""
        command = shell_writers.unwrapped(words)
        if not command or command[0] is None:
            return cwd
        program, words = posixpath.basename(command[0]), command
        if program in ("cd", "pushd"):
            return _cd(words[1:], cwd)
        if program == "popd":
            return None
        if program in shell_writers.SHELLS:
            script = shell_writers.shell_script(words[1:])
            if script is not None:
                self.script(script, cwd)  # a child shell: its ``cd`` stays in it
            return cwd
        found = shell_writers.written(program, words[1:])
        if found is not None:
            base, targets = found
            here = cwd if base is None else _cd([base], cwd)
            self.paths.extend(_resolved(targets, here))
        return cwd

    def _redirect(self, node: tree_sitter.Node, cwd: Cwd) -> None:
        operator = next((child.type for child in node.children if not child.is_named), "")
        targets = node.children_by_field_name("destination")
        if operator not in _WRITE_REDIRECTS or not targets or targets[0].type == "number":
            return
        target = _literal(targets[0])
        if target is not None and target != "-":
            self.paths.extend(_resolved([target], cwd))


def _cd(args: list[str | None], cwd: Cwd) -> Cwd:
    operands = [arg for arg in args if arg is None or not arg.startswith("-")]
    if len(operands) != 1 or operands[0] is None:
        return None  # ``cd`` (home), ``cd -``, ``cd "$X"``
    target = operands[0]
    if target.startswith("/"):
        return posixpath.normpath(target)
    return None if cwd is None else _join(cwd, target)


def _join(cwd: str | None, path: str) -> str:
    joined = posixpath.normpath(posixpath.join(cwd or "", path))
    return "" if joined == "." else joined


def _resolved(targets: list[str], cwd: Cwd) -> Iterator[str]:
    for target in targets:
        if not target or target == "-" or (cwd is None and not target.startswith("/")):
            continue
        path = _join(cwd, target)
        if path and not path.startswith("/dev/") and path != "/":
            yield path


def _literal(node: tree_sitter.Node) -> str | None:
    """The word's value if it is one literal string, else None (an expansion, a glob…)."""
    text = node.text.decode("utf-8", "surrogateescape") if node.text is not None else ""
    match node.type:
        case "word":
            return None if _UNQUOTED_SPECIAL.search(text) else _ESCAPE.sub(r"\1", text)
        case "command_name":
            return _literal(node.named_children[0]) if node.named_child_count == 1 else None
        case "number":
            return text
        case "raw_string":
            return text[1:-1]
        case "string":
            if any(child.type != "string_content" for child in node.named_children):
                return None
            return _DQ_ESCAPE.sub(r"\1", text[1:-1])
        case "concatenation":
            parts = [_literal(child) for child in node.named_children]
            return None if None in parts else "".join(p for p in parts if p is not None)
    return None
