"""A fault-injecting HTTP/1.1 proxy on loopback, between streamodel and DynamoDB Local.

Each request read from a client is, by a seeded draw, passed through untouched or given one
fault: ``reset`` (the connection is reset; half the time after the server already applied the
request, so its outcome is unknown to the client), ``delay`` (the answer waits
``delay_seconds``), ``truncate`` (the answer is cut in the middle of its body: either the
connection closes early, or ``Content-Length`` is rewritten to match the shorter body, which
only a checksum or parser can catch), ``throttle`` (a 400
``ProvisionedThroughputExceededException`` or ``ThrottlingException`` that never reached the
server) and ``error`` (a 500 ``InternalServerError``; half the time after the server applied
the request). Every fault is counted per kind and per operation; ``force`` queues a given fault
for the next request of one operation, so tests can stage exact situations.

The proxy only ever connects to the loopback upstream it was given.
"""

from __future__ import annotations

import collections
import contextlib
import json
import random
import socket
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import IO
from urllib.parse import urlsplit

KINDS = ("reset", "delay", "truncate", "throttle", "error")


@dataclass
class Injection:
    """One injected fault: which operation, which kind, and whether the server saw it."""

    operation: str
    kind: str
    forwarded: bool


class _Message:
    """An HTTP message as read off a socket: the head (status or request line plus headers)
    and the body."""

    def __init__(self, head: bytes, body: bytes) -> None:
        self.head = head
        self.body = body

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None

    def with_length(self, length: int) -> bytes:
        """The head with ``Content-Length`` set to ``length``."""
        lines = [
            line
            for line in self.head.split(b"\r\n")
            if not line.lower().startswith((b"content-length:", b"transfer-encoding:"))
        ]
        lines.insert(1, b"Content-Length: %d" % length)
        return b"\r\n".join(lines)


def _read_message(stream: IO[bytes]) -> _Message | None:
    """One HTTP/1.1 message (Content-Length or chunked body); ``None`` at a clean EOF."""
    lines = []
    while True:
        line = stream.readline(65537)
        if not line:
            if lines:
                raise ConnectionError("connection closed inside a message head")
            return None
        if line in (b"\r\n", b"\n"):
            if not lines:
                continue
            break
        lines.append(line.rstrip(b"\r\n"))
    message = _Message(b"\r\n".join(lines), b"")
    length = message.header("content-length")
    if length is not None:
        message.body = stream.read(int(length))
        if len(message.body) != int(length):
            raise ConnectionError("connection closed inside a message body")
    elif (message.header("transfer-encoding") or "").lower() == "chunked":
        parts = []
        while True:
            size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                stream.readline()
                break
            parts.append(stream.read(size))
            stream.readline()
        message.body = b"".join(parts)
        message.head = message.with_length(len(message.body))
    return message


