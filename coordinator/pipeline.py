"""One Redis connection that carries every concurrent script call of a replica.

redis-py spends more CPU on each command (a pooled connection, a retry wrapper, a
coroutine per read) than Redis spends running our scripts. Here every call made in
one turn of the event loop is packed into one write, and replies are read in order
by a protocol callback that wakes each caller: the auto-pipelining of the benchmark
issue, for plain TCP connections. ``transport.py`` puts it behind the same interface as
redis-py; the callers decide what to send, this module only carries it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import Any, cast

import hiredis
from redis import exceptions as redis_errors
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import Connection


class Pipeline:
    """Commands in, replies out, over one lazily opened connection.

    A reply that is an error raises ResponseError (NoScriptError for NOSCRIPT). A lost
    connection fails every pending call with ConnectionError; one with no reply within
    ``timeout_s`` is dropped and fails them with TimeoutError. The next call reconnects.
    """

    def __init__(
        self,
        host: str,
        port: int,
        timeout_s: float,
        db: int = 0,
        username: str | None = None,
        password: str | None = None,
        connect_timeout_s: float | None = None,
    ) -> None:
        self._address = (host, port)
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s or timeout_s
        self._hello: list[tuple[Any, ...]] = []
        if password is not None:
            self._hello.append(("AUTH", username, password) if username else ("AUTH", password))
        if db:
            self._hello.append(("SELECT", db))
        self._protocol: _Protocol | None = None
        self._opening = asyncio.Lock()

    @classmethod
    def serving(cls, redis: Redis | RedisCluster, timeout_s: float) -> Pipeline | None:
        """A pipeline to the server of ``redis``; None unless it speaks plain TCP to one
        server (not TLS, a unix socket, an in-process fake, or a cluster, whose client
        routes each call to its slot's node), where redis-py carries the calls."""
        if isinstance(redis, RedisCluster):
            return None
        pool = redis.connection_pool
        if pool.connection_class is not Connection:
            return None
        options = pool.connection_kwargs
        if options.get("credential_provider") is not None:
            return None
        return cls(
            options.get("host", "localhost"),
            int(options.get("port", 6379)),
            timeout_s,
            int(options.get("db", 0) or 0),
            options.get("username"),
            options.get("password"),
            options.get("socket_connect_timeout"),
        )

    async def call(self, *command: Any) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._open()
        return await protocol.send(hiredis.pack_command(command))

    async def script(
        self,
        sha: str,
        source: str | bytes | memoryview,
        keys: Sequence[str],
        args: Sequence[Any],
    ) -> Any:
        """EVALSHA, loading the script once if the server does not know it (yet, or any more)."""
        command = ("EVALSHA", sha, len(keys), *keys, *args)
        try:
            return await self.call(*command)
        except redis_errors.NoScriptError:
            await self.call("SCRIPT", "LOAD", source)
            return await self.call(*command)

    async def aclose(self) -> None:
        if self._protocol is not None:
            self._protocol.close(redis_errors.ConnectionError("the pipeline was closed"))
            self._protocol = None

    async def _open(self) -> _Protocol:
        async with self._opening:
            if self._protocol is not None and not self._protocol.closed:
                return self._protocol
            loop = asyncio.get_running_loop()
            try:
                _, protocol = await asyncio.wait_for(
                    loop.create_connection(lambda: _Protocol(self._timeout_s), *self._address),
                    self._connect_timeout_s,
                )
            except TimeoutError as exc:
                raise redis_errors.TimeoutError("connecting to Redis timed out") from exc
            except OSError as exc:
                raise redis_errors.ConnectionError(f"cannot connect to Redis: {exc}") from exc
            try:
                for command in self._hello:
                    await protocol.send(hiredis.pack_command(command))
            except redis_errors.RedisError as exc:
                protocol.close(exc)
                raise
            self._protocol = protocol
            return protocol


class _Protocol(asyncio.Protocol):
    """Writes batched per loop turn; replies matched to callers in order."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout_s = timeout_s
        self._reader = hiredis.Reader(
            encoding="utf-8", errors="replace", replyError=redis_errors.ResponseError
        )
        self._transport: asyncio.Transport | None = None
        self._outgoing: list[bytes] = []
        self._waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._watchdog: asyncio.TimerHandle | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self.closed:
            future.set_exception(redis_errors.ConnectionError("the connection to Redis closed"))
            return future
        if not self._outgoing:
            loop.call_soon(self._flush)
        self._outgoing.append(packed)
        self._waiting.append((future, loop.time()))
        if self._watchdog is None:
            self._watchdog = loop.call_later(self._timeout_s, self._check_overdue)
        return future

    def _flush(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.write(b"".join(self._outgoing))
        self._outgoing.clear()

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            future, _ = self._waiting.popleft()
            if future.done():  # its caller was cancelled
                continue
            if isinstance(reply, redis_errors.ResponseError):
                future.set_exception(_error(reply))
            else:
                future.set_result(reply)

    def _check_overdue(self) -> None:
        self._watchdog = None
        if not self._waiting:
            return
        loop = asyncio.get_running_loop()
        overdue = loop.time() - self._waiting[0][1] - self._timeout_s
        if overdue >= 0:
            self.close(redis_errors.TimeoutError("Redis did not answer in time"))
        else:
            self._watchdog = loop.call_later(-overdue, self._check_overdue)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(redis_errors.ConnectionError("the connection to Redis was lost"))

    def close(self, reason: Exception) -> None:
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._transport is not None:
            self._transport.close()
        while self._waiting:
            future, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(reason)


def _error(reply: redis_errors.ResponseError) -> redis_errors.ResponseError:
    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return redis_errors.NoScriptError(message)
    return reply
