"""The public route paths, spelled out once: agents' hook files, installed bridges and
dashboards call them, so renaming one must fail here, not pass unnoticed."""

from __future__ import annotations

from coordinator import routes


def test_the_public_paths_are_these() -> None:
    assert {
        name: getattr(routes, name)
        for name in dir(routes)
        if name.isupper() and isinstance(getattr(routes, name), str)
    } == {
        "HEALTH": "/health",
        "OPENAPI": "/openapi.json",
        "METRICS": "/metrics",
        "WHOAMI": "/whoami",
        "HOOK": "/workspaces/sessions/hook",
        "HEARTBEAT": "/workspaces/sessions/heartbeat",
        "END": "/workspaces/sessions/end",
        "DECIDE": "/workspaces/decisions",
        "RESERVE": "/workspaces/reservations",
        "RELEASE": "/workspaces/reservations/release",
        "REQUEST": "/workspaces/requests",
        "REQUESTS": "/workspaces/{ref}/requests",
        "SESSIONS": "/workspaces/{ref}/sessions",
        "RESERVATIONS": "/workspaces/{ref}/reservations",
        "DECISIONS": "/workspaces/{ref}/decisions",
        "EVENTS": "/workspaces/{ref}/events",
        "BOARD": "/",
        "BOARD_SCRIPT": "/board.js",
        "BOARD_STYLE": "/board.css",
    }


def test_a_hook_url_and_a_workspace_path() -> None:
    assert routes.hook_url("http://coordinator.internal:9000/") == (
        "http://coordinator.internal:9000/workspaces/sessions/hook"
    )
    assert routes.hook_url("http://127.0.0.1:8080", "claude-code") == (
        "http://127.0.0.1:8080/workspaces/sessions/hook?agent=claude-code"
    )
    assert routes.hook_url("http://127.0.0.1:8080", "codex", companion=True) == (
        "http://127.0.0.1:8080/workspaces/sessions/hook?agent=codex&mcp=1"
    )
    assert routes.of_workspace(routes.EVENTS, "acme") == "/workspaces/acme/events"
    assert routes.of_workspace(routes.SESSIONS, "a b/c") == "/workspaces/a%20b%2Fc/sessions"
