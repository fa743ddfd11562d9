"""The image and compose.yaml on a real Docker engine (tests/process/docker_engine.py starts one).

The image is built from the repository's Dockerfile by ``docker compose up --build``, on
stand-in base images (no registry is reachable here), and the whole stack runs: Redis, two
replicas, nginx published on a free loopback port. The tests run in this file's order on
that one stack: the later ones stop and restart its parts. Select them with
``-m container``, leave them out with ``-m "not container"``.
"""

from __future__ import annotations

import collections
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest

from coordinator.config import MIB
from coordinator.routes import EVENTS, HOOK, of_workspace
from tests.event_feed import Feed
from tests.helpers import bearer
from tests.process import docker_engine
from tests.process.docker_engine import Engine, NoEngine, base_images, image_size, make_standins
from tests.servers import free_port

pytestmark = pytest.mark.container

ROOT = docker_engine.ROOT
PROJECT = "coordinator-test"
HOOK_ANSWERED = f'"route":"{HOOK}"[^\\n]*"status":200'
TOO_LARGE = '"status":413'
REPLICAS = ("coordinator-1", "coordinator-2")
# Certificates the machine added to its own trust store: where the network re-signs TLS,
# the build's pip needs them (the Dockerfile's EXTRA_CA_CERTS).
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    try:
        with docker_engine.engine() as running:
            yield running
    except FileNotFoundError as missing:
        if os.environ.get("CI"):
            pytest.fail(
                f"CI must run the container tests: {missing} is missing (.ci/run installs it)"
            )
        pytest.skip(f"{missing} is not installed")
    except NoEngine as reason:
        pytest.skip(f"no Docker engine can start here: {reason}")


