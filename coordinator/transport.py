"""The connection to Redis: how a client is made, how scripts and commands reach Redis,
and the one translation of its failures into StoreUnavailable and StoreFull.

Two transports carry the same calls: the replica's pipelined connection (``pipeline.py``:
plain TCP to one server, the fast path) and redis-py (fakeredis, TLS, unix sockets, a
cluster). Callers see one interface, ``script()`` and ``call()``; they choose what to send.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from importlib import resources
from typing import Any, cast

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.commands.core import AsyncScript

from coordinator.config import Settings
from coordinator.errors import StoreFull, StoreUnavailable
from coordinator.models import RedisMemory
from coordinator.pipeline import Pipeline

# RedisClusterException (no node of a cluster answers) is not a RedisError.
FAILURES = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    redis_errors.RedisClusterException,
    OSError,
)
ERRORS = (*FAILURES, redis_errors.RedisError)
STORE_FULL = (
    "Redis is full (at its maxmemory) and stores nothing more: reads and session ends still "
    "work; an operator must free memory or raise maxmemory"
)
# The files every script is preceded by, in this order: lib.lua (the key layout, admit,
# index upkeep, release and end), listings.lua (index pages), event.lua (one hook
# event's session and claims) and claims.lua (directory and glob claims, the queues).
LIBRARY = ("lib.lua", "listings.lua", "event.lua", "claims.lua")
# Every script of lua/ but the shared ones (LIBRARY), which go in front of each.
SCRIPTS = (
    "start",
    "prompt",
    "touch",
    "heartbeat",
    "end",
    "roots",
    "whoami",
    "decide",
    "decisions",
    "sessions",
    "reservations",
    "status",
    "revoke",
    "announce",
    "subagent",
    "handover",
    "reserve",
    "release",
    "request",
    "requests",
)

# What RedisCluster.from_url reads in place of each cluster scheme.
_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}


def connect(settings: Settings) -> Redis:
    """A client for ``settings.redis_url`` that gives up after the configured timeout;
    a Redis Cluster client for ``redis+cluster://host:port`` (``rediss+cluster://``: TLS).

    Its pool holds ``redis_pool_size`` connections, and a command finding them all busy
    waits for one up to ``redis_timeout_s`` (redis-py's own pool fails at once: under a
    burst, a healthy Redis looked unreachable)."""
    url = settings.redis_url or ""
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "socket_timeout": settings.redis_timeout_s,
    }
    scheme, _, rest = url.partition("://")
    cluster_scheme = _CLUSTER_SCHEMES.get(scheme.lower())
    if cluster_scheme is not None:
        # RedisCluster shares no base class with Redis but has every command the store
        # sends, and routes each to the node of its key's slot (a script: of its first key).
        return cast(Redis, RedisCluster.from_url(f"{cluster_scheme}://{rest}", **options))
    pool = BlockingConnectionPool.from_url(
        url, max_connections=settings.redis_pool_size, timeout=settings.redis_timeout_s, **options
    )
    return Redis.from_pool(pool)


def unavailable(exc: BaseException) -> StoreUnavailable | StoreFull:
    """Redis failing, in any of ERRORS' ways, as the client's 503 (507 when it is full).
    Its error's text stays here: a script's error names the script's sha and line."""
    if isinstance(exc, FAILURES):
        return StoreUnavailable(f"Redis is unreachable: {type(exc).__name__}")
    code = str(exc).split(" ", 1)[0]
    if isinstance(exc, redis_errors.OutOfMemoryError) or code == "OOM":
        return StoreFull(STORE_FULL)
    # Redis's error codes are one capitalised word (READONLY, BUSY, ...); redis-py strips ERR.
    return StoreUnavailable(f"Redis refused the operation ({code if code.isupper() else 'ERR'})")


def script_source(name: str) -> str:
    """What is registered as the script ``name``: the shared files, then its own."""
    folder = resources.files("coordinator") / "lua"
    parts = (*LIBRARY, f"{name}.lua")
    return "\n".join((folder / part).read_text() for part in parts)


