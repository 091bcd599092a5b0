"""A loopback TLS terminator in front of a plain-HTTP server (DynamoDB Local).

:class:`TLSTerminator` listens on ``127.0.0.1`` (a free port), accepts TLS with a server
certificate for ``127.0.0.1`` and ``localhost`` issued by a test CA (``trustme``), and forwards
the bytes both ways to the upstream, one upstream connection per accepted connection. It never
parses what it forwards (unless ``record=True``): each chunk read is written on, so a request
costs a couple of event-loop callbacks plus the TLS record work, and it can sit in front of a
benchmark. ``tls=False`` makes it a plain TCP forwarder (the same counters, and recording,
without TLS).

Counters, all thread-safe: ``connections_accepted`` (TCP connections accepted, including
those whose handshake then failed: one attempt is one accept), ``handshakes_failed`` (counted
when the server side sees the failure, which may be just after the client raised: read it after
``wait_open_at_most(0)``), ``connections_open`` (client connections not yet closed;
:meth:`wait_open_at_most` waits for it to drop). ``record=True`` keeps the request line and
headers of every request in ``requests`` (bodies are skipped by ``Content-Length``; chunked
request bodies are not supported).

``require_client_cert=True`` asks each client for a certificate issued by the same CA;
:meth:`issue_client_cert` writes one. :meth:`untrusted` gives a terminator whose certificate
comes from another CA.

Run out of process (so a benchmark's CPU figures hold only the client):
``python tests/support/tls.py http://127.0.0.1:8000`` prints ``ENDPOINT CA_BUNDLE`` on one
line, then forwards until its standard input closes.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, cast
from urllib.parse import urlsplit

import trustme

if __package__ in (None, ""):  # run as a script: python tests/support/tls.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from support._loop import LoopThread

__all__ = ["RecordedRequest", "TLSTerminator"]


@dataclass(frozen=True)
class RecordedRequest:
    """The request line and headers of one request seen by a recording terminator."""

    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names; last wins

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class _HeadRecorder:
    """Splits a client's byte stream into requests and keeps each head (bodies are skipped)."""

    def __init__(self, sink: list[RecordedRequest], lock: threading.Lock) -> None:
        self._sink = sink
        self._lock = lock
        self._buffer = b""
        self._skip = 0

    def feed(self, data: bytes) -> None:
        if self._skip:
            taken = min(self._skip, len(data))
            self._skip -= taken
            data = data[taken:]
        self._buffer += data
        while not self._skip:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self._buffer = self._buffer[:end], self._buffer[end + 4 :]
            lines = head.decode("latin-1").split("\r\n")
            method, _, rest = lines[0].partition(" ")
            target = rest.rpartition(" ")[0]
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            with self._lock:
                self._sink.append(RecordedRequest(method, target, headers))
            length = int(headers.get("content-length", "0") or 0)
            taken = min(length, len(self._buffer))
            self._buffer = self._buffer[taken:]
            self._skip = length - taken


