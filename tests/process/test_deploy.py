"""The Dockerfile, compose.yaml and deploy/nginx.conf, checked without Docker.

tests/process/test_container.py builds the image and runs the stack on a real engine; these
run everywhere, engine or not, in seconds: the Dockerfile read with BuildKit's parser
(tests/process/deploy_files.py), compose.yaml validated against the Compose specification's
schema and its parts checked against each other, and nginx with deploy/nginx.conf in front of
two local replicas, for what the engine test does not look at: event streams through nginx in detail
(keepalives, a replica's SIGTERM ending its stream), the events path left unbuffered, and
replicas stopped one after the other under traffic without a request lost.
"""

from __future__ import annotations

import asyncio
import functools
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from coordinator.models import session_id_for
from coordinator.routes import EVENTS, HOOK, of_workspace
from tests.helpers import bearer, provision, stop
from tests.process.deploy_files import (
    COMPOSE,
    NGINX_CONF,
    ROOT,
    directives,
    dockerignore_allows,
    nginx_blocks,
    read_compose,
    read_dockerfile,
    replicas,
    serve_port,
)
from tests.process.nginx_front import (
    HOOK_ANSWERED,
    HOOK_LINE,
    PROMPT,
    STREAMED,
    Deployment,
    HeldStream,
    Process,
    Traffic,
    answered_a_hook,
    binary,
    ends_within,
    first_event_seconds,
    lines_of,
    open_stream,
    served_by,
    start_nginx,
    start_replica,
    wait_until,
)
from tests.servers import free_port, refuses, running

BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|make|build-essential|apt-get|apk|pip|git)\b")
# The one use of pip that the final stage may make: removing the base image's own.
PIP_REMOVED = re.compile(r"python -m pip uninstall --yes [^&]*\bpip setuptools wheel\b")


# --- The Dockerfile, read ---------------------------------------------------------------


def test_dockerfile_builds_in_a_first_stage_and_ships_only_the_virtualenv() -> None:
    stages = read_dockerfile()
    assert len(stages) == 2
    build, final = stages
    for stage in stages:
        _, _, tag = stage.base.partition(":")
        assert tag and tag != "latest", f"{stage.base}: pin the base image by tag"
    # The virtualenv's interpreter is the base image's: both stages share it.
    assert build.base == final.base
    assert build.name is not None
    copies = final.all("COPY")
    assert copies and all(f"--from={build.name}" in copy.flags for copy in copies), (
        "the final stage copies nothing from the build context"
    )
    runs = " ".join(run.args[0] for run in final.all("RUN"))
    assert PIP_REMOVED.search(runs), "the final stage removes the base image's pip"
    assert not BUILD_TOOLS.search(PIP_REMOVED.sub("", runs)), runs
    assert final.all("ENTRYPOINT") == [], "CMD alone, so `docker run IMAGE coordinator ...` works"


def test_dockerfile_runs_as_a_fixed_non_root_user_and_checks_health() -> None:
    final = read_dockerfile()[-1]
    user = final.last("USER")
    assert user is not None
    uid, _, gid = user.args[0].partition(":")
    # Numeric, so that runAsNonRoot-style checks can tell without reading /etc/passwd.
    assert uid.isdigit() and int(uid) >= 1000 and gid.isdigit()
    created = " ".join(run.args[0] for run in final.all("RUN"))
    assert f"--uid {uid}" in created and f"--gid {gid}" in created
    instructions = list(final.instructions)
    assert instructions.index(user) < instructions.index(final.all("CMD")[-1])

    health, cmd = final.last("HEALTHCHECK"), final.last("CMD")
    assert health is not None and cmd is not None
    assert health.exec_form and cmd.exec_form, "exec form: no shell, signals reach the process"
    flags = dict(flag.removeprefix("--").split("=", 1) for flag in health.flags)
    assert {"interval", "timeout", "retries"} <= flags.keys()
    # Listening on every interface, on the port EXPOSE and the health check name.
    args = list(cmd.args)
    assert args[:2] == ["coordinator", "serve"]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    port = args[args.index("--port") + 1]
    assert [e.args for e in final.all("EXPOSE")] == [(port,)]
    assert f"http://127.0.0.1:{port}/health" in " ".join(health.args)


