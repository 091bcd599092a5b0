"""A model at schema version 2 for the shared-migration test: two ``streamodel migrate
shared_migrate_app:Shelf --engine shared_migrate_app:engine`` processes share the segments
of one migration.

The upgrade (version 1 -> 2) writes each call down, ``<pid> <key>``, one flushed line to
STREAMODEL_TEST_OUT, and counts in ``moves`` how often it ran on the item (not idempotent on
purpose): ``moves == 1`` on every stored item shows every item was written exactly once.

With STREAMODEL_TEST_GATE set, the first call is held: it appends ``<pid> gate`` and waits
for a line on stdin. The test holds the first process there (it has taken every segment's
lease by then) until a second process has taken a lease of its own.

Environment: STREAMODEL_TEST_TEMPLATE (table names), STREAMODEL_TEST_OUT,
STREAMODEL_TEST_GATE, STREAMODEL_TRANSPORT and the endpoint variables.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from streamodel import Column, Engine, Integer, String, new_base

Base = new_base()

_out = open(os.environ.get("STREAMODEL_TEST_OUT", os.devnull), "a", buffering=1)  # noqa: SIM115 - kept open for the process
_gate = [bool(os.environ.get("STREAMODEL_TEST_GATE"))]


def move(item: dict[str, Any]) -> dict[str, Any]:
    if _gate[0]:
        _gate[0] = False
        _out.write(f"{os.getpid()} gate\n")
        _out.flush()
        sys.stdin.readline()  # released by the test; EOF (the test gone) releases it too
    _out.write(f"{os.getpid()} {item['id']}\n")
    _out.flush()
    item["moves"] = item.get("moves", 0) + 1
    return item


class Shelf(Base):
    class Meta:
        stream = None
        schema_version = 2
        upgrades = {1: move}

    id = Column(String, hash_key=True)
    moves = Column(Integer)


engine = Engine(table_name_template=os.environ.get("STREAMODEL_TEST_TEMPLATE", "{table_name}"))
