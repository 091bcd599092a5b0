"""A real HTTP proxy on loopback: ``CONNECT`` tunnels and absolute-URI forwarding, Basic auth.

:class:`ConnectProxy` listens on ``127.0.0.1`` (a free port). With ``user``/``password`` set,
every request must carry ``Proxy-Authorization: Basic ...`` with exactly those; otherwise it
answers ``407 Proxy Authentication Required`` with ``Proxy-Authenticate: Basic realm=...`` and
closes the connection. An authorized ``CONNECT host:port`` gets ``200 Connection established``
and then a byte tunnel to ``host:port``; an authorized ``POST http://host:port/path HTTP/1.1``
(absolute-form, what clients send to a proxy for ``http://`` URLs) is forwarded to the origin
in origin-form without the proxy's headers, and the answer relayed, keeping both connections
alive between requests.

Only loopback targets (``127.0.0.1``, ``::1``, ``localhost``) are served: anything else gets
``403``. Each request is recorded (:class:`ProxyRequest`) with its auth result;
``tunnels_opened`` counts tunnels established.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

from support._loop import LoopThread

__all__ = ["ConnectProxy", "ProxyRequest"]

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_HOP_BY_HOP = frozenset({"proxy-authorization", "proxy-connection", "keep-alive"})


@dataclass(frozen=True)
class ProxyRequest:
    """One request the proxy read: ``method``, ``target`` as sent, and whether its
    credentials were accepted (``credentials`` is the ``user:password`` it carried, if any)."""

    method: str
    target: str
    authorized: bool
    credentials: str | None


def _head(raw: bytes) -> tuple[str, str, list[tuple[str, str]]]:
    lines = raw.decode("latin-1").split("\r\n")
    method, target, _ = [*lines[0].split(" ", 2), "", ""][:3]
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
    return method, target, headers


def _get(headers: list[tuple[str, str]], name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _split_host(authority: str) -> tuple[str, int]:
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        return host, int(rest.lstrip(":") or 80)
    host, _, port = authority.rpartition(":")
    return host, int(port)


class ConnectProxy:
    """A loopback HTTP proxy requiring Basic auth (``user=None``: no auth). Use as a context
    manager, or :meth:`start` / :meth:`stop`."""

    def __init__(
        self,
        *,
        user: str | None = "proxyuser",
        password: str | None = "proxypass",
        realm: str = "streamodel-test",
    ) -> None:
        self.user = user
        self.password = password
        self.realm = realm
        self.port = 0
        self._lock = threading.Lock()
        self._requests: list[ProxyRequest] = []
        self._tunnels = 0
        self._loop: LoopThread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- what tests read ------------------------------------------------------------------
    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    def url(self, user: str | None = None, password: str | None = None) -> str:
        """The proxy URL with ``user:password@`` (the configured ones by default; pass
        ``user=""`` for none)."""
        user = self.user if user is None else user
        password = self.password if password is None else password
        if not user:
            return f"http://{self.address}"
        return f"http://{user}:{password}@{self.address}"

    @property
    def tunnels_opened(self) -> int:
        with self._lock:
            return self._tunnels

    @property
    def requests(self) -> list[ProxyRequest]:
        """A copy of every request read so far."""
        with self._lock:
            return list(self._requests)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> ConnectProxy:
        self._loop = LoopThread(f"connect-proxy-{id(self):x}")
        listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = listener.getsockname()[1]
        self._server = self._loop.run(self._serve(listener))
        return self

    async def _serve(self, listener: socket.socket) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._handle, sock=listener, limit=1 << 20)

    def stop(self) -> None:
        if self._loop is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()

        try:
            self._loop.run(close(), timeout=10)
        finally:
            self._loop.stop()
            self._loop = None

    def __enter__(self) -> ConnectProxy:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- serving --------------------------------------------------------------------------
    def _authorize(self, headers: list[tuple[str, str]]) -> tuple[bool, str | None]:
        given = _get(headers, "proxy-authorization")
        credentials = None
        if given is not None:
            scheme, _, token = given.partition(" ")
            if scheme.lower() == "basic":
                try:
                    credentials = base64.b64decode(token.strip(), validate=True).decode()
                except ValueError:
                    credentials = None
        if self.user is None:
            return True, credentials
        return credentials == f"{self.user}:{self.password}", credentials

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        upstreams: dict[tuple[str, int], tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                method, target, headers = _head(raw[:-4])
                authorized, credentials = self._authorize(headers)
                with self._lock:
                    self._requests.append(ProxyRequest(method, target, authorized, credentials))
                if not authorized:
                    writer.write(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                        b'Proxy-Authenticate: Basic realm="%s"\r\n'
                        b"Content-Length: 0\r\nConnection: close\r\n\r\n" % self.realm.encode()
                    )
                    await writer.drain()
                    return
                if method == "CONNECT":
                    await self._tunnel(target, reader, writer)
                    return
                if not await self._forward(method, target, headers, reader, writer, upstreams):
                    return
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return  # stop(): the connections are being closed anyway
        finally:
            for _, upstream in upstreams.values():
                upstream.close()
            writer.close()
            self._writers.discard(writer)

    async def _refuse(self, writer: asyncio.StreamWriter, status: bytes) -> None:
        writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()

    async def _tunnel(
        self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            host, port = _split_host(target)
        except ValueError:
            await self._refuse(writer, b"400 Bad Request")
            return
        if host not in _LOOPBACK:
            await self._refuse(writer, b"403 Forbidden")
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port, limit=1 << 20)
        except OSError:
            await self._refuse(writer, b"502 Bad Gateway")
            return
        with self._lock:
            self._tunnels += 1
        self._writers.add(up_writer)
        try:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))
        finally:
            up_writer.close()
            self._writers.discard(up_writer)

    async def _forward(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstreams: dict[tuple[str, int], tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    ) -> bool:
        """Forward one absolute-form request and relay its answer; whether to keep going."""
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            await self._refuse(writer, b"400 Bad Request")
            return False
        if parts.hostname not in _LOOPBACK:
            await self._refuse(writer, b"403 Forbidden")
            return False
        if _get(headers, "transfer-encoding") is not None:
            await self._refuse(writer, b"411 Length Required")
            return False
        body = await reader.readexactly(int(_get(headers, "content-length") or 0))
        origin = parts.path or "/"
        if parts.query:
            origin += "?" + parts.query
        kept = [(k, v) for k, v in headers if k.lower() not in _HOP_BY_HOP]
        head = f"{method} {origin} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in kept)
        address = (parts.hostname, parts.port or 80)
        known = upstreams.get(address)
        if known is None or known[0].at_eof():
            known = upstreams[address] = await asyncio.open_connection(*address, limit=1 << 20)
        up_reader, up_writer = known
        up_writer.write(head.encode("latin-1") + b"\r\n" + body)
        await up_writer.drain()
        raw = await up_reader.readuntil(b"\r\n\r\n")
        writer.write(raw)
        _, _, answer_headers = _head(raw[:-4])
        length = _get(answer_headers, "content-length")
        closing = (_get(answer_headers, "connection") or "").lower() == "close"
        if length is not None:
            writer.write(await up_reader.readexactly(int(length)))
        elif (_get(answer_headers, "transfer-encoding") or "").lower() == "chunked":
            while True:
                size_line = await up_reader.readuntil(b"\r\n")
                writer.write(size_line)
                size = int(size_line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:  # trailers, then the blank line
                        line = await up_reader.readuntil(b"\r\n")
                        writer.write(line)
                        if line == b"\r\n":
                            break
                    break
                writer.write(await up_reader.readexactly(size + 2))
        else:
            writer.write(await up_reader.read())  # until the origin closes
            closing = True
        await writer.drain()
        if closing:
            up_writer.close()
            upstreams.pop(address, None)
        asked_close = (_get(headers, "connection") or "").lower() == "close"
        # An answer delimited by the origin's close must reach the client the same way.
        return not (asked_close or closing)


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Bytes from ``reader`` to ``writer`` until EOF, then pass the EOF on (half-close)."""
    try:
        while True:
            data = await reader.read(1 << 18)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.transport.abort()
