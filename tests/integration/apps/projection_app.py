"""A worker app with a transactional projection: a count of changes per key.

Each change increments ``Seen.count`` for its key in the same transaction as the shard's
checkpoint, so however often the process is killed, every change is counted exactly once.
Environment: STREAMODEL_TEST_TEMPLATE, STREAMODEL_TEST_GROUP, STREAMODEL_TEST_FAILOVER,
STREAMODEL_TRANSPORT, STREAMODEL_TEST_TRANSPORT_OUT (see ``written``) and STREAMODEL_TEST_OUT:
the handler appends ``<sequence number> <event> <key>`` there each time it runs (before its
transaction commits), flushed and synced, so a test can tell the worker is mid-work.
"""

from __future__ import annotations

import os
import time

from written import announce_transport

from streamodel import Column, Engine, Integer, MissingObjectsError, String, new_base
from streamodel.stream import Change, Worker
from streamodel.transactions import WriteTransaction

Base = new_base()


class Source(Base):
    id = Column(String, hash_key=True)
    value = Column(Integer)


class Seen(Base):
    class Meta:
        stream = None

    id = Column(String, hash_key=True)
    count = Column(Integer)
    version = Column(Integer, version=True)


engine = Engine(table_name_template=os.environ.get("STREAMODEL_TEST_TEMPLATE", "{table_name}"))
announce_transport(engine)
worker = Worker(
    engine,
    group=os.environ.get("STREAMODEL_TEST_GROUP", "projection"),
    batch_size=10,
    failover=float(os.environ.get("STREAMODEL_TEST_FAILOVER", "2")),
)
# Time each change takes (see worker_app): keeps a killed worker mid-backlog.
_handler_seconds = float(os.environ.get("STREAMODEL_TEST_HANDLER_SECONDS", "0"))
_out = open(os.environ.get("STREAMODEL_TEST_OUT", os.devnull), "a", buffering=1)  # noqa: SIM115 - kept open for the process


@worker.subscribe(Source, transactional=True)
def count(change: Change, tx: WriteTransaction) -> None:
    seen = Seen(id=change.key["id"])
    try:
        engine.load(seen, consistent=True)
    except MissingObjectsError:
        seen.count = 0
    seen.count += 1
    tx.save(seen)
    _out.write(f"{change.sequence_number} {change.event} {change.key['id']}\n")
    _out.flush()
    os.fsync(_out.fileno())
    if _handler_seconds:
        time.sleep(_handler_seconds)  # work a handler does, not synchronization
