"""``AsyncEngine`` against aioboto3, aiodynamo and the sync ``Engine`` on threads (issue #15).

Three parts, on run.py's 11-attribute ``Account`` model, in one run:

* **Loads against DynamoDB Local** (started here), from one process and one event loop, at
  1, 16, 64 and 256 requests in flight (``--levels``): ``GetItem``, a versioned save (a
  conditional ``UpdateItem`` of one changed column and the version) and a ``Query`` of one
  10-item partition, each by four clients given a pool as wide as the requests in flight:

  - ``AsyncEngine`` (``engine.load``, ``engine.save``, ``engine.query(...).all()``);
  - aioboto3's raw client (``get_item``/``update_item``/``query`` with hand-written items,
    decoded with run.py's ``hand_load``, as run.py's raw boto3 rows);
  - aiodynamo (its ``Table`` on aiohttp; items as it returns them, made into run.py's
    plain dataclass);
  - the sync ``Engine`` (lean transport) on a ``ThreadPoolExecutor`` of the same width, each
    call awaited through ``loop.run_in_executor``, as an asyncio program would use it.

  Every in-flight worker has an item of its own, so versioned saves never conflict. Each
  client takes ``--requests`` requests (at least 8 per worker) per turn; the clients take
  turns in a rotating order, ``--rounds`` times. Throughput is the median of the turns (with
  their range), latency p50/p99 is over every request of every turn, client CPU per request
  is this process's CPU time (``time.process_time``: the event loop and every thread) over
  the requests. DynamoDB Local runs on the same two cores.

* **Client CPU against an instant stub** (``--stub-n`` requests per turn, best of
  ``--stub-rounds`` turns, 64 in flight): a server in another process answering every request
  at once with canned DynamoDB JSON (the item for ``GetItem``, ``{}`` for ``UpdateItem``, ten
  items for ``Query``), so what is measured is the client alone, as in ``client_cpu.py``
  (garbage collector paused in the timed turns). Issue #15's targets: ``AsyncEngine`` at
  most half of aioboto3's CPU per request, and no more than aiodynamo's. ``--profile``
  prints cProfile's hot spots of ``AsyncEngine`` there; the report groups its time by area.

* **Scale** (``--scale``, default 1,000 and 10,000): that many tasks created at once, each
  saving a new object through one ``AsyncEngine`` (its default pool: botocore's
  ``max_pool_connections``, 10), each size twice, each time in a child process of its own:
  under ``tracemalloc`` (its peak during the run, what is still traced after it) and without
  it (time, and the growth of the resident high-water mark ``VmHWM``); errors and the
  connections opened; beside the same number of bare tasks (``asyncio.sleep``) as the floor
  of what any task costs.

Usage: ``python tests/benchmarks/aio_bench.py [--levels 1 16 64 256] [--requests 1500]
[--rounds 3] [--profile] [--write docs/performance.md]``; ``run.py`` (``make bench``) runs it
after its own rows (``--no-aio`` there skips it). About five minutes on two cores.
aioboto3, aiodynamo and aiohttp come with ``pip install -e '.[bench]'``; a missing one is
left out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime
import decimal
import gc
import io
import json
import os
import platform
import pstats
import socket
import socketserver
import statistics
import subprocess
import sys
import time
import tracemalloc
import zlib
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import boto3  # noqa: E402
import botocore.config  # noqa: E402
import run  # noqa: E402  (sets the AWS environment up; the model and its item shapes)
from run import Account, Plain, hand_dump, hand_load, sample_values  # noqa: E402

from streamodel import Engine  # noqa: E402
from streamodel._diff import load_new  # noqa: E402
from streamodel.aio import AsyncEngine  # noqa: E402
from streamodel.testing.local import DynamoDBLocal  # noqa: E402

TEMPLATE = "aio-{table_name}"
TABLE = TEMPLATE.format(table_name="Account")
OPS = ("GetItem", "versioned save", "Query")
QUERY_ITEMS = 10
MAX_LEVEL = 256
STUB_LEVEL = 64
MARKER = "<!-- aio benchmark -->"
CLIENT_NAMES = ("AsyncEngine", "aioboto3", "aiodynamo", "sync Engine, threads")


def item_id(w: int) -> str:
    return f"id-{w:08d}"


def key_of(tenant: str, w: int) -> dict[str, Any]:
    return {"tenant": {"S": tenant}, "id": {"S": item_id(w)}}


def botocore_config(width: int) -> botocore.config.Config:
    return botocore.config.Config(max_pool_connections=width)


def boto3_client(endpoint: str, width: int) -> Any:
    return boto3.session.Session().client(
        "dynamodb", endpoint_url=endpoint, config=botocore_config(width)
    )


def aiodynamo_load(item: dict[str, Any]) -> Plain:
    """aiodynamo's item (Python values, numbers as Decimal) as run.py's plain dataclass."""
    return Plain(
        tenant=item["tenant"],
        id=item["id"],
        name=item["name"],
        age=int(item["age"]),
        balance=item["balance"],
        active=item["active"],
        created=datetime.datetime.fromisoformat(item["created"]),
        tags=set(item["tags"]),
        address=dict(item["address"]),
        scores=list(item["scores"]),
        version=int(item["version"]),
    )


# -- the clients ------------------------------------------------------------------------------


class Contender:
    """One client: its items (one per in-flight worker) and a query partition of its own.
    ``open`` makes the client for a width (its pool as wide as the requests in flight)."""

    name = ""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.query_tenant = tenant + "-q"
        self.plains = [Plain(**sample_values(tenant, w)) for w in range(MAX_LEVEL)]

    async def open(self, endpoint: str, width: int) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def get(self, w: int, i: int) -> Any:
        raise NotImplementedError

    async def save(self, w: int, i: int) -> Any:
        raise NotImplementedError

    async def query(self, w: int, i: int) -> Any:
        raise NotImplementedError

    def op(self, name: str) -> Callable[[int, int], Awaitable[Any]]:
        return {"GetItem": self.get, "versioned save": self.save, "Query": self.query}[name]


class AsyncEngineContender(Contender):
    name = "AsyncEngine"

    def __init__(self, tenant: str) -> None:
        super().__init__(tenant)
        self.objs: list[Any] = [load_new(Account, hand_dump(p)) for p in self.plains]

    async def open(self, endpoint: str, width: int) -> None:
        self.engine = AsyncEngine(
            dynamodb=boto3_client(endpoint, width), table_name_template=TEMPLATE
        )

    async def close(self) -> None:
        await self.engine.close()

    async def get(self, w: int, i: int) -> Any:
        obj = Account(tenant=self.tenant, id=item_id(w))
        await self.engine.load(obj)
        return obj

    async def save(self, w: int, i: int) -> Any:
        obj = self.objs[w]
        obj.name = f"name {i}"
        await self.engine.save(obj)

    async def query(self, w: int, i: int) -> Any:
        found = await self.engine.query(Account).key(Account.tenant == self.query_tenant).all()
        assert len(found) == QUERY_ITEMS, len(found)
        return found


class SyncEngineContender(Contender):
    """The sync Engine (lean transport) on a ThreadPoolExecutor as wide as the requests in
    flight, each call awaited through ``run_in_executor``."""

    name = "sync Engine, threads"

    def __init__(self, tenant: str) -> None:
        super().__init__(tenant)
        self.objs: list[Any] = [load_new(Account, hand_dump(p)) for p in self.plains]

    async def open(self, endpoint: str, width: int) -> None:
        self.engine = Engine(
            dynamodb=boto3_client(endpoint, width),
            table_name_template=TEMPLATE,
            transport="lean",
        )
        self.pool = ThreadPoolExecutor(max_workers=width)
        self.loop = asyncio.get_running_loop()

    async def close(self) -> None:
        self.pool.shutdown()
        self.engine.close()

    def _get(self, w: int) -> Any:
        obj = Account(tenant=self.tenant, id=item_id(w))
        self.engine.load(obj)
        return obj

    def _save(self, w: int, i: int) -> None:
        obj = self.objs[w]
        obj.name = f"name {i}"
        self.engine.save(obj)

    def _query(self) -> Any:
        found = self.engine.query(Account).key(Account.tenant == self.query_tenant).all()
        assert len(found) == QUERY_ITEMS, len(found)
        return found

    async def get(self, w: int, i: int) -> Any:
        return await self.loop.run_in_executor(self.pool, self._get, w)

    async def save(self, w: int, i: int) -> Any:
        return await self.loop.run_in_executor(self.pool, self._save, w, i)

    async def query(self, w: int, i: int) -> Any:
        return await self.loop.run_in_executor(self.pool, self._query)


class Aioboto3Contender(Contender):
    """aioboto3's raw client, with run.py's hand-written requests and items."""

    name = "aioboto3"

    def __init__(self, tenant: str) -> None:
        super().__init__(tenant)
        self.keys = [key_of(tenant, w) for w in range(MAX_LEVEL)]

    async def open(self, endpoint: str, width: int) -> None:
        import aioboto3
        from aiobotocore.config import AioConfig

        self.session = aioboto3.Session()
        self.context = self.session.client(
            "dynamodb", endpoint_url=endpoint, config=AioConfig(max_pool_connections=width)
        )
        self.client = await self.context.__aenter__()

    async def close(self) -> None:
        await self.context.__aexit__(None, None, None)

    async def get(self, w: int, i: int) -> Any:
        response = await self.client.get_item(TableName=TABLE, Key=self.keys[w])
        return hand_load(response["Item"])

    async def save(self, w: int, i: int) -> Any:
        o = self.plains[w]
        await self.client.update_item(
            TableName=TABLE,
            Key=self.keys[w],
            UpdateExpression="SET #n = :n, #v = :new",
            ConditionExpression="#v = :old",
            ExpressionAttributeNames={"#n": "name", "#v": "version"},
            ExpressionAttributeValues={
                ":n": {"S": f"name {i}"},
                ":new": {"N": str(o.version + 1)},
                ":old": {"N": str(o.version)},
            },
        )
        o.version += 1

    async def query(self, w: int, i: int) -> Any:
        params: dict[str, Any] = {
            "TableName": TABLE,
            "KeyConditionExpression": "tenant = :t",
            "ExpressionAttributeValues": {":t": {"S": self.query_tenant}},
        }
        found: list[Plain] = []
        while True:
            response = await self.client.query(**params)
            found.extend(hand_load(item) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                break
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        assert len(found) == QUERY_ITEMS, len(found)
        return found


class AiodynamoContender(Contender):
    """aiodynamo's ``Table`` on an aiohttp session (numbers as ``Decimal``)."""

    name = "aiodynamo"

    async def open(self, endpoint: str, width: int) -> None:
        import aiohttp
        from aiodynamo.client import Client
        from aiodynamo.credentials import Key, StaticCredentials
        from aiodynamo.http.aiohttp import AIOHTTP
        from yarl import URL

        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=width))
        client = Client(
            AIOHTTP(self.session),
            StaticCredentials(
                Key(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
            ),
            os.environ["AWS_DEFAULT_REGION"],
            endpoint=URL(endpoint),
            numeric_type=decimal.Decimal,
        )
        self.table = client.table(TABLE)

    async def close(self) -> None:
        await self.session.close()

    async def get(self, w: int, i: int) -> Any:
        item = await self.table.get_item({"tenant": self.tenant, "id": item_id(w)})
        return aiodynamo_load(item)

    async def save(self, w: int, i: int) -> Any:
        from aiodynamo.expressions import F

        o = self.plains[w]
        await self.table.update_item(
            {"tenant": self.tenant, "id": o.id},
            F("name").set(f"name {i}") & F("version").set(o.version + 1),
            condition=F("version").equals(o.version),
        )
        o.version += 1

    async def query(self, w: int, i: int) -> Any:
        from aiodynamo.expressions import HashKey

        found = [
            aiodynamo_load(item)
            async for item in self.table.query(HashKey("tenant", self.query_tenant))
        ]
        assert len(found) == QUERY_ITEMS, len(found)
        return found


def contenders(names: tuple[str, ...] = CLIENT_NAMES) -> list[Contender]:
    """The clients to compare; one whose library is not installed is left out (said so)."""
    made: list[Contender] = []
    for cls, module in (
        (AsyncEngineContender, None),
        (Aioboto3Contender, "aioboto3"),
        (AiodynamoContender, "aiodynamo"),
        (SyncEngineContender, None),
    ):
        if cls.name not in names:
            continue
        if module is not None:
            try:
                __import__(module)
            except ImportError:
                print(f"({module} is not installed: left out)", file=sys.stderr)
                continue
        slug = cls.name.split(",")[0].replace(" ", "-").lower()
        made.append(cls(f"aio-{slug}"))
    return made


# -- measuring --------------------------------------------------------------------------------


@dataclass
class Cell:
    """One client's turns at one operation and level."""

    requests: int = 0
    cpu: float = 0.0
    latencies: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    @property
    def rate(self) -> float:
        return statistics.median(self.rates) if self.rates else float("nan")

    @property
    def cpu_per_request(self) -> float:
        return self.cpu / self.requests if self.requests else float("nan")

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


async def drive(
    call: Callable[[int, int], Awaitable[Any]],
    level: int,
    total: int,
    cell: Cell | None = None,
    *,
    pause_gc: bool = False,
    profiler: cProfile.Profile | None = None,
) -> float:
    """``level`` workers, each awaiting ``call(worker, i)`` ``total // level`` times; adds
    the turn to ``cell`` and returns the CPU seconds per request."""
    per_worker = total // level
    latencies: list[float] = []
    errors: list[BaseException] = []
    clock = time.perf_counter

    async def worker(w: int) -> None:
        for i in range(per_worker):
            started = clock()
            try:
                await call(w, i)
            except Exception as error:  # counted and reported, the run goes on
                errors.append(error)
            latencies.append(clock() - started)

    gc.collect()
    if pause_gc:
        gc.disable()
    try:
        if profiler is not None:
            profiler.enable()
        cpu0, wall0 = time.process_time(), clock()
        await asyncio.gather(*(worker(w) for w in range(level)))
        wall, cpu = clock() - wall0, time.process_time() - cpu0
        if profiler is not None:
            profiler.disable()
    finally:
        gc.enable()
    done = per_worker * level
    if cell is not None:
        cell.requests += done
        cell.cpu += cpu
        cell.latencies += latencies
        cell.rates.append(done / wall)
        if errors and not cell.errors:
            cell.first_error = f"{type(errors[0]).__name__}: {errors[0]}"[:200]
        cell.errors += len(errors)
    elif errors:
        raise errors[0]
    return cpu / done


def turn_size(requests: int, level: int) -> int:
    total = max(requests, 8 * level)
    return total - total % level


async def run_loads(
    endpoint: str,
    levels: list[int],
    requests: int,
    rounds: int,
    clients: list[Contender],
    level_loads: dict[int, str],
) -> dict[int, dict[str, dict[str, Cell]]]:
    """Part 1: every client at every level, taking turns (``level_loads`` gets the load
    average at the end of each level)."""
    results: dict[int, dict[str, dict[str, Cell]]] = {}
    for level in levels:
        print(f"loads: {level} in flight...", flush=True)
        for client in clients:
            await client.open(endpoint, level)
        cells = {op: {c.name: Cell() for c in clients} for op in OPS}
        total = turn_size(requests, level)
        for op in OPS:  # warm-up: connections, JIT of DynamoDB Local, caches
            for client in clients:
                await drive(client.op(op), level, max(2 * level, 200 - 200 % level))
        for r in range(rounds):
            for op in OPS:
                k = r % len(clients)
                for client in clients[k:] + clients[:k]:
                    await drive(client.op(op), level, total, cells[op][client.name])
        for client in clients:
            await client.close()
        results[level] = cells
        level_loads[level] = _loadavg()
        for op in OPS:
            for name, cell in cells[op].items():
                print(
                    f"  {op:15} {name:22} {cell.rate:8,.0f}/s  p50 "
                    f"{cell.percentile(0.5) * 1000:6.2f} ms  p99 "
                    f"{cell.percentile(0.99) * 1000:7.2f} ms  "
                    f"{cell.cpu_per_request * 1e6:7.1f} µs CPU"
                    + (f"  {cell.errors} errors ({cell.first_error})" if cell.errors else ""),
                    flush=True,
                )
    return results


def seed(endpoint: str, clients: list[Contender]) -> None:
    """The table (no stream: nothing piles up in DynamoDB Local as the run goes on) and each
    client's items, at version 1."""
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    client.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "tenant", "KeyType": "HASH"},
            {"AttributeName": "id", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "tenant", "AttributeType": "S"},
            {"AttributeName": "id", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    items = []
    for c in clients:
        items += [hand_dump(p) for p in c.plains]
        items += [hand_dump(Plain(**sample_values(c.query_tenant, i))) for i in range(QUERY_ITEMS)]
    for start in range(0, len(items), 25):
        pending: dict[str, Any] = {
            TABLE: [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        }
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


# -- part 2: the instant stub -------------------------------------------------------------------


def _answer(body: dict[str, Any]) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
        b"Content-Length: " + str(len(data)).encode() + b"\r\n"
        b"x-amzn-RequestId: stub\r\n"
        b"x-amz-crc32: " + str(zlib.crc32(data)).encode() + b"\r\n\r\n" + data
    )


STUB_ITEM = hand_dump(Plain(**sample_values("stub", 1)))


def canned_answers() -> dict[bytes, bytes]:
    """What the stub answers, by the request's ``X-Amz-Target`` operation (``GetItem``'s
    item is made per key, see ``_Stub.get_item``)."""
    items = [hand_dump(Plain(**sample_values("stub", i))) for i in range(QUERY_ITEMS)]
    return {
        b"UpdateItem": _answer({}),
        b"Query": _answer({"Items": items, "Count": QUERY_ITEMS, "ScannedCount": QUERY_ITEMS}),
    }


class _Stub(socketserver.BaseRequestHandler):
    """Reads each request on a kept-alive connection and answers it at once, in one write."""

    answers: dict[bytes, bytes] = {}
    empty = _answer({})
    items: dict[bytes, bytes] = {}  # request body -> GetItem answer

    def get_item(self, body: bytes) -> bytes:
        """The 11-attribute item under the key asked for (made once per request body)."""
        answer = self.items.get(body)
        if answer is None:
            key = json.loads(body)["Key"]
            answer = self.items[body] = _answer({"Item": {**STUB_ITEM, **key}})
        return answer

    def handle(self) -> None:
        sock = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buffer = b""
        while True:
            while b"\r\n\r\n" not in buffer:
                data = sock.recv(65536)
                if not data:
                    return
                buffer += data
            head, _, rest = buffer.partition(b"\r\n\r\n")
            length = 0
            operation = b""
            for line in head.split(b"\r\n"):
                lowered = line.lower()
                if lowered.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                elif lowered.startswith(b"x-amz-target:"):
                    operation = line.rsplit(b".", 1)[-1].strip()
            while len(rest) < length:
                data = sock.recv(65536)
                if not data:
                    return
                rest += data
            buffer = rest[length:]
            if operation == b"GetItem":
                sock.sendall(self.get_item(rest[:length]))
            else:
                sock.sendall(self.answers.get(operation, self.empty))


def serve(port_file: str) -> None:
    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        request_queue_size = 512

    _Stub.answers = canned_answers()
    server = Server(("127.0.0.1", 0), _Stub)
    written = Path(port_file + ".tmp")
    written.write_text(str(server.server_address[1]))
    written.rename(port_file)  # whole, or not there yet
    server.serve_forever()


def start_stub() -> tuple[subprocess.Popen[bytes], str, Path]:
    port_file = Path(f"/tmp/streamodel-aio-stub-{os.getpid()}")
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
    deadline = time.monotonic() + 10
    while not port_file.exists():
        if time.monotonic() > deadline or server.poll() is not None:
            raise RuntimeError("the stub server did not start")
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{port_file.read_text()}", port_file


@dataclass
class StubRun:
    best: dict[str, dict[str, float]]  # op -> client -> best CPU per request
    median: dict[str, dict[str, float]]
    areas: dict[str, list[tuple[str, float]]]  # op -> (area, share of AsyncEngine's time)
    profiles: dict[str, str]


async def run_stub(n: int, rounds: int, clients: list[Contender], profile: bool) -> StubRun:
    server, endpoint, port_file = start_stub()
    try:
        for client in clients:
            await client.open(endpoint, STUB_LEVEL)
        total = turn_size(n, STUB_LEVEL)
        times: dict[str, dict[str, list[float]]] = {op: {} for op in OPS}
        for op in OPS:
            print(f"stub: {op}, {STUB_LEVEL} in flight...", flush=True)
            for client in clients:  # warm-up
                await drive(client.op(op), STUB_LEVEL, max(total // 3, 20 * STUB_LEVEL))
            for r in range(rounds):
                k = r % len(clients)
                for client in clients[k:] + clients[:k]:
                    seconds = await drive(client.op(op), STUB_LEVEL, total, pause_gc=True)
                    times[op].setdefault(client.name, []).append(seconds)
        areas: dict[str, list[tuple[str, float]]] = {}
        profiles: dict[str, str] = {}
        engine = next((c for c in clients if c.name == "AsyncEngine"), None)
        if engine is not None:
            for op in OPS:
                profiler = cProfile.Profile()
                await drive(engine.op(op), STUB_LEVEL, total, pause_gc=True, profiler=profiler)
                stats = pstats.Stats(profiler)
                areas[op] = by_area(stats)
                if profile:
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
                    profiles[op] = out.getvalue()
        for client in clients:
            await client.close()
    finally:
        server.kill()
        port_file.unlink(missing_ok=True)
    best = {op: {name: min(v) for name, v in by.items()} for op, by in times.items()}
    median = {
        op: {name: statistics.median(v) for name, v in by.items()} for op, by in times.items()
    }
    return StubRun(best, median, areas, profiles)


SIGNING = "SigV4 signing (streamodel signing.py, botocore's SigV4Auth, hmac)"
LOOP = "event loop, selector, socket calls"


def area_of(filename: str, function: str) -> str | None:
    """The area a profiled function's own time counts to; None for a builtin of no area of
    its own (``len``, ``dict.get``...), whose time counts to its callers' areas."""
    if filename == "~":
        if "json" in function:
            return "json"
        if any(mark in function for mark in ("hmac", "hashlib", "sha256")):
            return SIGNING
        if any(mark in function for mark in ("socket", "select", "epoll", "_asyncio")):
            return LOOP
        return None
    if "streamodel/transport/signing.py" in filename or "botocore/" in filename:
        return SIGNING
    if "streamodel/transport/" in filename:
        return "streamodel transport (exchange, answers, pool, HTTP parser)"
    if "streamodel/" in filename or "<streamodel generated" in filename:
        return "streamodel operations and models (steps, plan, request, decode)"
    if "tests/benchmarks/" in filename:
        return "the benchmark's own loop"
    if "json" in filename:
        return "json"
    if any(mark in filename for mark in ("hmac", "hashlib")):
        return SIGNING
    if any(mark in filename for mark in ("asyncio/", "selectors.py", "socket.py")):
        return LOOP
    return "other (stdlib)"


def by_area(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Each area's share of the profiled time: the own time of its functions, and that of
    the builtins they call."""
    totals: dict[str, float] = {}
    raw: Any = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, tottime, _ct, callers) in raw.items():
        area = area_of(filename, function)
        if area is not None:
            totals[area] = totals.get(area, 0.0) + tottime
            continue
        for caller, entry in callers.items():  # entry: calls, primitive calls, tt, ct
            where = area_of(caller[0], caller[2]) or "other (builtins)"
            totals[where] = totals.get(where, 0.0) + entry[2]
    whole = sum(totals.values()) or 1.0
    return sorted(((a, t / whole) for a, t in totals.items()), key=lambda x: -x[1])


# -- part 3: scale --------------------------------------------------------------------------


def _status_kb(name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def _measured(job: Callable[[], Any], traced: bool) -> dict[str, Any]:
    """``job()``'s time, and its memory: traced (``tracemalloc``'s peak, and what is still
    traced after it and a collection) or not (the resident high-water mark's growth only,
    which tracemalloc's own bookkeeping would inflate)."""
    gc.collect()
    rss_before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    if traced:
        tracemalloc.start()
    started = time.perf_counter()
    outcome = job()
    seconds = time.perf_counter() - started
    peak = left = None
    if traced:
        _, peak = tracemalloc.get_traced_memory()
        gc.collect()
        left, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return {
        "outcome": outcome,
        "seconds": seconds,
        "peak": peak,
        "left": left,
        "rss_before_kb": rss_before,
        "hwm_growth_kb": _status_kb("VmHWM") - rss_before,
    }


def scale_child(endpoint: str, tasks: int, traced: bool) -> dict[str, Any]:
    """``tasks`` tasks at once, each saving a new object through one AsyncEngine."""
    tenant = f"scale-{tasks}-{os.getpid()}"
    objs = [
        Account(**{k: v for k, v in sample_values(tenant, i).items() if k != "version"})
        for i in range(tasks)
    ]
    engine = AsyncEngine(endpoint_url=endpoint, table_name_template=TEMPLATE)
    loop = asyncio.new_event_loop()
    values = sample_values(tenant + "-warm", 0)
    warm = Account(**{k: v for k, v in values.items() if k != "version"})
    loop.run_until_complete(engine.save(warm))  # the route and a first connection

    async def bare() -> list[Any]:
        async def idle(obj: Any) -> Any:
            await asyncio.sleep(0.001)
            return obj

        running = [asyncio.create_task(idle(o)) for o in objs]
        return await asyncio.gather(*running, return_exceptions=True)

    async def saves() -> list[Any]:
        running = [asyncio.create_task(engine.save(o)) for o in objs]
        return await asyncio.gather(*running, return_exceptions=True)

    floor = _measured(lambda: loop.run_until_complete(bare()), traced)
    floor.pop("outcome")
    measured = _measured(lambda: loop.run_until_complete(saves()), traced)
    outcome = measured.pop("outcome")
    errors = [r for r in outcome if isinstance(r, BaseException)]
    pool: Any = engine.transport
    while pool is not None and not hasattr(pool, "_routes"):
        pool = getattr(pool, "inner", None)
    route = pool._routes.get("dynamodb") if pool is not None else None
    sender = getattr(route, "send", None)
    loop.run_until_complete(engine.close())
    loop.close()
    return {
        "tasks": tasks,
        "errors": len(errors),
        "first_error": f"{type(errors[0]).__name__}: {errors[0]}"[:200] if errors else "",
        "saved": sum(1 for o in objs if o.version == 1),
        "opened": getattr(sender, "opened", None),
        "max_connections": getattr(sender, "max_connections", None),
        "floor": floor,
        **measured,
    }


def run_scale(endpoint: str, sizes: list[int]) -> list[dict[str, Any]]:
    """Each size twice, each time in a child process of its own: traced, then untraced (its
    resident high-water growth and time go into the row as ``untraced``)."""
    rows = []
    for tasks in sizes:
        row: dict[str, Any] = {}
        for mode in ("traced", "untraced"):
            print(f"scale: {tasks:,} tasks in a child process ({mode})...", flush=True)
            command = [sys.executable, __file__, "--scale-child", str(tasks)]
            command += ["--endpoint", endpoint] + (["--untraced"] if mode == "untraced" else [])
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            measured = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  {measured}", flush=True)
            if mode == "traced":
                row = measured
            else:
                row["untraced"] = measured
        rows.append(row)
    return rows


# -- the report -----------------------------------------------------------------------------


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in ("aioboto3", "aiobotocore", "aiodynamo", "aiohttp", "botocore"):
        with contextlib.suppress(PackageNotFoundError):
            found.append(f"{name} {version(name)}")
    return ", ".join(found)


def mb(size: float) -> str:
    return f"{size / 2**20:.1f} MB"


def kb(size: float) -> str:
    return f"{size / 1024:.1f} KB"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def report(
    command: str,
    loads: dict[int, dict[str, dict[str, Cell]]],
    stub: StubRun | None,
    scale: list[dict[str, Any]],
    args: argparse.Namespace,
    load_before: str,
    loads_during: list[str],
    level_loads: dict[int, str],
    elapsed: float,
) -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [
        MARKER,
        f"Command: `{command}` (whole run {elapsed:.0f} s). Machine: {os.cpu_count()} cores "
        f"({model}), Python {platform.python_version()}, {versions()}; load average (1, 5, "
        f"15 min) before the run {load_before}, between parts {'; '.join(loads_during)}, "
        f"after {_loadavg()}.",
        "",
    ]
    if loads:
        lines += [
            f"### Loads against DynamoDB Local ({args.rounds} turns per client, cell and level; "
            f"at least {args.requests:,} requests per turn)",
            "",
            "Throughput: median of the turns (lowest to highest turn in brackets). Latency: "
            "over every request of every turn. CPU: this process's CPU time per request "
            "(event loop and threads; DynamoDB Local's JVM is another process). Load average "
            "(1, 5, 15 min) at the end of each level: "
            + "; ".join(f"{level}: {load}" for level, load in level_loads.items())
            + ".",
            "",
        ]
        for op in OPS:
            unit = "queries/s (10 items each)" if op == "Query" else "requests/s"
            lines += [
                f"#### {op}",
                "",
                f"| in flight | client | {unit} | p50 ms | p99 ms | CPU per request |",
                "| ---: | --- | ---: | ---: | ---: | ---: |",
            ]
            for level, cells in loads.items():
                for name, cell in cells[op].items():
                    spread = f"{min(cell.rates):,.0f} to {max(cell.rates):,.0f}"
                    errors = f" ({cell.errors} errors: {cell.first_error})" if cell.errors else ""
                    lines.append(
                        f"| {level} | {name} | {cell.rate:,.0f} ({spread}){errors} | "
                        f"{ms(cell.percentile(0.5))} | {ms(cell.percentile(0.99))} | "
                        f"{cell.cpu_per_request * 1e6:,.0f} µs |"
                    )
            lines.append("")
    if stub is not None:
        names = [n for n in CLIENT_NAMES if n in stub.best[OPS[0]]]
        lines += [
            f"### Client CPU per request against an instant stub, {STUB_LEVEL} in flight "
            f"(best of {args.stub_rounds} turns of {turn_size(args.stub_n, STUB_LEVEL):,}; "
            "median in brackets; lower is better)",
            "",
            "| operation | " + " | ".join(names) + " | AsyncEngine ÷ aioboto3 (target ≤ 0.50) "
            "| AsyncEngine ÷ aiodynamo (target ≤ 1.00) |",
            "| --- |" + " ---: |" * (len(names) + 2),
        ]
        verdicts = []
        for op in OPS:
            best, median = stub.best[op], stub.median[op]
            cells = [f"{best[n] * 1e6:,.1f} µs ({median[n] * 1e6:,.1f})" for n in names]
            ratios = []
            for other, target in (("aioboto3", 0.5), ("aiodynamo", 1.0)):
                if other in best and "AsyncEngine" in best:
                    ratio = best["AsyncEngine"] / best[other]
                    worst = max(stub.median[op]["AsyncEngine"] / stub.median[op][other], ratio)
                    met = "met" if worst <= target else ("not met" if ratio > target else "close")
                    ratios.append(f"{ratio:.2f} ({met})")
                    verdicts.append((op, other, ratio, target))
                else:
                    ratios.append("—")
            lines.append(f"| {op} | " + " | ".join(cells + ratios) + " |")
        lines += [
            "",
            "A target counts as met when it holds on both the best and the median turns, "
            "close when only the best turn meets it.",
            "",
        ]
        if stub.areas:
            lines += [
                "Where AsyncEngine's CPU goes at 64 in flight (one more turn under cProfile; "
                "each area's functions' own time, with the builtins they call; share of the "
                "profiled total):",
                "",
                "| area | " + " | ".join(OPS) + " |",
                "| --- |" + " ---: |" * len(OPS),
            ]
            area_names = sorted(
                {a for shares in stub.areas.values() for a, _ in shares},
                key=lambda a: -sum(dict(stub.areas[op]).get(a, 0.0) for op in OPS),
            )
            for area in area_names:
                cells = [f"{dict(stub.areas[op]).get(area, 0.0) * 100:.0f}%" for op in OPS]
                lines.append(f"| {area} | " + " | ".join(cells) + " |")
            lines.append("")
    if scale:
        lines += [
            "### Scale: N tasks at once, each saving a new object through one AsyncEngine "
            "(default pool)",
            "",
            "Each N twice, each time in a child process of its own: once under tracemalloc "
            "(its peak during the run, and what is still traced after it), once without "
            "(time, and the growth of the resident high-water mark `VmHWM` over the resident "
            "size just before the run). The objects being saved are made before either starts, "
            "so the figures are what the tasks and the engine add. Bare tasks: the same N "
            "tasks each awaiting `asyncio.sleep(0.001)`, the floor of any task.",
            "",
            "| tasks | errors | saved | connections opened (pool limit) | time, untraced "
            "| peak traced (per task) | bare tasks: peak traced (per task) | still traced after "
            "(per saved object) | resident high-water growth, untraced (per task) "
            "| bare tasks: same |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in scale:
            n = row["tasks"]
            floor = row["floor"]
            untraced = row["untraced"]
            errors = row["errors"] + untraced["errors"]
            first = row["first_error"] or untraced["first_error"]
            saved = min(row["saved"], untraced["saved"])
            grown = untraced["hwm_growth_kb"] * 1024
            floor_grown = untraced["floor"]["hwm_growth_kb"] * 1024
            lines.append(
                f"| {n:,} | {errors}{f' ({first})' if errors else ''} | {saved:,} of each run | "
                f"{row['opened']}, {untraced['opened']} ({row['max_connections']}) | "
                f"{untraced['seconds']:.1f} s ({n / untraced['seconds']:,.0f}/s) | "
                f"{mb(row['peak'])} ({kb(row['peak'] / n)}) | "
                f"{mb(floor['peak'])} ({kb(floor['peak'] / n)}) | "
                f"{mb(row['left'])} ({kb(row['left'] / n)}) | "
                f"+{mb(grown)} ({kb(grown / n)}) | +{mb(floor_grown)} ({kb(floor_grown / n)}) |"
            )
        if len(scale) >= 2:
            small, large = scale[0], scale[-1]
            times = large["tasks"] // small["tasks"]
            per_task = (large["peak"] / large["tasks"]) / (small["peak"] / small["tasks"])
            hwm_small = small["untraced"]["hwm_growth_kb"] / small["tasks"]
            hwm_large = large["untraced"]["hwm_growth_kb"] / large["tasks"]
            lines += [
                "",
                f"Per task at {times}x the tasks: peak traced {per_task:.2f}x, resident "
                f"high-water growth {hwm_large / hwm_small:.2f}x.",
            ]
        lines.append("")
    lines.append(MARKER)
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    """Replace the section between the markers, or add it (with its heading) at the end."""
    existing = path.read_text()
    if existing.count(MARKER) >= 2:
        head, _, rest = existing.partition(MARKER)
        _, _, tail = rest.partition(MARKER)
        path.write_text(head + text + tail)
    else:
        heading = "## AsyncEngine: loads, client CPU and scale (issue #15)\n\n"
        path.write_text(existing.rstrip("\n") + "\n\n" + heading + text + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--requests", type=int, default=1500, help="requests per turn")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stub-n", type=int, default=3000, help="requests per stub turn")
    parser.add_argument("--stub-rounds", type=int, default=5)
    parser.add_argument("--scale", type=int, nargs="*", default=[1000, 10_000])
    parser.add_argument("--clients", nargs="+", default=list(CLIENT_NAMES))
    parser.add_argument("--skip", nargs="*", default=[], choices=["loads", "stub", "scale"])
    parser.add_argument("--profile", action="store_true", help="print AsyncEngine's hot spots")
    parser.add_argument("--write", type=Path, help="also write the section into this file")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--scale-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--untraced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if args.scale_child:
        print(json.dumps(scale_child(args.endpoint, args.scale_child, not args.untraced)))
        return 0
    if any(level > MAX_LEVEL for level in args.levels):
        parser.error(f"--levels: at most {MAX_LEVEL}")
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ.pop(name, None)
    started = time.perf_counter()
    command = "python tests/benchmarks/aio_bench.py " + " ".join(argv or sys.argv[1:])
    load_before = _loadavg()
    loads_during: list[str] = []
    level_loads: dict[int, str] = {}
    names = tuple(args.clients)
    loads: dict[int, dict[str, dict[str, Cell]]] = {}
    scale: list[dict[str, Any]] = []
    stub: StubRun | None = None
    if "stub" not in args.skip:
        # First: the client-CPU figures want the quietest machine (no JVM behind them).
        stub_clients = [c for c in contenders(names) if c.name != "sync Engine, threads"]
        stub = asyncio.run(run_stub(args.stub_n, args.stub_rounds, stub_clients, args.profile))
        loads_during.append(f"after the stub part {_loadavg()}")
        for op, text in stub.profiles.items():
            print(f"== cProfile: AsyncEngine {op}, {STUB_LEVEL} in flight, against the stub ==")
            print(text)
    if "loads" not in args.skip or "scale" not in args.skip:
        print("starting a fresh DynamoDB Local...", flush=True)
        with DynamoDBLocal() as local:
            endpoint = local.endpoint_url
            client = boto3.client("dynamodb", endpoint_url=endpoint)
            run.create_raw_table(client, "bench-warm")
            run.warm_up(client, "bench-warm", 300)
            clients = contenders(names)
            seed(endpoint, clients)
            if "loads" not in args.skip:
                loads = asyncio.run(
                    run_loads(
                        endpoint, args.levels, args.requests, args.rounds, clients, level_loads
                    )
                )
                loads_during.append(f"after the loads {_loadavg()}")
            if "scale" not in args.skip and args.scale:
                scale = run_scale(endpoint, sorted(args.scale))
    text = report(
        command.strip(),
        loads,
        stub,
        scale,
        args,
        load_before,
        loads_during,
        level_loads,
        time.perf_counter() - started,
    )
    print(text)
    if args.write:
        write(args.write, text)
        print(f"written to {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
