"""Kept-alive connections for the asyncio lean transport: a bounded pool, direct or through an
HTTP proxy.

Each connection is an :class:`asyncio.Protocol` that feeds what arrives to the same sans-I/O
:class:`~streamodel.transport.http1.ResponseParser` the sync pool reads with, so both
transports frame, refuse and limit answers identically. A request (request line, headers and
body) leaves in one write.

The pool is bounded as botocore's is configured (``max_pool_connections``): at most that many
exchanges run at once, each on its own connection; further requests wait in line (first come,
first served) until one ends. A connection is given back only after a whole answer was read:
an exception of any kind mid-exchange (a cancelled task, ``asyncio.timeout``, a read timeout,
a malformed answer) closes it, and its place in the pool is freed, so no later request reads
the rest of an earlier answer. Before reuse, an idle connection is checked: one the server
closed (or sent bytes on) while it was idle is replaced rather than used.

Proxies as botocore uses them (:class:`Proxy`, from the client's ``HTTPS_PROXY`` /
``HTTP_PROXY`` / ``Config(proxies=..., proxies_config=...)``): an ``https`` endpoint is reached
through a ``CONNECT`` tunnel (TLS to the endpoint inside it), an ``http`` one by sending the
absolute URL to the proxy; both carry the proxy's ``Proxy-Authorization``. An ``https://``
proxy is spoken to over TLS (``proxy_ca_bundle``, ``proxy_client_cert``), and with
``proxy_use_forwarding_for_https`` it is sent ``https`` requests in absolute form instead of a
tunnel. A refused ``CONNECT`` raises ``OSError("Tunnel connection failed: <status>")``, the
words :func:`~streamodel.transport.errors.connection_error` knows (407: the proxy refused its
credentials).

A pool belongs to the event loop it is used on; used on a new loop after its own was closed
(one ``asyncio.run`` after another), it forgets the old loop's connections and starts afresh.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import select
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from streamodel.transport.http1 import (
    Headers,
    Response,
    ResponseParser,
    encode_request,
    request_head,
)
from streamodel.transport.internals import host_of
from streamodel.transport.pool import tls_context

__all__ = ["AsyncConnectionPool", "Proxy"]


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy between the pool and its endpoint, as botocore would use it."""

    url: str
    """``http://host:port`` or ``https://host:port`` (credentials, if any, are in
    ``headers`` already)."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Sent to the proxy: ``Proxy-Authorization``."""
    ca_bundle: str | None = None
    """``proxy_ca_bundle``: what an ``https://`` proxy's certificate is checked against."""
    client_cert: str | tuple[str, str] | None = None
    """``proxy_client_cert``: presented to an ``https://`` proxy."""
    forward_https: bool = False
    """``proxy_use_forwarding_for_https``: ``https`` requests go to an ``https://`` proxy in
    absolute form rather than through a tunnel."""


