"""Settings: one frozen object, built once from the environment."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from redis.asyncio import ConnectionPool, RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from coordinator.errors import InvalidSetting
from coordinator.logs import LEVELS

MIB = 1 << 20


@dataclass(frozen=True, slots=True)
class Settings:
    """What a running service needs to know. TTLs are kept in milliseconds."""

    redis_url: str | None = None
    redis_connect_timeout_s: float = 0.5
    redis_timeout_s: float = 1.0
    rate_per_s: float = 50.0
    rate_burst: int = 200
    session_ttl_ms: int = 300_000
    reservation_ttl_ms: int = 600_000
    # How long a freed file is held for the first in its request queue (claims.lua).
    hand_off_grace_ms: int = 120_000
    # How long an event is remembered by its id, so that the same event arriving again
    # (Cursor running Claude Code's hooks as well as its own) is answered as the first.
    duplicate_window_ms: int = 15_000
    max_body_bytes: int = MIB
    briefing_lines: int = 20
    briefing_decisions: int = 5
    # The newest files others hold that a briefing reads to group (render.py): its cost.
    briefing_scan: int = 200
    decision_history: int = 200
    events_keepalive_s: float = 15.0
    streams_per_key: int = 10
    # How much one session and one API key may hold: every script's work is bounded by them.
    max_files_per_session: int = 500
    max_files_per_key: int = 5_000
    # Directory and glob claims a workspace may hold at once: a new file claim reads them all.
    max_patterns: int = 50
    log_level: str = "INFO"
    # The edge: what one replica grants its clients (docs/operations.md, "Operating it safely").
    max_connections: int = 1000
    max_header_bytes: int = 16 * 1024
    request_timeout_s: float = 10.0
    send_timeout_s: float = 10.0
    redis_pool_size: int = 50
    # Seconds a stopping replica keeps its idle connections open (see commands.Server).
    drain_s: float = 3.0
    metrics_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            redis_url=_redis_url(env),
            session_ttl_ms=_ttl_ms(env, "COORDINATOR_SESSION_TTL", 300_000),
            reservation_ttl_ms=_ttl_ms(env, "COORDINATOR_RESERVATION_TTL", 600_000),
            hand_off_grace_ms=_ttl_ms(env, "COORDINATOR_HANDOFF_GRACE", 120_000),
            duplicate_window_ms=_ttl_ms(env, "COORDINATOR_DUPLICATE_WINDOW", 15_000),
            redis_connect_timeout_s=_ttl_ms(env, "COORDINATOR_REDIS_CONNECT_TIMEOUT", 500) / 1000,
            redis_timeout_s=_ttl_ms(env, "COORDINATOR_REDIS_TIMEOUT", 1_000) / 1000,
            rate_per_s=_number(env, "COORDINATOR_RATE_LIMIT", 50.0, minimum=0),
            rate_burst=int(_number(env, "COORDINATOR_RATE_BURST", 200, minimum=1)),
            events_keepalive_s=_ttl_ms(env, "COORDINATOR_EVENTS_KEEPALIVE", 15_000) / 1000,
            streams_per_key=int(_number(env, "COORDINATOR_STREAMS_PER_KEY", 10, minimum=1)),
            max_files_per_session=int(
                _number(env, "COORDINATOR_MAX_FILES_PER_SESSION", 500, minimum=1)
            ),
            max_files_per_key=int(_number(env, "COORDINATOR_MAX_FILES_PER_KEY", 5_000, minimum=1)),
            max_patterns=int(_number(env, "COORDINATOR_MAX_PATTERNS", 50, minimum=1)),
            log_level=_log_level(env),
            max_connections=int(_number(env, "COORDINATOR_MAX_CONNECTIONS", 1000, minimum=1)),
            max_header_bytes=int(
                _number(env, "COORDINATOR_MAX_HEADER_BYTES", 16 * 1024, minimum=1024)
            ),
            request_timeout_s=_ttl_ms(env, "COORDINATOR_REQUEST_TIMEOUT", 10_000) / 1000,
            send_timeout_s=_ttl_ms(env, "COORDINATOR_SEND_TIMEOUT", 10_000) / 1000,
            redis_pool_size=int(_number(env, "COORDINATOR_REDIS_POOL", 50, minimum=2)),
            drain_s=_number(env, "COORDINATOR_DRAIN", 3.0, minimum=0),
            metrics_token=env.get("COORDINATOR_METRICS_TOKEN") or None,
        )

    @property
    def embedded(self) -> bool:
        return self.redis_url is None


_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "rediss+cluster")


def _redis_url(env: Mapping[str, str]) -> str | None:
    url = env.get("REDIS_URL") or None
    if url is not None:
        problem = _redis_url_problem(url)
        if problem is not None:
            raise InvalidSetting(f"REDIS_URL {problem}")
    return url


def _redis_url_problem(url: str) -> str | None:
    """What is wrong with a Redis URL, in words that never quote it: it may hold a password,
    and a password with an unescaped ``/`` or ``@`` lands in the port or the path."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a '[' left open, or no IP address between the brackets
        return "has a malformed host: an IPv6 address goes in closed brackets, [::1]"
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = 0
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        return "must begin with " + ", ".join(f"{name}://" for name in _SCHEMES)
    if scheme != "unix":
        if port == 0:
            return "has a bad port: a number from 1 to 65535 goes after the host"
        db = parts.path.replace("/", "")
        if db and not (db.isascii() and db.isdigit()):
            return "has a bad path: only a database number goes there, as in redis://host:6379/0"
    return _options_problem(scheme, url)


def _options_problem(scheme: str, url: str) -> str | None:
    """What redis-py makes of the URL's options, without connecting: it checks some of
    them only as it opens its first connection, with a 40-line traceback."""
    plain = scheme.removesuffix("+cluster") + url[len(scheme) :]
    try:
        if scheme.endswith("+cluster"):
            RedisCluster.from_url(plain)
        else:
            pool = ConnectionPool.from_url(plain)
            pool.connection_class(**pool.connection_kwargs)
    except TypeError as exc:
        option = re.search(r"argument '(\w+)'", str(exc))
        return f"has an option redis-py does not know: ?{option[1] if option else ''}="
    except (ValueError, RedisError, RedisClusterException) as exc:
        option = re.search(r"value for '(\w+)'", str(exc))
        if option:
            return f"has a bad value for ?{option[1]}="
        if "'db'" in str(exc):
            return "names a database other than 0, which a Redis Cluster does not have"
        return "is not a Redis URL redis-py accepts"
    return None


def _log_level(env: Mapping[str, str]) -> str:
    level = (env.get("COORDINATOR_LOG_LEVEL") or "INFO").upper()
    if level not in LEVELS:
        raise InvalidSetting(
            f"COORDINATOR_LOG_LEVEL must be one of {', '.join(LEVELS)}, got {level!r}"
        )
    return level


def _number(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidSetting(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise InvalidSetting(f"{name} must be a number of at least {minimum:g}, got {raw!r}")
    return value


def _ttl_ms(env: Mapping[str, str], name: str, default_ms: int) -> int:
    """A duration in seconds, decimals allowed (tests use sub-second TTLs), as whole ms."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default_ms
    try:
        seconds = float(raw)
    except ValueError:
        raise InvalidSetting(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(seconds) or seconds < 0.001:
        raise InvalidSetting(f"{name} must be at least 0.001 seconds, got {raw!r}")
    return math.ceil(seconds * 1000)
