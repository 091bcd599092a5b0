"""A worker app for the snapshot tests: a copy projection built by ``start="snapshot"``.

The handler applies each change by version, as docs/streams.md describes: an insert or
modify is applied when its version is newer than the copy's, a remove when the copy is not
newer than the removed item, so stale deliveries (a change seen both in the snapshot and in
the stream) are skipped. Environment: STREAMODEL_TEST_TEMPLATE, STREAMODEL_TEST_GROUP,
STREAMODEL_TEST_FAILOVER, STREAMODEL_TRANSPORT, STREAMODEL_TEST_TRANSPORT_OUT (see
``written``) and STREAMODEL_TEST_OUT: each handled change appends ``<s|r> <event> <key>``
(``s`` for a snapshot item, ``r`` for a stream record), flushed and synced.
"""

from __future__ import annotations

import os

from written import announce_transport

from streamodel import Column, Engine, Integer, MissingObjectsError, String, new_base
from streamodel.stream import Change, Worker

Base = new_base()


class SnapItem(Base):
    id = Column(String, hash_key=True)
    value = Column(Integer)
    version = Column(Integer, version=True)


class SnapCopy(Base):
    class Meta:
        stream = None

    id = Column(String, hash_key=True)
    value = Column(Integer)
    source_version = Column(Integer)


engine = Engine(table_name_template=os.environ.get("STREAMODEL_TEST_TEMPLATE", "{table_name}"))
announce_transport(engine)
worker = Worker(
    engine,
    group=os.environ.get("STREAMODEL_TEST_GROUP", "snapshot"),
    start="snapshot",
    snapshot_segments=4,
    batch_size=25,
    failover=float(os.environ.get("STREAMODEL_TEST_FAILOVER", "2")),
)
_out = open(os.environ.get("STREAMODEL_TEST_OUT", os.devnull), "a", buffering=1)  # noqa: SIM115 - kept open for the process


def apply(change: Change) -> None:
    """Apply one change to the copy, skipping stale ones by comparing versions."""
    copy = SnapCopy(id=change.key["id"])
    try:
        engine.load(copy, consistent=True)
    except MissingObjectsError:
        copy = None
    if change.event == "remove":
        if copy is not None and copy.source_version <= change.old.version:
            engine.delete(copy)
    elif copy is None or change.new.version > copy.source_version:
        engine.save(
            SnapCopy(id=change.key["id"], value=change.new.value, source_version=change.new.version)
        )


@worker.subscribe(SnapItem)
def project(change: Change) -> None:
    apply(change)
    _out.write(f"{'s' if change.snapshot else 'r'} {change.event} {change.key['id']}\n")
    _out.flush()
    os.fsync(_out.fileno())
