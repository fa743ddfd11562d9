"""The programs that write files, and which of their arguments name those files.

``shell.py`` walks the command's syntax; this reads one simple command's words, GNU style
(options anywhere before ``--``, clusters such as ``-rf``, ``--name=value``). A word that
is not a literal is None: where it could shift what the others mean (``cp $X a b``), the
command is unclear and names nothing.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from typing import NamedTuple

Words = list[str | None]
# (base directory for this command only, as ``git -C`` gives, or None; files written)
Found = tuple[str | None, list[str]]

SHELLS = frozenset({"bash", "sh", "zsh", "dash", "ksh"})


class Spec(NamedTuple):
    """The options of a program that take a value (the rest are flags)."""

    short: str = ""
    long: frozenset[str] = frozenset()


FLAGS_ONLY = Spec()


def parse(
    args: Words, spec: Spec = FLAGS_ONLY
) -> tuple[list[tuple[str, str | None]], Words] | None:
    """Options (name, value) and operands; None when an option's value is missing."""
    options: list[tuple[str, str | None]] = []
    operands: Words = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg is None or arg == "-" or not arg.startswith("-"):
            operands.append(arg)
        elif arg == "--":
            operands.extend(args[i:])
            break
        elif arg.startswith("--"):
            name, equals, value = arg.partition("=")
            if not equals and name in spec.long:
                if i >= len(args):
                    return None
                options.append((name, args[i]))
                i += 1
            else:
                options.append((name, value if equals else None))
        else:
            for at, flag in enumerate(arg[1:], 2):
                if flag in spec.short:
                    if at < len(arg):
                        options.append(("-" + flag, arg[at:]))
                    elif i < len(args):
                        options.append(("-" + flag, args[i]))
                        i += 1
                    else:
                        return None
                    break
                options.append(("-" + flag, None))
    return options, operands


def _leading(args: Words, spec: Spec) -> Words | None:
    """The words after a wrapper's own leading options (``sudo -u x rm f`` → ``rm f``)."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg is None:
            return None
        if arg == "--":
            return args[i + 1 :]
        if not arg.startswith("-") or arg == "-":
            return args[i:]
        i += 1
        if arg.startswith("--"):
            i += "=" not in arg and arg in spec.long
            continue
        for at, flag in enumerate(arg[1:], 2):
            if flag in spec.short:
                i += at == len(arg)
                break
    return []


_WRAPPERS: dict[str, Spec] = {
    "sudo": Spec("ugCDprtUT", frozenset({"--user", "--group", "--chdir", "--prompt"})),
    "nice": Spec("n", frozenset({"--adjustment"})),
    "timeout": Spec("sk", frozenset({"--signal", "--kill-after"})),
    "stdbuf": Spec("ioe", frozenset({"--input", "--output", "--error"})),
    "exec": Spec("a"),
    "nohup": Spec(),
    "time": Spec(),
    "builtin": Spec(),
    "command": Spec(),
}


def unwrapped(words: Words) -> Words | None:
    """The command a wrapper runs (``env A=1 timeout 5 sed …`` → ``sed …``); None if unclear."""
    for _ in range(8):
        if not words or words[0] is None:
            return words
        name = posixpath.basename(words[0])
        args = words[1:]
        if name == "env":
            rest = _leading(args, Spec("u", frozenset({"--unset"})))
            if rest is None or any(arg in ("-C", "-S") or arg == "--chdir" for arg in args):
                return None
            while rest and rest[0] is not None and "=" in rest[0]:
                rest = rest[1:]
        elif name == "command" and any(arg in ("-v", "-V") for arg in args[:2]):
            return None  # only says where a program is
        elif name in _WRAPPERS:
            rest = _leading(args, _WRAPPERS[name])
            if rest is not None and name == "timeout":
                rest = rest[1:]  # the duration
        else:
            return words
        if rest is None:
            return None
        words = rest
    return None


def shell_script(args: Words) -> str | None:
    """The script of ``bash -c 'script'`` (``-lc``, ``-e -c``, ``-o pipefail -c``…), else None."""
    given = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg is None:
            return None
        if arg in ("-o", "+o"):
            i += 2
            continue
        if arg[:1] in ("-", "+") and len(arg) > 1 and arg != "--":
            given = given or "c" in arg[1:]
        elif arg != "--":
            return arg if given else None
        i += 1
    return None


def _files(spec: Spec = FLAGS_ONLY) -> Callable[[Words], Found | None]:
    """Every operand is a file written (``rm``, ``touch``, ``tee``, ``truncate``)."""

    def found(args: Words) -> Found | None:
        parsed = parse(args, spec)
        if parsed is None:
            return None
        return None, [operand for operand in parsed[1] if operand is not None]

    return found


def _copies(
    spec: Spec, *, sources_go: bool = False, link: bool = False, makes_dirs: bool = False
) -> Callable[[Words], Found | None]:
    """``cp``, ``mv``, ``install`` and ``ln``: the destinations, and ``mv``'s sources."""

    def found(args: Words) -> Found | None:
        parsed = parse(args, spec)
        if parsed is None or None in parsed[1]:
            return None
        options, given = parsed
        operands = [operand for operand in given if operand is not None]
        names = {name for name, _ in options}
        if makes_dirs and names & {"-d", "--directory"}:
            return None  # ``install -d``: directories
        directory = next((v for n, v in options if n in ("-t", "--target-directory")), None)
        if directory is not None:
            sources = operands
        elif len(operands) == 1 and link:
            sources, directory = operands, "."
        elif len(operands) >= 2:
            *sources, destination = operands
            alone = len(sources) == 1 and not destination.endswith("/")
            if (alone and destination not in (".", "..")) or names & {
                "-T",
                "--no-target-directory",
            }:
                return None, [destination, *(sources if sources_go else [])]
            directory = destination
        else:
            return None
        names_in = [posixpath.join(directory, posixpath.basename(s.rstrip("/"))) for s in sources]
        return None, [*names_in, *(sources if sources_go else [])]

    return found


