"""Stream replay: ``AsyncWorker`` against ``Worker`` with the same handler (issue #15).

A table of ``--keys`` items written ``--versions`` times each (2,000 changes by default) is
replayed from TRIM_HORIZON by a new group, until caught up, with a handler that awaits a
5 ms I/O call per change (``asyncio.sleep``; the sync worker's handler sleeps 5 ms), and
with one that saves one item per change. Reported: changes/s, and whether the order per
key held (every key's versions arrive in increasing order). Each run starts DynamoDB Local
of its own.

Usage: ``python tests/benchmarks/aio_worker_bench.py [--keys 100] [--versions 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
import uuid
from collections import defaultdict
from typing import Any

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.aio import AsyncEngine, AsyncWorker
from streamodel.stream import Change, Worker
from streamodel.testing.local import DynamoDBLocal

Base = new_base()
TEMPLATE = "replay-{table_name}"


class Source(Base):
    id = Column(String, hash_key=True)
    n = Column(Integer)


class Copy(Base):
    class Meta:
        stream = None

    id = Column(String, hash_key=True)
    n = Column(Integer)


async def fill(keys: int, versions: int) -> None:
    async with AsyncEngine(table_name_template=TEMPLATE) as engine:
        await engine.bind(base=Base)
        for v in range(versions):
            await asyncio.gather(*[engine.save(Source(id=f"k{k}", n=v)) for k in range(keys)])


class Seen:
    """Changes per second, and whether each key's versions came in order."""

    def __init__(self) -> None:
        self.last: dict[str, int] = defaultdict(lambda: -1)
        self.count = 0
        self.out_of_order = 0

    def take(self, change: Change) -> None:
        self.count += 1
        key, n = change.key["id"], change.new.n
        if n <= self.last[key]:
            self.out_of_order += 1
        self.last[key] = n


def sync_replay(handler: str) -> tuple[Seen, float]:
    engine = Engine(table_name_template=TEMPLATE)
    worker = Worker(engine, group=f"s{uuid.uuid4().hex[:8]}")
    seen = Seen()

    @worker.subscribe(Source)
    def handle(change: Change) -> None:
        seen.take(change)
        if handler == "save":
            engine.save(Copy(id=change.key["id"], n=change.new.n))
        else:
            time.sleep(0.005)  # the handler's I/O

    started = time.perf_counter()
    worker.run(until_caught_up=True)
    return seen, time.perf_counter() - started


async def async_replay(handler: str, in_flight: int) -> tuple[Seen, float]:
    async with AsyncEngine(table_name_template=TEMPLATE) as engine:
        worker = AsyncWorker(engine, group=f"a{uuid.uuid4().hex[:8]}", max_in_flight=in_flight)
        seen = Seen()

        @worker.subscribe(Source)
        async def handle(change: Change) -> None:
            seen.take(change)
            if handler == "save":
                await engine.save(Copy(id=change.key["id"], n=change.new.n))
            else:
                await asyncio.sleep(0.005)  # the handler's I/O

        started = time.perf_counter()
        await worker.run(until_caught_up=True)
        return seen, time.perf_counter() - started


def row(name: str, handler: str, result: tuple[Seen, float], base: float | None) -> float:
    seen, seconds = result
    rate = seen.count / seconds
    ratio = f"{rate / base:5.1f}x" if base else "    -"
    order = "kept" if seen.out_of_order == 0 else f"BROKEN ({seen.out_of_order})"
    print(f"| {name:<22} | {handler:<11} | {seen.count:>7} | {rate:>9,.0f} | {ratio} | {order} |")
    return rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--versions", type=int, default=20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with DynamoDBLocal() as local:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = local.endpoint_url
        os.environ["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = local.endpoint_url
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
        asyncio.run(fill(args.keys, args.versions))
        total = args.keys * args.versions
        print(f"\n{total} changes of {args.keys} items, replayed until caught up")
        print("| worker | handler | changes | changes/s | vs Worker | order per key |")
        print("| --- | --- | ---: | ---: | ---: | --- |")
        ok = True
        for handler in ("await 5 ms", "save"):
            base = row("Worker", handler, sync_replay(handler), None)
            for in_flight in (1, 8, 64, 256):
                result: Any = asyncio.run(async_replay(handler, in_flight))
                row(f"AsyncWorker({in_flight})", handler, result, base)
                ok = ok and result[0].out_of_order == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
