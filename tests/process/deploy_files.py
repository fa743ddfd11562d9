"""The deployment files, read, for tests/process/test_deploy.py's checks that need no Docker engine
(tests/process/test_container.py builds and runs them on one).

The Dockerfile is read with Docker's own parser (the ``dockerfile`` package wraps
BuildKit's); compose.yaml with PyYAML; deploy/nginx.conf with enough of its grammar to find
blocks and directives, and to point its listen port and upstreams at local processes.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dockerfile
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction as BuildKit's parser splits it."""

    keyword: str  # upper case: FROM, RUN, COPY, ...
    args: tuple[str, ...]
    flags: tuple[str, ...]
    exec_form: bool  # a JSON array (CMD ["a", "b"]) rather than a shell string
    line: int


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        """The one that counts: Docker keeps the last CMD, USER, HEALTHCHECK of a stage."""
        found = self.all(keyword)
        return found[-1] if found else None


def read_dockerfile(path: Path = DOCKERFILE) -> list[Stage]:
    stages: list[Stage] = []
    current: list[Instruction] = []
    parsed: Any = dockerfile.parse_file(str(path))
    for command in parsed:
        instruction = Instruction(
            str(command.cmd).upper(),
            tuple(command.value),
            tuple(command.flags),
            bool(command.json),
            int(command.start_line),
        )
        if instruction.keyword == "FROM":
            base, *rest = instruction.args
            name = rest[1] if len(rest) == 2 and rest[0].upper() == "AS" else None
            stages.append(Stage(base, name, ()))
            current = []
        elif not stages:
            raise ValueError(f"line {instruction.line}: {instruction.keyword} before any FROM")
        current.append(instruction)
        stages[-1] = Stage(stages[-1].base, stages[-1].name, tuple(current))
    return stages


def serve_port(stage: Stage) -> int:
    """The port the stage's CMD serves on (its ``--port``)."""
    cmd = stage.last("CMD")
    if cmd is None or "--port" not in cmd.args:
        raise ValueError("the final stage's CMD names no --port")
    return int(cmd.args[cmd.args.index("--port") + 1])


def dockerignore_allows(relative: str, path: Path = DOCKERIGNORE) -> bool:
    """Whether the build context keeps ``relative`` (a path in the repository). Enough of
    Docker's rules for our file: each line a pattern, ``!`` re-includes, the last match wins,
    and a pattern that matches a folder matches what is inside it."""
    keep = True
    parts = Path(relative).parts
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        for depth in range(1, len(parts) + 1):
            if _glob(pattern, "/".join(parts[:depth])):
                keep = negate
                break
    return keep


def _glob(pattern: str, path: str) -> bool:
    regex = ""
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        regex += {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}.get(
            token, re.escape(token)
        )
    return re.fullmatch(regex, path) is not None


def read_compose(path: Path = COMPOSE) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def replicas(compose: Mapping[str, Any]) -> list[str]:
    """The services built from this repository's Dockerfile."""
    return [name for name, service in compose["services"].items() if "build" in service]


def local_nginx_conf(listen: int, upstreams: Mapping[str, int], conf: Path = NGINX_CONF) -> str:
    """deploy/nginx.conf with its ``listen`` port on loopback and each upstream
    ``host:port`` pointed at a local port; each must be found exactly once."""
    text = conf.read_text()
    swaps = {r"listen\s+\d+;": f"listen 127.0.0.1:{listen};"}
    for host_port, port in upstreams.items():
        swaps[rf"server\s+{re.escape(host_port)}(?=[\s;])"] = f"server 127.0.0.1:{port}"
    for pattern, replacement in swaps.items():
        text, count = re.subn(pattern, replacement, text)
        if count != 1:
            raise ValueError(f"{pattern!r} found {count} times in {conf}")
    return text


def nginx_blocks(text: str, opening: str) -> list[str]:
    """The bodies of the blocks of deploy/nginx.conf whose opening line matches the regex
    ``opening`` (say ``upstream coordinator``), comments removed."""
    text = re.sub(r"#[^\n]*", "", text)
    bodies = []
    for match in re.finditer(rf"{opening}\s*\{{", text):
        depth, at = 1, match.end()
        while depth:
            depth += {"{": 1, "}": -1}.get(text[at], 0)
            at += 1
        bodies.append(text[match.end() : at - 1])
    return bodies


def directives(block: str) -> dict[str, list[list[str]]]:
    """A block's own directives (not those of blocks inside it): name -> the arguments of
    each time it appears."""
    flat = re.sub(r"\{[^{}]*\}", ";", block)
    while "{" in flat:
        flat = re.sub(r"\{[^{}]*\}", ";", flat)
    found: dict[str, list[list[str]]] = {}
    for statement in flat.split(";"):
        words = shlex.split(statement)
        if words:
            found.setdefault(words[0], []).append(words[1:])
    return found
