"""A worker of two entities of one table (single-table design), run as a subprocess by the
worker tests; configured like ``worker_app`` (STREAMODEL_TEST_TEMPLATE, _GROUP, _OUT,
_HANDLER_SECONDS). A third entity of the table, ``Note``, has no subscriber. Each handled
change is one line: sequence number, the handler's entity, the change's model, the id."""

from __future__ import annotations

import os
import time

from written import announce_transport

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.stream import Change, Worker

Base = new_base()


class Account(Base):
    class Meta:
        table_name = "entities"

    pk = Column(String, hash_key=True, template="ACCOUNT#{id}")
    id = Column(String)
    value = Column(Integer)


class Payment(Base):
    class Meta:
        table_name = "entities"

    pk = Column(String, hash_key=True, template="PAYMENT#{id}")
    id = Column(String)
    value = Column(Integer)


class Note(Base):
    class Meta:
        table_name = "entities"

    pk = Column(String, hash_key=True, template="NOTE#{id}")
    id = Column(String)
    value = Column(Integer)


engine = Engine(table_name_template=os.environ.get("STREAMODEL_TEST_TEMPLATE", "{table_name}"))
announce_transport(engine)
worker = Worker(
    engine,
    group=os.environ.get("STREAMODEL_TEST_GROUP", "app"),
    batch_size=20,
    failover=float(os.environ.get("STREAMODEL_TEST_FAILOVER", "2")),
)
_handler_seconds = float(os.environ.get("STREAMODEL_TEST_HANDLER_SECONDS", "0"))
_out = open(os.environ.get("STREAMODEL_TEST_OUT", os.devnull), "a", buffering=1)  # noqa: SIM115 - kept open for the process


def _write(entity: str, change: Change) -> None:
    _out.write(f"{change.sequence_number} {entity} {change.model.__name__} {change.new.id}\n")
    _out.flush()
    os.fsync(_out.fileno())
    if _handler_seconds:
        time.sleep(_handler_seconds)  # work a handler does, not synchronization


@worker.subscribe(Account)
def on_account(change: Change) -> None:
    _write("Account", change)


@worker.subscribe(Payment)
def on_payment(change: Change) -> None:
    _write("Payment", change)
