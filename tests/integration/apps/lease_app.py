"""A worker app for the lease tests: reads a FakeStreams server's shards, logs each change.

Environment: STREAMODEL_TEST_TEMPLATE, STREAMODEL_TEST_GROUP, STREAMODEL_TEST_OUT,
STREAMODEL_TEST_FAILOVER (seconds). Each handled change is appended as
``<worker id> <shard id> <sequence number> <time ns>``, flushed and synced at once.
"""

from __future__ import annotations

import os
import time

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.stream import Change, Worker

Base = new_base()


class Tick(Base):
    id = Column(String, hash_key=True)
    n = Column(Integer)


engine = Engine(table_name_template=os.environ.get("STREAMODEL_TEST_TEMPLATE", "{table_name}"))
worker = Worker(
    engine,
    group=os.environ.get("STREAMODEL_TEST_GROUP", "leases"),
    batch_size=10,
    failover=float(os.environ.get("STREAMODEL_TEST_FAILOVER", "3")),
)
_out = open(os.environ.get("STREAMODEL_TEST_OUT", os.devnull), "a", buffering=1)  # noqa: SIM115


@worker.subscribe(Tick)
def log(change: Change) -> None:
    _out.write(f"{worker.worker_id} {change.shard_id} {change.sequence_number} {time.time_ns()}\n")
    _out.flush()
    os.fsync(_out.fileno())
