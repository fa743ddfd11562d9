from __future__ import annotations

import pytest

from coordinator.config import Settings
from coordinator.errors import ConfigError


def test_defaults_without_environment() -> None:
    settings = Settings.from_env({})
    assert settings.embedded
    assert (settings.session_ttl_ms, settings.reservation_ttl_ms) == (300_000, 600_000)


def test_ttls_accept_decimal_seconds() -> None:
    env = {
        "REDIS_URL": "redis://localhost:6379/0",
        "COORDINATOR_SESSION_TTL": "0.25",
        "COORDINATOR_RESERVATION_TTL": "1.5",
    }
    settings = Settings.from_env(env)
    assert not settings.embedded
    assert (settings.session_ttl_ms, settings.reservation_ttl_ms) == (250, 1500)


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf"])
def test_bad_ttls_name_the_setting(value: str) -> None:
    with pytest.raises(ConfigError, match="COORDINATOR_SESSION_TTL"):
        Settings.from_env({"COORDINATOR_SESSION_TTL": value})


def test_streams_per_key() -> None:
    assert Settings.from_env({}).streams_per_key == 10
    assert Settings.from_env({"COORDINATOR_STREAMS_PER_KEY": "2"}).streams_per_key == 2
    with pytest.raises(ConfigError, match="COORDINATOR_STREAMS_PER_KEY"):
        Settings.from_env({"COORDINATOR_STREAMS_PER_KEY": "0"})


def test_file_caps() -> None:
    default = Settings.from_env({})
    assert (default.max_files_per_session, default.max_files_per_key) == (1_000, 5_000)
    env = {"COORDINATOR_MAX_FILES_PER_SESSION": "3", "COORDINATOR_MAX_FILES_PER_KEY": "7"}
    assert Settings.from_env(env).max_files_per_session == 3
    assert Settings.from_env(env).max_files_per_key == 7
    with pytest.raises(ConfigError, match="COORDINATOR_MAX_FILES_PER_SESSION"):
        Settings.from_env({"COORDINATOR_MAX_FILES_PER_SESSION": "0"})
