"""The team board: its files and headers, GET /whoami, the files in the wheel, and the
page itself in a real headless Chromium against a real `coordinator serve` on a real Redis."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from redis import Redis as SyncRedis

from coordinator.admin import Admin
from coordinator.board import ASSETS, CONTENT_SECURITY_POLICY, asset
from coordinator.keys import events as events_channel
from coordinator.routes import DECIDE, HOOK, RELEASE, REQUEST, RESERVE
from tests.helpers import Service, Team, bearer, provision
from tests.servers import free_port, running

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = ROOT / "artifacts" / "board.png"
XSS = '<img src=x onerror="window.__xss = 1">'


# -- the files and their headers, in process ---------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("path", "media_type"),
    [("/", "text/html"), ("/board.js", "text/javascript"), ("/board.css", "text/css")],
)
async def test_the_board_files_are_served_with_strict_headers(
    client: httpx.AsyncClient, path: str, media_type: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == f"{media_type}; charset=utf-8"
    assert response.content == asset(ASSETS[path][0])
    csp = response.headers["content-security-policy"]
    assert csp == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in csp and "script-src 'self';" in csp
    assert "unsafe" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-frame-options"] == "DENY"
    # No key needed, and none asked for: the page asks its visitor.
    assert "www-authenticate" not in response.headers


@pytest.mark.anyio
async def test_the_board_files_take_only_get(client: httpx.AsyncClient) -> None:
    response = await client.post("/", content=b"{}")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    assert "GET" in response.headers["allow"]


def test_the_page_has_no_inline_script_or_style_and_sends_the_key_nowhere_else() -> None:
    page = asset("index.html").decode()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S)
    assert scripts == [(' src="/board.js" defer', "")]
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son[a-z]+=", page)  # no inline handlers either
    # The key field has no name, so no form submission could carry it.
    field = re.search(r"<input\b[^>]*\bid=\"key\"[^>]*>", page)
    assert field is not None
    assert 'type="password"' in field.group() and " name=" not in field.group()
    script = asset("board.js").decode()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    assert "localStorage" not in script and "sessionStorage" in script
    assert "new EventSource" not in script  # it cannot send the Authorization header


def test_the_wheel_carries_the_board(tmp_path: Path) -> None:
    """Built from a copy, so the working tree gets no build/ folder."""
    source = tmp_path / "source"
    shutil.copytree(ROOT / "coordinator", source / "coordinator")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source)]
    subprocess.run([*command, "-w", str(tmp_path)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("coordinator-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        for name, _ in ASSETS.values():
            assert archive.read(f"coordinator/static/{name}") == asset(name)
        assert "coordinator/lua/whoami.lua" in archive.namelist()


# -- GET /whoami -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_whoami_names_the_keys_workspace_and_person(
    client: httpx.AsyncClient, team: Team
) -> None:
    response = await client.get("/whoami", headers=bearer(team.dev_b))
    assert response.status_code == 200
    assert response.json() == {
        "workspace": "acme",
        "workspace_id": team.workspace_id,
        "workspace_name": "Acme",
        "user_name": "Developer B",
    }
    other = (await client.get("/whoami", headers=bearer(team.outsider))).json()
    assert (other["workspace"], other["workspace_name"], other["user_name"]) == (
        "other",
        "other",
        "Outsider",
    )
    assert other["workspace_id"].startswith("ws_") and other["workspace_id"] != team.workspace_id


@pytest.mark.anyio
@pytest.mark.parametrize("authorization", [None, "", "Bearer ", "Basic abc", "Bearer ek_unknown"])
async def test_whoami_needs_a_known_key(
    client: httpx.AsyncClient, team: Team, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get("/whoami", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


@pytest.mark.anyio
async def test_whoami_refuses_a_revoked_key_at_once(
    client: httpx.AsyncClient, team: Team, admin: Admin
) -> None:
    assert (await client.get("/whoami", headers=bearer(team.dev_a))).status_code == 200
    await admin.revoke_key(team.dev_a)  # the app's own store still has the key cached
    response = await client.get("/whoami", headers=bearer(team.dev_a))
    assert response.status_code == 401
    assert response.json()["message"] == "this API key has been revoked"


# -- the page in a real browser ----------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless (Playwright's own download does not work here).
    Playwright's sync API keeps an event loop running in this thread from here on, so a
    test asks for fixtures that call asyncio.run (``service``) before this one."""
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the board in a real browser: install chromium ({CHROMIUM})")
        pytest.skip(f"no {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


class Watched:
    """A laptop-sized page, with the page's errors and the browser's CSP reports kept."""

    def __init__(self, browser: Browser) -> None:
        self.page: Page = browser.new_page(viewport={"width": 1366, "height": 768})
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text:
            self.errors.append(message.text)


@pytest.fixture
def watched(browser: Browser) -> Watched:
    return Watched(browser)


def hook(url: str, api_key: str, body: dict[str, Any], agent: str = "claude-code") -> Any:
    response = httpx.post(
        f"{url}{HOOK}", params={"agent": agent}, json=body, headers=bearer(api_key)
    )
    assert response.status_code == 200, response.text
    return response.json()


def markup_task_and_edit(service: Service) -> None:
    """Developer B's Claude Code starts, is prompted with markup (its task), and edits
    src/app.py."""
    native: tuple[dict[str, Any], ...] = (
        {"hook_event_name": "SessionStart", "cwd": "/repo"},
        {"hook_event_name": "UserPromptSubmit", "prompt": XSS},
        {"hook_event_name": "PreToolUse", "cwd": "/repo", "tool_name": "Edit",
         "tool_input": {"file_path": "/repo/src/app.py"}},
    )  # fmt: skip
    for body in native:
        hook(service.url, service.dev_b, {**body, "session_id": "conv-b"}, "claude-code")


def open_board(page: Page, url: str, api_key: str) -> None:
    page.goto(f"{url}/")
    page.fill("#key", api_key)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#board")).to_be_visible()


def seconds_left(text: str) -> int:
    minutes, seconds = text.split(":")
    return int(minutes) * 60 + int(seconds)


@pytest.mark.real_redis
def test_the_board_shows_the_team_live(service: Service, watched: Watched) -> None:
    page = watched.page
    open_board(page, service.url, service.dev_a)
    expect(page.locator("#state")).to_have_attribute("data-state", "live")
    expect(page.locator("#workspace")).to_have_text("acme · you are Developer A")
    expect(page.locator("#reservations-empty")).to_be_visible()

    # Developer A's Cursor, in the generic form: a task and two files.
    for body in (
        {"event": "sessionStart", "task": "Build JWT auth flow", "branch": "feat/jwt"},
        {"event": "preToolUse", "cwd": "/home/a/repo", "file_path": "src/auth/login.ts"},
        {"event": "postToolUse", "cwd": "/home/a/repo", "file_path": "src/auth/jwt.ts"},
    ):
        hook(service.url, service.dev_a, {**body, "conversation_id": "conv-a"}, "cursor")
    # Developer B's Claude Code: a prompt whose task is markup, then an edit.
    markup_task_and_edit(service)
    # The page re-reads on its own only every 30 s: within expect's 5 s, it is the stream.
    reserved = page.locator('#reservations li[data-path="src/app.py"]')
    expect(reserved).to_be_visible()
    expect(reserved.locator(".meta")).to_have_text(f"Developer B — {XSS}")
    expect(page.locator("#reservations li .path")).to_have_text(
        ["src/app.py", "src/auth/jwt.ts", "src/auth/login.ts"]
    )
    expect(page.locator("#reservations-count")).to_have_text("(3)")
    agent_b = page.locator("#agents li").filter(has_text="Developer B")
    expect(agent_b.locator(".agent-type")).to_have_text("Claude Code")
    expect(agent_b.locator(".task")).to_have_text(XSS)
    expect(agent_b).to_contain_text("on src/app.py · 1 file reserved")
    agent_a = page.locator("#agents li").filter(has_text="Developer A")
    expect(agent_a.locator(".agent-type")).to_have_text("Cursor")
    expect(agent_a.locator(".task")).to_have_text("Build JWT auth flow")
    expect(agent_a).to_contain_text("branch feat/jwt · 2 files reserved")

    decide = service.url + DECIDE
    markup = "Use <b>JWT</b> & keep sessions in Redis"
    for key, text in ((service.dev_a, "Tokens expire after 15 minutes"), (service.dev_b, markup)):
        answer = httpx.post(decide, json={"text": text}, headers=bearer(key))
        assert answer.status_code == 201
    texts = page.locator("#decisions li .decision-text")
    expect(texts).to_have_text([markup, "Tokens expire after 15 minutes"])  # newest first
    expect(page.locator("#decisions li .meta").first).to_have_text("Developer B · just now")

    # Markup from the team is shown as text: no element made of it, no script run.
    assert page.locator("#board img, #board b").count() == 0
    assert page.evaluate("window.__xss") is None

    # The countdown starts near the reservation TTL (600 s) and goes down by itself.
    clock = reserved.locator(".countdown")
    first = clock.inner_text()
    assert 590 <= seconds_left(first) <= 600, first
    expect(clock).not_to_have_text(first)
    assert seconds_left(clock.inner_text()) < seconds_left(first)

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))

    # B's session ends: its file and its agent leave the board; A's stay, as do decisions.
    hook(service.url, service.dev_b, {"hook_event_name": "SessionEnd", "session_id": "conv-b"})
    expect(reserved).to_have_count(0)
    expect(page.locator("#reservations li .path")).to_have_text(
        ["src/auth/jwt.ts", "src/auth/login.ts"]
    )
    expect(agent_b).to_have_count(0)
    expect(agent_a).to_have_count(1)
    expect(texts).to_have_count(2)
    # And A's: the board is empty of files again.
    hook(service.url, service.dev_a, {"event": "sessionEnd", "conversation_id": "conv-a"})
    expect(page.locator("#reservations li")).to_have_count(0)
    expect(page.locator("#reservations-empty")).to_be_visible()
    expect(page.locator("#agents-empty")).to_be_visible()

    # The key: in this tab's sessionStorage only, in no URL and no log line.
    assert page.evaluate("sessionStorage.getItem('coordinator.key')") == service.dev_a
    assert page.evaluate("localStorage.length") == 0
    assert service.dev_a not in page.url
    page.reload()  # the tab keeps it: no need to enter it again
    expect(page.locator("#state")).to_have_attribute("data-state", "live")
    expect(page.locator("#key-form")).to_be_hidden()
    expect(texts).to_have_count(2)
    page.click("#forget")
    expect(page.locator("#key-form")).to_be_visible()
    expect(page.locator("#board")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    assert watched.errors == []
    assert service.dev_a not in service.log.read_text()


@pytest.mark.real_redis
@pytest.mark.parametrize("skew", [timedelta(hours=1), -timedelta(hours=1)], ids=["ahead", "behind"])
def test_countdowns_follow_the_servers_clock(
    service: Service, watched: Watched, skew: timedelta
) -> None:
    """A laptop clock an hour off: countdowns and ages are still the server's."""
    page = watched.page
    page.clock.install(time=datetime.now(UTC) + skew)
    page.clock.resume()  # time flows, from the wrong hour
    assert abs(page.evaluate("Date.now()") / 1000 - time.time() - skew.total_seconds()) < 60
    open_board(page, service.url, service.dev_a)
    expect(page.locator("#state")).to_have_attribute("data-state", "live")
    edit = {"event": "preToolUse", "conversation_id": "conv-b", "file_path": "src/app.py"}
    hook(service.url, service.dev_b, edit, "cursor")
    clock = page.locator('#reservations li[data-path="src/app.py"] .countdown')
    expect(clock).to_have_text(re.compile(r"^(10:00|9:5\d)$"))
    answer = httpx.post(service.url + DECIDE, json={"text": "T"}, headers=bearer(service.dev_b))
    assert answer.status_code == 201
    expect(page.locator("#decisions li .meta")).to_have_text("Developer B · just now")
    page.wait_for_timeout(1500)  # a few ticks: still right
    assert 585 <= seconds_left(clock.inner_text()) <= 600
    assert watched.errors == []


@pytest.mark.real_redis
def test_a_wrong_key_gets_a_clear_message(service: Service, watched: Watched) -> None:
    page = watched.page
    page.goto(f"{service.url}/")
    page.fill("#key", "ek_not-a-key-of-anyone")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-error")).to_have_text("This key was not accepted: unknown API key.")
    expect(page.locator("#board")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0
    page.fill("#key", "ek_ with spaces ü")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#key-error")).to_have_text(
        "An API key looks like ek_… (letters, digits, - and _)."
    )
    # A right key after a wrong one opens the board, and the message goes.
    open_board(page, service.url, service.dev_b)
    expect(page.locator("#key-error")).to_be_hidden()
    expect(page.locator("#workspace")).to_contain_text("you are Developer B")
    assert watched.errors == []


@pytest.fixture
def keys(redis_url: str, real_redis_sync: SyncRedis) -> tuple[str, str]:
    """Developer A's and B's keys of workspace acme, on a clean real Redis. Made in a
    thread of its own: Playwright's sync API keeps an event loop running in this one."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, provision(redis_url)).result()


@contextlib.contextmanager
def serving(
    redis_url: str, port: int, log: Path, **settings: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`coordinator serve` on a given port (a page keeps its origin across restarts)."""
    env = {**os.environ, "REDIS_URL": redis_url, **settings}
    command = [sys.executable, "-m", "coordinator", "serve", "--port", str(port)]
    with running(command, port, log, env, append=True) as server:
        yield server


@pytest.mark.real_redis
def test_the_board_reconnects_when_the_service_comes_back(
    redis_url: str, keys: tuple[str, str], tmp_path: Path, watched: Watched
) -> None:
    dev_a, dev_b = keys
    port, log = free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    page = watched.page
    with serving(redis_url, port, log):
        open_board(page, url, dev_a)
        expect(page.locator("#state")).to_have_attribute("data-state", "live")
    expect(page.locator("#state")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#state")).to_contain_text("reconnecting in")
    with serving(redis_url, port, log):
        expect(page.locator("#state")).to_have_attribute("data-state", "live", timeout=15_000)
        edit = {"hook_event_name": "PostToolUse", "session_id": "conv-b", "cwd": "/repo",
                "tool_name": "Write", "tool_input": {"file_path": "/repo/new.py"}}  # fmt: skip
        hook(url, dev_b, edit)
        expect(page.locator('#reservations li[data-path="new.py"]')).to_be_visible()
    assert watched.errors == []


@pytest.mark.real_redis
def test_a_lapsed_reservation_leaves_the_board_by_itself(
    redis_url: str, keys: tuple[str, str], tmp_path: Path, watched: Watched
) -> None:
    """Nothing announces a lapse: the page drops the file when its countdown ends."""
    dev_a, dev_b = keys
    port, log = free_port(), tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    ttl = {"COORDINATOR_SESSION_TTL": "3", "COORDINATOR_RESERVATION_TTL": "4"}
    page = watched.page
    with serving(redis_url, port, log, **ttl):
        open_board(page, url, dev_a)
        expect(page.locator("#state")).to_have_attribute("data-state", "live")
        edit = {"hook_event_name": "PreToolUse", "session_id": "conv-b", "cwd": "/repo",
                "tool_name": "Edit", "tool_input": {"file_path": "/repo/short.py"}}  # fmt: skip
        hook(url, dev_b, edit)
        reserved = page.locator('#reservations li[data-path="short.py"]')
        expect(reserved).to_be_visible()
        expect(reserved.locator(".countdown")).to_have_class(re.compile(r"\bsoon\b"))
        shown = time.monotonic()
        expect(reserved).to_have_count(0, timeout=8_000)
        # It left at its expiry, not before: the countdown showed it for about the TTL.
        assert time.monotonic() - shown > 2.0
        expect(page.locator("#reservations-empty")).to_be_visible()
    assert watched.errors == []


@pytest.mark.real_redis
def test_a_revoked_key_sends_the_page_back_to_its_form(
    redis_url: str, keys: tuple[str, str], tmp_path: Path, watched: Watched
) -> None:
    dev_a, _ = keys
    port, log = free_port(), tmp_path / "serve.log"
    page = watched.page
    # The stream checks the key at each keepalive; a short one ends it soon after.
    with serving(redis_url, port, log, COORDINATOR_EVENTS_KEEPALIVE="0.5"):
        open_board(page, f"http://127.0.0.1:{port}", dev_a)
        expect(page.locator("#state")).to_have_attribute("data-state", "live")
        revoke = [sys.executable, "-m", "coordinator", "keys", "revoke", dev_a]
        env = {**os.environ, "REDIS_URL": redis_url}
        subprocess.run(revoke, env=env, check=True, capture_output=True, timeout=30)
        # Revoked, or unknown by the time the page asks again: both say so.
        refused = r"(this API key has been revoked|unknown API key)"
        message = re.compile(rf"^This key is no longer accepted: {refused}\.$")
        expect(page.locator("#key-error")).to_have_text(message)
        expect(page.locator("#board")).to_be_hidden()
        assert page.evaluate("sessionStorage.length") == 0
    assert watched.errors == []


@pytest.mark.real_redis
def test_the_board_reads_every_page_of_a_long_listing(service: Service, watched: Watched) -> None:
    """600 reservations: more than one page (500), so the board follows the Link header."""
    for n in range(6):
        lines = "".join(f"*** Add File: gen/{n}/{i}.ts\n+x\n" for i in range(100))
        body = {"hook_event_name": "PreToolUse", "session_id": f"conv-{n}", "cwd": "/repo",
                "tool_name": "apply_patch",
                "tool_input": {"command": f"*** Begin Patch\n{lines}*** End Patch\n"}}  # fmt: skip
        assert hook(service.url, service.dev_a, body, "codex") == {}
    page = watched.page
    open_board(page, service.url, service.dev_a)
    expect(page.locator("#reservations-count")).to_have_text("(600)")
    expect(page.locator("#reservations li")).to_have_count(600)
    expect(page.locator("#agents-count")).to_have_text("(6)")
    assert watched.errors == []


@pytest.mark.real_redis
def test_the_activity_feed_tells_what_happens_as_text(
    service: Service, real_redis_sync: SyncRedis, watched: Watched
) -> None:
    page = watched.page
    open_board(page, service.url, service.dev_a)
    expect(page.locator("#state")).to_have_attribute("data-state", "live")
    expect(page.locator("#activity-empty")).to_be_visible()

    markup_task_and_edit(service)
    markup = "Use <b>JWT</b> & keep sessions in Redis"
    answer = httpx.post(service.url + DECIDE, json={"text": markup}, headers=bearer(service.dev_a))
    assert answer.status_code == 201
    # Kinds the queue publishes, and one no page knows yet: each shows, as text.
    at_ms = int(time.time() * 1000)
    base = {"at_ms": at_ms, "session_id": None, "user": "Developer C", "agent": "codex"}
    for fields in (
        {
            "type": "denied",
            "path": "src/app.py",
            "user_name": "Developer C",
            "holder": "Developer B",
        },
        {"type": "requested", "path": "src/app.py", "by": "Developer C", "holder": "Developer B"},
        {"type": "handed_off", "path": "src/app.py", "to": "Developer C"},
        {"type": "frobbed", "path": "src/x.ts", "note": XSS, "count": 2},
    ):
        real_redis_sync.publish(events_channel("acme"), json.dumps({**fields, **base}))
    hook(service.url, service.dev_b, {"hook_event_name": "SessionEnd", "session_id": "conv-b"})

    feed = page.locator("#activity li")
    expect(feed.locator(".what")).to_have_text(
        [
            "Developer B's session ended",
            "Developer B released src/app.py",
            f"Developer C: frobbed — path src/x.ts, note {XSS}, count 2",
            "src/app.py handed off to Developer C",
            "Developer C asked for src/app.py, held by Developer B",
            "Developer C was denied src/app.py, held by Developer B",
            f"Developer A decided: {markup}",
            "Developer B claimed src/app.py",
            f"Developer B is now on: {XSS}",
            "Developer B started (Claude Code)",
        ]
    )
    expect(feed.first).to_have_attribute("data-kind", "ended")
    expect(page.locator("#activity-count")).to_have_text("(last 10)")
    # Each with its time: the server's, in the machine's clock and as an ISO instant.
    for when in feed.locator("time.when").all():
        assert re.search(r"\d{1,2}:\d{2}:\d{2}", when.inner_text())
        assert re.fullmatch(
            r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", when.get_attribute("datetime") or ""
        )
    assert page.locator("#board img, #board b").count() == 0
    assert page.evaluate("window.__xss") is None

    # Bounded: 60 more events, and the feed keeps the newest 50.
    lines = "".join(f"*** Add File: gen/{i}.ts\n+x\n" for i in range(60))
    patch = {"hook_event_name": "PreToolUse", "session_id": "conv-c", "cwd": "/repo",
             "tool_name": "apply_patch",
             "tool_input": {"command": f"*** Begin Patch\n{lines}*** End Patch\n"}}  # fmt: skip
    assert hook(service.url, service.dev_b, patch, "codex") == {}
    expect(feed.first.locator(".what")).to_have_text("Developer B claimed gen/59.ts")
    expect(feed).to_have_count(50)
    expect(feed.last.locator(".what")).to_have_text("Developer B claimed gen/10.ts")
    expect(page.locator("#activity-count")).to_have_text("(last 50)")
    page.click("#forget")  # a new key starts a new feed
    open_board(page, service.url, service.dev_b)
    expect(page.locator("#activity-empty")).to_be_visible()
    assert watched.errors == []


@pytest.mark.real_redis
def test_the_board_shows_who_queues_for_what(service: Service, watched: Watched) -> None:
    page = watched.page
    open_board(page, service.url, service.dev_a)
    expect(page.locator("#state")).to_have_attribute("data-state", "live")
    expect(page.locator("#requests-empty")).to_be_visible()

    def post(key: str, route: str, body: dict[str, Any]) -> None:
        answer = httpx.post(service.url + route, json=body, headers=bearer(key))
        assert answer.status_code == 200, answer.text

    post(service.dev_a, RESERVE, {"conversation_id": "conv-a", "paths": ["src/api/"]})
    post(
        service.dev_b,
        REQUEST,
        {"conversation_id": "conv-b", "path": "src/api/h.ts", "note": "<b>need</b> it"},
    )
    queued = page.locator('#requests li[data-path="src/api/h.ts"]')
    expect(queued.locator(".task")).to_have_text("held by Developer A as part of src/api/")
    expect(queued.locator(".queue li")).to_have_count(1)
    expect(queued.locator(".queue li")).to_contain_text("Developer B — <b>need</b> it")
    post(service.dev_a, RELEASE, {"conversation_id": "conv-a"})
    expect(queued.locator(".task")).to_have_text("held for Developer B (next in line)")
    expect(queued.locator(".queue li")).to_have_count(0)
    assert page.locator("#board b").count() == 0
    assert watched.errors == []
