"""``coordinator.client``: one kept-alive connection, reopened when the service drops it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from coordinator.client import ServiceClient, ServiceError
from tests.servers import free_port


class CountingServer(ThreadingHTTPServer):
    """Answers every request with its path; counts the connections it accepted."""

    daemon_threads = True
    connections = 0
    close_after_each = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CountingServer
    timeout = 0.3  # an idle kept connection is closed after this, as uvicorn's after 5 s

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def do_GET(self) -> None:
        status = 404 if self.path.startswith("/missing") else 200
        body: dict[str, Any] = {"path": self.path}
        if status == 404:
            body = {"error": "not_found", "message": "no such thing"}
        self.send(status, json.dumps(body).encode())

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.send(200, self.rfile.read(length))

    def send(self, status: int, data: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if self.server.close_after_each:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[CountingServer]:
    http = CountingServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    yield http
    http.shutdown()
    http.server_close()


def client_of(server: CountingServer) -> ServiceClient:
    return ServiceClient(f"http://127.0.0.1:{server.server_address[1]}", "ek_x", 5)


def test_calls_share_one_connection(server: CountingServer) -> None:
    client = client_of(server)
    for n in range(5):
        assert json.loads(client.get("/whoami", n=n).body) == {"path": f"/whoami?n={n}"}
    assert json.loads(client.post("/echo", {"text": "é"}).body) == {"text": "é"}
    assert server.connections == 1
    client.close()


def test_a_connection_the_service_closed_is_reopened_without_an_error(
    server: CountingServer,
) -> None:
    server.close_after_each = True
    client = client_of(server)
    for _ in range(3):
        assert client.get("/whoami").status == 200
    assert server.connections == 3
    client.close()


def test_a_kept_connection_closed_while_idle_is_reopened(server: CountingServer) -> None:
    client = client_of(server)
    assert client.get("/whoami").status == 200
    time.sleep(0.6)  # past the server's idle timeout: it closed its end
    assert client.get("/whoami").status == 200
    assert server.connections == 2
    client.close()


def test_a_refusal_carries_the_services_code_and_message(server: CountingServer) -> None:
    client = client_of(server)
    with pytest.raises(ServiceError) as refused:
        client.get("/missing")
    client.close()
    assert (refused.value.status, refused.value.code) == (404, "not_found")
    assert str(refused.value) == "no such thing"


def test_nothing_listening_is_a_service_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServiceError, match=f"cannot reach the service at {url}"):
        ServiceClient(url, "ek_x", 1).get("/whoami")


def test_a_url_that_is_not_http_is_refused_up_front() -> None:
    with pytest.raises(ServiceError, match="is not an http:// or https:// URL"):
        ServiceClient("ftp://example.com", "ek_x", 1)