class _Connection(asyncio.Protocol):
    """One kept-alive connection, one exchange at a time."""

    __slots__ = (
        "_drained",
        "_last",
        "_timeout",
        "_timer",
        "head",
        "loop",
        "parser",
        "transport",
        "usable",
        "waiter",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.head = b""  # request line and Host (and proxy headers when forwarding)
        self.parser: ResponseParser | None = None  # while an answer is awaited
        self.waiter: asyncio.Future[Response] | None = None
        self.usable = True  # False from the moment it must not carry another request
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = 0.0
        self._last = 0.0
        self._drained: asyncio.Future[None] | None = None

    # -- one exchange ---------------------------------------------------------------------

    async def exchange(
        self, request: bytes, read_timeout: float | None, parser: ResponseParser | None = None
    ) -> Response:
        """Send ``request`` and read the answer (with ``parser``, by default a new one).
        ``read_timeout`` bounds each wait for bytes, as a socket timeout does."""
        transport = self.transport
        if not self.usable or transport is None or transport.is_closing():
            raise ConnectionError("connection closed by the server before the request was sent")
        self.parser = parser or ResponseParser()
        waiter: asyncio.Future[Response] = self.loop.create_future()
        self.waiter = waiter
        transport.write(request)
        if self._drained is not None:
            # A big request filled the transport's buffer: its sending is what takes time.
            await asyncio.shield(self._drained)
        if read_timeout is not None and not waiter.done():
            self._timeout = read_timeout
            self._last = self.loop.time()
            if self._timer is None:
                # One timer per connection, not per request: when it fires, it looks at how
                # long the current exchange has waited for bytes, and sets itself again.
                self._timer = self.loop.call_at(self._last + read_timeout, self._check_timeout)
        return await waiter

    def _answered(self, response: Response | None, error: BaseException | None = None) -> None:
        self.parser = None
        waiter = self.waiter
        self.waiter = None
        if error is not None:
            self.usable = False
        if waiter is None or waiter.done():
            return
        if error is not None:
            waiter.set_exception(error)
        else:
            assert response is not None
            waiter.set_result(response)

    def _check_timeout(self) -> None:
        self._timer = None
        if self.parser is None:
            return  # idle now: the next exchange sets the timer again
        due = self._last + self._timeout
        if self.loop.time() < due:  # bytes came meanwhile: wait from the last ones
            self._timer = self.loop.call_at(due, self._check_timeout)
            return
        self._answered(None, TimeoutError(f"no answer within {self._timeout} s (read timeout)"))

    def alive(self) -> bool:
        """Whether an idle connection can carry a request: not closed, nothing received since
        its last answer (``poll``, so bytes the loop has not looked at yet count too)."""
        transport = self.transport
        if not self.usable or transport is None or transport.is_closing():
            return False
        sock = transport.get_extra_info("socket")
        if sock is None:
            return True
        poller = select.poll()
        try:
            poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
            return not poller.poll(0)
        except (OSError, ValueError):
            return False

    def close(self) -> None:
        self.usable = False
        self._stop_timer()
        if self.transport is not None:
            self.transport.close()

    def _stop_timer(self) -> None:
        timer = self._timer
        if timer is not None:
            timer.cancel()
            self._timer = None

    def abort(self) -> None:
        """Drop the connection at once (its state is unknown)."""
        self.usable = False
        self._stop_timer()
        self.parser = None
        self.waiter = None
        if self.transport is not None:
            self.transport.abort()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream transport

    def data_received(self, data: bytes) -> None:
        parser = self.parser
        if parser is None:
            # Bytes nobody asked for: the connection's framing is not to be trusted.
            self.usable = False
            return
        self._last = self.loop.time()
        try:
            response = parser.feed(data)
        except ConnectionError as error:
            self._answered(None, error)
            return
        if response is not None:
            self._answered(response)

    def eof_received(self) -> bool:
        self.usable = False
        parser = self.parser
        if parser is not None:
            try:
                response = parser.eof()
            except ConnectionError as error:
                self._answered(None, error)
            else:
                self._answered(response)
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self._stop_timer()
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)  # the exchange learns from its waiter
        self._drained = None
        parser = self.parser
        if parser is None:
            return
        if exc is not None:
            self._answered(None, exc)
            return
        try:
            response = parser.eof()
        except ConnectionError as error:
            self._answered(None, error)
        else:
            self._answered(response)

    def pause_writing(self) -> None:
        if self._drained is None:
            self._drained = self.loop.create_future()

    def resume_writing(self) -> None:
        drained = self._drained
        self._drained = None
        if drained is not None and not drained.done():
            drained.set_result(None)


