"""Every route path the service serves, in one place (standard library only).

The app's route table, the OpenAPI document, the installer, the bridge and the tests all
spell a path from here, so none of them can drift from the others.
"""

from __future__ import annotations

from urllib.parse import quote

HEALTH = "/health"
OPENAPI = "/openapi.json"
METRICS = "/metrics"
WHOAMI = "/whoami"

HOOK = "/workspaces/sessions/hook"
HEARTBEAT = "/workspaces/sessions/heartbeat"
END = "/workspaces/sessions/end"
DECIDE = "/workspaces/decisions"
RESERVE = "/workspaces/reservations"
RELEASE = "/workspaces/reservations/release"
REQUEST = "/workspaces/requests"

# A workspace's listings and live events; ``{ref}`` is its slug or its id.
SESSIONS = "/workspaces/{ref}/sessions"
RESERVATIONS = "/workspaces/{ref}/reservations"
DECISIONS = "/workspaces/{ref}/decisions"
REQUESTS = "/workspaces/{ref}/requests"
EVENTS = "/workspaces/{ref}/events"

# The team board's page, script and style.
BOARD = "/"
BOARD_SCRIPT = "/board.js"
BOARD_STYLE = "/board.css"


def hook_url(base: str, agent: str | None = None, companion: bool = False) -> str:
    """The hook route under a service's base URL, for ``agent``'s own payloads if given;
    ``companion``: the agent has the companion's tools (``mcp=1``: a deny says what to call)."""
    url = base.rstrip("/") + HOOK
    query = [f"agent={quote(agent)}"] if agent else []
    if companion:
        query.append("mcp=1")
    return f"{url}?{'&'.join(query)}" if query else url


def of_workspace(template: str, ref: str) -> str:
    """A workspace route's path for one workspace (``SESSIONS``, ``EVENTS``...)."""
    return template.replace("{ref}", quote(ref, safe=""))
