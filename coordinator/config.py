"""Settings: one frozen object, built once from the environment."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from coordinator.errors import ConfigError
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
    max_body_bytes: int = MIB
    briefing_lines: int = 20
    briefing_decisions: int = 5
    decision_history: int = 200
    events_keepalive_s: float = 15.0
    streams_per_key: int = 10
    # How much one session and one API key may hold: every script's work is bounded by them.
    max_files_per_session: int = 1_000
    max_files_per_key: int = 5_000
    log_level: str = "INFO"
    metrics_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        return cls(
            redis_url=env.get("REDIS_URL") or None,
            session_ttl_ms=_ttl_ms(env, "COORDINATOR_SESSION_TTL", 300_000),
            reservation_ttl_ms=_ttl_ms(env, "COORDINATOR_RESERVATION_TTL", 600_000),
            redis_connect_timeout_s=_ttl_ms(env, "COORDINATOR_REDIS_CONNECT_TIMEOUT", 500) / 1000,
            redis_timeout_s=_ttl_ms(env, "COORDINATOR_REDIS_TIMEOUT", 1_000) / 1000,
            rate_per_s=_number(env, "COORDINATOR_RATE_LIMIT", 50.0, minimum=0),
            rate_burst=int(_number(env, "COORDINATOR_RATE_BURST", 200, minimum=1)),
            events_keepalive_s=_ttl_ms(env, "COORDINATOR_EVENTS_KEEPALIVE", 15_000) / 1000,
            streams_per_key=int(_number(env, "COORDINATOR_STREAMS_PER_KEY", 10, minimum=1)),
            max_files_per_session=int(
                _number(env, "COORDINATOR_MAX_FILES_PER_SESSION", 1_000, minimum=1)
            ),
            max_files_per_key=int(_number(env, "COORDINATOR_MAX_FILES_PER_KEY", 5_000, minimum=1)),
            log_level=_log_level(env),
            metrics_token=env.get("COORDINATOR_METRICS_TOKEN") or None,
        )

    @property
    def embedded(self) -> bool:
        return self.redis_url is None


def _log_level(env: Mapping[str, str]) -> str:
    level = (env.get("COORDINATOR_LOG_LEVEL") or "INFO").upper()
    if level not in LEVELS:
        raise ConfigError(
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
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name} must be a number of at least {minimum:g}, got {raw!r}")
    return value


def _ttl_ms(env: Mapping[str, str], name: str, default_ms: int) -> int:
    """A duration in seconds, decimals allowed (tests use sub-second TTLs), as whole ms."""
    raw = env.get(name)
    if raw is None or raw == "":
        return default_ms
    try:
        seconds = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(seconds) or seconds < 0.001:
        raise ConfigError(f"{name} must be at least 0.001 seconds, got {raw!r}")
    return math.ceil(seconds * 1000)
