"""One kept-alive HTTP connection to the service, for a long-lived client (the companion).

The bridge opens a connection per event because it lives for one event; the companion
lives for a whole agent session, so a call should cost one round trip, not a connect
(and, over https, not a TLS handshake). Standard library only; calls are blocking, so
an async caller runs them in a worker thread, one at a time.
"""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit

# What a dropped kept-alive connection raises, before the server read the request.
STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class ServiceError(Exception):
    """The service could not be reached or refused the call; the message says which."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class Answer(NamedTuple):
    """A service's answer: its status, its body (JSON text) and its headers."""

    status: int
    body: bytes
    headers: http.client.HTTPMessage


class ServiceClient:
    """Calls to one service with one API key over one connection, reopened when it drops."""

    def __init__(self, url: str, api_key: str, timeout: float) -> None:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ServiceError(f"{url!r} is not an http:// or https:// URL")
        self.url = url.rstrip("/")
        self._secure = parts.scheme == "https"
        self._netloc = parts.netloc
        self._prefix = parts.path
        self._timeout = timeout
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Connection": "keep-alive",
        }
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def get(self, path: str, **query: str | int) -> Answer:
        target = f"{path}?{urlencode(query)}" if query else path
        return self.call("GET", target)

    def post(self, path: str, payload: Any) -> Answer:
        return self.call("POST", path, json.dumps(payload, ensure_ascii=False).encode())

    def call(self, method: str, target: str, body: bytes | None = None) -> Answer:
        """One request; a 4xx/5xx or no answer raises ServiceError with the service's words."""
        with self._lock:
            try:
                status, data, headers = self._exchange(method, self._prefix + target, body)
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                reason = str(exc) or type(exc).__name__
                raise ServiceError(f"cannot reach the service at {self.url}: {reason}") from None
        if status >= 400:
            raise _refusal(status, data)
        return Answer(status, data, headers)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _exchange(
        self, method: str, target: str, body: bytes | None
    ) -> tuple[int, bytes, http.client.HTTPMessage]:
        reused = self._connection is not None and not _dropped(self._connection)
        if not reused:
            self.close()
        connection = self._open()
        try:
            return _send(connection, method, target, body, self._headers)
        except STALE:
            if not reused:
                raise
        # The server closed the kept connection as the request left: it never read it,
        # so sending it again on a new connection cannot do it twice.
        self.close()
        return _send(self._open(), method, target, body, self._headers)

    def _open(self) -> http.client.HTTPConnection:
        if self._connection is None:
            kind = http.client.HTTPSConnection if self._secure else http.client.HTTPConnection
            self._connection = kind(self._netloc, timeout=self._timeout)
            self._connection.connect()
            if self._connection.sock is not None and not self._secure:
                self._connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._connection


def _send(
    connection: http.client.HTTPConnection,
    method: str,
    target: str,
    body: bytes | None,
    headers: dict[str, str],
) -> tuple[int, bytes, http.client.HTTPMessage]:
    connection.request(method, target, body, headers)
    response = connection.getresponse()
    data = response.read()
    if response.will_close:
        connection.close()
    return response.status, data, response.headers


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """Whether the server closed an idle kept connection (it is readable: EOF)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _refusal(status: int, data: bytes) -> ServiceError:
    """The service's ``{"error": code, "message": text}`` as an error, or its status."""
    try:
        error = json.loads(data)
        code, message = str(error["error"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        return ServiceError(f"the service answered {status}", status)
    return ServiceError(message, status, code)
