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
        "COORDINATOR_DUPLICATE_WINDOW": "0.2",
    }
    settings = Settings.from_env(env)
    assert not settings.embedded
    assert (settings.session_ttl_ms, settings.reservation_ttl_ms) == (250, 1500)
    assert (settings.duplicate_window_ms, Settings.from_env({}).duplicate_window_ms) == (200, 15000)


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
    assert (default.max_files_per_session, default.max_files_per_key) == (500, 5_000)
    env = {"COORDINATOR_MAX_FILES_PER_SESSION": "3", "COORDINATOR_MAX_FILES_PER_KEY": "7"}
    assert Settings.from_env(env).max_files_per_session == 3
    assert Settings.from_env(env).max_files_per_key == 7
    with pytest.raises(ConfigError, match="COORDINATOR_MAX_FILES_PER_SESSION"):
        Settings.from_env({"COORDINATOR_MAX_FILES_PER_SESSION": "0"})


# Each malformed URL, with a password in it, and the words that must name its fault.
BAD_REDIS_URLS = [
    ("redis://:s3cret@localhost:abc/0", "bad port"),
    ("redis://:s3cret@localhost:99999", "bad port"),
    ("http://:s3cret@localhost:6379", "must begin with redis://"),
    ("redis://:s3cret@[::1", "malformed host"),
    ("redis://:s3cret@localhost:6379/?db=x", "bad value for ?db="),
    ("redis://:s3cret@localhost:6379?socket_timeout=abc", "bad value for ?socket_timeout="),
    ("redis://:s3cret@localhost:6379?colour=blue", "does not know: ?colour="),
    ("redis://:s3cret@localhost:6379/zero", "bad path"),
    ("redis://:s3/cret@localhost:6379/0", "bad port"),  # an unescaped '/' in the password
    ("redis+cluster://:s3cret@localhost:7000/1", "database other than 0"),
    ("unix://:s3cret@/tmp/redis.sock?db=x", "bad value for ?db="),
]


@pytest.mark.parametrize(("url", "fault"), BAD_REDIS_URLS)
def test_a_malformed_redis_url_is_named_without_its_password(url: str, fault: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"REDIS_URL": url})
    assert raised.value.message.startswith("REDIS_URL ") and fault in raised.value.message
    assert "s3" not in raised.value.message and "cret" not in raised.value.message
    assert raised.value.exit_code == 2


@pytest.mark.parametrize(
    "url",
    [
        "redis://localhost",
        "redis://user:p%2Fw@[::1]:6379/2?socket_timeout=1.5&health_check_interval=10",
        "rediss://localhost:6380/0?ssl_cert_reqs=none",
        "unix:///run/redis.sock?db=1",
        "redis+cluster://localhost:7000",
        "rediss+cluster://localhost:7000/0",
    ],
)
def test_a_good_redis_url_passes(url: str) -> None:
    assert Settings.from_env({"REDIS_URL": url}).redis_url == url


def test_the_edges_limits() -> None:
    defaults = Settings.from_env({})
    assert (defaults.max_connections, defaults.max_header_bytes) == (1000, 16 * 1024)
    assert (defaults.request_timeout_s, defaults.send_timeout_s) == (10.0, 10.0)
    assert (defaults.redis_pool_size, defaults.drain_s) == (50, 3.0)
    env = {
        "COORDINATOR_MAX_CONNECTIONS": "20",
        "COORDINATOR_MAX_HEADER_BYTES": "4096",
        "COORDINATOR_REQUEST_TIMEOUT": "0.5",
        "COORDINATOR_SEND_TIMEOUT": "2.5",
        "COORDINATOR_REDIS_POOL": "8",
        "COORDINATOR_DRAIN": "0.5",
    }
    settings = Settings.from_env(env)
    assert (settings.max_connections, settings.max_header_bytes) == (20, 4096)
    assert (settings.request_timeout_s, settings.send_timeout_s) == (0.5, 2.5)
    assert (settings.redis_pool_size, settings.drain_s) == (8, 0.5)
    assert Settings.from_env({"COORDINATOR_DRAIN": "0"}).drain_s == 0, "no drain at all"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("COORDINATOR_MAX_CONNECTIONS", "0"),
        ("COORDINATOR_MAX_HEADER_BYTES", "100"),
        ("COORDINATOR_REQUEST_TIMEOUT", "soon"),
        ("COORDINATOR_SEND_TIMEOUT", "0"),
        ("COORDINATOR_REDIS_POOL", "1"),
        ("COORDINATOR_DRAIN", "-1"),
    ],
)
def test_bad_edge_limits_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
