from __future__ import annotations

import pytest

from coordinator.errors import InvalidPath
from coordinator.paths import normalise_file


@pytest.mark.parametrize(
    ("path", "roots", "expected"),
    [
        ("src/a.ts", [], "src/a.ts"),
        ("./src//a.ts", [], "src/a.ts"),
        ("src\\auth\\login.ts", [], "src/auth/login.ts"),
        ("src/x/../a.ts", [], "src/a.ts"),
        ("/home/b/repo/src/a.ts", ["/home/b/repo"], "src/a.ts"),
        ("/home/b/repo/src/a.ts", ["/home/b/repo/"], "src/a.ts"),
        ("/Users/a/work/repo/src/a.ts", ["/Users/a/work/repo"], "src/a.ts"),
        ("/elsewhere/a.ts", ["/home/b/repo"], "/elsewhere/a.ts"),
        ("/home/b/repository/a.ts", ["/home/b/repo"], "/home/b/repository/a.ts"),
        ("/r/pkg/a.ts", ["/r", "/r/pkg"], "a.ts"),
        ("C:\\repo\\src\\a.ts", ["C:\\repo"], "src/a.ts"),
        ("P:/repo/x", ["/p:/repo"], "x"),
        ("C:\\other\\a.ts", ["C:\\repo"], "c:/other/a.ts"),
        ("/r/a/../b.ts", ["/r"], "b.ts"),
        ("C:/REPO/w.ts", ["c:/repo"], "w.ts"),
        ("/Users/A/Repo/src/x.ts", ["/Users/a/repo"], "src/x.ts"),
        ("p:/Repo/x", ["/P:/rEPO/"], "x"),
    ],
)
def test_paths_become_root_relative_posix_keys(path: str, roots: list[str], expected: str) -> None:
    assert normalise_file(path, roots) == expected


def test_two_checkouts_share_one_key() -> None:
    mine = normalise_file("/home/b/repo/src/auth/login.ts", ["/home/b/repo"])
    theirs = normalise_file("C:\\Users\\a\\repo\\src\\auth\\login.ts", ["C:/Users/a/repo"])
    assert mine == theirs == "src/auth/login.ts"


@pytest.mark.parametrize(
    "path",
    ["../secret", "src/../../x", "/..", "a\0b", "x" * 1025, "", "  ", "/r", "c:/.."],
)
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(InvalidPath):
        normalise_file(path, ["/r"])


@pytest.mark.parametrize(
    ("path", "roots", "cwd", "expected"),
    [
        ("a.ts", ["/repo"], "/repo/pkg", "pkg/a.ts"),
        ("../b.ts", ["/repo"], "/repo/pkg", "b.ts"),
        ("/repo/pkg/a.ts", ["/repo/pkg"], "/repo/pkg", "a.ts"),
        ("src/a.ts", ["/repo"], "/repo", "src/a.ts"),
        ("src\\a.ts", ["P:/repo"], "P:/repo", "src/a.ts"),
        ("src/a.ts", [], None, "src/a.ts"),
    ],
)
def test_relative_paths_are_taken_from_cwd(
    path: str, roots: list[str], cwd: str | None, expected: str
) -> None:
    assert normalise_file(path, roots, cwd) == expected


def test_a_relative_path_may_not_climb_out_of_every_root() -> None:
    with pytest.raises(InvalidPath):
        normalise_file("../../etc/passwd", ["/repo"], "/repo/pkg")
    with pytest.raises(InvalidPath):
        normalise_file("../x", ["/repo"], "/repo")
