"""GET /openapi.json: a valid OpenAPI document of exactly the app's routes, and a live
`coordinator serve` on a real Redis that answers as the document says (schemathesis)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fakeredis
import httpx
import jsonschema_rs
import msgspec
import pytest
import schemathesis
from redis import Redis as SyncRedis
from starlette.routing import Route

from coordinator.agents import AGENTS
from coordinator.app import MAX_DECISIONS, create_app
from coordinator.config import Settings
from coordinator.models import session_id_for
from coordinator.openapi import OPENAPI
from coordinator.routes import DECISIONS, EVENTS, HOOK, of_workspace
from tests.helpers import Team, bearer, provision, serve, stop

# Every answer must be documented (status, content type, headers, body), no 5xx, requests
# that break the schema rejected, 401 without the key, 405 with Allow for other methods.
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "unsupported_method",
    "allow_header_conformance",
)
# An event stream answers forever, so every case would end in the request timeout;
# tests/test_live.py checks its errors and frames instead, tests/event_feed.py its headers.
STREAM = EVENTS
MAX_EXAMPLES = 300  # per operation: about 4,500 cases, 30 s on two cores
LIVE = "conv-live"


def test_the_document_is_valid_openapi() -> None:
    schemathesis.openapi.from_dict(OPENAPI).validate()  # the OpenAPI 3.1 meta-schema
    for schema in OPENAPI["components"]["schemas"].values():
        jsonschema_rs.meta.validate(schema)  # each one valid JSON Schema 2020-12


@pytest.mark.anyio
async def test_the_documented_paths_are_the_app_routes() -> None:
    redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    app = create_app(Settings(), redis)
    await app.state.store.aclose()
    await redis.aclose()
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(path, method) for path, item in OPENAPI["paths"].items() for method in item}
    assert documented == served
    limit = OPENAPI["paths"][DECISIONS]["get"]["parameters"][1]
    assert limit["schema"]["maximum"] == MAX_DECISIONS


@pytest.mark.anyio
async def test_the_app_serves_the_document(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == msgspec.json.decode(msgspec.json.encode(OPENAPI))


@pytest.mark.anyio
# Superscript two and fullwidth five pass str.isdigit(); int() refuses 5,000 digits.
@pytest.mark.parametrize("limit", ["0", "201", "-1", "1.5", "", "\u00b2", "\uff15", "9" * 5000])
async def test_a_limit_outside_the_documented_range_is_a_422(
    client: httpx.AsyncClient, team: Team, limit: str
) -> None:
    response = await client.get(
        of_workspace(DECISIONS, "acme"), params={"limit": limit}, headers=bearer(team.dev_a)
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_field"


@pytest.mark.real_redis
def test_a_live_server_answers_as_documented(
    redis_url: str,
    real_redis_sync: SyncRedis,  # flushed: the run starts from a clean store
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record_property: Callable[[str, object], None],
) -> None:
    dev_a, _ = asyncio.run(provision(redis_url))
    log = tmp_path / "serve.log"
    env = {**os.environ, "REDIS_URL": redis_url, "COORDINATOR_RATE_LIMIT": "0"}
    server, port = serve(env, log)
    try:
        url = f"http://127.0.0.1:{port}"
        # A live session, so that heartbeat and end get past their 404s too.
        start = {"event": "sessionStart", "conversation_id": LIVE}
        hook = httpx.post(url + HOOK, json=start, headers=bearer(dev_a))
        assert hook.status_code == 200
        report, seconds, output = run_schemathesis(url, dev_a, tmp_path)
    finally:
        stop(server)
    cases = report["test_cases"]["generated"]
    record_property("schemathesis_cases", cases)
    with capsys.disabled():
        print(f"\nschemathesis: {cases} cases in {seconds:.1f} s")
    assert report["exit_code"] == 0, output
    assert report["complete"], output
    assert report["failures"] == [] and report["errors"] == [], output
    assert report["test_cases"]["with_failures"] == 0, output
    assert cases > 0
    # Every operation but /openapi.json itself (schemathesis leaves its source out) and
    # the event stream.
    documented = sum(len(item) for item in OPENAPI["paths"].values())
    assert report["operations"]["tested"] == documented - 2, output
    assert "Traceback" not in log.read_text(errors="replace")


def run_schemathesis(url: str, api_key: str, folder: Path) -> tuple[dict[str, Any], float, str]:
    """`st run` on the live server (in ``folder``, where it keeps its caches); its JSON
    report, the seconds it took and its output."""
    config = folder / "schemathesis.toml"
    config.write_text(fuzz_config(session_id_for("acme", LIVE)))
    report = folder / "schemathesis.json"
    command = [
        sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
        f"{url}/openapi.json",
        "--exclude-path", STREAM,
        "--header", f"Authorization: Bearer {api_key}",
        "--checks", ",".join(CHECKS),
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", "1",
        "--workers", "1",
        "--generation-database", "none",
        "--request-timeout", "10",
        "--report", "json", "--report-json-path", str(report),
        "--no-color",
    ]  # fmt: skip
    started = time.monotonic()
    run = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=600)
    seconds = time.monotonic() - started
    output = run.stdout[-20_000:] + run.stderr[-5_000:]
    assert report.exists(), output
    found: dict[str, Any] = json.loads(report.read_text())
    return found, seconds, output


def fuzz_config(live_session: str) -> str:
    """Values the fuzzer mixes into what it makes up, so requests also reach the 2xx
    answers: the key's own workspace, a live session, two conversations contending
    for one file, the agents' names."""
    dictionaries = {
        "workspace": ["acme"],
        "session": [live_session],
        "conversation": [LIVE, "conv-other"],
        "file": ["src/app.py", "/repo/src/app.py"],
        "agent": list(AGENTS),
    }
    parameters = {
        "path.ref": "workspace",
        "body.workspace_slug": "workspace",
        "body.session_id": "session",
        "body.conversation_id": "conversation",
        "body.file_path": "file",
        "body.tool_input.file_path": "file",
        "query.agent": "agent",
    }
    lines = []
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}"]
    lines.append("[parameters]")
    for key, name in parameters.items():
        lines.append(f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}')
    return "\n".join(lines) + "\n"