class _Pipe(asyncio.Protocol):
    """One side of a forwarded connection: what it receives is written to its peer.

    ``on_made(pipe)`` and ``on_lost(pipe)`` are called when the connection is made and lost.
    Until a peer is linked, what arrives waits in ``pending``.
    """

    def __init__(
        self,
        *,
        on_made: Callable[[_Pipe], None] | None = None,
        on_lost: Callable[[_Pipe], None] | None = None,
        recorder: _HeadRecorder | None = None,
    ) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.pending: list[bytes] = []
        self.closed = False
        self._on_made = on_made
        self._on_lost = on_lost
        self._recorder = recorder

    def link(self, peer: _Pipe) -> None:
        """Forward to ``peer`` from now on (and what waited in ``pending``)."""
        self.peer = peer
        peer.peer = self
        if self.pending and peer.transport is not None:
            peer.transport.write(b"".join(self.pending))
        self.pending = []

    def _peer_open(self) -> asyncio.Transport | None:
        peer = self.peer
        if peer is None or peer.closed or peer.transport is None:
            return None
        return peer.transport

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports (the benchmark's) are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)
        if self._on_made is not None:
            self._on_made(self)

    def data_received(self, data: bytes) -> None:
        if self._recorder is not None:
            self._recorder.feed(data)
        if self.peer is None:
            self.pending.append(data)
            return
        peer = self._peer_open()
        if peer is not None:
            peer.write(data)

    def eof_received(self) -> bool:
        # Half-close: pass the EOF on and keep the other direction open while both sides
        # are plain TCP. A TLS transport cannot half-close: it is closed (after writing what
        # it holds), and so is this side then.
        peer = self._peer_open()
        if peer is None:
            return False
        if peer.can_write_eof():
            peer.write_eof()
        else:
            peer.close()
            return False
        assert self.transport is not None
        return self.transport.can_write_eof()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.closed:  # also called by hand after a failed TLS handshake
            return
        self.closed = True
        peer = self._peer_open()
        if peer is not None:
            # The other side may still be answering a half-closed connection: pass a clean
            # close on as an EOF rather than cutting it.
            if exc is None and peer.can_write_eof():
                peer.write_eof()
            elif exc is not None:
                # A reset stays a reset on the other side: an RST (linger 0), not a close.
                sock = peer.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                peer.abort()
            else:
                peer.close()
        if self._on_lost is not None:
            self._on_lost(self)

    def pause_writing(self) -> None:
        # Backpressure: stop reading the side that fills this one.
        peer = self._peer_open()
        if peer is not None:
            peer.pause_reading()

    def resume_writing(self) -> None:
        peer = self._peer_open()
        if peer is not None:
            peer.resume_reading()


class TLSTerminator:
    """Accepts TLS on a loopback port and forwards the plain bytes to ``upstream``.

    ``upstream`` is an ``http://host:port`` URL (DynamoDB Local's endpoint). ``ca`` is the
    ``trustme.CA`` that issues the server certificate (a new one by default). Use as a context
    manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        upstream: str,
        *,
        ca: trustme.CA | None = None,
        tls: bool = True,
        record: bool = False,
        require_client_cert: bool = False,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream = upstream
        self._upstream = (parts.hostname, parts.port)
        self.tls = tls
        self.record = record
        self.require_client_cert = require_client_cert
        self.ca = ca if ca is not None or not tls else trustme.CA()
        self.port = 0
        self.ca_bundle_path = ""
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._open_changed = threading.Condition(self._lock)
        self._accepted = 0
        self._failed = 0
        self._open = 0
        self._directory: str | None = None
        self._loop: LoopThread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._context: ssl.SSLContext | None = None
        self._pipes: set[_Pipe] = set()

    # -- what tests read ------------------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        """``https://127.0.0.1:PORT`` (``http://`` without TLS)."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def localhost_url(self) -> str:
        """The same endpoint named ``localhost`` (also in the certificate)."""
        return f"{'https' if self.tls else 'http'}://localhost:{self.port}"

    @property
    def connections_accepted(self) -> int:
        with self._lock:
            return self._accepted

    @property
    def handshakes_failed(self) -> int:
        with self._lock:
            return self._failed

    @property
    def connections_open(self) -> int:
        with self._lock:
            return self._open

    def wait_open_at_most(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at most ``count`` client connections are open; ``False`` on timeout."""
        with self._open_changed:
            return self._open_changed.wait_for(lambda: self._open <= count, timeout)

    def recorded(self) -> list[RecordedRequest]:
        """A copy of the recorded requests (``record=True``)."""
        with self._lock:
            return list(self.requests)

    def untrusted(self, **options: Any) -> TLSTerminator:
        """A terminator (not started) to the same upstream whose certificate comes from a
        different CA, which clients trusting this one's CA must refuse."""
        return TLSTerminator(self.upstream, ca=trustme.CA(), **options)

    def issue_client_cert(self, name: str = "client.streamodel.test") -> tuple[str, str]:
        """Write a client certificate and key issued by this terminator's CA; returns the
        ``(cert_path, key_path)`` of the PEM files (removed at :meth:`stop`)."""
        assert self.ca is not None and self._directory is not None, "start() first"
        issued = self.ca.issue_cert(name)
        cert = os.path.join(self._directory, f"{name}.crt")
        key = os.path.join(self._directory, f"{name}.key")
        issued.cert_chain_pems[0].write_to_path(cert)
        issued.private_key_pem.write_to_path(key)
        return cert, key

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> TLSTerminator:
        self._directory = tempfile.mkdtemp(prefix="streamodel-tls-")
        if self.tls:
            assert self.ca is not None
            self.ca_bundle_path = os.path.join(self._directory, "ca.pem")
            self.ca.cert_pem.write_to_path(self.ca_bundle_path)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
            if self.require_client_cert:
                self.ca.configure_trust(context)
                context.verify_mode = ssl.CERT_REQUIRED
            self._context = context
        self._loop = LoopThread(f"tls-terminator-{id(self):x}")
        listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = listener.getsockname()[1]
        self._server = self._loop.run(self._serve(listener))
        return self

    async def _serve(self, listener: socket.socket) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        return await loop.create_server(self._accepted_pipe, sock=listener)

    def _accepted_pipe(self) -> _Pipe:
        with self._lock:
            self._accepted += 1
            self._open += 1
        recorder = _HeadRecorder(self.requests, self._lock) if self.record else None
        return _Pipe(on_made=self._made, on_lost=self._client_lost, recorder=recorder)

    def _made(self, client: _Pipe) -> None:
        assert client.transport is not None
        self._pipes.add(client)
        if self._context is not None:
            # Nothing is read before start_tls takes the transport over.
            client.transport.pause_reading()
        asyncio.get_running_loop().create_task(self._connect(client))

    def _client_lost(self, client: _Pipe) -> None:
        self._pipes.discard(client)
        with self._open_changed:
            self._open -= 1
            self._open_changed.notify_all()

    async def _connect(self, client: _Pipe) -> None:
        """TLS handshake with the client, then the upstream connection, then forwarding."""
        loop = asyncio.get_running_loop()
        assert client.transport is not None
        _nodelay(client.transport)
        if self._context is not None:
            try:
                tls = await loop.start_tls(
                    client.transport, client, self._context, server_side=True
                )
            except (TimeoutError, OSError, ssl.SSLError):
                with self._lock:
                    self._failed += 1
                client.transport.abort()
                client.connection_lost(None)
                return
            if tls is None:  # the client went away during the handshake
                client.connection_lost(None)
                return
            client.transport = tls
        try:
            transport, upstream = await loop.create_connection(
                lambda: _Pipe(on_lost=self._pipes.discard), *self._upstream
            )
        except OSError:
            client.transport.abort()
            return
        _nodelay(transport)
        self._pipes.add(upstream)
        upstream.link(client)
        client.link(upstream)
        if client.closed:
            upstream.transport.close()  # type: ignore[union-attr]

    def stop(self) -> None:
        """Close the listener and every connection, and end the loop thread."""
        if self._loop is not None:
            loop = self._loop

            async def close() -> None:
                if self._server is not None:
                    self._server.close()
                for pipe in list(self._pipes):
                    if pipe.transport is not None:
                        pipe.transport.abort()
                self._pipes.clear()

            try:
                loop.run(close(), timeout=10)
            finally:
                loop.stop()
                self._loop = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def __enter__(self) -> TLSTerminator:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _nodelay(transport: asyncio.BaseTransport) -> None:
    raw = transport.get_extra_info("socket")
    if raw is not None:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def main(argv: list[str]) -> int:
    """``tls.py UPSTREAM``: print ``ENDPOINT CA_BUNDLE``, forward until stdin closes."""
    if len(argv) != 1:
        print("usage: tls.py http://127.0.0.1:PORT", file=sys.stderr)
        return 2
    with TLSTerminator(argv[0]) as terminator:
        print(terminator.endpoint_url, terminator.ca_bundle_path, flush=True)
        sys.stdin.read()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
