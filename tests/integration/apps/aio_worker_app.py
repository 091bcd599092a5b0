"""An ``AsyncWorker`` application run as a subprocess by the AsyncWorker tests
(``streamodel worker aio_worker_app:worker``), reading two tables' streams at once.

``record`` (plain, ``async def``) takes each ``AioSource`` change and, when its work is done,
appends ``<sequence number> <event> <key>`` to STREAMODEL_TEST_OUT, flushed and synced at
once: a line is a change handled to its end, and a SIGKILL loses no such line. ``count``
(transactional, ``async def``) adds one to ``AioSeen.count`` of each ``AioTally`` change's key
in the transaction that carries the shard's checkpoint, so however often the process is
killed, each change is counted exactly once; it appends ``<sequence number> <event> <key>
tally`` each time it runs, before its work and its commit, so a test can tell the worker is
mid-work on that stream too.

Environment: STREAMODEL_TEST_TEMPLATE (table names), STREAMODEL_TEST_GROUP,
STREAMODEL_TEST_OUT, STREAMODEL_TEST_FAILOVER (seconds, default 2), STREAMODEL_TRANSPORT and
STREAMODEL_TEST_TRANSPORT_OUT (see ``written``: the reading side's sync engine is announced)
and STREAMODEL_TEST_HANDLER_SECONDS (each handler takes 0 to 3 times this long per change, so
a test that kills the worker finds it still working through its backlog, and changes handled
at once end out of stream order; default none).
"""

from __future__ import annotations

import asyncio
import os

from written import announce_transport

from streamodel import Column, Integer, MissingObjectsError, String, new_base
from streamodel.aio import AsyncEngine, AsyncWorker
from streamodel.stream import Change
from streamodel.transactions import WriteTransaction

Base = new_base()


class AioSource(Base):
    class Meta:
        table_name = "aio-source"

    id = Column(String, hash_key=True)
    value = Column(Integer)


class AioTally(Base):
    class Meta:
        table_name = "aio-tally"

    id = Column(String, hash_key=True)
    value = Column(Integer)


class AioSeen(Base):
    class Meta:
        table_name = "aio-seen"
        stream = None

    id = Column(String, hash_key=True)
    count = Column(Integer)
    version = Column(Integer, version=True)


engine = AsyncEngine(table_name_template=os.environ.get("STREAMODEL_TEST_TEMPLATE", "{table_name}"))
announce_transport(engine.sync_engine())
worker = AsyncWorker(
    engine,
    group=os.environ.get("STREAMODEL_TEST_GROUP", "aio-app"),
    # Small: checkpoints are written often, so every kill finds some written mid-work.
    batch_size=5,
    max_in_flight=16,
    # Short, so tests that kill workers do not wait long for leases to expire.
    failover=float(os.environ.get("STREAMODEL_TEST_FAILOVER", "2")),
)
_handler_seconds = float(os.environ.get("STREAMODEL_TEST_HANDLER_SECONDS", "0"))
_out = open(os.environ.get("STREAMODEL_TEST_OUT", os.devnull), "a", buffering=1)  # noqa: SIM115 - kept open for the process


async def work(change: Change) -> None:
    """Work a handler does (not synchronization), uneven: 0 to 3 times the given time, so
    concurrent changes end out of stream order."""
    if _handler_seconds:
        await asyncio.sleep(_handler_seconds * (int(change.sequence_number or 0) % 4))


def write_down(change: Change, *tags: str) -> None:
    _out.write(" ".join([str(change.sequence_number), change.event, change.key["id"], *tags]))
    _out.write("\n")
    _out.flush()
    os.fsync(_out.fileno())


@worker.subscribe(AioSource)
async def record(change: Change) -> None:
    await work(change)
    write_down(change)


@worker.subscribe(AioTally, transactional=True)
async def count(change: Change, tx: WriteTransaction) -> None:
    write_down(change, "tally")
    await work(change)
    seen = AioSeen(id=change.key["id"])
    try:
        await engine.load(seen, consistent=True)
    except MissingObjectsError:
        seen.count = 0
    seen.count += 1
    tx.save(seen)