def test_dockerignore_keeps_what_the_build_copies_and_nothing_else() -> None:
    build = read_dockerfile()[0]
    for copy in build.all("COPY"):
        for source in copy.args[:-1]:
            assert (ROOT / source).exists(), source
            assert dockerignore_allows(source), f"{source} is left out of the build context"
    assert dockerignore_allows("coordinator/lua/touch.lua")
    for kept_out in (
        ".git",
        ".venv",
        "tests/process/test_deploy.py",
        "bench",
        "compose.yaml",
        ".env",
    ):
        assert not dockerignore_allows(kept_out), kept_out
    assert not dockerignore_allows("coordinator/__pycache__/app.cpython-311.pyc")


# --- compose.yaml -----------------------------------------------------------------------


def check_compose_schema(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with the Compose specification's schema that it ships (offline)."""
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    return subprocess.run([*command, str(path)], capture_output=True, text=True, timeout=60)


def test_compose_file_follows_the_compose_specification(tmp_path: Path) -> None:
    done = check_compose_schema(COMPOSE)
    assert done.returncode == 0, done.stdout + done.stderr
    # And the check can fail: a misspelt key is caught.
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE.read_text().replace("depends_on:", "depend_on:", 1))
    assert check_compose_schema(broken).returncode != 0


def test_compose_parts_agree_with_each_other_and_the_dockerfile() -> None:
    compose = read_compose()
    services: dict[str, Any] = compose["services"]

    redis = services["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--appendfsync") + 1] == "everysec"
    volume, _, mount = redis["volumes"][0].partition(":")
    assert mount == "/data" and volume in compose["volumes"], "the AOF lives on a named volume"
    assert redis["healthcheck"]["test"][:2] == ["CMD", "redis-cli"]

    assert len(replicas(compose)) == 2
    for name in replicas(compose):
        replica = services[name]
        assert replica["build"]["context"] == "." and (ROOT / "Dockerfile").exists()
        assert replica["build"]["args"] == ["EXTRA_CA_CERTS"], "unset unless the user sets it"
        url = urlsplit(replica["environment"]["REDIS_URL"])
        assert (url.scheme, url.hostname, url.port) == ("redis", "redis", 6379)
        assert replica["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "ports" not in replica, "replicas are reached through the load balancer only"

    lb = services["lb"]
    assert "./deploy/nginx.conf:/etc/nginx/nginx.conf:ro" in lb["volumes"]
    assert (ROOT / "deploy" / "nginx.conf").exists()
    published, _, target = lb["ports"][0].partition(":")
    listen = directives(nginx_blocks(NGINX_CONF.read_text(), "server")[0])["listen"]
    assert listen == [[target]]
    assert published == "8080", "the port the README's examples use"
    assert {name: spec["condition"] for name, spec in lb["depends_on"].items()} == dict.fromkeys(
        replicas(compose), "service_healthy"
    )

    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, f"{name} depends on an unknown service {needed}"


def test_nginx_sends_to_each_replica_on_the_image_port_and_streams_events() -> None:
    text = NGINX_CONF.read_text()
    port = serve_port(read_dockerfile()[-1])
    (upstream,) = nginx_blocks(text, "upstream coordinator")
    servers = [entry[0] for entry in directives(upstream)["server"]]
    assert servers == [f"{name}:{port}" for name in replicas(read_compose())]

    (server,) = nginx_blocks(text, "server")
    settings = directives(server)
    assert settings["proxy_http_version"] == [["1.1"]]
    assert ["Connection", ""] in settings["proxy_set_header"], "keeps upstream connections open"
    (body_limit,) = settings["client_max_body_size"]
    assert body_limit == ["2m"], "over the service's own limit, so that it answers the 413"
    (events,) = nginx_blocks(text, r"location ~ \^/workspaces/\[\^/\]\+/events\$")
    streaming = directives(events)
    assert streaming["proxy_buffering"] == [["off"]]
    assert streaming["proxy_read_timeout"] == [["1h"]]
    assert re.fullmatch(r"^/workspaces/[^/]+/events$", of_workspace(EVENTS, "acme"))


# --- The compose deployment, run as local processes -------------------------------------


@dataclass
class LocalRedis:
    url: str
    port: int
    folder: Path


@pytest.fixture
def compose_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    """redis-server with compose.yaml's command (its volume: a folder), on a free port."""
    command = read_compose()["services"]["redis"]["command"]
    folder = tmp_path / "data"
    folder.mkdir()
    port = free_port()
    argv = [binary(command[0]), *command[1:], "--port", str(port), "--bind", "127.0.0.1"]
    with running(argv, port, cwd=folder):
        yield LocalRedis(f"redis://127.0.0.1:{port}/0", port, folder)


# Keepalive comments every 0.3 s rather than 15, so that a test sees them pass nginx.
KEEPALIVE = {"COORDINATOR_EVENTS_KEEPALIVE": "0.3"}


@pytest.fixture
def deployment(compose_redis: LocalRedis, tmp_path: Path) -> Iterator[Deployment]:
    """compose.yaml's services as local processes: its redis, two replicas (with
    KEEPALIVE), and nginx in front of them."""
    dev_a, dev_b = asyncio.run(provision(compose_redis.url))
    names = replicas(read_compose())
    port = serve_port(read_dockerfile()[-1])
    running: list[Process] = []
    try:
        for name in names:
            running.append(start_replica(compose_redis.url, tmp_path / f"{name}.log", KEEPALIVE))
        upstreams = {
            f"{name}:{port}": replica.port for name, replica in zip(names, running, strict=True)
        }
        nginx = start_nginx(upstreams, tmp_path / "nginx")
        try:
            yield Deployment(f"http://127.0.0.1:{nginx.port}", running, nginx, dev_a, dev_b)
        finally:
            stop(nginx.popen)
    finally:
        for replica in running:
            if replica.popen.poll() is None:
                stop(replica.popen)


@pytest.mark.real_redis
@pytest.mark.anyio
async def test_load_balancer_streams_events_from_either_replica_as_they_come(
    deployment: Deployment,
) -> None:
    # tests/process/test_live_streams.py checks the same against the replicas themselves;
    # this, through nginx
    # (which must neither hold events back nor cut a quiet stream nor keep a stream open
    # once its replica is gone).
    sid = session_id_for("acme", "b")
    async with (
        httpx.AsyncClient(base_url=deployment.url, timeout=10) as http,
        AsyncExitStack() as stack,
    ):
        # Opened one after the other, round-robin puts one stream on each replica: the logs
        # show it below, when stopping one replica ends exactly one of them.
        feeds = [await open_stream(http, deployment.dev_a, stack) for _ in "ab"]
        served = []
        for number in range(4):
            body = {"event": "preToolUse", "conversation_id": "b", "file_path": f"src/{number}.py"}
            before = lines_of(deployment, HOOK_LINE)
            answer = await http.post(HOOK, json=body, headers=bearer(deployment.dev_b))
            assert answer.json() == {"permission": "allow"}
            with anyio.fail_after(PROMPT):
                for feed in feeds:
                    if number == 0:
                        assert (await feed.event())["type"] == "started"
                    reserved = await feed.event()
                    assert (reserved["type"], reserved["path"], reserved["user"]) == (
                        "reserved", body["file_path"], "Developer B",
                    )  # fmt: skip
                    assert reserved["session_id"] == sid
            served.append(served_by(deployment, before, HOOK_ANSWERED))
        # Each replica served a claim, so each stream had one from the replica it is not on.
        assert set(served) == {0, 1}, served

        end = {"event": "sessionEnd", "conversation_id": "b"}
        assert (await http.post(HOOK, json=end, headers=bearer(deployment.dev_b))).is_success
        with anyio.fail_after(PROMPT):
            for feed in feeds:
                released = [await feed.event() for _ in range(4)]
                assert sorted((event["type"], event["path"]) for event in released) == [
                    ("released", f"src/{number}.py") for number in range(4)
                ]
                ended = await feed.event()
                assert (ended["type"], ended["session_id"]) == ("ended", sid)

        # Nothing happens: the replicas' keepalive comments come through, every 0.3 s.
        for feed in feeds:
            with anyio.fail_after(PROMPT):
                assert [await feed.next() for _ in "ab"] == [(":", "keepalive")] * 2

        # SIGTERM (`docker stop`) ends the stream its replica holds, through nginx too, and
        # only that one: the other keeps its keepalives for the 3 s waited.
        assert lines_of(deployment, STREAMED) == [0, 0]
        stopped = deployment.replicas[0].popen
        stopped.send_signal(signal.SIGTERM)
        gone = await asyncio.gather(*(ends_within(feed, 3) for feed in feeds))
        assert sorted(gone) == [False, True]
        assert await asyncio.to_thread(stopped.wait, 5) in (0, -signal.SIGTERM)
        assert lines_of(deployment, STREAMED) == [1, 0]
        (kept,) = (feed for feed, ended in zip(feeds, gone, strict=True) if not ended)
        assert await kept.next(PROMPT) == (":", "keepalive")
    # The other stream, closed by its client, was replica 1's.
    assert served_by(deployment, [1, 0], STREAMED) == 1
    for replica in deployment.replicas:
        log = replica.log.read_text()
        assert "Traceback" not in log and "timeout graceful shutdown" not in log, log


# Stops of a replica under traffic. The race they look for (nginx sending a request on a
# kept-alive connection just as the stopping replica closes it) cost one request in two
# stops here before the drain (COORDINATOR_DRAIN).
STOPS = 10


@pytest.mark.real_redis
def test_stopping_replicas_under_traffic_loses_no_request(
    compose_redis: LocalRedis, tmp_path: Path
) -> None:
    dev_a, _ = asyncio.run(provision(compose_redis.url))
    names = replicas(read_compose())
    env = {"COORDINATOR_RATE_LIMIT": "0"}
    live = [start_replica(compose_redis.url, tmp_path / f"{name}-0.log", env) for name in names]
    upstreams = {
        f"{name}:{serve_port(read_dockerfile()[-1])}": r.port
        for name, r in zip(names, live, strict=True)
    }
    # A replica that refused a connection is left out for fail_timeout: 1 s instead of 5,
    # so that it is back soon after its restart and the stops can follow each other.
    nginx = start_nginx(upstreams, tmp_path / "nginx", {"fail_timeout=5s": "fail_timeout=1s"})
    traffic = Traffic(f"http://127.0.0.1:{nginx.port}", dev_a)
    stopped: list[Process] = []
    try:
        traffic.start()
        for number in range(STOPS):
            # Both replicas in nginx's round-robin, with connections it keeps alive.
            for replica in live:
                wait_until(functools.partial(answered_a_hook, replica), "answering")
            which = number % 2
            victim = live[which]
            victim.popen.send_signal(signal.SIGTERM)
            stopped.append(victim)
            # It stops listening at once; its successor starts while it drains, on its port.
            wait_until(functools.partial(refuses, victim.port), "refusing", timeout=5)
            log = tmp_path / f"{names[which]}-{number + 1}.log"
            live[which] = start_replica(compose_redis.url, log, env, port=victim.port)
        for replica in stopped:
            assert replica.popen.wait(timeout=10) in (0, -signal.SIGTERM)
    finally:
        answers = traffic.stop()
        stop(nginx.popen)
        for replica in [*live, *stopped]:
            if replica.popen.poll() is None:
                stop(replica.popen)
    # Every request answered by some replica: none lost to a replica's shutdown.
    assert answers.keys() == {200} and answers[200] > 10 * STOPS, answers
    for replica in [*live, *stopped]:
        assert "Traceback" not in replica.log.read_text(), replica.log.read_text()[-3000:]


def test_load_balancer_itself_leaves_the_events_path_unbuffered(tmp_path: Path) -> None:
    binary("nginx")
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), HeldStream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    port = int(upstream.server_address[1])
    replica_port = serve_port(read_dockerfile()[-1])
    names = replicas(read_compose())
    nginx = start_nginx({f"{name}:{replica_port}": port for name in names}, tmp_path / "nginx")
    url = f"http://127.0.0.1:{nginx.port}/workspaces/acme"
    try:
        # The events route: the first event arrives while the second is held back.
        assert first_event_seconds(f"{url}/events", held_for=3) < PROMPT
        # Any other route is buffered (the default): the first event waits for the end,
        # so the check above can tell the two apart.
        assert first_event_seconds(f"{url}/x", held_for=1) > 0.9
    finally:
        stop(nginx.popen)
        upstream.shutdown()
        upstream.server_close()
