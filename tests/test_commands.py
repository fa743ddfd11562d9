"""The admin commands, run as real processes against the real Redis."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from redis import Redis as SyncRedis
from redis.typing import EncodableT, FieldT

from coordinator.routes import HOOK
from tests.helpers import Service, bearer, coordinator


def everything_stored(redis: SyncRedis) -> str:
    """Every key and value in Redis, as one text to search."""
    parts = []
    for key in redis.scan_iter():
        parts.append(key)
        match redis.type(key):
            case "string":
                parts.append(redis.get(key) or "")
            case "hash":
                parts += [str(item) for pair in redis.hgetall(key).items() for item in pair]
            case "list":
                parts += redis.lrange(key, 0, -1)
            case "set":
                parts += redis.smembers(key)
            case "zset":
                parts += redis.zrange(key, 0, -1)
    return "\n".join(parts)


def test_workspaces_and_keys(redis_url: str, real_redis_sync: SyncRedis) -> None:
    created = coordinator(
        "workspaces", "create", "my-startup", "--name", "My Startup", redis_url=redis_url
    )
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("created workspace my-startup (ws_")
    again = coordinator("workspaces", "create", "my-startup", redis_url=redis_url)
    assert (again.returncode, again.stderr) == (
        1,
        "coordinator: workspace 'my-startup' exists already\n",
    )

    made = coordinator(
        "keys", "create", "--workspace", "my-startup", "--user", "Developer B", redis_url=redis_url
    )
    assert made.returncode == 0, made.stderr
    api_key = made.stdout.splitlines()[-1]
    assert api_key.startswith("ek_") and len(api_key) >= 43
    stored = everything_stored(real_redis_sync)
    assert api_key not in stored and api_key[3:] not in stored
    assert hashlib.sha256(api_key.encode()).hexdigest() in stored

    listed = coordinator("keys", "list", "--workspace", "my-startup", redis_url=redis_url)
    assert "Developer B" in listed.stdout and api_key not in listed.stdout


def test_bad_input_to_the_commands(redis_url: str, real_redis_sync: SyncRedis) -> None:
    bad_slug = coordinator("workspaces", "create", "Bad_Slug", redis_url=redis_url)
    assert bad_slug.returncode == 1 and "must match" in bad_slug.stderr
    no_workspace = coordinator(
        "keys", "create", "--workspace", "nope", "--user", "X", redis_url=redis_url
    )
    assert no_workspace.returncode == 1 and "no workspace 'nope'" in no_workspace.stderr
    unknown = coordinator("keys", "revoke", "ek_never-issued", redis_url=redis_url)
    assert unknown.returncode == 1 and "no such API key" in unknown.stderr


@pytest.mark.parametrize(
    "args", [("workspaces", "create", "x"), ("keys", "list", "--workspace", "x")]
)
def test_admin_commands_need_redis_url(args: tuple[str, ...]) -> None:
    done = coordinator(*args, redis_url=None)
    assert done.returncode == 1 and "REDIS_URL is not set" in done.stderr


def test_version() -> None:
    done = coordinator("--version", redis_url=None)
    assert done.stdout.startswith("coordinator 0.")


def test_a_revoked_key_is_refused_by_the_running_service(service: Service, redis_url: str) -> None:
    auth = bearer(service.dev_a)
    hook = {"event": "preToolUse", "conversation_id": "c", "file_path": "a.ts"}
    assert httpx.post(service.url + HOOK, headers=auth, json=hook).is_success
    revoked = coordinator("keys", "revoke", service.dev_a, redis_url=redis_url)
    assert revoked.returncode == 0 and "Developer A" in revoked.stdout
    assert "ended 1 sessions, released 1 files" in revoked.stdout
    refused = httpx.post(service.url + HOOK, headers=auth, json=hook)
    assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized")
    twice = coordinator("keys", "revoke", service.dev_a, redis_url=redis_url)
    assert twice.returncode == 1


@pytest.mark.parametrize(
    "url", ["redis://:s3cret@localhost:abc/0", "http://:s3cret@x", "redis://:s3cret@[::1"]
)
def test_serve_names_a_malformed_redis_url_in_one_line(url: str) -> None:
    done = coordinator("serve", "--port", "1", redis_url=url)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("coordinator: REDIS_URL ") and done.stderr.count("\n") == 1
    assert "s3cret" not in done.stderr + done.stdout


def key_ids(redis_url: str) -> dict[str, str]:
    """User name → key id, as `keys list` prints them."""
    listed = coordinator("keys", "list", "--workspace", "acme", redis_url=redis_url)
    assert listed.returncode == 0, listed.stderr
    return {line.split(maxsplit=3)[3]: line.split()[0] for line in listed.stdout.splitlines()}


def test_a_key_is_revoked_by_the_id_keys_list_shows(service: Service, redis_url: str) -> None:
    hook = {"event": "preToolUse", "conversation_id": "c", "file_path": "a.ts"}
    url = service.url + HOOK
    assert httpx.post(url, headers=bearer(service.dev_a), json=hook).is_success
    key_id = key_ids(redis_url)["Developer A"]
    revoked = coordinator("keys", "revoke", key_id, redis_url=redis_url)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith(f"revoked key {key_id} of Developer A in acme; ended 1")
    refused = httpx.post(url, headers=bearer(service.dev_a), json=hook)
    assert (refused.status_code, refused.json()["error"]) == (401, "unauthorized")
    assert list(key_ids(redis_url)) == ["Developer B"]
    again = coordinator("keys", "revoke", key_id, redis_url=redis_url)
    assert again.returncode == 1 and f"no API key with id '{key_id}'" in again.stderr


def test_a_key_is_revoked_from_stdin_off_the_command_line(service: Service, redis_url: str) -> None:
    revoked = coordinator("keys", "revoke", "-", redis_url=redis_url, stdin=service.dev_b + "\n")
    assert revoked.returncode == 0 and "of Developer B" in revoked.stdout, revoked.stderr
    headers = bearer(service.dev_b)
    assert httpx.get(f"{service.url}/whoami", headers=headers).status_code == 401
    empty = coordinator("keys", "revoke", "-", redis_url=redis_url, stdin="")
    assert empty.returncode == 2 and "no API key on stdin" in empty.stderr


def test_an_id_that_names_two_keys_revokes_neither(
    service: Service, redis_url: str, real_redis_sync: SyncRedis
) -> None:
    key_id = key_ids(redis_url)["Developer A"]
    digest = hashlib.sha256(service.dev_a.encode()).hexdigest()
    twin = digest[:6] + ("0" if digest[6] != "0" else "1") + digest[7:]
    record: dict[FieldT, EncodableT] = {"user_name": "Twin"}
    for field, value in real_redis_sync.hgetall(f"coord:apikey:{digest}").items():
        record.setdefault(field, value)
    real_redis_sync.hset(f"coord:apikey:{twin}", mapping=record)
    for ambiguous in (key_id[:6], key_id[:6].upper()):
        refused = coordinator("keys", "revoke", ambiguous, redis_url=redis_url)
        assert refused.returncode == 2 and "names 2 keys" in refused.stderr, refused.stderr
        assert key_id in refused.stderr
    for bad in ("08d", "not-an-id", "08d6*"):
        refused = coordinator("keys", "revoke", bad, redis_url=redis_url)
        assert refused.returncode == 2 and "is not a key id" in refused.stderr, refused.stderr
    assert httpx.get(f"{service.url}/whoami", headers=bearer(service.dev_a)).is_success
    revoked = coordinator("keys", "revoke", key_id[:7], redis_url=redis_url)
    assert revoked.returncode == 0 and "of Developer A" in revoked.stdout, revoked.stderr


def test_a_read_only_key_is_listed_as_such(redis_url: str, real_redis_sync: SyncRedis) -> None:
    assert coordinator("workspaces", "create", "acme", redis_url=redis_url).returncode == 0
    for extra in ((), ("--read-only",)):
        made = coordinator(
            "keys", "create", "--workspace", "acme", "--user", f"U{len(extra)}", *extra,
            redis_url=redis_url,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
    assert "created read-only key" in made.stdout
    listed = coordinator("keys", "list", "--workspace", "acme", redis_url=redis_url).stdout
    kinds = {line.split()[-1]: line.split()[2] for line in listed.splitlines()}
    assert kinds == {"U0": "read-write", "U1": "read-only"}
