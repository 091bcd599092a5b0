"""The asyncio lean transport against a stub HTTP server on the test's own event loop: framing,
malformed answers, the bounded pool, cancellation, dead idle connections, unknown write
outcomes, and parity with the sync LeanTransport (requests, answers, errors)."""

from __future__ import annotations

import asyncio
import gzip
import json
import select
import threading
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import boto3
import botocore.config
import botocore.credentials
import botocore.session
import pytest
from test_http_sender import WELL_FORMED, Pieces

import streamodel.transport.aio_pool as aio_pool
from streamodel.exceptions import ServerError, StreamodelError, TransportError
from streamodel.transport import (
    AsyncLeanTransport,
    AsyncRetryingTransport,
    LeanTransport,
    RetryPolicy,
)
from streamodel.transport.aio_pool import AsyncConnectionPool
from streamodel.transport.http1 import ResponseParser, read_response

T = TypeVar("T")

ITEM_BODY = b'{"Item":{"pk":{"S":"a"},"b":{"B":"AP8="}}}'
ITEM = {"Item": {"pk": {"S": "a"}, "b": {"B": b"\x00\xff"}}}
GET = {"TableName": "t1", "Key": {"pk": {"S": "a"}}}


def ok(body: bytes = b"{}", *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return b"HTTP/1.1 200 OK\r\n%sContent-Length: %d\r\n\r\n%s" % (extra, len(body), body)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run one scenario on a new event loop (a hung scenario fails after 20 s)."""

    async def bounded() -> T:
        async with asyncio.timeout(20):
            return await coroutine

    return asyncio.run(bounded())


Answer = Callable[[int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


class Stub:
    """An HTTP/1.1 server on the running loop. Each request (head and Content-Length body)
    is handed to ``answer(n, reader, writer)`` (n counts requests from 1), which writes what
    it likes and returns whether to close the connection. Counts connections, requests,
    requests being answered at once, and connections the client closed."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests = 0
        self.active = 0
        self.max_active = 0
        self.heads: list[bytes] = []
        self.bodies: list[bytes] = []
        self.changed = asyncio.Condition()
        self.closed_by_client = 0
        self.url = ""
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> Stub:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/"
        return self

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        async with self.changed:
            await self.changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    self.closed_by_client += 1
                    return
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.heads.append(head)
                self.bodies.append(body)
                self.requests += 1
                self.active += 1
                self.max_active = max(self.max_active, self.active)
                await self._notify()
                try:
                    close = await self.answer(self.requests, reader, writer)
                    await writer.drain()
                finally:
                    self.active -= 1
                    await self._notify()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed_by_client += 1
        finally:
            writer.close()
            self._writers.discard(writer)
            await self._notify()

    async def close(self) -> None:
        """Stop listening, drop every connection, and wait for the handlers to end."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for handler in list(self._handlers):
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)


def answering(*payloads: bytes, close: bool = False) -> Answer:
    """Answer request n with ``payloads[(n - 1) % len]``, then close if ``close``."""

    async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(payloads[(n - 1) % len(payloads)])
        return close

    return answer


_SESSION = boto3.Session(
    aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret", region_name="eu-west-1"
)


def session() -> boto3.Session:
    """One session for the module: clients made from it share its loaded service models."""
    return _SESSION


def transport_for(url: str, **config: Any) -> AsyncLeanTransport:
    """An AsyncLeanTransport whose client (made as a user makes one) points at ``url``."""
    client = session().client("dynamodb", endpoint_url=url, config=botocore.config.Config(**config))
    return AsyncLeanTransport(dynamodb=client)


def pool_of(transport: AsyncLeanTransport) -> AsyncConnectionPool:
    pool = transport._routes["dynamodb"].send  # type: ignore[union-attr]
    assert isinstance(pool, AsyncConnectionPool)
    return pool


# -- framing --------------------------------------------------------------------------------


FRAMINGS = {
    "content-length": (ok(ITEM_BODY), False),
    "chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(
            b"%x\r\n%s\r\n" % (len(ITEM_BODY[i : i + 7]), ITEM_BODY[i : i + 7])
            for i in range(0, len(ITEM_BODY), 7)
        )
        + b"0\r\nX-Trailer: 1\r\n\r\n",
        False,
    ),
    "close-delimited": (b"HTTP/1.1 200 OK\r\n\r\n" + ITEM_BODY, True),
    "gzip": (ok(gzip.compress(ITEM_BODY), b"Content-Encoding: gzip"), False),
    "crc32": (ok(ITEM_BODY, b"x-amz-crc32: %d" % zlib.crc32(ITEM_BODY)), False),
}


@pytest.mark.parametrize("framing", sorted(FRAMINGS))
def test_framings_give_botocores_answer_and_keep_the_connection(framing: str) -> None:
    """Content-Length, chunked, close-delimited and gzip answers read the same item as the
    sync transport; kept-alive framings reuse one connection, a close-delimited one cannot."""
    payload, closes = FRAMINGS[framing]

    async def scenario() -> tuple[list[dict[str, Any]], Stub, int]:
        stub = await Stub(answering(payload, close=closes)).start()
        transport = transport_for(stub.url)
        results = [await transport.call("dynamodb", "GetItem", GET) for _ in range(3)]
        opened = transport.connections_opened
        await transport.aclose()
        await stub.close()
        return results, stub, opened

    results, stub, opened = run(scenario())
    assert results == [ITEM] * 3
    assert stub.connections == opened == (3 if closes else 1)


def test_answers_split_anywhere_read_as_the_socket_reader_reads_them() -> None:
    """The parser the asyncio protocol feeds gives, for every split of every well-formed
    answer, what the sync socket reader gives for it whole."""
    for raw, _ in WELL_FORMED:
        whole = read_response(Pieces([raw]))  # type: ignore[arg-type]
        for cut in range(1, len(raw)):
            parser = ResponseParser()
            assert parser.feed(raw[:cut]) is None
            response = parser.feed(raw[cut:])
            if response is None:  # a close-delimited body ends at EOF
                response = parser.eof()
            assert response == whole, (raw, cut)


MALFORMED = [
    (b"HTTP/1.1 OK\r\n\r\n", "bad status line"),
    (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 2x\r\n\r\n{}", "bad Content-Length"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
    (b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"Item":', r"\(8 of 100 bytes read\)"),
    (b"", "before the status line"),
    (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
]


@pytest.mark.parametrize(("answer", "words"), MALFORMED)
def test_malformed_answers_are_lost_answers_and_drop_the_connection(
    answer: bytes, words: str
) -> None:
    """A malformed or cut-off answer is a ConnectionError at the pool and a retryable
    ServerError at the transport (as on the sync path); the connection is not kept and the
    pool's place is freed."""

    async def scenario() -> None:
        stub = await Stub(answering(answer, close=True)).start()
        pool = AsyncConnectionPool(max_connections=1)
        with pytest.raises(ConnectionError, match=words):
            await pool(stub.url, b"{}", {})
        assert (pool.idle(stub.url), pool.in_use) == (0, 0)
        transport = transport_for(stub.url)
        with pytest.raises(ServerError, match=words) as caught:
            await transport.call("dynamodb", "GetItem", GET)
        assert caught.value.code == "Connection"
        assert pool_of(transport).idle(stub.url) == 0
        await transport.aclose()
        await stub.close()

    run(scenario())


def test_bytes_beyond_the_answer_drop_the_connection() -> None:
    """Extra bytes after an answer mean unreliable framing: the connection is not reused."""

    async def scenario() -> Stub:
        stub = await Stub(answering(ok() + b"junk")).start()
        pool = AsyncConnectionPool()
        for _ in range(2):
            assert (await pool(stub.url, b"{}", {}))[2] == b"{}"
        await stub.close()
        return stub

    assert run(scenario()).connections == 2


def test_request_goes_out_as_the_sync_pool_sends_it() -> None:
    """Request line, Host, headers, Content-Length and body in one request, as the sync
    pool writes them."""

    async def scenario() -> Stub:
        stub = await Stub(answering(ok())).start()
        await AsyncConnectionPool()(stub.url, b'{"a":1}', {"X-Amz-Target": "T", "X-A": "1"})
        await stub.close()
        return stub

    stub = run(scenario())
    port = stub.url.rsplit(":", 1)[1].rstrip("/")
    assert stub.heads == [
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1:%s\r\nX-Amz-Target: T\r\nX-A: 1\r\n"
        b"Content-Length: 7\r\n\r\n" % port.encode()
    ]
    assert stub.bodies == [b'{"a":1}']


# -- the bounded pool -----------------------------------------------------------------------


def test_pool_bound_is_honoured_at_the_server() -> None:
    """20 requests at once with max_pool_connections=4: the server never has more than 4 at
    once, 16 wait in the pool, all complete on 4 connections, which stay kept."""

    async def scenario() -> None:
        gate = asyncio.Event()

        async def held(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            await gate.wait()
            writer.write(ok(ITEM_BODY))
            return False

        stub = await Stub(held).start()
        transport = transport_for(stub.url, max_pool_connections=4)
        calls = [asyncio.create_task(transport.call("dynamodb", "GetItem", GET)) for _ in range(20)]
        await stub.wait_for(lambda: stub.active == 4)
        pool = pool_of(transport)
        assert (pool.in_use, pool.waiting) == (4, 16)
        gate.set()
        assert await asyncio.gather(*calls) == [ITEM] * 20
        assert stub.requests == 20
        assert stub.max_active == 4
        assert stub.connections == pool.opened == 4
        assert (pool.idle(stub.url), pool.in_use, pool.waiting) == (4, 0, 0)
        await transport.aclose()
        await stub.wait_for(lambda: stub.closed_by_client == 4)
        await stub.close()

    run(scenario())


def test_a_request_cancelled_while_waiting_gives_up_its_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request cancelled while it waits for a place leaves the line; the place still goes
    to the next request when the busy one ends."""

    async def scenario() -> None:
        gate = asyncio.Event()
        lined_up = asyncio.Semaphore(0)
        wait_for_place = AsyncConnectionPool._wait_for_place

        async def line_up(self: AsyncConnectionPool, loop: Any) -> None:
            lined_up.release()  # in line by the time the test runs again
            await wait_for_place(self, loop)

        monkeypatch.setattr(AsyncConnectionPool, "_wait_for_place", line_up)

        async def held(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            if n == 1:
                await gate.wait()
            writer.write(ok())
            return False

        stub = await Stub(held).start()
        pool = AsyncConnectionPool(max_connections=1)
        first = asyncio.create_task(pool(stub.url, b"{}", {}))
        await stub.wait_for(lambda: stub.active == 1)
        waiting = asyncio.create_task(pool(stub.url, b"{}", {}))
        third = asyncio.create_task(pool(stub.url, b"{}", {}))
        for _ in range(2):
            await lined_up.acquire()
        assert pool.waiting == 2
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert pool.waiting == 1
        gate.set()
        assert (await first)[0] == (await third)[0] == 200
        assert (pool.in_use, pool.waiting, stub.requests, stub.connections) == (0, 0, 2, 1)
        await stub.close()

    run(scenario())


# -- cancellation and timeouts mid-exchange -------------------------------------------------


def _half_answer_stub(half_sent: asyncio.Event) -> Answer:
    """The first request gets half an answer and then nothing; later ones a whole one."""

    async def answer(n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        if n == 1:
            writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"Item":')
            await writer.drain()
            half_sent.set()
            await reader.read()  # until the client drops the connection
            raise ConnectionResetError
        writer.write(ok(ITEM_BODY))
        return False

    return answer


def _reading(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """An event set once a connection has been handed bytes of an answer."""
    started = asyncio.Event()
    received = aio_pool._Connection.data_received

    def data_received(self: Any, data: bytes) -> None:
        received(self, data)
        started.set()

    monkeypatch.setattr(aio_pool._Connection, "data_received", data_received)
    return started


@pytest.mark.parametrize("how", ["task.cancel", "asyncio.timeout"])
def test_cancelled_mid_answer_closes_the_connection_and_frees_its_place(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request cancelled (or timed out by the caller) in the middle of reading its answer
    closes that connection, which the server sees; the pool keeps nothing half-read and has
    its place back, and the next request reads its own answer on a new connection."""

    async def scenario() -> None:
        reading = _reading(monkeypatch)
        stub = await Stub(_half_answer_stub(asyncio.Event())).start()
        transport = transport_for(stub.url, max_pool_connections=1)
        deadlines: list[asyncio.Timeout] = []

        async def call() -> dict[str, Any]:
            if how == "task.cancel":
                return await transport.call("dynamodb", "GetItem", GET)
            async with asyncio.timeout(None) as deadline:
                deadlines.append(deadline)
                return await transport.call("dynamodb", "GetItem", GET)

        task = asyncio.create_task(call())
        await reading.wait()
        if how == "task.cancel":
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            deadlines[0].reschedule(asyncio.get_running_loop().time())
            with pytest.raises(TimeoutError):
                await task
        pool = pool_of(transport)
        assert (pool.idle(stub.url), pool.in_use, pool.waiting) == (0, 0, 0)
        await stub.wait_for(lambda: stub.closed_by_client == 1)
        assert await transport.call("dynamodb", "GetItem", GET) == ITEM
        assert stub.connections == pool.opened == 2
        await transport.aclose()
        await stub.close()

    run(scenario())


def test_read_timeout_is_a_lost_answer() -> None:
    """No byte within the client's read_timeout: a ServerError (retryable for reads), the
    connection dropped and the place freed."""

    async def scenario() -> None:
        async def silent(
            n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
        ) -> bool:
            await reader.read()  # until the client drops the connection
            raise ConnectionResetError

        stub = await Stub(silent).start()
        transport = transport_for(stub.url, read_timeout=0.2, max_pool_connections=1)
        with pytest.raises(ServerError, match="read timeout") as caught:
            await transport.call("dynamodb", "GetItem", GET)
        assert caught.value.code == "Connection"
        pool = pool_of(transport)
        assert (pool.idle(stub.url), pool.in_use) == (0, 0)
        await stub.wait_for(lambda: stub.closed_by_client == 1)
        await stub.close()

    run(scenario())


# -- idle connections -----------------------------------------------------------------------


@pytest.mark.parametrize("noticed", ["by the loop", "not yet"])
def test_connection_closed_by_the_server_while_idle_is_replaced(
    noticed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kept connection the server closed while idle is replaced before reuse, whether the
    loop has processed the close already or the FIN is still unread in the socket."""

    async def scenario() -> None:
        lost = asyncio.Event()
        connection_lost = aio_pool._Connection.connection_lost

        def on_lost(self: Any, exc: Exception | None) -> None:
            connection_lost(self, exc)
            lost.set()

        monkeypatch.setattr(aio_pool._Connection, "connection_lost", on_lost)
        # The server closes after each answer without saying so.
        stub = await Stub(answering(ok(ITEM_BODY), close=True)).start()
        transport = transport_for(stub.url)
        assert await transport.call("dynamodb", "GetItem", GET) == ITEM
        pool = pool_of(transport)
        (idle,) = pool._idle[stub.url]
        if noticed == "by the loop":
            await lost.wait()
            assert not idle.usable
        else:
            # Block the loop until the FIN has arrived: the loop cannot have seen it.
            assert idle.transport is not None
            poller = select.poll()
            poller.register(idle.transport.get_extra_info("socket").fileno(), select.POLLIN)
            assert poller.poll(10_000)
            assert idle.usable
        assert await transport.call("dynamodb", "GetItem", GET) == ITEM
        assert stub.connections == pool.opened == 2
        await transport.aclose()
        await stub.close()

    run(scenario())


# -- what a lost connection means -----------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "params", "requests"),
    [("PutItem", {"TableName": "t1", "Item": {"pk": {"S": "a"}}}, 1), ("GetItem", GET, 3)],
)
def test_a_connection_lost_after_sending_is_an_unknown_outcome(
    operation: str, params: dict[str, Any], requests: int
) -> None:
    """The server reads the request and drops the connection: a ServerError, as on the sync
    path; the retry policy repeats a read but not a write whose outcome is unknown."""

    async def scenario() -> tuple[ServerError, Stub]:
        stub = await Stub(answering(b"", close=True)).start()
        retrying = AsyncRetryingTransport(
            transport_for(stub.url), RetryPolicy(attempts=3, base=0.0001, max_wait=0.001)
        )
        with pytest.raises(ServerError) as caught:
            await retrying.call("dynamodb", operation, params)
        await retrying.aclose()
        await stub.close()
        return caught.value, stub

    error, stub = run(scenario())
    assert error.code == "Connection"
    assert "closed by the server before the status line" in str(error)
    assert stub.requests == requests


# -- parity with the sync transport ---------------------------------------------------------


class Recorder:
    """A sync or async sender that records what it is given and answers one JSON body."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        self.sent.append((url, body, dict(headers)))
        return 200, {"x-amz-crc32": str(zlib.crc32(self.body))}, self.body

    async def send(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        return self(url, body, headers)


def test_requests_answers_and_errors_equal_the_sync_transports(
    signing_clock: Callable[[Callable[[], Any]], None],
) -> None:
    """The same call sends byte-identical signed requests through both lean transports and
    gives equal answers; an error answer raises the same error."""
    import datetime

    moment = datetime.datetime(2024, 5, 1, 12, 0, 0)
    signing_clock(lambda: moment)
    params = {
        "TableName": "t1",
        "Item": {"pk": {"S": "é"}, "b": {"B": b"\x00\xff"}},
        "ClientRequestToken": "fixed",
    }
    sync_sender, async_sender = Recorder(ITEM_BODY), Recorder(ITEM_BODY)
    sync = LeanTransport(
        session(), endpoint_url="https://dynamodb.example.test", sender=sync_sender
    )
    aio = AsyncLeanTransport(
        session(), endpoint_url="https://dynamodb.example.test", sender=async_sender.send
    )
    for operation in ("GetItem", "PutItem"):
        expected = sync.call("dynamodb", operation, params)
        assert run(aio.call("dynamodb", operation, params)) == expected
    assert expected == {"Item": {"pk": {"S": "a"}, "b": {"B": "AP8="}}}  # not PutItem's shape
    assert async_sender.sent == sync_sender.sent
    refusal = json.dumps(
        {
            "__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException",
            "message": "no",
            "Item": {"pk": {"S": "a"}},
        }
    ).encode()

    async def refused(url: str, body: bytes, headers: dict[str, str]) -> Any:
        return 400, {}, refusal

    aio._routes["dynamodb"].send = refused  # type: ignore[union-attr]
    sync._routes["dynamodb"].send = lambda *a: (400, {}, refusal)  # type: ignore[union-attr]
    errors = []
    for call in (
        lambda: sync.call("dynamodb", "PutItem", params),
        lambda: run(aio.call("dynamodb", "PutItem", params)),
    ):
        with pytest.raises(StreamodelError) as caught:
            call()
        errors.append(caught.value)
    assert type(errors[0]) is type(errors[1])
    assert str(errors[0]) == str(errors[1])
    assert errors[0].item == errors[1].item == {"pk": {"S": "a"}}  # type: ignore[attr-defined]


def test_on_request_reports_each_exchange() -> None:
    """on_request sees operation, table, duration and consumed capacity, failures too."""
    seen: list[tuple[Any, ...]] = []
    answers = [json.dumps({"ConsumedCapacity": {"TableName": "t1"}}).encode()]

    async def send(url: str, body: bytes, headers: dict[str, str]) -> Any:
        if not answers:
            raise ConnectionResetError("reset")
        return 200, {}, answers.pop()

    transport = AsyncLeanTransport(
        session(), endpoint_url="https://x.test", sender=send, on_request=lambda *a: seen.append(a)
    )
    run(transport.call("dynamodb", "GetItem", GET))
    with pytest.raises(ServerError):
        run(transport.call("dynamodb", "GetItem", GET))
    assert [(s[0], s[1], s[3]) for s in seen] == [
        ("GetItem", "t1", {"TableName": "t1"}),
        ("GetItem", "t1", None),
    ]
    assert all(s[2] >= 0 for s in seen)


# -- what must not block the loop -----------------------------------------------------------


def test_credentials_due_for_refresh_are_refreshed_off_the_loop() -> None:
    """Refreshing credentials (STS, instance metadata: blocking calls) happens in a worker
    thread, never on the event loop's; each request is signed with the refreshed keys."""
    import datetime

    refreshed_on: list[int] = []
    numbers = iter(range(1, 100))

    def refresh() -> dict[str, Any]:
        refreshed_on.append(threading.get_ident())
        expiry = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
        return {
            "access_key": f"ASIAREFRESH{next(numbers):04d}",
            "secret_key": "s",
            "token": "t",
            "expiry_time": expiry.isoformat(),
        }

    credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
        metadata=refresh(), refresh_using=refresh, method="test"
    )
    core = botocore.session.Session()
    core._credentials = credentials  # what a resolved credential chain leaves there
    recorder = Recorder(b"{}")
    transport = AsyncLeanTransport(
        boto3.Session(botocore_session=core, region_name="eu-west-1"),
        endpoint_url="https://x.test",
        sender=recorder.send,
    )
    loop_threads: list[int] = []

    async def calls() -> None:
        loop_threads.append(threading.get_ident())
        for _ in range(3):
            await transport.call("dynamodb", "GetItem", GET)

    run(calls())
    assert len(refreshed_on) == 4  # at creation, then before each request (always due)
    assert loop_threads[0] not in refreshed_on[1:]
    keys = [h["Authorization"].split("Credential=")[1].split("/")[0] for _, _, h in recorder.sent]
    assert keys == ["ASIAREFRESH0002", "ASIAREFRESH0003", "ASIAREFRESH0004"]


def test_control_plane_goes_through_botocore_in_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """Operations outside the lean path (DescribeTable, ...) are botocore's, run in a worker
    thread; lean ones never are."""
    transport = AsyncLeanTransport(
        session(), endpoint_url="https://x.test", sender=Recorder(b"{}").send
    )
    threads: list[tuple[str, int]] = []

    def call(service: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        threads.append((operation, threading.get_ident()))
        return {"Table": {}}

    monkeypatch.setattr(transport.botocore, "call", call)

    async def calls() -> int:
        assert await transport.call("dynamodb", "DescribeTable", {"TableName": "t1"}) == {
            "Table": {}
        }
        await transport.call("dynamodb", "GetItem", GET)
        return threading.get_ident()

    loop_thread = run(calls())
    assert [operation for operation, _ in threads] == ["DescribeTable"]
    assert threads[0][1] != loop_thread


def test_a_transport_outlives_its_event_loop() -> None:
    """One asyncio.run after another may share a transport (new connections on the new
    loop); two live loops at once may not."""

    async def scenario(stub_payload: bytes) -> tuple[int, int]:
        stub = await Stub(answering(stub_payload)).start()
        pool = AsyncConnectionPool()
        await pool(stub.url, b"{}", {})
        first = stub.connections
        await stub.close()
        return first, pool.opened

    assert run(scenario(ok())) == (1, 1)
    pool = AsyncConnectionPool()

    async def use(url: str) -> Any:
        return await pool(url, b"{}", {})

    async def both() -> None:
        stub = await Stub(answering(ok())).start()
        await use(stub.url)
        with pytest.raises(RuntimeError, match="another event loop"):
            await asyncio.to_thread(asyncio.run, use(stub.url))
        await pool.aclose()
        await stub.close()

    run(both())

    async def again() -> int:
        stub = await Stub(answering(ok())).start()
        await use(stub.url)
        await pool.aclose()
        await stub.close()
        return stub.connections

    assert run(again()) == 1  # the old loop's connection was not reused


# -- proxies (a stub in the proxy's place; the real CONNECT proxy is in the integration tests)


def proxied(endpoint: str, proxy: str, **proxies_config: Any) -> AsyncLeanTransport:
    config = botocore.config.Config(
        proxies={endpoint.split(":", 1)[0]: proxy}, proxies_config=proxies_config or None
    )
    client = session().client("dynamodb", endpoint_url=endpoint, config=config)
    return AsyncLeanTransport(dynamodb=client)


def test_http_endpoint_through_a_proxy_is_forwarded_with_its_credentials() -> None:
    """An http endpoint behind a proxy: the proxy is sent the absolute URL with the Host the
    request was signed for and Basic credentials from the proxy URL, on a kept connection."""

    async def scenario() -> Stub:
        stub = await Stub(answering(ok(ITEM_BODY))).start()
        proxy = stub.url.replace("http://", "http://user:p%40ss@").rstrip("/")
        transport = proxied("http://dynamodb.example.test:8000", proxy)
        for _ in range(2):
            assert await transport.call("dynamodb", "GetItem", GET) == ITEM
        await transport.aclose()
        await stub.close()
        return stub

    stub = run(scenario())
    assert stub.connections == 1
    lines = stub.heads[0].split(b"\r\n")
    assert lines[0] == b"POST http://dynamodb.example.test:8000/ HTTP/1.1"
    assert b"Host: dynamodb.example.test:8000" in lines
    assert b"Proxy-Authorization: Basic dXNlcjpwQHNz" in lines  # user:p@ss


def test_https_proxy_with_forwarding_speaks_tls_to_the_proxy(tmp_path: Any) -> None:
    """An https:// proxy is reached over TLS checked against proxy_ca_bundle; with
    proxy_use_forwarding_for_https it is sent https requests in absolute form."""
    import ssl

    import trustme

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.cert_pem.write_to_path(str(tmp_path / "proxy-ca.pem"))

    async def scenario() -> Stub:
        stub = Stub(answering(ok(ITEM_BODY)))
        stub._server = await asyncio.start_server(stub._handle, "127.0.0.1", 0, ssl=server_context)
        port = stub._server.sockets[0].getsockname()[1]
        transport = proxied(
            "https://dynamodb.example.test",
            f"https://user:pw@127.0.0.1:{port}",
            proxy_ca_bundle=str(tmp_path / "proxy-ca.pem"),
            proxy_use_forwarding_for_https=True,
        )
        assert await transport.call("dynamodb", "GetItem", GET) == ITEM
        await transport.aclose()
        await stub.close()
        return stub

    stub = run(scenario())
    lines = stub.heads[0].split(b"\r\n")
    assert lines[0] == b"POST https://dynamodb.example.test/ HTTP/1.1"
    assert b"Proxy-Authorization: Basic dXNlcjpwdw==" in lines


def _refusal(status: int) -> bytes:
    return b"HTTP/1.1 %d No\r\nContent-Length: 0\r\nConnection: close\r\n\r\n" % status


@pytest.mark.parametrize(
    ("answer", "error", "code", "requests"),
    [
        (_refusal(407), TransportError, "ProxyAuthenticationRequired", 1),
        (_refusal(502), ServerError, "Connection", 8),  # a read is retried
        (b"HTTP/1.1 200 Connection established\r\n\r\njunk", ServerError, "Connection", 8),
    ],
    ids=["407", "502", "bytes-before-tls"],
)
def test_a_refused_tunnel(answer: bytes, error: type[Exception], code: str, requests: int) -> None:
    """A CONNECT answered 407 fails at once (credentials); another refusal, or a proxy that
    sends bytes before the tunnel's TLS began, is a lost connection. The tunnel asked for
    names the endpoint and carries the proxy's credentials."""

    async def scenario() -> tuple[Exception, Stub]:
        stub = await Stub(answering(answer, close=True)).start()
        transport = proxied("https://dynamodb.example.test", stub.url.replace("//", "//u:p@"))
        retrying = AsyncRetryingTransport(transport, RetryPolicy(base=0.0001, max_wait=0.001))
        with pytest.raises(error) as caught:
            await retrying.call("dynamodb", "GetItem", GET)
        await stub.close()
        return caught.value, stub

    raised, stub = run(scenario())
    assert getattr(raised, "code", None) == code
    assert stub.heads[0].split(b"\r\n")[:2] == [
        b"CONNECT dynamodb.example.test:443 HTTP/1.1",
        b"Host: dynamodb.example.test:443",
    ]
    assert b"Proxy-Authorization: Basic dTpw" in stub.heads[0]
    assert stub.requests == requests
    if answer.endswith(b"junk"):
        assert "bytes after the proxy's CONNECT answer" in str(raised)


# -- moto -------------------------------------------------------------------------------


def test_under_mock_aws_nothing_goes_on_the_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under moto's mock_aws, every request goes the botocore way (in a thread) and into the
    mock: no socket is ever connected, and the lean pool is never used."""
    import socket

    from moto import mock_aws

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a socket connection was attempted under mock_aws: {args[1:]!r}")

    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    table = {
        "TableName": "moto",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }
    item = {"pk": {"S": "a"}, "b": {"B": b"\x00\xff"}}
    with mock_aws():
        lean = AsyncLeanTransport()
        transport = AsyncRetryingTransport(lean)

        async def scenario() -> list[dict[str, Any]]:
            await transport.call("dynamodb", "CreateTable", table)
            await transport.call("dynamodb", "PutItem", {"TableName": "moto", "Item": item})
            await transport.call(
                "dynamodb",
                "TransactWriteItems",
                {"TransactItems": [{"Put": {"TableName": "moto", "Item": {"pk": {"S": "b"}}}}]},
            )
            return [
                await transport.call(
                    "dynamodb", "GetItem", {"TableName": "moto", "Key": {"pk": {"S": "a"}}}
                ),
                await transport.call("dynamodb", "Scan", {"TableName": "moto"}),
            ]

        got, scanned = run(scenario())
    assert got == {"Item": item}
    assert scanned["Count"] == 2
    assert lean.connections_opened == 0