def _answer(status: int, reason: str, code: str, text: str) -> bytes:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": text})
    return (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: application/x-amz-json-1.0\r\n"
        f"x-amzn-RequestId: proxy-{random.getrandbits(32):08x}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


class FaultProxy:
    """The proxy; see the module docstring. Use as a context manager or ``start``/``stop``.

    Rates are fractions of requests per kind (``FaultProxy(url, reset=0.05, ...)``);
    ``operations``, when given, limits faults to those operation names. ``enabled = False``
    passes everything through (for setup).
    """

    def __init__(
        self,
        upstream: str,
        *,
        seed: int = 0,
        delay_seconds: float = 0.05,
        operations: frozenset[str] | None = None,
        **rates: float,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost"):
            raise ValueError(f"the fault proxy only forwards to loopback, not {upstream!r}")
        self.upstream = ("127.0.0.1", parts.port or 80)
        self.rng = random.Random(seed)
        self.delay_seconds = delay_seconds
        self.operations = operations
        self.rates: dict[str, float] = {}
        self.configure(**rates)
        self.enabled = True
        self.injected: collections.Counter[str] = collections.Counter()
        self.log: list[Injection] = []
        self.requests = 0
        self.by_operation: collections.Counter[str] = collections.Counter()
        self._forced: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._closing = False

    # -- configuration ---------------------------------------------------------------------
    def configure(self, **rates: float) -> None:
        """Set the fault rate of each named kind (others keep theirs)."""
        for kind, rate in rates.items():
            if kind not in KINDS:
                raise ValueError(f"unknown fault kind {kind!r}; kinds are {KINDS}")
            self.rates[kind] = rate

    def force(self, operation: str, kind: str, *, forwarded: bool = True) -> None:
        """Give the next request of ``operation`` the fault ``kind`` (after the server applied
        it when ``forwarded``)."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._forced.setdefault(operation, []).append(f"{kind}:{int(forwarded)}")

    @property
    def endpoint_url(self) -> str:
        assert self._listener is not None, "the proxy is not started"
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def total_injected(self) -> int:
        return sum(self.injected.values())

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> FaultProxy:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        self._listener = listener
        thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._closing = True
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------------------------
    def _accept(self) -> None:
        assert self._listener is not None
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            with self._lock:
                self._sockets.add(client)
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)
            thread.start()

    def _decide(self, operation: str) -> tuple[str | None, bool]:
        with self._lock:
            self.requests += 1
            self.by_operation[operation] += 1
            forced = self._forced.get(operation)
            if forced:
                kind, _, forwarded = forced.pop(0).partition(":")
                return kind, forwarded == "1"
            if not self.enabled or (
                self.operations is not None and operation not in self.operations
            ):
                return None, True
            draw = self.rng.random()
            coin = self.rng.random() < 0.5
            for kind in KINDS:
                rate = self.rates.get(kind, 0.0)
                if draw < rate:
                    if kind in ("throttle",):
                        return kind, False
                    if kind in ("reset", "error"):
                        return kind, coin
                    return kind, True
                draw -= rate
            return None, True

    def _record(self, operation: str, kind: str, forwarded: bool) -> None:
        with self._lock:
            self.injected[kind] += 1
            self.log.append(Injection(operation, kind, forwarded))

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        upstream_file: IO[bytes] | None = None
        client_file = client.makefile("rb")
        try:
            while True:
                request = _read_message(client_file)
                if request is None:
                    return
                target = request.header("x-amz-target") or ""
                operation = target.rpartition(".")[2] or "?"
                kind, forwarded = self._decide(operation)
                response: _Message | None = None
                if kind is None or forwarded:
                    if upstream is None:
                        upstream = socket.create_connection(self.upstream, timeout=120)
                        with self._lock:
                            self._sockets.add(upstream)
                        upstream_file = upstream.makefile("rb")
                    assert upstream_file is not None
                    upstream.sendall(request.head + b"\r\n\r\n" + request.body)
                    response = _read_message(upstream_file)
                    if response is None:
                        raise ConnectionError("upstream closed the connection")
                if kind is not None:
                    self._record(operation, kind, forwarded)
                if kind == "reset":
                    _reset(client)
                    return
                if kind == "throttle":
                    code = self.rng.choice(
                        ["ProvisionedThroughputExceededException", "ThrottlingException"]
                    )
                    client.sendall(_answer(400, "Bad Request", code, "injected throttling"))
                    continue
                if kind == "error":
                    client.sendall(
                        _answer(500, "Internal Server Error", "InternalServerError", "injected")
                    )
                    continue
                assert response is not None
                if kind == "delay":
                    time.sleep(self.delay_seconds)
                if kind == "truncate":
                    cut = response.body[: len(response.body) // 2]
                    if self.rng.random() < 0.5:
                        # Promised length, shorter body, then the connection ends.
                        client.sendall(response.head + b"\r\n\r\n" + cut)
                        _close(client)
                        return
                    client.sendall(response.with_length(len(cut)) + b"\r\n\r\n" + cut)
                    continue
                client.sendall(response.head + b"\r\n\r\n" + response.body)
        except (OSError, ConnectionError, ValueError):
            return
        finally:
            _close(client)
            if upstream is not None:
                _close(upstream)
            with self._lock:
                self._sockets.discard(client)
                if upstream is not None:
                    self._sockets.discard(upstream)


def _reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER 0)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    _close(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.close()
