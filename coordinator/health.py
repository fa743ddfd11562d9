"""``GET /health``: Redis answers, and will neither evict keys nor refuse writes.

A Redis that evicts (any maxmemory-policy but noeviction) or is full does not make /health
fail: every replica shares that Redis, so a load balancer would take them all out at once,
and the agents would edit uncoordinated, ends and reads included, for a Redis that still
serves. It answers 200 with ``"status": "degraded"`` and the reasons in ``problems``; a 503
means this replica cannot reach Redis.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from coordinator import __version__
from coordinator.errors import StoreUnavailable
from coordinator.models import RedisMemory
from coordinator.store import Store

log = logging.getLogger("coordinator.health")
SAFE_POLICY = "noeviction"
# Load balancers poll /health every second or so, each of them: INFO is read at most this
# often per replica, so /health costs Redis a PING.
READ_EVERY_S = 5.0


class Health:
    """The answers of /health on one replica, and its check at start."""

    def __init__(self, store: Store, read_every_s: float = READ_EVERY_S) -> None:
        self.store = store
        self.read_every_s = read_every_s
        self._memory: RedisMemory | None = None
        self._read_at = 0.0

    async def memory(self) -> RedisMemory:
        """Redis's memory as last read, read again when that is old or when Redis has
        since refused this replica a write for want of memory."""
        now, known = time.monotonic(), self._memory
        if (
            known is None
            or now - self._read_at >= self.read_every_s
            or (not known.full and self.store.full_seen_at > self._read_at)
        ):
            known = await self.store.memory()
            self._memory, self._read_at = known, now
        return known

    async def answer(self) -> dict[str, Any]:
        await self.store.ping()
        memory = await self.memory()
        found = problems(memory)
        return {
            "status": "degraded" if found else "ok",
            "version": __version__,
            "maxmemory_policy": memory.policy,
            "store_full": memory.full,
            "problems": found,
        }

    async def check_at_start(self) -> None:
        """Warn in the log of what /health would call degraded, or could not check."""
        try:
            memory = await self.memory()
        except StoreUnavailable as exc:
            log.warning(f"Redis's maxmemory-policy could not be read at start: {exc.message}")
            return
        if memory.policy is None:
            log.warning(
                "Redis does not tell its maxmemory-policy (INFO memory): make sure it is "
                "noeviction, or Redis may delete live locks and API keys when it is full"
            )
        for problem in problems(memory):
            log.warning(problem)


def problems(memory: RedisMemory) -> list[str]:
    """What is unsafe in Redis's memory settings and state, one sentence each."""
    found = []
    if memory.policy not in (None, SAFE_POLICY):
        found.append(
            f"Redis's maxmemory-policy is {memory.policy}, not noeviction: when it is full "
            "it deletes keys without a word, live locks among them (two agents then get one "
            "file) and, under allkeys-*, API keys (401 for all)"
        )
    if memory.full:
        found.append(
            "Redis is full (at its maxmemory): writes answer 507 store_full until memory is "
            "freed or maxmemory raised"
        )
    return found