@dataclass
class Stack:
    engine: Engine
    files: list[str]
    env: dict[str, str]
    url: str

    def compose(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        argv = ["docker", "compose", "--project-name", PROJECT, *self.files, *args]
        done = self.engine.run(*argv, timeout=timeout, check=False)
        if check and done.returncode != 0:
            logs = self.engine.run(*argv[: -len(args)], "logs", "--no-color", check=False)
            raise AssertionError(f"{' '.join(args)}: {done.stderr}\n{logs.stdout[-4000:]}")
        return done.stdout

    def id(self, service: str) -> str:
        return self.compose("ps", "--all", "--quiet", service).strip()

    def inspect(self, service: str, template: str) -> str:
        return self.engine.docker("inspect", "--format", template, self.id(service)).stdout.strip()

    def logs(self, service: str) -> str:
        done = self.engine.docker("logs", self.id(service))
        return done.stdout + done.stderr

    def wait_health(self, service: str, status: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while (now := self.inspect(service, "{{.State.Health.Status}}")) != status:
            assert time.monotonic() < deadline, f"{service} is {now}, not {status}"
            time.sleep(0.5)

    def exec(self, service: str, *argv: str) -> str:
        return self.compose("exec", "-T", service, *argv)


# Test-only changes, as a second compose file: nginx published on a free loopback port
# (instead of 8080 on every interface), the image's health check every second rather than
# every 10 s (its command is the image's), and no rate limit for the traffic that
# test_docker_stop_of_a_replica_under_traffic sends as fast as it can.
OVERRIDE = """\
services:
  coordinator-1: &replica
    environment:
      COORDINATOR_RATE_LIMIT: "0"
    healthcheck:
      interval: 1s
      retries: 2
  coordinator-2: *replica
  lb:
    ports: !override
      - "127.0.0.1:{port}:8080"
"""


@pytest.fixture(scope="module")
def stack(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    texts = [(ROOT / name).read_text() for name in ("Dockerfile", "compose.yaml")]
    make_standins(engine, base_images(*texts))
    port = free_port()
    override = tmp_path_factory.mktemp("compose") / "override.yaml"
    override.write_text(OVERRIDE.format(port=port))
    env = dict(engine.env)
    if "EXTRA_CA_CERTS" not in env and LOCAL_CAS.is_dir():
        env["EXTRA_CA_CERTS"] = "".join(p.read_text() for p in sorted(LOCAL_CAS.glob("*.crt")))
    files = ["--file", str(ROOT / "compose.yaml"), "--file", str(override)]
    running = Stack(Engine(env, engine.log), files, env, f"http://127.0.0.1:{port}")
    try:
        running.compose("up", "--build", "--detach", "--wait", timeout=900)
        yield running
    finally:
        running.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)


@dataclass
class Keys:
    ada: str
    grace: str


@pytest.fixture(scope="module")
def keys(stack: Stack) -> Keys:
    """A workspace and two keys, made with the image's own command (docs/deployment.md's way)."""
    made = stack.exec("coordinator-1", "coordinator", "workspaces", "create", "acme")
    assert made.startswith("created workspace acme"), made

    def key(user: str) -> str:
        out = stack.exec("coordinator-2", "coordinator", "keys", "create", "--workspace", "acme",
                         "--user", user)  # fmt: skip
        return out.strip().splitlines()[-1]

    return Keys(key("Ada"), key("Grace"))


def claim(conversation: str, path: str) -> dict[str, str]:
    return {"event": "preToolUse", "conversation_id": conversation, "file_path": path}


def logged(stack: Stack, pattern: str = HOOK_ANSWERED) -> list[int]:
    """How many request lines matching ``pattern`` each replica logged."""
    return [len(re.findall(pattern, stack.logs(name))) for name in REPLICAS]


def logged_since(
    stack: Stack, before: list[int], more: int, pattern: str = HOOK_ANSWERED
) -> list[int]:
    """The counts of ``logged`` once they grew by ``more`` (docker's logs can lag a moment)."""
    deadline = time.monotonic() + 10
    while sum(now := logged(stack, pattern)) < sum(before) + more and time.monotonic() < deadline:
        time.sleep(0.2)
    return now


def test_image_has_no_pip_nor_compiler_and_runs_as_a_non_root_user(stack: Stack) -> None:
    for name in REPLICAS:
        status = stack.exec(name, "cat", "/proc/1/status")
        (uid,) = re.findall(r"^Uid:\s+(.*)$", status, re.M)
        assert uid.split() == ["10001"] * 4, "PID 1 runs as uid 10001, real and effective"
        assert "coordinator" in stack.exec(name, "cat", "/proc/1/cmdline")
    found = stack.exec(
        "coordinator-1", "sh", "-c", "for p in pip pip3 gcc cc make; do command -v $p; done; true"
    )
    assert found.strip() == "", found
    # Neither the virtualenv's interpreter nor the base image's can import pip.
    for python in ("python", "/usr/local/bin/python3"):
        spec = stack.exec(
            "coordinator-1", python, "-c", "import importlib.util as u; print(u.find_spec('pip'))"
        )
        assert spec.strip() == "None", (python, spec)
    # The installed package, Lua scripts included; no source tree.
    lua = stack.exec(
        "coordinator-1", "sh", "-c", "ls /opt/venv/lib/python3.*/site-packages/coordinator/lua"
    )
    assert sorted(lua.split()) == sorted(
        p.name for p in (ROOT / "coordinator" / "lua").glob("*.lua")
    )
    assert (
        stack.exec("coordinator-1", "sh", "-c", "test -e /src || echo absent").strip() == "absent"
    )
    image = stack.inspect("coordinator-1", "{{.Image}}")
    history = stack.engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", image)
    assert "EXTRA_CA_CERTS" not in history.stdout, "the build stage's argument stays out"
    base = re.findall(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)[-1]
    total, ours = image_size(stack.engine, image, base)
    print(f"image: {total / 1e6:.1f} MB, of which the project's layers {ours / 1e6:.1f} MB")
    assert ours < 100e6, "the project's layers were about 43 MB (docs/deployment.md, Docker)"


def test_claims_through_nginx_are_shared_by_the_replicas_and_streamed(
    stack: Stack, keys: Keys
) -> None:
    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=stack.url, timeout=10) as http:
            request = http.stream("GET", of_workspace(EVENTS, "acme"), headers=bearer(keys.ada))
            async with request as response:
                assert response.status_code == 200
                feed = Feed(response)
                assert await feed.next() == (":", "subscribed")
                answer = await http.post(
                    HOOK, json=claim("ada", "src/a.py"), headers=bearer(keys.ada)
                )
                assert answer.json() == {"permission": "allow"}, answer.text
                with anyio.fail_after(10):
                    while (event := await feed.event())["type"] != "reserved":
                        pass
                assert (event["path"], event["user"]) == ("src/a.py", "Ada")

    before = logged(stack)
    anyio.run(scenario)
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        for _ in range(4):
            answer = http.post(HOOK, json=claim("grace", "src/a.py"), headers=bearer(keys.grace))
            assert answer.json()["permission"] == "deny", answer.text
            assert "reserved by Ada" in answer.json()["message"]
    after = logged_since(stack, before, 5)
    # Five answers, spread round-robin: each replica denied Ada's claim to Grace at least
    # once, though only one of them took it (the state is Redis's).
    assert sum(after) - sum(before) == 5
    assert all(b > a for a, b in zip(before, after, strict=True)), (before, after)


def test_metrics_and_body_limits_through_nginx(stack: Stack, keys: Keys) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        hook_series = r'^coordinator_\w+\{[^}]*route="' + re.escape(HOOK) + '"'
        assert re.search(hook_series, metrics.text, re.M), metrics.text[:2000]
        headers = {**bearer(keys.ada), "Content-Type": "application/json"}
        # Just over 1 MiB: the service's own 413; far over: nginx's, in the same form.
        for size, replicas_answered in ((MIB + 1, 1), (3 * MIB, 0)):
            before = logged(stack, TOO_LARGE)
            answer = http.post(HOOK, content=b" " * size, headers=headers)
            assert answer.status_code == 413
            assert answer.json()["error"] == "payload_too_large"
            now = logged_since(stack, before, replicas_answered, TOO_LARGE)
            assert sum(now) - sum(before) == replicas_answered


def test_docker_stop_of_a_replica_under_traffic(stack: Stack, keys: Keys) -> None:
    statuses: list[int] = []
    stopped = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=stack.url, timeout=30) as http:
            after_stop = 0
            while after_stop < 30 and len(statuses) < 3000:
                body = claim("ada", f"traffic/{len(statuses) % 50}.py")
                statuses.append(http.post(HOOK, json=body, headers=bearer(keys.ada)).status_code)
                after_stop += stopped.is_set()

    sender = threading.Thread(target=traffic)
    sender.start()
    try:
        while len(statuses) < 20:
            time.sleep(0.05)
        began = time.monotonic()
        stack.engine.docker("stop", stack.id("coordinator-1"), timeout=60)  # SIGTERM
        took = time.monotonic() - began
    finally:
        stopped.set()
        sender.join(timeout=120)
    try:
        answers = collections.Counter(statuses)
        print(f"docker stop: {took:.2f} s, answers {dict(answers)}")
        # Every request answered: none sent on a connection as the stopping replica closed
        # it (the drain, COORDINATOR_DRAIN, and nginx's shorter keepalive_timeout).
        assert answers.keys() == {200} and answers[200] > 30, answers
        assert stack.inspect("coordinator-1", "{{.State.ExitCode}}") == "0"
        assert took < 5, f"docker stop took {took:.1f} s"
        log = stack.logs("coordinator-1")
        assert "Application shutdown complete." in log and "Traceback" not in log, log[-3000:]
    finally:
        stack.compose("start", "coordinator-1")
        stack.wait_health("coordinator-1", "healthy")


