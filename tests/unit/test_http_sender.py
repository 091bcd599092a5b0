"""The lean transport's default HTTP sender (http.client keep-alive) against a tiny server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from streamodel.transport.lean import HTTPClientSender

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{}"


class Server:
    """Accepts connections and answers each request with ``answer(n)`` (n counts requests)."""

    def __init__(self, answer: Callable[[int], tuple[bytes, bool]]) -> None:
        self.answer = answer
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests = 0
        self.reads: list[int] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            buffer = b""
            while True:
                reads = 0
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    reads += 1
                    if not chunk:
                        return
                    buffer += chunk
                head, _, rest = buffer.partition(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                while len(rest) < length:
                    rest += conn.recv(65536)
                    reads += 1
                buffer = rest[length:]
                self.reads.append(reads)
                self.requests += 1
                payload, close = self.answer(self.requests)
                conn.sendall(payload)
                if close:
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[int], tuple[bytes, bool]]], Server]]:
    servers: list[Server] = []

    def start(answer: Callable[[int], tuple[bytes, bool]]) -> Server:
        servers.append(Server(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def post(sender: HTTPClientSender, server: Server) -> tuple[int, bytes]:
    status, headers, body = sender(f"http://127.0.0.1:{server.port}/", b"{}", {"X-A": "1"})
    assert headers.get("Content-Type") == "application/x-amz-json-1.0"
    return status, body


def test_requests_share_one_kept_connection(serve: Callable[..., Server]) -> None:
    """Consecutive requests reuse one connection, each arriving whole in one read."""
    server = serve(lambda n: (OK, False))
    sender = HTTPClientSender()
    assert [post(sender, server) for _ in range(3)] == [(200, b"{}")] * 3
    assert server.connections == 1 and server.reads == [1, 1, 1]


def test_connection_closed_by_the_server_while_idle_is_replaced(
    serve: Callable[..., Server],
) -> None:
    """A kept connection the server closed is noticed before reuse: the request succeeds."""
    server = serve(lambda n: (OK, True))  # closes after every answer, without saying so
    sender = HTTPClientSender()
    post(sender, server)
    # Wait until the close has reached us, as it would during an idle pause.
    sock = sender._local.sockets[f"http://127.0.0.1:{server.port}/"][0]
    sock.settimeout(5)
    assert sock.recv(1, socket.MSG_PEEK) == b""
    assert post(sender, server) == (200, b"{}")
    assert server.connections == 2


def test_truncated_answer_is_a_connection_error(serve: Callable[..., Server]) -> None:
    """An answer shorter than its Content-Length raises ConnectionError (an OSError)."""
    cut = b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"Item":'
    server = serve(lambda n: (cut, True))
    with pytest.raises(ConnectionError, match="IncompleteRead"):
        post(HTTPClientSender(), server)
