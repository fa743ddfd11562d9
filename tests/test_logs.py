"""A real `coordinator serve`'s output: JSON lines only, one per request with its fields,
never a key or a file's content, at the level COORDINATOR_LOG_LEVEL asks for."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis

from coordinator.config import Settings
from coordinator.errors import ConfigError
from coordinator.logs import (
    REQUEST_LOGGER,
    JsonFormatter,
    JsonLines,
    logging_config,
    request_line,
    sole_handler,
)
from coordinator.routes import EVENTS, HOOK, SESSIONS, of_workspace
from tests.helpers import bearer, provision, serve, stop
from tests.servers import free_port

CONTENT = "print('the body of a file, which must never be logged')"
REQUEST_FIELDS = {
    "ts", "level", "logger", "message", "method", "route", "event", "agent", "workspace",
    "status", "decision", "error", "duration_ms",
}  # fmt: skip


def lines_of(log: Path) -> list[dict[str, Any]]:
    """Every line of the output, each of which must be one JSON object."""
    text = log.read_text()
    assert text, "the server wrote nothing"
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


def requests_in(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line["logger"] == "coordinator.request"]


@pytest.mark.real_redis
def test_one_json_line_per_request_and_no_secret(
    redis_url: str, real_redis_sync: SyncRedis, tmp_path: Path
) -> None:
    dev_a, dev_b = asyncio.run(provision(redis_url))
    url, server, log_path = run_server(tmp_path, {"REDIS_URL": redis_url})
    write = {
        "hook_event_name": "PreToolUse",
        "session_id": "conv-a",
        "tool_name": "Write",
        "tool_input": {"file_path": "src/app.py", "content": CONTENT},
    }
    try:
        sent = [
            httpx.get(f"{url}/health"),
            httpx.post(f"{url}{HOOK}?agent=claude-code", json=write, headers=bearer(dev_a)),
            httpx.post(f"{url}{HOOK}", json={"event": "sessionStart"}, headers=bearer(dev_a)),
            httpx.get(url + of_workspace(SESSIONS, "acme"), headers=bearer(dev_b)),
            httpx.get(url + of_workspace(SESSIONS, "acme"), headers=bearer("ek_not-a-real-key")),
            httpx.get(f"{url}/workspaces/acme/nothing-here"),
            httpx.get(f"{url}/whoami", headers=bearer(dev_b)),
            httpx.head(url + of_workspace(EVENTS, "acme"), headers=bearer(dev_b)),
        ]
    finally:
        stop(server)  # a request's line is written just after its answer: wait for all
    assert [r.status_code for r in sent] == [200, 200, 422, 200, 401, 404, 200, 200]

    lines = lines_of(log_path)
    requests = requests_in(lines)
    assert len(requests) == len(sent)
    for line in requests:
        assert set(line) == REQUEST_FIELDS
        assert line["level"] == "INFO" and line["message"] == "request"
        assert line["ts"].endswith("Z") and line["duration_ms"] >= 0
    health, write_line, invalid, listing, unknown_key, missing, whoami, events = requests
    assert (health["route"], health["status"], health["workspace"]) == ("/health", 200, None)
    assert write_line == {
        **write_line,
        "method": "POST",
        "route": HOOK,
        "event": "pre_tool",
        "agent": "claude-code",
        "workspace": "acme",
        "status": 200,
        "decision": "allow",
        "error": None,
    }
    assert (invalid["status"], invalid["error"], invalid["workspace"]) == (
        422,
        "invalid_field",
        "acme",
    )
    assert (listing["route"], listing["workspace"]) == (SESSIONS, "acme")
    assert (unknown_key["status"], unknown_key["error"], unknown_key["workspace"]) == (
        401,
        "unauthorized",
        None,
    )
    assert (missing["route"], missing["status"]) == ("unmatched", 404)
    assert (whoami["route"], whoami["workspace"]) == ("/whoami", "acme")
    assert (events["route"], events["workspace"]) == (EVENTS, "acme")
    # uvicorn's own lines are JSON too, and its access log is gone.
    loggers = {line["logger"] for line in lines}
    assert "uvicorn.error" in loggers and "uvicorn.access" not in loggers
    assert any(line["message"] == "Application startup complete." for line in lines)
    # uvicorn's last line, logged just before it raises the signal that stopped it.
    assert lines[-1]["message"].startswith("Finished server process")
    assert not any(line["level"] == "DEBUG" for line in lines)
    text = log_path.read_text()
    for secret in (dev_a, dev_b, "ek_not-a-real-key", "Bearer", CONTENT):
        assert secret not in text


def run_server(tmp_path: Path, env: dict[str, str], *args: str) -> tuple[str, Any, Path]:
    log = tmp_path / "serve.log"
    server, port = serve({**os.environ, **env}, log, *args)
    return f"http://127.0.0.1:{port}", server, log


@pytest.mark.real_redis
def test_debug_shows_the_settings_without_secrets(redis_url: str, tmp_path: Path) -> None:
    password_url = redis_url.replace("redis://", "redis://:hunter2@")
    env = {
        "REDIS_URL": password_url,
        "COORDINATOR_LOG_LEVEL": "debug",
        "COORDINATOR_METRICS_TOKEN": "metrics-token-value",
    }
    url, server, log = run_server(tmp_path, env)
    try:
        httpx.get(f"{url}/openapi.json")
    finally:
        stop(server)
    lines = lines_of(log)
    settings = [line for line in lines if line["message"] == "settings"]
    assert len(settings) == 1 and settings[0]["level"] == "DEBUG"
    assert settings[0]["metrics_token"] is True
    assert settings[0]["redis"].startswith("redis://127.0.0.1:")
    assert len(requests_in(lines)) == 1
    text = log.read_text()
    assert "hunter2" not in text and "metrics-token-value" not in text


def test_warning_keeps_only_the_failures(tmp_path: Path) -> None:
    """With Redis away, a 503 is a warning: it is the one request line left at WARNING,
    after the start's warning that Redis's eviction policy could not be checked."""
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}", "COORDINATOR_LOG_LEVEL": "WARNING"}
    url, server, log = run_server(tmp_path, env)
    try:
        assert httpx.get(f"{url}/openapi.json").status_code == 200
        assert httpx.get(f"{url}/health").status_code == 503
    finally:
        stop(server)
    start, *lines = lines_of(log)
    assert (start["logger"], start["level"]) == ("coordinator.health", "WARNING")
    assert "maxmemory-policy could not be read" in start["message"]
    assert [line["level"] for line in lines] == ["WARNING"]
    assert lines[0]["route"] == "/health"
    assert (lines[0]["status"], lines[0]["error"]) == (503, "store_unavailable")


def test_no_access_log_logs_only_server_side_failures(tmp_path: Path) -> None:
    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}"}
    url, server, log = run_server(tmp_path, env, "--no-access-log")
    try:
        assert httpx.get(f"{url}/openapi.json").status_code == 200
        assert httpx.get(f"{url}/nowhere").status_code == 404
        assert httpx.get(f"{url}/health").status_code == 503
    finally:
        stop(server)
    lines = lines_of(log)
    assert [line["status"] for line in requests_in(lines)] == [503]
    assert any(line["logger"] == "uvicorn.error" for line in lines)  # INFO still on


def test_the_formatter_writes_exceptions_on_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "x", logging.ERROR, __file__, 1, "failed %s", ("here",), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "failed here" and "ValueError: boom" in parsed["exception"]


def test_the_level_comes_from_the_environment() -> None:
    assert Settings.from_env({}).log_level == "INFO"
    assert Settings.from_env({"COORDINATOR_LOG_LEVEL": "warning"}).log_level == "WARNING"
    with pytest.raises(ConfigError, match="COORDINATOR_LOG_LEVEL"):
        Settings.from_env({"COORDINATOR_LOG_LEVEL": "loud"})
    quiet = logging_config("INFO", request_lines=False)
    assert quiet["loggers"]["coordinator.request"]["level"] == "WARNING"
    assert logging_config("ERROR", request_lines=False)["loggers"]["coordinator.request"] == {
        "level": "ERROR"
    }


def json_lines() -> tuple[JsonLines, io.StringIO]:
    stream = io.StringIO()
    handler = JsonLines(stream)
    return handler, stream


def record(level: int, message: str, logger: str = REQUEST_LOGGER) -> logging.LogRecord:
    return logging.getLogger(logger).makeRecord(logger, level, __file__, 1, message, (), None)


def messages(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["message"] for line in stream.getvalue().splitlines()]


@pytest.mark.anyio
async def test_request_lines_of_one_loop_turn_are_written_together_at_its_end() -> None:
    handler, stream = json_lines()
    handler.handle(record(logging.INFO, "one"))
    handler.handle(record(logging.INFO, "two"))
    assert stream.getvalue() == ""  # not yet: the turn goes on
    await asyncio.sleep(0)
    assert messages(stream) == ["one", "two"]


@pytest.mark.anyio
async def test_other_lines_a_warning_and_close_write_what_waits_at_once_in_order() -> None:
    """uvicorn logs its last lines, then raises the signal that stopped it: no exit
    handler runs, so they and the request lines before them must be out already."""
    handler, stream = json_lines()
    handler.handle(record(logging.INFO, "request"))
    handler.handle(record(logging.INFO, "Application shutdown complete.", "uvicorn.error"))
    assert messages(stream) == ["request", "Application shutdown complete."]
    handler.handle(record(logging.INFO, "request 2"))
    handler.handle(record(logging.WARNING, "failed"))
    assert messages(stream)[2:] == ["request 2", "failed"]
    handler.handle(record(logging.INFO, "last"))
    handler.close()  # what logging.shutdown does at exit
    assert messages(stream)[-1] == "last"


def test_outside_an_event_loop_each_line_is_written_at_once() -> None:
    handler, stream = json_lines()
    handler.handle(record(logging.INFO, "now"))
    assert json.loads(stream.getvalue())["message"] == "now"


def test_a_request_line_is_the_same_with_or_without_the_shortcut() -> None:
    """request_line writes straight to a sole JsonLines; with anything else on the way (a
    filter here, pytest's caplog elsewhere) it goes through logging as any line does."""
    fields = {"method": "POST", "route": "/x", "event": None, "status": 200, "duration_ms": 1.5}
    lines = []
    for shortcut in (True, False):
        logger = logging.getLogger(f"test-request-line-{shortcut}")
        logger.propagate = False
        logger.setLevel(logging.INFO)
        handler, stream = json_lines()
        logger.addHandler(handler)
        if not shortcut:
            handler.addFilter(lambda _: True)
        assert (sole_handler(logger, logging.INFO) is handler) is shortcut
        request_line(logger, logging.INFO, fields)
        handler.flush()
        line = json.loads(stream.getvalue())
        assert line.pop("logger") == logger.name and line.pop("ts").endswith("Z")
        lines.append(line)
    assert lines[0] == lines[1] == {"level": "INFO", "message": "request", **fields}
