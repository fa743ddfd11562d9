"""The deployment files, read and run without Docker (for tests/test_deploy.py).

No Docker engine runs on our machines, so the image is never built. Instead the Dockerfile
is read with Docker's own parser (the ``dockerfile`` package wraps BuildKit's), and its
build stage is carried out by hand in a folder that stands for the image's ``/``: the
files it COPYs, then its RUN lines, with the path the final stage copies out (the
virtualenv) moved under that folder. The final stage's ENV, CMD and HEALTHCHECK then run
as local processes from that virtualenv (tests/deployment.py), with the port swapped for a
free one, and so do compose.yaml's Redis and nginx with deploy/nginx.conf.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dockerfile
import yaml

ROOT = Path(__file__).resolve().parent.parent
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


def env_pairs(instruction: Instruction) -> list[tuple[str, str]]:
    args = instruction.args
    return list(zip(args[::2], args[1::2], strict=True))


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


@dataclass
class Image:
    """The image, as built outside Docker: ``root`` stands for its ``/``."""

    root: Path
    moved: dict[str, Path]  # image path -> where it is here
    env: dict[str, str]
    cmd: list[str]
    healthcheck: list[str]
    port: int  # the port CMD serves on (its --port), which EXPOSE and HEALTHCHECK name too

    def command(self, port: int) -> list[str]:
        """CMD, serving on ``port`` of the loopback interface instead of 0.0.0.0:8080, its
        program found on the image's PATH (so: in the image's virtualenv)."""
        argv = _swap_option(self.cmd, "--port", str(self.port), str(port))
        argv = _swap_option(argv, "--host", "0.0.0.0", "127.0.0.1")
        program = shutil.which(argv[0], path=self.env["PATH"])
        if program is None:
            raise FileNotFoundError(f"{argv[0]} is not on the image's PATH {self.env['PATH']}")
        return [program, *argv[1:]]

    def health_command(self, port: int) -> list[str]:
        old = f"127.0.0.1:{self.port}"
        if sum(arg.count(old) for arg in self.healthcheck) != 1:
            raise ValueError(f"HEALTHCHECK does not name {old} exactly once: {self.healthcheck}")
        argv = [arg.replace(old, f"127.0.0.1:{port}") for arg in self.healthcheck]
        program = shutil.which(argv[0], path=self.env["PATH"])
        if program is None:
            raise FileNotFoundError(f"{argv[0]} is not on the image's PATH")
        return [program, *argv[1:]]

    def in_image(self, path: str) -> bool:
        """Whether a path found here lies in what the image copied from its build stage."""
        return any(Path(path).is_relative_to(here) for here in self.moved.values())


def _swap_option(argv: list[str], option: str, old: str, new: str) -> list[str]:
    at = argv.index(option)
    if argv[at + 1] != old:
        raise ValueError(f"{option} is {argv[at + 1]!r} in {argv}, not {old!r}")
    return [*argv[: at + 1], new, *argv[at + 2 :]]


def build_outside_docker(root: Path, stages: list[Stage] | None = None) -> Image:
    """Carry out the build stage in ``root``, and read the final stage's run-time settings.

    ``python`` and ``pip`` in RUN lines are this test run's interpreter and its pip (the
    base image's are Python 3.11 and its pip); anything but FROM, WORKDIR, COPY and RUN in
    the build stage is refused, so that nothing is silently left out."""
    stages = read_dockerfile() if stages is None else stages
    build, final = stages[0], stages[-1]
    copied_out = [i for i in final.all("COPY") if f"--from={build.name}" in i.flags]
    moved: dict[str, Path] = {}
    for copy in copied_out:
        source, destination = copy.args
        # Scripts in a virtualenv name their interpreter by absolute path: it must not move.
        if source != destination:
            raise ValueError(f"line {copy.line}: {source} is copied to {destination}")
        moved[source] = root / source.lstrip("/")

    def here(text: str) -> str:
        for image_path, local in moved.items():
            text = text.replace(image_path, str(local))
        return text

    tools = root / "build-tools"
    tools.mkdir(parents=True)
    (tools / "python").symlink_to(sys.executable)
    (tools / "pip").write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m pip "$@"\n')
    (tools / "pip").chmod(0o755)
    build_env = {**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"}

    workdir = root
    for instruction in build.instructions:
        match instruction.keyword:
            case "FROM":
                pass
            case "WORKDIR":
                workdir = root / instruction.args[0].lstrip("/")
                workdir.mkdir(parents=True, exist_ok=True)
            case "COPY":
                *sources, destination = instruction.args
                target = workdir / destination
                for source in sources:
                    if not dockerignore_allows(source):
                        raise ValueError(f".dockerignore leaves {source} out of the context")
                    origin = ROOT / source
                    if origin.is_dir():
                        shutil.copytree(
                            origin, target, ignore=shutil.ignore_patterns("__pycache__")
                        )
                    else:
                        target.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(origin, target / origin.name)
            case "RUN":
                line = here(instruction.args[0])
                subprocess.run(
                    ["sh", "-c", line], cwd=workdir, env=build_env, check=True, timeout=600
                )
            case other:
                raise ValueError(f"line {instruction.line}: {other} in the build stage")

    env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "HOME": str(root)}
    for instruction in final.all("ENV"):
        for name, value in env_pairs(instruction):
            env[name] = here(value).replace("$PATH", env["PATH"])
    cmd, health = final.last("CMD"), final.last("HEALTHCHECK")
    if cmd is None or health is None or not cmd.exec_form or not health.exec_form:
        raise ValueError("the final stage needs CMD and HEALTHCHECK, both in exec form")
    if health.args[0] != "CMD":
        raise ValueError(f"HEALTHCHECK {health.args[0]}")
    return Image(root, moved, env, list(cmd.args), list(health.args[1:]), serve_port(final))


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
