"""A worker app for the operations tests, run as ``streamodel worker metrics_app:worker
--metrics-port 0``.

Environment: STREAMODEL_TEST_TEMPLATE (table names), STREAMODEL_TEST_GROUP, STREAMODEL_TEST_OUT
(each change appends ``started <id>`` before its handler waits and ``done <id>`` after,
flushed at once) and STREAMODEL_TEST_GATE: a path the handler waits for before it returns,
so a test can send SIGTERM while a change is in hand and look at the probes meanwhile.
"""

from __future__ import annotations

import os
import time

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.stream import Change, Worker

Base = new_base()


class Gauge(Base):
    id = Column(String, hash_key=True)
    value = Column(Integer)


engine = Engine(table_name_template=os.environ.get("STREAMODEL_TEST_TEMPLATE", "{table_name}"))
worker = Worker(
    engine,
    group=os.environ.get("STREAMODEL_TEST_GROUP", "metrics"),
    start="latest",
    failover=2.0,
)
_out = open(os.environ.get("STREAMODEL_TEST_OUT", os.devnull), "a", buffering=1)  # noqa: SIM115
_gate = os.environ.get("STREAMODEL_TEST_GATE", "")


@worker.subscribe(Gauge)
def hold(change: Change) -> None:
    _out.write(f"started {change.key['id']}\n")
    _out.flush()
    # The handler's work: it lasts until the test opens the gate (two minutes at most).
    deadline = time.monotonic() + 120
    while _gate and not os.path.exists(_gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    _out.write(f"done {change.key['id']}\n")
    _out.flush()
