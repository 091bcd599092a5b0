"""The worker app of ``scaling.py``: counts changes, one line per change in SCALING_OUT."""

from __future__ import annotations

import os

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.stream import Change, Worker

Base = new_base()


class Tick(Base):
    id = Column(String, hash_key=True)
    n = Column(Integer)


engine = Engine(table_name_template=os.environ.get("SCALING_TEMPLATE", "{table_name}"))
worker = Worker(
    engine,
    group=os.environ.get("SCALING_GROUP", "scaling"),
    failover=float(os.environ.get("SCALING_FAILOVER", "3")),
)
_out = open(os.environ.get("SCALING_OUT", os.devnull), "a", buffering=1)  # noqa: SIM115


@worker.subscribe(Tick)
def count(change: Change) -> None:
    _out.write(f"{change.shard_id}\n")
