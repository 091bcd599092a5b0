"""A worker app for the shared-snapshot test: two processes of one group share the segments
of one ``start="snapshot"`` scan (``streamodel worker shared_snapshot_app:worker``).

The handler only writes each delivery down: ``<pid> <shard id> <s|r> <key>`` (the shard id
of a snapshot item is its scan segment, ``s`` for a snapshot item, ``r`` for a stream
record), one flushed line per change, so the test can count deliveries per item and tell
which process read which segment.

With STREAMODEL_TEST_GATE set, the first change is held: the handler appends ``<pid> gate``
and then waits for a line on stdin before taking it. The test holds the first process there
(it has taken every segment's lease by then, and read nothing but that change) until a
second process has taken a lease of its own, so the two really share the scan, whatever
the timing.

Environment: STREAMODEL_TEST_TEMPLATE, STREAMODEL_TEST_GROUP, STREAMODEL_TEST_OUT,
STREAMODEL_TEST_FAILOVER, STREAMODEL_TEST_GATE, STREAMODEL_TRANSPORT and
STREAMODEL_TEST_TRANSPORT_OUT (see ``written``).
"""

from __future__ import annotations

import os
import sys

from written import announce_transport

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.stream import Change, Worker

Base = new_base()

SEGMENTS = 3
BATCH_SIZE = 25


class Crate(Base):
    id = Column(String, hash_key=True)
    weight = Column(Integer)


engine = Engine(table_name_template=os.environ.get("STREAMODEL_TEST_TEMPLATE", "{table_name}"))
announce_transport(engine)
worker = Worker(
    engine,
    group=os.environ.get("STREAMODEL_TEST_GROUP", "shared-snapshot"),
    start="snapshot",
    snapshot_segments=SEGMENTS,
    batch_size=BATCH_SIZE,
    failover=float(os.environ.get("STREAMODEL_TEST_FAILOVER", "3")),
)
_out = open(os.environ.get("STREAMODEL_TEST_OUT", os.devnull), "a", buffering=1)  # noqa: SIM115 - kept open for the process
_gate = [bool(os.environ.get("STREAMODEL_TEST_GATE"))]


@worker.subscribe(Crate)
def record(change: Change) -> None:
    if _gate[0]:
        _gate[0] = False
        _out.write(f"{os.getpid()} gate\n")
        _out.flush()
        sys.stdin.readline()  # released by the test; EOF (the test gone) releases it too
    kind = "s" if change.snapshot else "r"
    _out.write(f"{os.getpid()} {change.shard_id} {kind} {change.key['id']}\n")
    _out.flush()
