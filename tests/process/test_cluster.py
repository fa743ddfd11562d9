"""The service on a real Redis Cluster of three primaries (``redis+cluster://``).

Each workspace lives in the one hash slot of its tag ``{slug}``; the tests spread
workspaces over all three nodes and run the whole hook flow in each, through the app
and through real ``coordinator`` processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Connection, Redis, RedisCluster, SSLConnection

from coordinator import keys
from coordinator.admin import Admin
from coordinator.app import create_app
from coordinator.config import Settings
from coordinator.models import digest_of, session_id_for
from coordinator.pipeline import Pipeline
from coordinator.routes import DECIDE, HEARTBEAT, HOOK
from coordinator.store import Store
from coordinator.transport import connect
from tests.event_feed import open_feed
from tests.helpers import bearer, coordinator, hook, serve, stop


@pytest.fixture
def cluster_settings(redis_cluster_url: str) -> Settings:
    return Settings(redis_url=redis_cluster_url, rate_per_s=0)


@pytest.fixture
async def cluster(cluster_settings: Settings) -> AsyncIterator[Redis]:
    """The client ``connect`` makes for the cluster URL, on an emptied cluster."""
    client = connect(cluster_settings)
    assert isinstance(client, RedisCluster)
    await client.flushall()  # redis-py sends it to every primary
    yield client
    await client.aclose()


@pytest.fixture
def nodes(redis_cluster_url: str) -> Iterator[dict[int, SyncRedis]]:
    """A plain client to each primary, by port, to see where keys really are."""
    seed = SyncRedis(port=int(redis_cluster_url.rsplit(":", 1)[1]), decode_responses=True)
    ports = sorted({port for _, _, (_, port, *_) in seed.cluster("SLOTS")})
    seed.close()
    clients = {port: SyncRedis(port=port, decode_responses=True) for port in ports}
    yield clients
    for client in clients.values():
        client.close()


def owner_of(slot: int, nodes: dict[int, SyncRedis]) -> int:
    """The port of the primary that serves ``slot``, as the cluster itself says."""
    any_node = next(iter(nodes.values()))
    for start, end, (_, port, *_) in any_node.cluster("SLOTS"):
        if start <= slot <= end:
            return int(port)
    raise AssertionError(f"no node serves slot {slot}")


def slugs_on_every_node(nodes: dict[int, SyncRedis]) -> dict[str, int]:
    """One workspace slug per primary, each mapped to its slot: CLUSTER KEYSLOT decides."""
    any_node = next(iter(nodes.values()))
    chosen: dict[int, tuple[str, int]] = {}
    for i in range(200):
        slug = f"team-{i}"
        slot = int(any_node.cluster("KEYSLOT", keys.workspace(slug)))
        chosen.setdefault(owner_of(slot, nodes), (slug, slot))
        if len(chosen) == len(nodes):
            break
    assert sorted(chosen) == sorted(nodes), "the slugs did not reach every node"
    return dict(chosen.values())


def keys_by_node(nodes: dict[int, SyncRedis], slug: str) -> dict[int, list[str]]:
    found = {
        port: sorted(map(str, node.keys(f"coord:{{{slug}}}:*"))) for port, node in nodes.items()
    }
    return {port: names for port, names in found.items() if names}


def test_cluster_urls_make_a_cluster_client() -> None:
    timeouts = {"socket_connect_timeout": 0.25, "socket_timeout": 0.75}
    for url, connection_class in [
        ("redis+cluster://127.0.0.1:7000", Connection),
        ("rediss+cluster://user:secret@127.0.0.1:7000", SSLConnection),
    ]:
        settings = Settings(redis_url=url, redis_connect_timeout_s=0.25, redis_timeout_s=0.75)
        client = connect(settings)  # no connection yet: RedisCluster connects lazily
        assert isinstance(client, RedisCluster)
        options = client.connection_kwargs
        assert options["connection_class"] is connection_class
        assert {name: options[name] for name in timeouts} == timeouts
        assert options["decode_responses"] is True
        # Each call must go to the node of its slot, so no single-server pipeline.
        assert Pipeline.serving(client, 1.0) is None
    plain = connect(Settings(redis_url="redis://127.0.0.1:7000/0"))
    assert not isinstance(plain, RedisCluster)
    assert Pipeline.serving(plain, 1.0) is not None


async def run_the_flow(http: httpx.AsyncClient, slug: str, dev_a: str, dev_b: str) -> None:
    """Two developers' agents in workspace ``slug``, up to B's session ending."""
    task = f"Build auth for {slug}"
    started = await hook(
        http, dev_b, event="sessionStart", workspace_slug=slug, conversation_id="b",
        agent_type="cursor", task=task,
    )  # fmt: skip
    sid_b = session_id_for(slug, "b")
    assert started["session_id"] == sid_b
    claimed = await hook(http, dev_b, event="preToolUse", conversation_id="b", file_path="auth.ts")
    assert claimed == {"permission": "allow"}
    decided = await http.post(DECIDE, headers=bearer(dev_b), json={"text": f"JWT in {slug}"})
    assert (decided.status_code, decided.json()["user_name"]) == (201, "Developer B")

    briefing = await hook(
        http, dev_a, event="SessionStart", conversation_id="a", agent_type="claude-code"
    )
    assert briefing["additional_context"] == (
        f"Team briefing:\n\nActive agents:\n  - Developer B (Cursor): {task}\n\n"
        "Locked files:\n  - auth.ts (Developer B)\n\n"
        f"Recent decisions:\n  - JWT in {slug} (Developer B, just now)"
    )
    denied = await hook(http, dev_a, event="preToolUse", conversation_id="a", file_path="auth.ts")
    assert denied == {
        "permission": "deny",
        "message": f"File auth.ts is reserved by Developer B — '{task}' (10 min remaining)",
    }
    written = await hook(
        http, dev_a, event="PostToolUse", conversation_id="a", tool_name="Write",
        tool_input={"file_path": "api.ts"},
    )  # fmt: skip
    assert written == {"permission": "allow"}

    sessions = (await http.get(f"/workspaces/{slug}/sessions", headers=bearer(dev_a))).json()
    assert {(s["user_name"], tuple(s["reserved_files"])) for s in sessions} == {
        ("Developer A", ("api.ts",)),
        ("Developer B", ("auth.ts",)),
    }
    reservations = await http.get(f"/workspaces/{slug}/reservations", headers=bearer(dev_a))
    assert {(r["file_path"], r["user_name"]) for r in reservations.json()} == {
        ("api.ts", "Developer A"),
        ("auth.ts", "Developer B"),
    }
    decisions = await http.get(f"/workspaces/{slug}/decisions", headers=bearer(dev_a))
    assert [d["text"] for d in decisions.json()] == [f"JWT in {slug}"]
    beat = await http.post(HEARTBEAT, headers=bearer(dev_b), json={"session_id": sid_b})
    assert beat.json() == {"ok": True}


@pytest.mark.anyio
async def test_workspaces_on_every_node_run_the_whole_flow(
    cluster: Redis, cluster_settings: Settings, nodes: dict[int, SyncRedis]
) -> None:
    slots = slugs_on_every_node(nodes)
    provisioner = Admin(cluster, cluster_settings)
    team = {}
    for slug in slots:
        await provisioner.create_workspace(slug)
        dev_a, _ = await provisioner.create_key(slug, "Developer A")
        dev_b, _ = await provisioner.create_key(slug, "Developer B")
        team[slug] = (dev_a, dev_b)

    app = create_app(cluster_settings, cluster)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://coordinator") as http:
        for slug, (dev_a, dev_b) in team.items():
            await run_the_flow(http, slug, dev_a, dev_b)

        # Every key of a workspace, the lock and holder keys the scripts build from
        # prefixes included, sits in the workspace's slot on the node that serves it.
        homes = set()
        for slug, slot in slots.items():
            found = keys_by_node(nodes, slug)
            assert list(found) == [owner_of(slot, nodes)], found
            [names] = found.values()
            node = nodes[owner_of(slot, nodes)]
            assert {int(node.cluster("KEYSLOT", k)) for k in names} == {slot}
            assert {
                keys.lock(slug, "auth.ts"),
                keys.holder(slug, session_id_for(slug, "b")),
            } <= set(names)
            homes |= set(found)
        assert homes == set(nodes)

        for slug, (dev_a, dev_b) in team.items():
            ended = await hook(http, dev_b, event="sessionEnd", conversation_id="b")
            assert ended == {"ok": True}
            left = await http.get(f"/workspaces/{slug}/reservations", headers=bearer(dev_a))
            assert [r["file_path"] for r in left.json()] == ["api.ts"]
            freed = await hook(
                http, dev_a, event="preToolUse", conversation_id="a", file_path="auth.ts"
            )
            assert freed == {"permission": "allow"}

            revoked = await provisioner.revoke_key(dev_a)
            assert (revoked.sessions_ended, revoked.files_released) == (1, 2)
            refused = await http.post(
                HOOK, headers=bearer(dev_a), json={"event": "preToolUse", "conversation_id": "a"}
            )
            assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized")
            gone = await http.get(f"/workspaces/{slug}/reservations", headers=bearer(dev_b))
            assert gone.json() == []
    await app.state.store.aclose()  # ASGITransport runs no lifespan
    await provisioner.aclose()


def admin(*args: str, redis_url: str) -> subprocess.CompletedProcess[str]:
    """A ``coordinator`` admin command that must succeed."""
    done = coordinator(*args, redis_url=redis_url)
    assert done.returncode == 0, done.stderr
    return done


def test_admin_commands_and_a_served_app_on_the_cluster(
    redis_cluster_url: str, nodes: dict[int, SyncRedis], tmp_path: Path
) -> None:
    for node in nodes.values():
        node.flushall()
    url = redis_cluster_url
    created = admin("workspaces", "create", "cli-team", "--name", "CLI Team", redis_url=url)
    assert created.stdout.startswith("created workspace cli-team (ws_")
    dev_a = admin(
        "keys", "create", "--workspace", "cli-team", "--user", "Developer A", redis_url=url
    ).stdout.splitlines()[-1]
    dev_b = admin(
        "keys", "create", "--workspace", "cli-team", "--user", "Developer B", redis_url=url
    ).stdout.splitlines()[-1]
    listed = admin("keys", "list", "--workspace", "cli-team", redis_url=url)
    assert sorted(line.split()[-1] for line in listed.stdout.splitlines()) == ["A", "B"]
    any_node = next(iter(nodes.values()))
    slot = int(any_node.cluster("KEYSLOT", keys.workspace("cli-team")))
    assert list(keys_by_node(nodes, "cli-team")) == [owner_of(slot, nodes)]

    server, port = serve({**os.environ, "REDIS_URL": url}, tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            assert http.get("/health").json()["status"] == "ok"

            def claim(api_key: str, conversation: str) -> httpx.Response:
                body = {"event": "preToolUse", "conversation_id": conversation, "file_path": "f.py"}
                return http.post(HOOK, headers=bearer(api_key), json=body)

            assert claim(dev_a, "a").json() == {"permission": "allow"}
            denied = claim(dev_b, "b").json()
            assert denied["permission"] == "deny"
            assert "reserved by Developer A" in denied["message"]
            revoked = admin("keys", "revoke", dev_a, redis_url=url)
            assert revoked.stdout.endswith("ended 1 sessions, released 1 files\n")
            assert claim(dev_a, "a").status_code == 401
            assert claim(dev_b, "b").json() == {"permission": "allow"}
    finally:
        exit_code = stop(server)
    # uvicorn re-raises the SIGTERM it handled once it has shut down gracefully; the
    # lifespan closed the cluster client, and nothing failed on the way.
    log = (tmp_path / "serve.log").read_text()
    assert exit_code in (0, -signal.SIGTERM), log
    assert "Application shutdown complete." in log
    assert "Traceback" not in log and "Unclosed" not in log, log


@pytest.mark.anyio
async def test_event_streams_of_workspaces_on_every_node(
    redis_cluster_url: str, nodes: dict[int, SyncRedis], tmp_path: Path
) -> None:
    """A stream subscribes on the node of its channel's slot; a script publishes on the
    node of the workspace's slot (the same one): each stream sees its own workspace."""
    for node in nodes.values():
        node.flushall()
    slugs = list(slugs_on_every_node(nodes))
    settings = Settings(redis_url=redis_cluster_url)
    client = connect(settings)
    provisioner = Admin(client, settings)
    api_keys = {}
    for slug in slugs:
        await provisioner.create_workspace(slug)
        api_keys[slug], _ = await provisioner.create_key(slug, f"Dev of {slug}")
    await provisioner.aclose()
    await client.aclose()

    server, port = serve({**os.environ, "REDIS_URL": redis_cluster_url}, tmp_path / "serve.log")
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            async with contextlib.AsyncExitStack() as stack:
                feeds = {
                    slug: await open_feed(http, url, api_keys[slug], stack, ref=slug)
                    for slug in slugs
                }
                for slug in slugs:
                    body = {"event": "preToolUse", "conversation_id": "c", "file_path": slug}
                    await hook(http, api_keys[slug], **body)
                for slug, feed in feeds.items():
                    started, reserved = await feed.event(), await feed.event()
                    assert (started["type"], started["user"]) == ("started", f"Dev of {slug}")
                    assert (reserved["type"], reserved["path"]) == ("reserved", slug)
    finally:
        assert stop(server) in (0, -signal.SIGTERM)
    log = (tmp_path / "serve.log").read_text()
    assert "Traceback" not in log and "Unclosed" not in log, log


