"""What one hostile key costs everyone: the slowest script, the listings, and what is left.

    python -m bench.bounds [--patches 200] [--sessions 1]
    python -m bench.bounds --revoke-keys 4


Starts its own redis-server and one `coordinator serve` on it (rate limit off, short TTLs),
then one API key sends ``--patches`` Codex ``apply_patch`` PreToolUse events of 100
``*** Add File:`` lines each, spread over ``--sessions`` conversations. It prints, from
Redis's SLOWLOG (every command logged), the slowest run of each script while claiming,
at a renewal and at SessionEnd; the time and size of ``GET /reservations`` and
``GET /sessions`` (one page, and every page); and, once every TTL has passed, the keys
and bytes the workspace still holds.

With ``--revoke-keys N`` it instead fills one workspace with N keys, each at its cap (10
sessions of 500 files, 5,000 files), plus 100 sessions holding nothing, and revokes the
first key (``Admin.revoke_key``, as ``coordinator keys revoke`` does): it prints the revoke
script's calls and the slowest, from the SLOWLOG.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import statistics
import sys
import time
from typing import Any

import httpx
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from bench.__main__ import provision, redis_server
from coordinator.admin import Admin
from coordinator.config import Settings
from coordinator.models import digest_of, session_id_for
from coordinator.store import Store
from coordinator.transport import SCRIPTS, script_source
from tests.servers import free_port, running

TTL_S = 12.0


def script_names() -> dict[str, str]:
    return {hashlib.sha1(script_source(name).encode()).hexdigest(): name for name in SCRIPTS}


def slowest(redis: SyncRedis, names: dict[str, str]) -> dict[str, str]:
    """Each script's runs in the SLOWLOG (which is then reset): count, median and slowest, ms."""
    runs: dict[str, list[float]] = {}
    for entry in redis.slowlog_get(100_000):
        command = entry["command"]
        command = command.decode() if isinstance(command, bytes) else str(command)
        words = command.split()
        if len(words) < 2 or words[0].upper() not in ("EVALSHA", "EVAL"):
            continue
        runs.setdefault(names.get(words[1], "eval"), []).append(entry["duration"] / 1000)
    redis.slowlog_reset()
    return {
        name: f"{len(times)} runs, median {statistics.median(times):.1f}, max {max(times):.1f}"
        for name, times in runs.items()
    }


def patch(first: int) -> str:
    lines = [f"*** Add File: gen/{first + i}.ts\n+x" for i in range(100)]
    return "*** Begin Patch\n" + "\n".join(lines) + "\n*** End Patch"


def event(conversation: str, kind: str, **more: Any) -> dict[str, Any]:
    return {"event": kind, "conversation_id": conversation, "agent_type": "codex",
            "cwd": "/repo", **more}  # fmt: skip


def listing(http: httpx.Client, route: str, headers: dict[str, str]) -> str:
    """The first page of a listing, then every page at ?limit=1000, following the Link
    header (an unpaginated listing answers everything at once)."""
    started = time.perf_counter()
    first = http.get(route, headers=headers)
    first.raise_for_status()
    first_ms = (time.perf_counter() - started) * 1000
    url: str | None = f"{route}?limit=1000"
    pages, rows, size, slowest_ms = 0, 0, 0, 0.0
    while url is not None and pages < 1_000:
        started = time.perf_counter()
        answer = http.get(url, headers=headers)
        slowest_ms = max(slowest_ms, (time.perf_counter() - started) * 1000)
        answer.raise_for_status()
        pages, rows, size = pages + 1, rows + len(answer.json()), max(size, len(answer.content))
        link = answer.headers.get("link")
        url = link[1 : link.index(">")] if link else None
    return (f"first page {first_ms:.0f} ms, {len(first.content)} bytes, "
            f"{len(first.json())} rows; {rows} rows in {pages} pages of at most 1000, "
            f"slowest {slowest_ms:.0f} ms, biggest {size} bytes")  # fmt: skip


def workspace_left(redis: SyncRedis) -> tuple[int, int, list[str]]:
    found = list(redis.scan_iter(match="coord:{bench}:*", count=1000))
    size = sum(int(redis.memory_usage(key) or 0) for key in found)
    return len(found), size, sorted(found)


