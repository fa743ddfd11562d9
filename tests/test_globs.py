"""Directories and globs as claims: their keys, and their matchers run as Lua in Redis,
held to a reference (Python's own matching of the same glob) both ways."""

from __future__ import annotations

import re

import pytest
from redis.asyncio import Redis

from coordinator.errors import InvalidField
from coordinator.globs import claim_key, is_pattern, matcher

pytestmark = pytest.mark.anyio

PATHS = [
    "src/a.test.ts",
    "src/x/a.test.ts",
    "src/x/y/b.test.ts",
    "src/a.ts",
    "src/a.test.tsx",
    "lib/a.test.ts",
    "src/api/users.py",
    "src/api/v2/users.py",
    "src/apiary.py",
    "src/api",
    "docs/readme.md",
    "docs/a/b/c.md",
    "src/x.test.ts/inner.ts",
    "src/%.ts",
    "src/a-b.ts",
]
GLOBS = [
    "src/**/*.test.ts",
    "src/api/",
    "src/*.ts",
    "**/*.md",
    "docs/**",
    "src/?.ts",
    "src/[ab]*.ts",
    "src/[!a]*.ts",
    "src/**/users.py",
    "src/%.ts",
    "src/a-b.ts*",
]


def reference(glob: str, path: str) -> bool:
    """The same glob as a Python regular expression (gitignore-like ``**``)."""
    if glob.endswith("/"):
        return path.startswith(glob)
    out = ""
    segments = glob.split("/")
    for i, seg in enumerate(segments):
        last = i == len(segments) - 1
        if seg == "**":
            out += ".*" if last else "(?:.*/)?"
            continue
        j = 0
        while j < len(seg):
            c = seg[j]
            if c == "*":
                out += "[^/]*"
            elif c == "?":
                out += "[^/]"
            elif c == "[":
                end = seg.index("]", j + 2)
                body = seg[j + 1 : end]
                out += "[^/" + re.escape(body[1:]) + "]" if body[0] == "!" else f"[{body}]"
                j = end
            else:
                out += re.escape(c)
            j += 1
        out += "" if last else "/"
    return re.fullmatch(out, path) is not None


async def lua_matches(redis: Redis, spec: str, path: str) -> bool:
    pats = spec.split("\t")[0].split("\n")
    script = "for _, p in ipairs(ARGV) do if string.find(KEYS[1], p) then return 1 end end return 0"
    return bool(await redis.eval(script, 1, path, *pats))


@pytest.mark.parametrize("glob", GLOBS)
async def test_the_lua_matcher_agrees_with_the_reference(redis: Redis, glob: str) -> None:
    spec = matcher(glob)
    for path in PATHS:
        assert await lua_matches(redis, spec, path) == reference(glob, path), (glob, path)


async def test_a_matcher_is_case_folded(redis: Redis) -> None:
    assert await lua_matches(redis, matcher("SRC/**/*.Test.TS"), "src/x/a.test.ts")


def test_directories_and_globs_are_told_from_files() -> None:
    assert is_pattern("src/api/") and is_pattern("src\\api\\") and is_pattern("src/*.ts")
    assert not is_pattern("src/api") and not is_pattern("src/a.ts")


def test_keys_are_relative_to_the_root_in_any_separator() -> None:
    assert claim_key("/repo/src/api/", ["/repo"])[0] == "src/api/"
    assert claim_key("C:\\repo\\src\\api\\", ["c:/repo"])[0] == "src/api/"
    assert claim_key("src/**/*.ts", ["/repo"], "/repo")[0] == "src/**/*.ts"
    assert claim_key("/repo/a.ts", ["/repo"]) == ("a.ts", "")


@pytest.mark.parametrize(
    ("glob", "says"),
    [
        ("src/{a,b}.ts", "brace"),
        ("src/[ab.ts", "never closes"),
        ("src/a**.ts", "whole path segment"),
        ("**/**/**/**/x", "at most 3"),
        ("src/[/].ts", "never closes"),
        ("src/[].ts", "is empty"),
    ],
)
def test_a_bad_glob_says_what_is_wrong(glob: str, says: str) -> None:
    with pytest.raises(InvalidField, match=re.escape(says)):
        claim_key(glob)