@pytest.mark.anyio
async def test_status_finds_the_workspaces_of_every_node(
    cluster: Redis, cluster_settings: Settings, nodes: dict[int, SyncRedis], redis_cluster_url: str
) -> None:
    slots = slugs_on_every_node(nodes)
    store, provisioner = Store(cluster, cluster_settings), Admin(cluster, cluster_settings)
    for slug in slots:
        await provisioner.create_workspace(slug)
        api_key, _ = await provisioner.create_key(slug, f"Dev of {slug}")
        who = await store.principal(digest_of(api_key))
        assert who is not None
        sid = session_id_for(slug, "c")
        fields = {"user_name": who.user_name, "current_task": f"Work on {slug}"}
        await store.touch(who, sid, "c", fields, [f"{slug}.py"])
    await store.aclose()
    await provisioner.aclose()

    # SCAN must visit every primary: each holds one of the workspaces.
    found = json.loads(admin("status", "--json", redis_url=redis_cluster_url).stdout)
    assert [ws["slug"] for ws in found["workspaces"]] == sorted(slots)
    for ws in found["workspaces"]:
        [reservation] = ws["reservations"]
        assert reservation["file_path"] == f"{ws['slug']}.py"
        assert reservation["user_name"] == f"Dev of {ws['slug']}"
        assert 0 < reservation["expires_in_s"] <= 600
        [session] = ws["sessions"]
        assert session["current_task"] == f"Work on {ws['slug']}"
    one = sorted(slots)[-1]
    shown = admin("status", "--workspace", one, redis_url=redis_cluster_url).stdout
    assert f"Work on {one}" in shown and f"{one}.py" in shown
    headers = [line for line in shown.splitlines() if line.startswith("team-")]
    assert [line.split()[0] for line in headers] == [one]