async def fill_and_revoke(redis_url: str, key_count: int) -> str:
    """N keys of one workspace at their caps; the first one revoked. Returns what revoking said."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    store = Store(redis, Settings(redis_url=redis_url, rate_per_s=0))
    admin = Admin(redis, Settings(redis_url=redis_url))
    try:
        await admin.create_workspace("bench")
        api_keys = [(await admin.create_key("bench", f"K{n}"))[0] for n in range(key_count)]
        for n, api_key in enumerate(api_keys):
            who = await store.principal(digest_of(api_key))
            assert who is not None
            fields = {"user_name": who.user_name, "key_id": who.key_id}
            for s in range(10 + 10):  # ten sessions at the cap, ten holding nothing
                conversation = f"k{n}-s{s}"
                sid = session_id_for("bench", conversation)
                await store.touch(who, sid, conversation, fields)
                for first in range(0, 500 if s < 10 else 0, 100):
                    paths = [f"{conversation}/{first + i}.ts" for i in range(100)]
                    await store.touch(who, sid, conversation, fields, paths)
        held = await redis.zcard("coord:{bench}:locks")
        await redis.slowlog_reset()
        started = time.perf_counter()
        revoked = await admin.revoke_key(api_keys[0])
        took_ms = (time.perf_counter() - started) * 1000
        return (f"{key_count} keys, {held} files held; revoking one: ended "
                f"{revoked.sessions_ended} sessions, released {revoked.files_released} files "
                f"in {took_ms:.0f} ms")  # fmt: skip
    finally:
        await store.aclose()
        await admin.aclose()
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--revoke-keys", type=int, default=0)
    args = parser.parse_args()
    names = script_names()
    if args.revoke_keys:
        with redis_server() as redis_url:
            redis = SyncRedis.from_url(redis_url, decode_responses=True)
            redis.config_set("slowlog-log-slower-than", 0)
            redis.config_set("slowlog-max-len", 100_000)
            print(asyncio.run(fill_and_revoke(redis_url, args.revoke_keys)))
            print(f"  scripts while revoking (ms): {slowest(redis, names)}")
        return
    with redis_server() as redis_url:
        key = asyncio.run(provision(redis_url))
        port = free_port()
        env = {**os.environ, "REDIS_URL": redis_url, "COORDINATOR_RATE_LIMIT": "0",
               "COORDINATOR_SESSION_TTL": str(TTL_S), "COORDINATOR_RESERVATION_TTL": str(TTL_S),
               "COORDINATOR_REDIS_TIMEOUT": "30"}  # fmt: skip
        serve = [sys.executable, "-m", "coordinator", "serve", "--no-access-log", "--port"]
        redis = SyncRedis.from_url(redis_url, decode_responses=True)
        redis.config_set("slowlog-log-slower-than", 0)
        redis.config_set("slowlog-max-len", 100_000)
        headers = {"Authorization": f"Bearer {key}"}
        hook = "/workspaces/sessions/hook"
        with (
            running([*serve, str(port)], port, env=env, timeout=20),
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http,
        ):
            conversations = [f"hostile-{n}" for n in range(args.sessions)]
            denied = 0
            started = time.perf_counter()
            for n in range(args.patches):
                conversation = conversations[n % len(conversations)]
                body = event(conversation, "preToolUse", tool_name="apply_patch",
                             tool_input={"command": patch(n * 100)})  # fmt: skip
                answer = http.post(hook, json=body, headers=headers)
                answer.raise_for_status()
                denied += answer.json().get("permission") == "deny"
            fill_s = time.perf_counter() - started
            held = redis.zcard("coord:{bench}:locks")
            print(f"claimed: {args.patches} patches x 100 files in {fill_s:.1f} s, "
                  f"{denied} denied; locks index {held} entries")  # fmt: skip
            print(f"  slowest scripts while claiming (ms): {slowest(redis, names)}")
            time.sleep(TTL_S / 4 + 0.5)  # a renewal is due
            for conversation in conversations:
                answer = http.post(hook, json=event(conversation, "beforeSubmitPrompt",
                                                    prompt="go on"), headers=headers)  # fmt: skip
                answer.raise_for_status()
            print(f"  renewal (one prompt per session), slowest (ms): {slowest(redis, names)}")
            for _ in range(3):  # and renewals again, for a steadier figure
                time.sleep(TTL_S / 4 + 0.1)
                for conversation in conversations:
                    body = event(conversation, "beforeSubmitPrompt", prompt="go on")
                    http.post(hook, json=body, headers=headers).raise_for_status()
            print(f"  three more renewals, slowest (ms): {slowest(redis, names)}")
            for route in ("reservations", "sessions"):
                print(f"  GET /{route}: {listing(http, f'/workspaces/bench/{route}', headers)}")
            print(f"  listings, slowest (ms): {slowest(redis, names)}")
            ends = []
            for conversation in conversations:
                started = time.perf_counter()
                answer = http.post(hook, json=event(conversation, "sessionEnd"), headers=headers)
                answer.raise_for_status()
                ends.append((time.perf_counter() - started) * 1000)
            print(f"  SessionEnd: slowest {max(ends):.0f} ms of {len(ends)}")
            print(f"  SessionEnd, slowest (ms): {slowest(redis, names)}")
            # An unlucky workspace: a few edits, then nobody comes back.
            for n in range(20):
                body = event(f"idle-{n}", "preToolUse", file_path=f"idle/{n}.ts")
                http.post(hook, json=body, headers=headers).raise_for_status()
            time.sleep(TTL_S + 1)
            count, size, left = workspace_left(redis)
            print(f"after every TTL: {count} keys of the workspace, {size} bytes: {left}")


if __name__ == "__main__":
    main()
