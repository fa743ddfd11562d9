"""The errors a client can cause or meet, each with its HTTP status and error code.

``asgi.error_answer`` answers every one of them as ``{"error": code, "message": message}``.
"""

from __future__ import annotations


class CoordinatorError(Exception):
    """Base class: something the client is told about, never a stack trace."""

    status = 500
    code = "internal_error"
    exit_code = 1  # of the `coordinator` command it ends

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def headers(self) -> dict[str, str]:
        """Headers that go with the answer."""
        return {}


class BadRequest(CoordinatorError):
    status = 400
    code = "bad_request"


class InvalidJson(BadRequest):
    code = "invalid_json"


class UnknownEvent(BadRequest):
    code = "unknown_event"


class Unauthorized(CoordinatorError):
    status = 401
    code = "unauthorized"


class Forbidden(CoordinatorError):
    status = 403
    code = "forbidden"


class SessionOfAnotherKey(Forbidden):
    """A session belongs to the API key that started it; another key of the workspace
    may read it in the listings but not send its events, heartbeat or end it."""

    code = "session_of_another_key"


class ReadOnlyKey(Forbidden):
    """A read-only key (a wall-screen board's) reads; every write is refused."""

    code = "read_only_key"


class NotFound(CoordinatorError):
    status = 404
    code = "not_found"


class SessionNotFound(NotFound):
    code = "session_not_found"


class PayloadTooLarge(CoordinatorError):
    status = 413
    code = "payload_too_large"


class RequestTimeout(CoordinatorError):
    """A request's headers and body did not all arrive in time (the connection closes)."""

    status = 408
    code = "request_timeout"


class HeadersTooLarge(CoordinatorError):
    """A request line and headers past the replica's limit (the connection closes)."""

    status = 431
    code = "headers_too_large"


class InvalidField(CoordinatorError):
    status = 422
    code = "invalid_field"


class InvalidPath(InvalidField):
    code = "invalid_path"


class NameTaken(CoordinatorError):
    """A name that must be unique is taken (workspaces, from the CLI)."""

    status = 409
    code = "conflict"


class Conflict(CoordinatorError):
    """The claim or request cannot be made as the workspace stands; the message says why
    and what to do instead."""

    status = 409
    code = "conflict"


class AlreadyReserved(Conflict):
    code = "reserved"


class NotHolder(Conflict):
    code = "not_holder"


class NothingToRequest(Conflict):
    code = "not_reserved"


class RateLimited(CoordinatorError):
    """The key's token bucket is empty; the headers say when to come back."""

    status = 429
    code = "rate_limited"

    def __init__(
        self, rate_per_s: float, burst: int, retry_ms: int, remaining: int, full_ms: int
    ) -> None:
        self.retry_s = max(1, -(-retry_ms // 1000))
        self.burst, self.remaining = burst, remaining
        self.reset_s = max(1, -(-full_ms // 1000))
        super().__init__(
            f"over {rate_per_s:g} requests per second (bursts of {burst}) for this API key; "
            f"retry in {self.retry_s} s"
        )

    def headers(self) -> dict[str, str]:
        # Reset: seconds until the bucket is full again (as in the IETF RateLimit draft).
        return {
            "Retry-After": str(self.retry_s),
            "X-RateLimit-Limit": str(self.burst),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
        }


class TooManyStreams(CoordinatorError):
    """A key holds as many event streams open on this replica as it may."""

    status = 429
    code = "too_many_streams"


class StoreUnavailable(CoordinatorError):
    status = 503
    code = "store_unavailable"


class StoreFull(CoordinatorError):
    """Redis is at its maxmemory and, under noeviction, refuses to store more. Reads and
    ends still work. 507, not 503: no replica can do better (every one shares the Redis),
    so nothing in front of them should retry elsewhere, and an operator must act."""

    status = 507
    code = "store_full"


class ConfigError(CoordinatorError):
    """The environment or command line asks for something impossible."""

    code = "config_error"


class InvalidSetting(ConfigError):
    """An environment variable holds a value the service cannot use (exit 2, like a bad
    argument): the message names the variable and what is wrong, never a secret it holds."""

    exit_code = 2


class UsageError(ConfigError):
    """The command line names something that is not there (exit 2, like argparse)."""

    exit_code = 2