def test_redis_restart_keeps_keys_and_reservations(stack: Stack, keys: Keys) -> None:
    assert "yes" in stack.exec("redis", "redis-cli", "config", "get", "appendonly")
    stack.compose("restart", "redis")
    stack.wait_health("redis", "healthy")
    with httpx.Client(base_url=stack.url, timeout=10) as http:
        deadline = time.monotonic() + 30
        while (
            answer := http.post(HOOK, json=claim("grace", "src/a.py"), headers=bearer(keys.grace))
        ).status_code != 200:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.5)
        assert answer.json()["permission"] == "deny", answer.text
        assert "reserved by Ada" in answer.json()["message"]
        renewed = http.post(HOOK, json=claim("ada", "src/a.py"), headers=bearer(keys.ada))
        assert renewed.json() == {"permission": "allow"}, renewed.text


def test_healthcheck_follows_redis(stack: Stack) -> None:
    stack.compose("stop", "redis")
    try:
        for name in REPLICAS:
            stack.wait_health(name, "unhealthy")
    finally:
        stack.compose("start", "redis")
    for name in REPLICAS:
        stack.wait_health(name, "healthy")


def test_down_leaves_nothing_behind(stack: Stack) -> None:
    stack.compose("down", "--volumes", "--timeout", "10")
    label = f"label=com.docker.compose.project={PROJECT}"
    for kind in (["ps", "--all"], ["volume", "ls"], ["network", "ls"]):
        assert stack.engine.lines(*kind, "--quiet", "--filter", label) == [], kind
    assert stack.engine.lines("ps", "--quiet") == []