def _sed(args: Words) -> Found | None:
    """``sed -i``: the files after the script (every operand, given ``-e``/``-f``)."""
    in_place = scripted = False
    operands: Words = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg is None:
            return None
        if arg == "--":
            operands.extend(args[i:])
            break
        if arg.startswith("--"):
            name = arg.partition("=")[0]
            in_place = in_place or name == "--in-place"
            if name in ("--expression", "--file", "--line-length"):
                scripted = scripted or name != "--line-length"
                i += "=" not in arg
        elif arg.startswith("-") and arg != "-":
            for at, flag in enumerate(arg[1:], 2):
                if flag == "i":  # GNU ``-i[SUFFIX]``; BSD's suffix is the next word
                    in_place = True
                    following = args[i] if i < len(args) else None
                    if at == len(arg) and following is not None and _bsd_suffix(following):
                        i += 1
                    break
                if flag in "efl":
                    scripted = scripted or flag != "l"
                    i += at == len(arg)
                    break
        else:
            operands.append(arg)
    if not in_place or None in operands:
        return None
    return None, [operand for operand in operands[0 if scripted else 1 :] if operand]


def _bsd_suffix(word: str) -> bool:
    """``sed -i '' …`` or ``sed -i .bak …`` (macOS), never a script nor a path."""
    return word == "" or (word.startswith(".") and "/" not in word)


def _dd(args: Words) -> Found | None:
    return None, [arg[3:] for arg in args if arg is not None and arg.startswith("of=")]


def _git(args: Words) -> Found | None:
    """``git [-C dir] checkout|restore|rm|mv …``: the work-tree files it rewrites."""
    base: str | None = None
    i = 0
    while i < len(args):
        arg = args[i]
        if arg is None or arg.startswith(("--git-dir", "--work-tree")):
            return None
        if arg in ("-C", "-c"):
            value = args[i + 1] if i + 1 < len(args) else None
            if value is None:
                return None
            base = posixpath.join(base or "", value) if arg == "-C" else base
            i += 2
        elif arg.startswith("-"):
            i += 1
        else:
            break
    if i >= len(args) or args[i] not in _GIT:
        return None
    rest = args[i + 1 :]
    if None in rest:
        return None
    files = _GIT[str(args[i])]([arg for arg in rest if arg is not None])
    return None if files is None else (base, files)


def _git_checkout(args: list[str]) -> list[str] | None:
    if "--" in args:
        return args[args.index("--") + 1 :]
    if any(arg.startswith("-") and arg not in ("-f", "--force", "-q", "--quiet") for arg in args):
        return None  # ``-b``, ``--orphan``…: a branch operation
    operands = [arg for arg in args if not arg.startswith("-")]
    return operands[1:] if len(operands) >= 2 else None  # one operand: branch or file?


def _git_restore(args: list[str]) -> list[str] | None:
    parsed = parse(list(args), Spec("s", frozenset({"--source"})))
    if parsed is None:
        return None
    options, operands = parsed
    names = {name for name, _ in options}
    if "--pathspec-from-file" in names:
        return None
    if names & {"-S", "--staged"} and not names & {"-W", "--worktree"}:
        return []
    return [operand for operand in operands if operand is not None]


def _git_rm(args: list[str]) -> list[str] | None:
    parsed = parse(list(args))
    if parsed is None or {n for n, _ in parsed[0]} & {"--pathspec-from-file"}:
        return None
    if {n for n, _ in parsed[0]} & {"--cached", "-n", "--dry-run"}:
        return []
    return [operand for operand in parsed[1] if operand is not None]


def _git_mv(args: list[str]) -> list[str] | None:
    if any(arg in ("-n", "--dry-run") for arg in args):
        return []
    found = _MOVE(list(args))
    return None if found is None else found[1]


_MOVE = _copies(Spec("tS", frozenset({"--target-directory", "--suffix"})), sources_go=True)
_GIT: dict[str, Callable[[list[str]], list[str] | None]] = {
    "checkout": _git_checkout,
    "restore": _git_restore,
    "rm": _git_rm,
    "mv": _git_mv,
}
WRITERS: dict[str, Callable[[Words], Found | None]] = {
    "sed": _sed,
    "tee": _files(),
    "rm": _files(),
    "touch": _files(Spec("drt", frozenset({"--date", "--reference", "--time"}))),
    "truncate": _files(Spec("sr", frozenset({"--size", "--reference"}))),
    "cp": _copies(Spec("tS", frozenset({"--target-directory", "--suffix"}))),
    "mv": _MOVE,
    "install": _copies(
        Spec(
            "mogSt", frozenset({"--mode", "--owner", "--group", "--suffix", "--target-directory"})
        ),
        makes_dirs=True,
    ),
    "ln": _copies(Spec("tS", frozenset({"--target-directory", "--suffix"})), link=True),
    "dd": _dd,
    "git": _git,
}


def written(program: str, args: Words) -> Found | None:
    """What ``program args`` writes, or None when it writes nothing we can name."""
    writer = WRITERS.get(program)
    return None if writer is None else writer(args)
