"""The lean transport's connection pool (kept-alive sockets shared by threads, its own HTTP/1.1
response reader) against a tiny server, and the reader against answers cut at every byte."""

from __future__ import annotations

import os
import socket
import ssl
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from streamodel.exceptions import ServerError
from streamodel.transport import LeanTransport
from streamodel.transport.http1 import MAX_BODY, read_response
from streamodel.transport.pool import ConnectionPool

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: 2\r\n\r\n{}"


class Server:
    """Accepts connections and answers each request with ``answer(n)`` (n counts requests)."""

    def __init__(
        self,
        answer: Callable[[int], tuple[bytes, bool]],
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.answer = answer
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.create_server((host, 0), family=family)
        self.port = self.sock.getsockname()[1]
        self.tls = tls
        self.connections = 0
        self.requests = 0
        self.reads: list[int] = []
        self.heads: list[bytes] = []
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
        if self.tls is not None:
            conn = self.tls.wrap_socket(conn, server_side=True)
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
                self.heads.append(head)
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

    def start(answer: Callable[[int], tuple[bytes, bool]], **options: object) -> Server:
        servers.append(Server(answer, **options))  # type: ignore[arg-type]
        return servers[-1]

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def client() -> Iterator[Callable[..., ConnectionPool]]:
    """Makes senders, and closes their connections after the test."""
    senders: list[ConnectionPool] = []

    def make(**options: object) -> ConnectionPool:
        senders.append(ConnectionPool(**options))  # type: ignore[arg-type]
        return senders[-1]

    yield make
    for sender in senders:
        sender.close()


def post(sender: ConnectionPool, server: Server) -> tuple[int, bytes]:
    status, headers, body = sender(f"http://127.0.0.1:{server.port}/", b"{}", {"X-A": "1"})
    assert headers.get("Content-Type") == "application/x-amz-json-1.0"
    return status, body


def test_requests_share_one_kept_connection(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """Consecutive requests reuse one connection, each arriving whole in one read."""
    server = serve(lambda n: (OK, False))
    sender = client()
    assert [post(sender, server) for _ in range(3)] == [(200, b"{}")] * 3
    assert server.connections == 1 and server.reads == [1, 1, 1]


def test_connection_closed_by_the_server_while_idle_is_replaced(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """A kept connection the server closed is noticed before reuse: the request succeeds."""
    server = serve(lambda n: (OK, True))  # closes after every answer, without saying so
    sender = client()
    post(sender, server)
    # Wait until the close has reached us, as it would during an idle pause.
    sock = sender._idle[f"http://127.0.0.1:{server.port}/"][0].sock
    sock.settimeout(5)
    assert sock.recv(1, socket.MSG_PEEK) == b""
    assert post(sender, server) == (200, b"{}")
    assert server.connections == 2


def test_truncated_answer_is_a_connection_error(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """An answer shorter than its Content-Length raises ConnectionError (an OSError)."""
    cut = b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"Item":'
    server = serve(lambda n: (cut, True))
    sender = client()
    with pytest.raises(ConnectionError, match=r"before the end of the body \(8 of 100 bytes"):
        post(sender, server)
    # Forgotten: the next request opens a new connection.
    assert sender.idle(f"http://127.0.0.1:{server.port}/") == 0


def test_many_requests_share_one_connection(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """Hundreds of keep-alive exchanges run over a single connection."""
    server = serve(lambda n: (OK, False))
    sender = client()
    for _ in range(300):
        assert post(sender, server) == (200, b"{}")
    assert server.connections == 1 and server.requests == 300


def test_server_closing_between_requests_each_time(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """A server that says Connection: close gets a new connection for every request."""
    closing = OK.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    server = serve(lambda n: (closing, True))
    sender = client()
    for _ in range(5):
        assert post(sender, server) == (200, b"{}")
    assert server.connections == 5


def test_chunked_answer(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """A chunked body (extensions, trailers) is joined; the connection stays open."""
    chunked = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b'5;name=value\r\n{"a":\r\n3\r\n"b"\r\nA\r\n,"c":12345\r\n1\r\n}\r\n'
        b"0\r\nX-Trailer: 1\r\n\r\n"
    )
    server = serve(lambda n: (chunked, False))
    sender = client()
    assert post(sender, server) == (200, b'{"a":"b","c":12345}')
    assert post(sender, server) == (200, b'{"a":"b","c":12345}')
    assert server.connections == 1


def test_close_delimited_answer(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """Without Content-Length or chunking the body runs to the close, and the socket is
    forgotten."""
    answer = b'HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n\r\n{"x": 1}'
    server = serve(lambda n: (answer, True))
    sender = client()
    assert post(sender, server) == (200, b'{"x": 1}')
    assert sender.idle(f"http://127.0.0.1:{server.port}/") == 0
    assert post(sender, server) == (200, b'{"x": 1}')
    assert server.connections == 2


def test_http10_answer_closes_the_connection(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """An HTTP/1.0 answer is read by its Content-Length, then the socket is forgotten."""
    server = serve(lambda n: (OK.replace(b"HTTP/1.1", b"HTTP/1.0"), True))
    sender = client()
    assert post(sender, server) == (200, b"{}")
    assert sender.idle(f"http://127.0.0.1:{server.port}/") == 0


def test_interim_answers_are_skipped(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """100 Continue (and other 1xx) before the answer are skipped."""
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    server = serve(lambda n: (interim + OK, False))
    sender = client()
    assert post(sender, server) == (200, b"{}")
    assert post(sender, server) == (200, b"{}")
    assert server.connections == 1


def test_error_status_and_headers(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """Status, repeated and folded headers come back; names are looked up in any case."""
    answer = (
        b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\n"
        b"X-Amzn-ErrorType: Validation\r\nX-Many: a\r\nx-many: b\r\nX-Folded: one\r\n two\r\n"
        b"Content-Length: 2\r\n\r\n{}"
    )
    server = serve(lambda n: (answer, False))
    status, headers, body = client()(f"http://127.0.0.1:{server.port}/", b"{}", {"X-A": "1"})
    assert (status, body) == (400, b"{}")
    assert headers.get("x-amzn-errortype") == "Validation"
    assert headers.get("X-AMZN-ERRORTYPE") == "Validation"
    assert headers.get("x-many") == "a, b"
    assert headers.get("x-folded") == "one two"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (b"HTTP/1.1 OK\r\n\r\n", "bad status line"),
        (b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n", "bad status line"),
        (b"<html>oops</html>\r\n\r\n", "bad status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\n{}", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n{}", "Content"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}}\r\n", "chunk longer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n", "closed"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", "closed"),
        (b"", "closed by the server before the status line"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", "headers longer"),
    ],
)
def test_malformed_answers_are_connection_errors(
    serve: Callable[..., Server],
    answer: bytes,
    message: str,
    client: Callable[..., ConnectionPool],
) -> None:
    """A malformed or cut-off answer raises ConnectionError and drops the socket."""
    server = serve(lambda n: (answer, True))
    sender = client()
    with pytest.raises(ConnectionError, match=message):
        post(sender, server)
    assert sender.idle(f"http://127.0.0.1:{server.port}/") == 0


def test_bytes_beyond_the_answer_drop_the_connection(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """Extra bytes after an answer mean unreliable framing: the socket is not reused."""
    server = serve(lambda n: (OK + b"junk", False))
    sender = client()
    assert post(sender, server) == (200, b"{}")
    assert post(sender, server) == (200, b"{}")
    assert server.connections == 2


def test_host_header_is_the_signed_host(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """The Host header is what the signer signs: host and non-default port."""
    server = serve(lambda n: (OK, False))
    post(client(), server)
    assert f"\r\nHost: 127.0.0.1:{server.port}\r\n".encode() in server.heads[0]


def test_ipv6_literal_endpoint(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """An IPv6 literal endpoint connects, and its Host header keeps the brackets."""
    try:
        server = serve(lambda n: (OK, False), host="::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    status, _, body = client()(f"http://[::1]:{server.port}/", b"{}", {})
    assert (status, body) == (200, b"{}")
    assert f"\r\nHost: [::1]:{server.port}\r\n".encode() in server.heads[0]


def test_read_timeout_is_an_oserror(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """A server that never answers makes the read time out (an OSError), socket dropped."""
    silent = threading.Event()

    def never(n: int) -> tuple[bytes, bool]:
        silent.wait(5)  # until the test is over
        return b"", True

    server = serve(never)
    sender = client(read_timeout=0.2)
    with pytest.raises(TimeoutError):
        post(sender, server)
    silent.set()
    assert sender.idle(f"http://127.0.0.1:{server.port}/") == 0


# A self-signed certificate for localhost and 127.0.0.1, valid 2000-2100 (test use only).
CERTIFICATE = """-----BEGIN CERTIFICATE-----
MIIBmDCCAT6gAwIBAgIBATAKBggqhkjOPQQDAjAUMRIwEAYDVQQDDAlsb2NhbGhv
c3QwIBcNMDAwMTAxMDAwMDAwWhgPMjEwMDAxMDEwMDAwMDBaMBQxEjAQBgNVBAMM
CWxvY2FsaG9zdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABB8ogLkp1x/5tBzW
rKR1PCG2H5nu+tGHe3gGBUiC6p6LiGALYkta/rXmuA9edgfn4fin+ll7/bSMf6BA
lerPYBmjfzB9MBoGA1UdEQQTMBGCCWxvY2FsaG9zdIcEfwAAATAPBgNVHRMBAf8E
BTADAQH/MB0GA1UdDgQWBBQqU+bg0pzfy2KSQeKu7n8Am32kjjAfBgNVHSMEGDAW
gBQqU+bg0pzfy2KSQeKu7n8Am32kjjAOBgNVHQ8BAf8EBAMCAoQwCgYIKoZIzj0E
AwIDSAAwRQIgUDXLDT6FUHH2god9R8x/GrzYpRnuj5NZMpEttYuk2YYCIQDj57Ou
0USwpYEnvVP+JpUIOAmiT7jWiXxS1rjrDAWCRQ==
-----END CERTIFICATE-----
"""
PRIVATE_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5Jh6OqCPlVrLC6FS
QIf8EWxqcnHWNnzQolyD74n5kUWhRANCAAQfKIC5Kdcf+bQc1qykdTwhth+Z7vrR
h3t4BgVIguqei4hgC2JLWv615rgPXnYH5+H4p/pZe/20jH+gQJXqz2AZ
-----END PRIVATE KEY-----
"""


def test_tls_keep_alive_and_chunked(
    serve: Callable[..., Server], tmp_path: Path, client: Callable[..., ConnectionPool]
) -> None:
    """Over TLS the answers are read the same way, on one kept connection."""
    (tmp_path / "cert.pem").write_text(CERTIFICATE)
    (tmp_path / "key.pem").write_text(PRIVATE_KEY)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
    server = serve(lambda n: (OK if n % 2 else chunked, False), tls=context)
    sender = client(ca_bundle=str(tmp_path / "cert.pem"))
    url = f"https://localhost:{server.port}/"
    for _ in range(4):
        status, _, body = sender(url, b"{}", {})
        assert (status, body) == (200, b"{}")
    assert server.connections == 1
    assert f"\r\nHost: localhost:{server.port}\r\n".encode() in server.heads[0]


class Pieces:
    """A socket whose recv hands out the given pieces, then EOF."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = pieces

    def recv(self, size: int) -> bytes:
        if not self.pieces:
            return b""
        piece = self.pieces.pop(0)
        if len(piece) > size:
            self.pieces.insert(0, piece[size:])
        return piece[:size]

    def recv_into(self, buffer: memoryview) -> int:
        piece = self.recv(len(buffer))
        buffer[: len(piece)] = piece
        return len(piece)


WELL_FORMED = [
    (OK, (200, b"{}", True)),
    (b"\r\nHTTP/1.1 204 No Content\r\nX: y\r\n\r\n", (204, b"", True)),
    (b"HTTP/1.1 100 Continue\r\n\r\n" + OK, (200, b"{}", True)),
    (
        b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
        (500, b"abc0123456789abcdef", True),
    ),
    (b"HTTP/1.1 200\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc", (200, b"abc", False)),
    (b"HTTP/1.0 200 OK\r\n\r\nto the end", (200, b"to the end", False)),
    (
        b"HTTP/1.1 200 OK\r\nConnection: Keep-Alive, Close\r\nContent-Length: 0\r\n\r\n",
        (200, b"", False),
    ),
]


@pytest.mark.parametrize(("raw", "expected"), WELL_FORMED)
def test_reader_across_every_split(raw: bytes, expected: tuple[int, bytes, bool]) -> None:
    """An answer reads the same whether it arrives whole or cut into single bytes."""
    whole = read_response(Pieces([raw]))  # type: ignore[arg-type]
    assert (whole.status, whole.body, whole.keep_alive) == expected
    for cut in range(1, len(raw)):
        split = read_response(Pieces([raw[:cut], raw[cut:]]))  # type: ignore[arg-type]
        assert split == whole
    trickled = read_response(Pieces([bytes([b]) for b in raw]))  # type: ignore[arg-type]
    assert trickled == whole


@pytest.mark.parametrize(("raw", "expected"), WELL_FORMED[:4])
def test_reader_cut_short_anywhere_is_a_connection_error(
    raw: bytes, expected: tuple[int, bytes, bool]
) -> None:
    """An answer cut anywhere before its end (EOF) raises ConnectionError."""
    for cut in range(len(raw)):
        with pytest.raises(ConnectionError):
            read_response(Pieces([raw[:cut]]))  # type: ignore[arg-type]


def test_lean_transport_checks_crc32_over_the_socket(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """The x-amz-crc32 header read here is checked by LeanTransport: right passes, wrong is
    a retryable server error."""
    body = b'{"Item":{"pk":{"S":"a"}}}'
    good = zlib.crc32(body)
    answers = {1: good, 2: good ^ 1}
    server = serve(
        lambda n: (
            b"HTTP/1.1 200 OK\r\nX-Amz-Crc32: %d\r\nContent-Length: %d\r\n\r\n%s"
            % (answers[n], len(body), body),
            False,
        )
    )
    transport = LeanTransport(
        boto3.Session(aws_access_key_id="A", aws_secret_access_key="s", region_name="eu-west-1"),
        endpoint_url=f"http://127.0.0.1:{server.port}",
        sender=client(),
    )
    params = {"TableName": "t", "Key": {"pk": {"S": "a"}}}
    assert transport.call("dynamodb", "GetItem", params) == {"Item": {"pk": {"S": "a"}}}
    with pytest.raises(ServerError) as caught:
        transport.call("dynamodb", "GetItem", params)
    assert caught.value.code == "CRC32CheckFailed"


def test_threads_share_a_bounded_pool(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """Threads reuse each other's connections: 8 threads x 25 requests open at most 8 when
    the pool may keep 8 (with a smaller pool, connections given back to a full pool are
    closed and later reopened: tests/integration/test_tls_local.py bounds that case)."""
    server = serve(lambda n: (OK, False))
    sender = client(max_connections=8)
    url = f"http://127.0.0.1:{server.port}/"
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(25):
            assert sender(url, b"{}", {})[0] == 200

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.requests == 200
    assert sender.opened == server.connections <= 8
    assert sender.idle(url) == sender.opened
    opened = sender.opened
    for _ in range(50):  # one thread now: only kept connections are used
        sender(url, b"{}", {})
    assert sender.opened == opened


def test_an_interrupted_exchange_never_returns_its_connection(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """An exception in the middle of reading an answer (a cancellation, a timeout) closes the
    connection, so the next request cannot read the rest of the earlier answer."""
    server = serve(lambda n: (OK, False))
    sender = client()
    url = f"http://127.0.0.1:{server.port}/"

    class Cancelled(BaseException):
        pass

    def cancelled(sock: socket.socket) -> object:
        raise Cancelled

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("streamodel.transport.pool.read_response", cancelled)
        with pytest.raises(Cancelled):
            sender(url, b"{}", {})
    assert sender.idle(url) == 0
    assert sender(url, b"{}", {})[:3:2] == (200, b"{}")
    assert server.connections == 2


def test_liveness_check_works_above_1024_descriptors(
    serve: Callable[..., Server], client: Callable[..., ConnectionPool]
) -> None:
    """With more than 1024 files open (select() cannot watch such descriptors), kept
    connections are still checked and reused, not replaced on every request."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 2100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(2100, hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        server = serve(lambda n: (OK, False))
        sender = client()
        url = f"http://127.0.0.1:{server.port}/"
        for _ in range(5):
            assert sender(url, b"{}", {})[0] == 200
        assert sender._idle[url][0].sock.fileno() > 1024
        assert server.connections == 1
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (MAX_BODY + 1),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % (MAX_BODY + 1),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + (b"%x\r\n" % (1 << 20) + b"x" * (1 << 20) + b"\r\n") * 65,
        b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * (MAX_BODY + 1),
    ],
    ids=["content-length", "one-chunk", "many-chunks", "close-delimited"],
)
def test_bodies_over_the_limit_are_refused(answer: bytes) -> None:
    """However a body is framed, more than MAX_BODY bytes is a ConnectionError, read no
    further."""
    with pytest.raises(ConnectionError, match="limit"):
        read_response(Flood(answer))  # type: ignore[arg-type]


class Flood:
    """A socket that hands out a big answer piece by piece without copying it whole."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.at = 0

    def recv(self, size: int) -> bytes:
        piece = bytes(self.data[self.at : self.at + size])
        self.at += len(piece)
        return piece

    def recv_into(self, buffer: memoryview) -> int:
        piece = self.recv(len(buffer))
        buffer[: len(piece)] = piece
        return len(piece)


def test_engine_close_closes_pooled_connections(serve: Callable[..., Server]) -> None:
    """Engine.close (and leaving `with Engine(...)`) closes kept connections; the engine
    stays usable and reconnects."""
    from streamodel import Engine

    server = serve(lambda n: (OK, False))
    url = f"http://127.0.0.1:{server.port}"
    with Engine(endpoint_url=url) as engine:
        engine.transport.call("dynamodb", "GetItem", {"TableName": "tbl", "Key": {}})
        pool = engine.transport.inner._routes["dynamodb"].send  # type: ignore[attr-defined]
        assert pool.idle(url + "/") == 1
    assert pool.idle(url + "/") == 0
    engine.transport.call("dynamodb", "GetItem", {"TableName": "tbl", "Key": {}})
    assert server.connections == 2
