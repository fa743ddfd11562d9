"""The briefing's shape: what goes first, what is grouped, and how it fits in 2 KB.

A small team's briefing lists each file others hold on a line of its own (the original
format). Past ``FILE_LINES`` files, they are grouped by holder and directory
(``src/module9/ (10 files) — Developer B``). Either way, what concerns the agent comes
first: files in the directories where it holds files, then those near them or under the
directory it works in. Every section is then cut short, with how many more there are,
until the whole briefing fits in ``BUDGET`` bytes, so that a hundred agents' state costs
an agent no more context than a handful's.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from itertools import accumulate

from coordinator.errors import InvalidPath
from coordinator.globs import is_pattern
from coordinator.models import Briefing
from coordinator.paths import fold_case, normalise_file
from coordinator.symbol_claims import display

BUDGET = 2048  # bytes of UTF-8, the whole briefing
FILE_LINES = 20  # up to this many files others hold are listed one a line
MAX_LINE = 160  # characters of one line; a longer one is cut with "…"
HEADER = "Team briefing:"
SEPARATOR = "\n\n"


class Section:
    """A titled list whose lines are in order of importance. Each line stands for
    ``counts[i]`` things (a group of files for several), ``total`` for all of them."""

    def __init__(
        self,
        title: str,
        lines: Sequence[str],
        total: int,
        counts: Sequence[int] | None = None,
        share: int = 1,
        whole_lines: bool = False,
    ) -> None:
        self.title = title
        # Lines of the team's text are cut; a line telling the agent what to do is not.
        self.lines = [f"  - {line if whole_lines else _cut(line, MAX_LINE)}" for line in lines]
        self.total = total
        self.share = share  # its weight when the budget is shared out
        # What the first n lines take (bytes, with their newlines) and stand for, by n.
        self._bytes = list(accumulate((len(line.encode()) + 1 for line in self.lines), initial=0))
        self._counts = list(accumulate(counts or [1] * len(self.lines), initial=0))

    def more(self, shown: int) -> int:
        return max(self.total - self._counts[shown], 0)

    def text(self, shown: int) -> str:
        body = self.lines[:shown]
        hidden = self.more(shown)
        if hidden:
            body.append(f"  … and {hidden} more")
        return "\n".join([f"{self.title}:", *(body or ["  (none)"])])

    def size(self, shown: int) -> int:
        """len(self.text(shown).encode()), without building it."""
        size = len(self.title.encode()) + 1 + self._bytes[shown]
        hidden = self.more(shown)
        if hidden:
            size += len(f"  … and {hidden} more".encode()) + 1
        elif not shown:
            size += len("  (none)") + 1
        return size - 1  # no newline after the last line


def fit(sections: Sequence[Section], budget: int = BUDGET) -> str:
    """The briefing: its header and sections, each cut short from its end, the one that
    takes the most bytes for its share first, until the whole is at most ``budget``."""
    shown = [len(section.lines) for section in sections]
    sizes = [section.size(n) for section, n in zip(sections, shown, strict=True)]
    total = len(HEADER) + sum(len(SEPARATOR) + size for size in sizes)
    while total > budget:
        cuttable = [i for i, n in enumerate(shown) if n > 0]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda i: sizes[i] / sections[i].share)
        shown[widest] -= 1
        cut = sections[widest].size(shown[widest])
        total += cut - sizes[widest]
        sizes[widest] = cut
    texts = [section.text(n) for section, n in zip(sections, shown, strict=True)]
    return SEPARATOR.join([HEADER, *texts])


def lock_lines(briefing: Briefing) -> tuple[list[str], list[int]]:
    """The lines of the files others hold, nearest the agent first, and how many files
    each stands for: one a file for a small team, else one per holder and directory."""
    near = Nearness(briefing.folders, briefing.focus)
    if briefing.locks_total <= FILE_LINES:
        locks = sorted(briefing.locks, key=lambda lock: near.rank(lock.file_path))
        lines = [
            f"{display(lock.file_path, lock.symbol)} ({lock.user_name or 'unknown'})"
            for lock in locks
        ]
        return lines, [1] * len(lines)
    groups: dict[tuple[str, str], list[str]] = {}
    for lock in briefing.locks:
        path, holder = lock.file_path, lock.user_name or "unknown"
        # A claim of a directory (src/api/) or a glob is a line of its own: it names
        # files it holds, and it is no file of the directory it is in.
        if is_pattern(path):
            folder = path
        else:
            folder = path.rpartition("/")[0]  # posixpath.dirname, at a third of the cost
        groups.setdefault((folder, holder), []).append(path)
    ranked = sorted(groups.items(), key=lambda group: near.rank(group[1][0]))
    lines = [
        f"{paths[0]} ({holder})"
        if len(paths) == 1
        else f"{folder or '.'}/ ({len(paths)} files) — {holder}"
        for (folder, holder), paths in ranked
    ]
    return lines, [len(paths) for _, paths in ranked]


class Nearness:
    """How near a file is to the agent: 0 in a directory where it holds files, 1 below
    one of those or in or below the directory it works in, 2 elsewhere.
    Paths compare as their locks do, case-insensitively."""

    def __init__(self, folders: Sequence[str], focus: str | None) -> None:
        self.folders = {fold_case(folder) for folder in folders}
        # The root holds everything: being near it says nothing.
        self.trees = [f"{folder}/" for folder in self.folders if folder]
        if focus:
            self.trees.append(f"{fold_case(focus)}/")

    def rank(self, path: str) -> int:
        folder = fold_case(posixpath.dirname(path))
        if folder in self.folders:
            return 0
        inside = f"{folder}/"
        return 1 if any(inside.startswith(tree) for tree in self.trees) else 2


def focus_of(cwd: str | None, roots: Sequence[str]) -> str | None:
    """The directory an agent works in, as a key (relative to its project's root), or
    None when that is the root itself or unknown."""
    if not cwd or not roots:
        return None
    try:
        return normalise_file(cwd, roots)
    except InvalidPath:  # the root itself, or no path at all
        return None


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"
