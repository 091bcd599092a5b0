"""Kept-alive connections to DynamoDB, shared by threads: the lean transport's direct HTTP path.

For DynamoDB's small requests this is faster than a urllib3 pool: the request line, headers and
body leave in one ``sendall`` (urllib3 and ``http.client`` send headers and body apart), no pool
machinery runs per request beyond a lock, and answers are read by
:func:`~streamodel.transport.http1.read_response` rather than ``http.client``'s ``email.parser``.

The pool behaves as botocore's (urllib3 with ``block=False``): a thread takes an idle connection
to the endpoint or opens a new one, and gives it back after a whole answer was read; at most
``max_connections`` idle connections per endpoint are kept, the rest are closed. So TLS
handshakes happen once per connection, not per call or per thread. A connection is handed back
only after a complete answer: an exception of any kind mid-exchange (a timeout, a cancellation,
a malformed answer) closes it, so no later request reads the rest of an earlier answer.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import weakref
from collections.abc import Mapping
from urllib.parse import urlsplit

from botocore.httpsession import create_urllib3_context

from streamodel.transport.http1 import encode_request, read_response, request_head
from streamodel.transport.internals import host_of

__all__ = ["ConnectionPool", "tls_context"]

_DEFAULT_SOCKET_OPTIONS = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


class _Connection:
    __slots__ = ("prefix", "sock")

    def __init__(self, sock: socket.socket, prefix: bytes) -> None:
        self.sock = sock
        self.prefix = prefix  # request line and Host header for this endpoint


class ConnectionPool:
    """POSTs over kept-alive plain or TLS connections, shared by threads.

    ``verify`` is ``False``, ``True`` (``ca_bundle`` required then) or a CA bundle path;
    ``cert_file``/``key_file`` a client certificate. A malformed or cut-off answer raises
    ``ConnectionError``; a certificate that fails verification ``ssl.SSLCertVerificationError``.
    """

    def __init__(
        self,
        *,
        verify: bool = True,
        ca_bundle: str | None = None,
        cert_file: str | None = None,
        key_file: str | None = None,
        connect_timeout: float | None = 60.0,
        read_timeout: float | None = 60.0,
        max_connections: int = 10,
        socket_options: tuple[tuple[int, int, int], ...] = _DEFAULT_SOCKET_OPTIONS,
    ) -> None:
        if max_connections < 1:
            raise ValueError("ConnectionPool: max_connections must be at least 1")
        self._verify = verify
        self._ca_bundle = ca_bundle
        self._cert_file = cert_file
        self._key_file = key_file
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_idle = max_connections
        self._socket_options = socket_options
        self._idle: dict[str, list[_Connection]] = {}
        # Idle connections are closed when the pool is dropped without close(), quietly
        # (a socket left to the garbage collector warns).
        weakref.finalize(self, _close_all, self._idle)
        self._lock = threading.Lock()
        self._ssl_context: ssl.SSLContext | None = None
        self.opened = 0
        """How many connections this pool has opened (tests and benchmarks count them)."""

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        connection = self._take(url)
        request = encode_request(connection.prefix, headers, body)
        try:
            connection.sock.sendall(request)
            response = read_response(connection.sock)
        except BaseException:
            # Whatever stopped the exchange, the connection's state is unknown.
            connection.sock.close()
            raise
        if response.keep_alive:
            self._give_back(url, connection)
        else:
            connection.sock.close()
        return response.status, response.headers, response.body

    def idle(self, url: str) -> int:
        """How many idle connections to ``url`` are kept now."""
        with self._lock:
            return len(self._idle.get(url, ()))

    def close(self) -> None:
        """Close every idle connection (the pool stays usable and reopens on demand)."""
        with self._lock:
            _close_all(self._idle)

    def _take(self, url: str) -> _Connection:
        while True:
            with self._lock:
                connections = self._idle.get(url)
                connection = connections.pop() if connections else None
            if connection is None:
                return self._open(url)
            if not _dropped(connection.sock):
                return connection
            # The server closed it while idle: replace it rather than fail a request whose
            # outcome would then be unknown.
            connection.sock.close()

    def _give_back(self, url: str, connection: _Connection) -> None:
        with self._lock:
            connections = self._idle.setdefault(url, [])
            if len(connections) < self._max_idle:
                connections.append(connection)
                return
        connection.sock.close()

    def _open(self, url: str) -> _Connection:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        sock = socket.create_connection((host, port), timeout=self._connect_timeout)
        try:
            for level, option, value in self._socket_options:
                sock.setsockopt(level, option, value)
            if parts.scheme == "https":
                sock = self._tls().wrap_socket(sock, server_hostname=host)
            sock.settimeout(self._read_timeout)
        except BaseException:
            sock.close()
            raise
        with self._lock:
            self.opened += 1
        return _Connection(sock, request_head(parts.path or "/", host_of(url)))

    def _tls(self) -> ssl.SSLContext:
        """The TLS context, made once."""
        context = self._ssl_context
        if context is None:
            context = self._ssl_context = tls_context(
                verify=self._verify,
                ca_bundle=self._ca_bundle,
                cert_file=self._cert_file,
                key_file=self._key_file,
            )
        return context


def tls_context(
    *, verify: bool, ca_bundle: str | None, cert_file: str | None, key_file: str | None
) -> ssl.SSLContext:
    """A client TLS context as botocore makes it (urllib3's defaults), verifying against
    ``ca_bundle`` (the system's certificates when ``None``) unless ``verify`` is false, with
    the client certificate ``cert_file``/``key_file`` if given. Both lean transports use it."""
    context: ssl.SSLContext = create_urllib3_context()
    if verify:
        context.verify_mode = ssl.CERT_REQUIRED
        context.check_hostname = True
        if ca_bundle is None:
            context.load_default_certs()
        else:
            context.load_verify_locations(cafile=ca_bundle)
    else:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    return context


def _close_all(idle: dict[str, list[_Connection]]) -> None:
    for connections in idle.values():
        while connections:
            connections.pop().sock.close()


def _dropped(sock: socket.socket) -> bool:
    """Whether the peer closed an idle connection: readable with nothing asked means EOF (or
    bytes nobody asked for). ``poll``, not ``select``: a descriptor above 1024 is fine."""
    poller = select.poll()
    poller.register(sock, select.POLLIN | select.POLLPRI)
    try:
        return bool(poller.poll(0))
    except OSError:
        return True
