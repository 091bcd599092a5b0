"""A worker application run as a subprocess by the worker tests (``streamodel worker``).

Configured by environment: STREAMODEL_TEST_TEMPLATE (table names), STREAMODEL_TEST_GROUP,
STREAMODEL_TEST_OUT (a file each handled change is appended to, one line, flushed at once,
so a SIGKILL loses nothing that was handled), STREAMODEL_TRANSPORT (the engine is made
without clients, so it applies), STREAMODEL_TEST_TRANSPORT_OUT (see ``written``) and
STREAMODEL_TEST_HANDLER_SECONDS (time each change takes after it was written down, so a test
that kills the worker finds it still working through its backlog; default none).
"""

from __future__ import annotations

import os
import time

from written import announce_transport

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.stream import Change, Worker

Base = new_base()


class Counter(Base):
    id = Column(String, hash_key=True)
    value = Column(Integer)


engine = Engine(table_name_template=os.environ.get("STREAMODEL_TEST_TEMPLATE", "{table_name}"))
announce_transport(engine)
worker = Worker(
    engine,
    group=os.environ.get("STREAMODEL_TEST_GROUP", "app"),
    batch_size=20,
    # Short, so tests that kill workers do not wait long for leases to expire.
    failover=float(os.environ.get("STREAMODEL_TEST_FAILOVER", "2")),
)
_handler_seconds = float(os.environ.get("STREAMODEL_TEST_HANDLER_SECONDS", "0"))
_out = open(os.environ.get("STREAMODEL_TEST_OUT", os.devnull), "a", buffering=1)  # noqa: SIM115 - kept open for the process


@worker.subscribe(Counter)
def record(change: Change) -> None:
    _out.write(f"{change.sequence_number} {change.event} {change.key['id']}\n")
    _out.flush()
    os.fsync(_out.fileno())
    if _handler_seconds:
        time.sleep(_handler_seconds)  # work a handler does, not synchronization