class Transport:
    """Scripts and commands to Redis through redis-py; the base of the pipelined one.

    The client must decode responses (``decode_responses=True``). Replies are Redis's
    own (a hash's fields as HMGET lists them: HGETALL's shape differs between the two
    transports, so ``fields()`` reads a whole hash).
    """

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._scripts = {name: redis.register_script(script_source(name)) for name in SCRIPTS}
        # When Redis last refused a write for want of memory (time.monotonic()): /health
        # reads Redis's memory again at once, rather than after its usual pause.
        self.full_seen_at = 0.0

    async def script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run the script ``name`` (lua/<name>.lua) in one round trip."""
        try:
            return await self._script(self._scripts[name], keys, args)
        except ERRORS as exc:
            raise self.refusal(exc) from exc

    async def call(self, *command: Any) -> Any:
        """One Redis command, its reply as Redis gave it."""
        try:
            return await self._call(*command)
        except ERRORS as exc:
            raise self.refusal(exc) from exc

    async def fields(self, key: str) -> dict[str, str]:
        """Every field of a hash ({} when there is none)."""
        reply = await self.call("HGETALL", key)
        if isinstance(reply, dict):
            return reply
        return dict(zip(reply[::2], reply[1::2], strict=True))

    async def scan(self, pattern: str) -> list[str]:
        """Every key matching ``pattern``: SCAN, never KEYS (on a Redis Cluster redis-py
        scans every primary). For the admin's commands only: it walks the keyspace."""
        try:
            return [key async for key in self.redis.scan_iter(match=pattern, count=1000)]
        except ERRORS as exc:
            raise self.refusal(exc) from exc

    async def memory(self) -> RedisMemory:
        """Redis's eviction policy and whether it is full, from ``INFO memory`` (managed
        Redis services often disable CONFIG), of every primary of a cluster."""
        try:
            if isinstance(self.redis, RedisCluster):
                by_node = await self.redis.info("memory", target_nodes=RedisCluster.PRIMARIES)
                infos = list(by_node.values())
            else:
                infos = [await self.redis.info("memory")]
        except FAILURES as exc:
            raise unavailable(exc) from exc
        except redis_errors.ResponseError:  # INFO renamed away, or (fakeredis) unknown
            return RedisMemory(None, False)
        policies = [info.get("maxmemory_policy") for info in infos]
        unsafe = [name for name in policies if name not in (None, "noeviction")]
        policy = unsafe[0] if unsafe else None if None in policies else "noeviction"
        # Redis's own test: what it counts against maxmemory leaves out replication buffers.
        full = any(
            0
            < int(info.get("maxmemory", 0))
            < int(info.get("used_memory", 0)) - int(info.get("mem_not_counted_for_evict", 0))
            for info in infos
        )
        return RedisMemory(policy, full)

    def refusal(self, exc: BaseException) -> StoreUnavailable | StoreFull:
        """``unavailable(exc)``, noting when Redis was full."""
        error = unavailable(exc)
        if isinstance(error, StoreFull):
            self.full_seen_at = time.monotonic()
        return error

    async def aclose(self) -> None:
        """Close the transport's own connections (the client passed in stays open)."""

    # What carries a call: redis-py here, the pipeline in _Pipelined (not coroutines, so
    # that a call costs no extra coroutine on the hook path).
    def _script(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]
    ) -> Awaitable[Any]:
        return script(keys=keys, args=args)

    def _call(self, *command: Any) -> Awaitable[Any]:
        return self.redis.execute_command(*command)  # type: ignore[no-untyped-call]


class _Pipelined(Transport):
    """Every request's scripts and commands on one pipelined connection (pipeline.py);
    the client's pool is left to the admin's commands and the pub/sub connection."""

    def __init__(self, redis: Redis, pipeline: Pipeline) -> None:
        super().__init__(redis)
        self._pipeline = pipeline

    async def aclose(self) -> None:
        await self._pipeline.aclose()

    def _script(
        self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]
    ) -> Awaitable[Any]:
        return self._pipeline.script(script.sha, script.script, keys, args)

    def _call(self, *command: Any) -> Awaitable[Any]:
        return self._pipeline.call(*command)


def transport_for(redis: Redis, timeout_s: float) -> Transport:
    """The pipelined transport where the client speaks plain TCP to one server, else
    redis-py's."""
    pipeline = Pipeline.serving(redis, timeout_s)
    return Transport(redis) if pipeline is None else _Pipelined(redis, pipeline)
