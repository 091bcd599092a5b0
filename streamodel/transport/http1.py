"""A minimal HTTP/1.1 response reader for the lean transport's kept-alive sockets.

``http.client`` parses every answer's headers with ``email.parser``, which on DynamoDB's
small answers costs about as much client CPU as the rest of the exchange. DynamoDB sends a
status line, a few headers and a body framed by ``Content-Length``; this reads exactly that
(and chunked or close-delimited bodies, so any HTTP/1.1 server works), straight from the
socket. Anything malformed or cut short raises ``ConnectionError``: the answer is lost, which
the caller treats like a reset (its retry policy decides), and the socket must be dropped. So
does a body larger than :data:`MAX_BODY`, however it is framed: no answer makes the client
hold more memory than that.
"""

from __future__ import annotations

import socket
from typing import Any, NamedTuple

__all__ = ["MAX_BODY", "Headers", "Response", "read_response"]

# One recv takes a whole small answer; bigger bodies are read in pieces up to this size.
_RECV_SIZE = 65536
_MAX_HEAD = 65536  # status line and headers together (http.client allows this per line)
MAX_BODY = 64 << 20
"""The largest body read: DynamoDB's biggest answers (BatchGetItem, 16 MB of items) stay well
below it even as JSON."""
_MAX_CHUNK_LINE = 4096  # a chunk-size line with its extensions
# Statuses that never have a body (RFC 9112 6.3); HEAD is never sent here.
_NO_BODY = frozenset({204, 304})


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


class _Reader:
    """Buffered reads from one socket (plain or TLS: both have ``recv`` and ``recv_into``)."""

    __slots__ = ("buffer", "recv", "recv_into")

    def __init__(self, sock: socket.socket) -> None:
        self.recv = sock.recv
        self.recv_into = sock.recv_into
        self.buffer = bytearray()

    def fill(self, size: int, waiting_for: str) -> None:
        """Append at least one byte, at most ``size``; EOF here means a lost answer."""
        data = self.recv(size)
        if not data:
            raise ConnectionError(f"connection closed by the server before {waiting_for}")
        self.buffer += data

    def take(self, size: int) -> bytes:
        data = bytes(self.buffer[:size])
        del self.buffer[:size]
        return data

    def line(self, limit: int, waiting_for: str) -> bytes:
        """One CRLF-terminated line, without its CRLF."""
        start = 0
        while (end := self.buffer.find(b"\r\n", start)) < 0:
            if len(self.buffer) > limit:
                raise ConnectionError(f"malformed response: {waiting_for} longer than {limit}")
            start = max(0, len(self.buffer) - 1)
            self.fill(_RECV_SIZE, waiting_for)
        line = self.take(end)
        del self.buffer[:2]
        return line


def read_response(sock: socket.socket) -> Response:
    """Read one whole answer from ``sock``, skipping interim (1xx) ones.

    Raises ``ConnectionError`` when the answer is malformed or the server closes the
    connection before its end, and ``OSError`` (a timeout included) from the socket.
    """
    reader = _Reader(sock)
    data = sock.recv(_RECV_SIZE)
    if not data:
        raise ConnectionError("connection closed by the server before the status line")
    reader.buffer += data
    while True:
        status, headers, http10 = _read_head(reader)
        if status >= 200:
            break
        if status == 101:  # never asked for: the connection now speaks something else
            raise ConnectionError("malformed response: unexpected 101 Switching Protocols")
        # 100 Continue and other interim answers precede the real one.
    connection = headers.get("connection")
    keep_alive = not http10 and not (
        connection and "close" in (token.strip() for token in connection.lower().split(","))
    )
    body: bytes
    if status in _NO_BODY:
        body = b""
    elif "transfer-encoding" in headers:
        # Transfer-Encoding wins over Content-Length (RFC 9112 6.3).
        codings = headers["transfer-encoding"].lower().split(",")
        if codings[-1].strip() == "chunked":
            body = _read_chunked(reader)
        else:
            body = _read_to_close(reader)
            keep_alive = False
    elif "content-length" in headers:
        body = _read_length(reader, _content_length(headers["content-length"]))
    else:
        body = _read_to_close(reader)
        keep_alive = False
    if reader.buffer:
        # More than one answer to one request: the connection's framing is not to be trusted.
        keep_alive = False
    return Response(status, headers, body, keep_alive)


def _read_head(reader: _Reader) -> tuple[int, Headers, bool]:
    """Status, headers and whether the answer is HTTP/1.0, from the reader's buffer on."""
    buffer = reader.buffer
    while True:
        # Blank lines before a status line are ignored (RFC 9112 2.2).
        while buffer.startswith(b"\r\n"):
            del buffer[:2]
        end = buffer.find(b"\r\n\r\n")
        if end >= 0 or len(buffer) > _MAX_HEAD:
            break
        reader.fill(_RECV_SIZE, "the end of the headers")
    if end < 0 or end > _MAX_HEAD:
        raise ConnectionError(f"malformed response: headers longer than {_MAX_HEAD} bytes")
    head = reader.take(end).decode("iso-8859-1")
    del buffer[:4]
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
    return int(code), headers, version == "HTTP/1.0"


def _content_length(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise ConnectionError(f"malformed response: bad Content-Length {text[:100]!r}")
    return int(text)


def _read_length(reader: _Reader, length: int) -> bytes:
    buffer = reader.buffer
    have = len(buffer)
    if have >= length:  # the usual case: the whole small body came with the headers
        if have == length:
            body = bytes(buffer)
            buffer.clear()
            return body
        return reader.take(length)
    if length > MAX_BODY:
        raise ConnectionError(f"response body of {length} bytes is over the {MAX_BODY} limit")
    # Straight into a buffer of the final size: big bodies are not copied piece by piece.
    whole = bytearray(length)
    whole[:have] = buffer
    buffer.clear()
    with memoryview(whole) as view:
        while have < length:
            got = reader.recv_into(view[have:])
            if not got:
                raise ConnectionError(
                    "connection closed by the server before the end of the body "
                    f"({have} of {length} bytes read)"
                )
            have += got
    return bytes(whole)


def _read_chunked(reader: _Reader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = reader.line(_MAX_CHUNK_LINE, "the next chunk size")
        size_text = line.split(b";", 1)[0].strip()
        try:
            if not size_text or size_text.startswith((b"-", b"+", b"0x", b"0X")):
                raise ValueError
            size = int(size_text, 16)
        except ValueError:
            raise ConnectionError(f"malformed response: bad chunk size {line[:100]!r}") from None
        if size == 0:
            break
        total += size
        if total > MAX_BODY:
            raise ConnectionError(f"chunked response body is over the {MAX_BODY} bytes limit")
        parts.append(_read_length(reader, size))
        if reader.line(2, "the end of a chunk") != b"":
            raise ConnectionError("malformed response: a chunk longer than its size")
    # Trailer fields, up to the blank line that ends the message; not needed here.
    trailers = 0
    while reader.line(_MAX_HEAD, "the end of the chunked body"):
        trailers += 1
        if trailers > 100:
            raise ConnectionError("malformed response: too many trailer fields")
    return b"".join(parts)


def _read_to_close(reader: _Reader) -> bytes:
    buffer = reader.buffer
    while data := reader.recv(_RECV_SIZE):
        buffer += data
        if len(buffer) > MAX_BODY:
            raise ConnectionError(f"response body is over the {MAX_BODY} bytes limit")
    body = bytes(buffer)
    buffer.clear()
    return body
