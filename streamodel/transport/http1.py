"""A minimal HTTP/1.1 response reader for the lean transports' kept-alive connections.

``http.client`` parses every answer's headers with ``email.parser``, which on DynamoDB's
small answers costs about as much client CPU as the rest of the exchange. DynamoDB sends a
status line, a few headers and a body framed by ``Content-Length``; this reads exactly that
(and chunked or close-delimited bodies, so any HTTP/1.1 server works).

The reading is sans-I/O, in the spirit of h11: :class:`ResponseParser` is fed the bytes of
one answer as they arrive, whatever their split, and hands back the :class:`Response` once it
is whole. Two shells drive it: :func:`read_response`, straight from a blocking socket (the
sync pool), and the asyncio protocol of :mod:`~streamodel.transport.aio_pool`. Anything
malformed or cut short raises ``ConnectionError``: the answer is lost, which the caller
treats like a reset (its retry policy decides), and the connection must be dropped. So does
a body larger than :data:`MAX_BODY`, however it is framed: no answer makes the client hold
more memory than that.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any, NamedTuple

__all__ = [
    "MAX_BODY",
    "Headers",
    "Response",
    "ResponseParser",
    "encode_request",
    "read_response",
    "request_head",
]

# One recv takes a whole small answer; bigger bodies are read in pieces up to this size.
_RECV_SIZE = 65536
_MAX_HEAD = 65536  # status line and headers together (http.client allows this per line)
MAX_BODY = 64 << 20
"""The largest body read: DynamoDB's biggest answers (BatchGetItem, 16 MB of items) stay well
below it even as JSON."""
_MAX_CHUNK_LINE = 4096  # a chunk-size line with its extensions
_MAX_TRAILERS = 100
# Statuses that never have a body (RFC 9112 6.3); HEAD is never sent here.
_NO_BODY = frozenset({204, 304})

# What the parser waits for.
_HEAD = 0  # the status line and headers
_LENGTH = 1  # the rest of a body framed by Content-Length
_CHUNK_SIZE = 2  # a chunk-size line
_CHUNK_DATA = 3  # the rest of a chunk
_CHUNK_END = 4  # the CRLF after a chunk
_TRAILERS = 5  # trailer fields up to the blank line
_TO_CLOSE = 6  # everything up to the end of the connection
_DONE = 7


class Headers(dict[str, str]):
    """Response headers looked up case-insensitively (stored lower-case)."""

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


class Response(NamedTuple):
    status: int
    headers: Headers
    body: bytes
    keep_alive: bool
    """False when the connection cannot carry another request (HTTP/1.0, ``Connection:
    close``, a close-delimited body, or bytes beyond the answer)."""


class ResponseParser:
    """Reads one answer (and the interim 1xx ones before it) from bytes fed in any split.

    :meth:`feed` takes what arrived and returns the :class:`Response` once it is whole, else
    ``None``; :meth:`eof` says the server closed the connection, which completes a
    close-delimited body and is a ``ConnectionError`` anywhere else. A reader of a blocking
    socket may instead let the body framed by ``Content-Length`` be received in place:
    :meth:`body_space` and :meth:`body_filled`. ``head_only`` stops after the first final
    status line and headers (the answer to a ``CONNECT``, whose body is the tunnel).
    Malformed bytes raise ``ConnectionError``; after that, or after the answer, the parser is
    not to be fed again.
    """

    __slots__ = (
        "_buffer",
        "_chunks",
        "_have",
        "_head_only",
        "_headers",
        "_keep_alive",
        "_length",
        "_received",
        "_state",
        "_status",
        "_total",
        "_trailers",
        "_view",
        "_whole",
    )

    # Set once the head is read, as the body's framing needs them.
    _status: int
    _headers: Headers
    _keep_alive: bool
    _length: int  # of a Content-Length body, or of the current chunk
    _have: int  # of those bytes
    _whole: bytearray | None  # a Content-Length body at its final size, once allocated
    _view: memoryview | None
    _chunks: list[bytes]
    _total: int  # of the chunks so far
    _trailers: int

    def __init__(self, *, head_only: bool = False) -> None:
        self._buffer = bytearray()
        self._state = _HEAD
        self._head_only = head_only
        self._received = False

    @property
    def unread(self) -> int:
        """Bytes received after a ``head_only`` answer (a proxy that sent more than its answer
        to ``CONNECT`` before the tunnel was used)."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> Response | None:
        """Take the next bytes of the answer; the answer once it is whole, else ``None``."""
        if data:
            self._received = True
            self._buffer += data
        return self._advance()

    def body_space(self) -> memoryview | None:
        """Where the next bytes of a ``Content-Length`` body may be received in place (no
        more than the body's rest), or ``None`` when bytes must go through :meth:`feed`."""
        if self._state != _LENGTH or self._buffer:
            return None
        view = self._view
        if view is None:
            if self._whole is None:
                self._whole = bytearray(self._length)
            view = self._view = memoryview(self._whole)
        return view[self._have :]

    def body_filled(self, count: int) -> Response | None:
        """``count`` bytes were received into :meth:`body_space`."""
        self._have += count
        return self._advance()

    def eof(self) -> Response:
        """The server closed the connection: the close-delimited answer, or the
        ``ConnectionError`` of an answer cut short."""
        state = self._state
        if state == _TO_CLOSE:
            body = bytes(self._buffer)
            self._buffer.clear()
            self._state = _DONE
            return Response(self._status, self._headers, body, False)
        if state == _HEAD:
            waiting_for = "the end of the headers" if self._received else "the status line"
        elif state in (_LENGTH, _CHUNK_DATA):
            have, length = self._have + len(self._buffer), self._length
            waiting_for = f"the end of the body ({have} of {length} bytes read)"
        elif state == _CHUNK_SIZE:
            waiting_for = "the next chunk size"
        elif state == _CHUNK_END:
            waiting_for = "the end of a chunk"
        elif state == _TRAILERS:
            waiting_for = "the end of the chunked body"
        else:
            raise ConnectionError("connection closed by the server after the answer")
        raise ConnectionError(f"connection closed by the server before {waiting_for}")

    # -- the states -------------------------------------------------------------------------

    def _advance(self) -> Response | None:
        buffer = self._buffer
        while True:
            state = self._state
            if state == _LENGTH:
                length = self._length
                whole = self._whole
                if whole is None:
                    if len(buffer) >= length:
                        # The usual case: the whole small body came with the headers.
                        if len(buffer) == length:
                            body = bytes(buffer)
                            buffer.clear()
                            return self._finish(body)
                        body = bytes(buffer[:length])
                        del buffer[:length]
                        return self._finish(body)
                    whole = self._whole = bytearray(length)
                if buffer:
                    taken = min(length - self._have, len(buffer))
                    whole[self._have : self._have + taken] = buffer[:taken]
                    del buffer[:taken]
                    self._have += taken
                if self._have < length:
                    return None
                return self._finish(bytes(whole))
            if state == _HEAD:
                if not self._head(buffer):
                    return None
                if self._state == _DONE:
                    return Response(self._status, self._headers, b"", self._keep_alive)
            elif state == _CHUNK_SIZE:
                if not self._chunk_size(buffer):
                    return None
            elif state == _CHUNK_DATA:
                missing = self._length - self._have
                if len(buffer) < missing:
                    if buffer:
                        self._chunks.append(bytes(buffer))
                        self._have += len(buffer)
                        buffer.clear()
                    return None
                self._chunks.append(bytes(buffer[:missing]))
                del buffer[:missing]
                self._state = _CHUNK_END
            elif state == _CHUNK_END:
                if len(buffer) < 2:
                    if buffer and buffer[0] != 13:  # not the CR of a CRLF
                        raise ConnectionError("malformed response: a chunk longer than its size")
                    return None
                if not buffer.startswith(b"\r\n"):
                    raise ConnectionError("malformed response: a chunk longer than its size")
                del buffer[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                if not self._trailer(buffer):
                    return None
                if self._state == _DONE:
                    return self._finish(b"".join(self._chunks))
            elif state == _TO_CLOSE:
                if len(buffer) > MAX_BODY:
                    raise ConnectionError(f"response body is over the {MAX_BODY} bytes limit")
                return None
            else:
                raise ConnectionError("malformed response: bytes after the end of the answer")

    def _finish(self, body: bytes) -> Response:
        self._state = _DONE
        keep_alive = self._keep_alive
        if self._buffer:
            # More than one answer to one request: the connection's framing is not to be
            # trusted.
            keep_alive = False
            self._buffer.clear()
        return Response(self._status, self._headers, body, keep_alive)

    def _head(self, buffer: bytearray) -> bool:
        """Parse a status line and headers once they are all there; False until then."""
        # Blank lines before a status line are ignored (RFC 9112 2.2).
        while buffer.startswith(b"\r\n"):
            del buffer[:2]
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _MAX_HEAD:
                raise ConnectionError(f"malformed response: headers longer than {_MAX_HEAD} bytes")
            return False
        if end > _MAX_HEAD:
            raise ConnectionError(f"malformed response: headers longer than {_MAX_HEAD} bytes")
        head = buffer[:end].decode("iso-8859-1")
        del buffer[: end + 4]
        lines = head.split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if (
            version not in ("HTTP/1.1", "HTTP/1.0")
            or len(code) != 3
            or not code.isdigit()
            or rest[3:4] not in ("", " ")
        ):
            raise ConnectionError(f"malformed response: bad status line {lines[0][:100]!r}")
        headers = Headers()
        name = ""
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and name:
                # An obsolete folded continuation: one space joins it to the header before.
                headers[name] += " " + line.strip()
                continue
            name, colon, value = line.partition(":")
            name = name.lower()
            if not colon or not name or name != name.strip():
                raise ConnectionError(f"malformed response: bad header line {line[:100]!r}")
            value = value.strip()
            # A repeated header is the comma-joined list of its values (RFC 9110 5.3).
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        status = int(code)
        if status < 200:
            if status == 101:  # never asked for: the connection now speaks something else
                raise ConnectionError("malformed response: unexpected 101 Switching Protocols")
            # 100 Continue and other interim answers precede the real one.
            return True
        self._status = status
        self._headers = headers
        connection = headers.get("connection")
        self._keep_alive = version != "HTTP/1.0" and not (
            connection and "close" in (token.strip() for token in connection.lower().split(","))
        )
        if self._head_only:
            self._state = _DONE  # what follows, if anything, is not this answer's (unread)
        elif status in _NO_BODY:
            self._state = _DONE
            if buffer:
                # Bytes beyond a bodiless answer: the framing is not to be trusted.
                self._keep_alive = False
                buffer.clear()
        elif "transfer-encoding" in headers:
            # Transfer-Encoding wins over Content-Length (RFC 9112 6.3).
            codings = headers["transfer-encoding"].lower().split(",")
            if codings[-1].strip() == "chunked":
                self._chunks = []
                self._total = self._trailers = 0
                self._state = _CHUNK_SIZE
            else:
                self._state = _TO_CLOSE
                self._keep_alive = False
        elif "content-length" in headers:
            text = headers["content-length"]
            if not text.isdigit() or not text.isascii():
                raise ConnectionError(f"malformed response: bad Content-Length {text[:100]!r}")
            length = int(text)
            if length > MAX_BODY:
                raise ConnectionError(
                    f"response body of {length} bytes is over the {MAX_BODY} limit"
                )
            self._length = length
            self._have = 0
            self._whole = self._view = None
            self._state = _LENGTH
        else:
            self._state = _TO_CLOSE
            self._keep_alive = False
        return True

    def _line(self, buffer: bytearray, limit: int, waiting_for: str) -> bytes | None:
        """One CRLF-terminated line without its CRLF, or ``None`` until it is all there."""
        end = buffer.find(b"\r\n")
        if end < 0:
            if len(buffer) > limit:
                raise ConnectionError(f"malformed response: {waiting_for} longer than {limit}")
            return None
        line = bytes(buffer[:end])
        del buffer[: end + 2]
        return line

    def _chunk_size(self, buffer: bytearray) -> bool:
        line = self._line(buffer, _MAX_CHUNK_LINE, "the next chunk size")
        if line is None:
            return False
        size_text = line.split(b";", 1)[0].strip()
        try:
            if not size_text or size_text.startswith((b"-", b"+", b"0x", b"0X")):
                raise ValueError
            size = int(size_text, 16)
        except ValueError:
            raise ConnectionError(f"malformed response: bad chunk size {line[:100]!r}") from None
        if size == 0:
            # Trailer fields, up to the blank line that ends the message; not needed here.
            self._state = _TRAILERS
            return True
        self._total += size
        if self._total > MAX_BODY:
            raise ConnectionError(f"chunked response body is over the {MAX_BODY} bytes limit")
        self._length = size
        self._have = 0
        self._state = _CHUNK_DATA
        return True

    def _trailer(self, buffer: bytearray) -> bool:
        line = self._line(buffer, _MAX_HEAD, "the end of the chunked body")
        if line is None:
            return False
        if not line:
            self._state = _DONE
            return True
        self._trailers += 1
        if self._trailers > _MAX_TRAILERS:
            raise ConnectionError("malformed response: too many trailer fields")
        return True


def read_response(sock: socket.socket) -> Response:
    """Read one whole answer from a blocking ``sock`` (plain or TLS), skipping interim (1xx)
    ones.

    Raises ``ConnectionError`` when the answer is malformed or the server closes the
    connection before its end, and ``OSError`` (a timeout included) from the socket.
    """
    parser = ResponseParser()
    recv = sock.recv
    data = recv(_RECV_SIZE)
    response = parser.feed(data) if data else parser.eof()
    while response is None:
        space = parser.body_space()
        if space is None:
            data = recv(_RECV_SIZE)
            response = parser.feed(data) if data else parser.eof()
            continue
        # A big body goes straight into a buffer of its final size, not piece by piece.
        size = len(space)
        filled = 0
        while filled < size:
            got = sock.recv_into(space[filled:])
            if not got:
                parser.body_filled(filled)
                return parser.eof()
            filled += got
        response = parser.body_filled(filled)
    return response


def request_head(target: str, host: str) -> bytes:
    """The request line and ``Host`` header of every POST on one connection: ``target`` is
    the path (or, through a forwarding proxy, the absolute URL), ``host`` the signed host."""
    return f"POST {target} HTTP/1.1\r\nHost: {host}\r\n".encode()


def encode_request(head: bytes, headers: Mapping[str, str], body: bytes) -> bytes:
    """One whole request, to go out in one write: :func:`request_head`, ``headers``, the
    ``Content-Length`` and ``body``."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return head + f"{lines}Content-Length: {len(body)}\r\n\r\n".encode() + body
