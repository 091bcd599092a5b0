"""A model at schema version 3 for the migration tests (``streamodel migrate migrate_app:Account
--engine migrate_app:engine``). Version 1 stored ``fullname``; version 2 split it into
``first`` and ``last``; version 3 counts, in ``bumps``, how often its upgrade ran on the item:
a non-idempotent upgrade, so exactly-once shows as ``bumps == 1`` on every item.

Environment: STREAMODEL_TEST_TEMPLATE (table names), STREAMODEL_TRANSPORT and the endpoint
variables, as for the other apps.
"""

from __future__ import annotations

import os
from typing import Any

from streamodel import Column, Engine, Integer, String, new_base

Base = new_base()


def split_name(item: dict[str, Any]) -> dict[str, Any]:
    first, _, last = item.pop("fullname", "").partition(" ")
    item["first"], item["last"] = first, last
    return item


def bump(item: dict[str, Any]) -> dict[str, Any]:
    item["bumps"] = item.get("bumps", 0) + 1  # not idempotent on purpose
    return item


class Account(Base):
    class Meta:
        stream = None
        schema_version = 3
        upgrades = {1: split_name, 2: bump}

    id = Column(String, hash_key=True)
    first = Column(String)
    last = Column(String)
    bumps = Column(Integer)
    note = Column(String)


engine = Engine(table_name_template=os.environ.get("STREAMODEL_TEST_TEMPLATE", "{table_name}"))