class AsyncConnectionPool:
    """POSTs over kept-alive plain or TLS connections, at most ``max_connections`` at once.

    Options as :class:`~streamodel.transport.pool.ConnectionPool`'s (``verify``,
    ``ca_bundle``, ``cert_file``/``key_file``, ``connect_timeout``, ``read_timeout``,
    ``socket_options``), and ``proxy``. ``connect_timeout`` bounds everything before the
    request is sent (TCP, the proxy's tunnel, TLS handshakes); ``read_timeout`` each wait for
    bytes of the answer. A malformed or cut-off answer raises ``ConnectionError``; a
    certificate that fails verification ``ssl.SSLCertVerificationError``.
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
        socket_options: tuple[tuple[int, int, int], ...] = (),
        proxy: Proxy | None = None,
    ) -> None:
        if max_connections < 1:
            raise ValueError("AsyncConnectionPool: max_connections must be at least 1")
        self._verify = verify
        self._ca_bundle = ca_bundle
        self._cert_file = cert_file
        self._key_file = key_file
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max = max_connections
        self._socket_options = socket_options
        self.proxy = proxy
        self._ssl_context: ssl.SSLContext | None = None
        self._proxy_context: ssl.SSLContext | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: dict[str, list[_Connection]] = {}
        self._in_use = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.opened = 0
        """How many connections this pool has opened (tests and benchmarks count them)."""

    @property
    def max_connections(self) -> int:
        return self._max

    @property
    def in_use(self) -> int:
        """Exchanges running now (never more than ``max_connections``)."""
        return self._in_use

    @property
    def waiting(self) -> int:
        """Requests waiting for a place."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    def idle(self, url: str) -> int:
        """How many idle connections to ``url`` are kept now."""
        return len(self._idle.get(url, ()))

    async def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Headers, bytes]:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind(loop)
        if self._in_use < self._max and not self._waiters:
            self._in_use += 1
        else:
            await self._wait_for_place(loop)
        try:
            connection = self._take(url)
            if connection is None:
                connection = await self._open(loop, url)
            request = encode_request(connection.head, headers, body)
            try:
                response = await connection.exchange(request, self._read_timeout)
            except BaseException:
                # Whatever stopped the exchange, the connection's state is unknown.
                connection.abort()
                raise
            if response.keep_alive and connection.usable:
                self._idle.setdefault(url, []).append(connection)
            else:
                connection.close()
            return response.status, response.headers, response.body
        finally:
            self._release()

    async def aclose(self) -> None:
        """Close every idle connection (the pool stays usable and reopens on demand)."""
        self.close()

    def close(self) -> None:
        """Close every idle connection now (on the pool's loop)."""
        loop = self._loop
        idle, self._idle = self._idle, {}
        if loop is None or loop.is_closed():
            return  # closed with their loop's sockets when collected
        for connections in idle.values():
            for connection in connections:
                connection.close()

    # -- places ---------------------------------------------------------------------------

    def _bind(self, loop: asyncio.AbstractEventLoop) -> None:
        old = self._loop
        if old is not None and not old.is_closed():
            raise RuntimeError(
                "this streamodel async transport is in use on another event loop; make one per loop"
            )
        # The old loop is gone, and its connections with it.
        self._loop = loop
        self._idle = {}
        self._in_use = 0
        self._waiters.clear()

    async def _wait_for_place(self, loop: asyncio.AbstractEventLoop) -> None:
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                # A place was handed over just as this request gave up: pass it on.
                self._release()
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            raise

    def _release(self) -> None:
        """Hand this place to the first waiter still waiting, or free it."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_use -= 1

    # -- connections ----------------------------------------------------------------------

    def _take(self, url: str) -> _Connection | None:
        connections = self._idle.get(url)
        while connections:
            connection = connections.pop()
            if connection.alive():
                return connection
            # The server closed it while idle: replace it rather than fail a request whose
            # outcome would then be unknown.
            connection.close()
        return None

    async def _open(self, loop: asyncio.AbstractEventLoop, url: str) -> _Connection:
        parts = urlsplit(url)
        host = parts.hostname or ""
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        proxy = self.proxy
        connection: _Connection | None = None
        try:
            async with asyncio.timeout(self._connect_timeout):
                if proxy is None:
                    connection = await self._connect(loop, host, port, self._tls() if tls else None)
                    connection.head = request_head(parts.path or "/", host_of(url))
                else:
                    connection = await self._through(loop, proxy, url, host, port, tls)
        except BaseException:
            if connection is not None:
                connection.abort()
            raise
        self.opened += 1
        return connection

    async def _connect(
        self,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        context: ssl.SSLContext | None,
    ) -> _Connection:
        _, connection = await loop.create_connection(
            lambda: _Connection(loop),
            host,
            port,
            ssl=context,
            server_hostname=host if context is not None else None,
        )
        assert connection.transport is not None
        sock = connection.transport.get_extra_info("socket")
        if sock is not None:
            for level, option, value in self._socket_options:
                sock.setsockopt(level, option, value)
        return connection

    async def _through(
        self,
        loop: asyncio.AbstractEventLoop,
        proxy: Proxy,
        url: str,
        host: str,
        port: int,
        tls: bool,
    ) -> _Connection:
        """A connection to ``url`` by way of ``proxy``: forwarding, or a CONNECT tunnel."""
        parts = urlsplit(proxy.url)
        proxy_tls = parts.scheme == "https"
        proxy_host = parts.hostname or ""
        proxy_port = parts.port or (443 if proxy_tls else 80)
        connection = await self._connect(
            loop, proxy_host, proxy_port, self._proxy_tls() if proxy_tls else None
        )
        proxy_lines = "".join(f"{name}: {value}\r\n" for name, value in proxy.headers.items())
        if not tls or (proxy_tls and proxy.forward_https):
            # The proxy is sent the absolute URL and forwards the request.
            connection.head = request_head(url, host_of(url)) + proxy_lines.encode()
            return connection
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        connect = f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{proxy_lines}\r\n"
        try:
            parser = ResponseParser(head_only=True)
            answer = await connection.exchange(
                connect.encode("latin-1"), self._read_timeout, parser
            )
            if answer.status != 200:
                # http.client's words, which connection_error knows (407: credentials).
                raise OSError(f"Tunnel connection failed: {answer.status} (CONNECT {authority})")
            if parser.unread:
                raise ConnectionError("malformed response: bytes after the proxy's CONNECT answer")
            transport = connection.transport
            assert transport is not None
            tunnelled = await loop.start_tls(
                transport, connection, self._tls(), server_hostname=host
            )
            if tunnelled is None:
                raise ConnectionError("the proxy closed the tunnel during the TLS handshake")
        except BaseException:
            connection.abort()
            raise
        connection.transport = tunnelled
        connection.head = request_head(urlsplit(url).path or "/", host_of(url))
        return connection

    def _tls(self) -> ssl.SSLContext:
        context = self._ssl_context
        if context is None:
            context = self._ssl_context = tls_context(
                verify=self._verify,
                ca_bundle=self._ca_bundle,
                cert_file=self._cert_file,
                key_file=self._key_file,
            )
        return context

    def _proxy_tls(self) -> ssl.SSLContext:
        """TLS to an ``https://`` proxy, as urllib3 speaks it for botocore: checked against
        ``proxy_ca_bundle`` when given, else as the endpoint is; ``proxy_client_cert``."""
        context = self._proxy_context
        if context is None:
            proxy = self.proxy
            assert proxy is not None
            cert: Any = proxy.client_cert
            cert_file, key_file = cert if isinstance(cert, tuple) else (cert, None)
            context = self._proxy_context = tls_context(
                verify=self._verify or proxy.ca_bundle is not None,
                ca_bundle=proxy.ca_bundle if proxy.ca_bundle is not None else self._ca_bundle,
                cert_file=cert_file,
                key_file=key_file,
            )
        return context
