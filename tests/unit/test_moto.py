"""Under moto's ``mock_aws``, a default ``Engine()`` works and puts nothing on the network.

Users' own test suites run streamodel code under ``mock_aws`` (API.md §6). moto answers from
botocore's ``before-send`` event, so only requests that go the botocore way reach it; a socket
opened by any request would be a request to the real AWS. Every test here fails loudly on any
socket connection. What moto does (and does not do) with DynamoDB Streams is in
docs/testing.md.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from streamodel import (
    UUID,
    Column,
    ConditionFailedError,
    Engine,
    GlobalSecondaryIndex,
    Integer,
    MissingObjectsError,
    String,
    TransactionCanceledError,
    new_base,
)
from streamodel.stream import Change, Worker


def _refuse(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"a socket connection was attempted under mock_aws: {args[1:]!r}")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto's mock_aws with AWS's real endpoints (no local server) and no socket allowed."""
    for name in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
        "AWS_PROFILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setattr(socket.socket, "connect", _refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", _refuse)
    monkeypatch.setattr(socket, "create_connection", _refuse)
    with mock_aws():
        yield


Base = new_base()


class Account(Base):
    class Meta:
        read_units = 5
        write_units = 2

    id = Column(UUID, hash_key=True)
    name = Column(String)
    email = Column(String)
    by_email = GlobalSecondaryIndex(hash_key="email")


class Event(Base):
    stream = Column(String, hash_key=True)
    at = Column(Integer, range_key=True)
    kind = Column(String)


def test_readme_quickstart_runs_under_mock_aws(aws: None) -> None:
    """The README quickstart runs as written against moto with a default Engine()."""
    engine = Engine()
    engine.bind(base=Base)

    account = Account(id=uuid.uuid4(), name="username", email="foo@bar.com")
    engine.save(account)
    same_account = Account(id=account.id)
    engine.load(same_account)
    assert same_account.email == "foo@bar.com"
    q = engine.query(Account.by_email).key(Account.email == "foo@bar.com")
    also_same = q.first()
    assert also_same is not None and also_same.id == account.id

    if_not_exist = Account.id.is_(None)
    with pytest.raises(ConditionFailedError):
        engine.save(account, condition=if_not_exist)
    same_username = Account.name == "username"
    account.email = "new@email.com"
    engine.save(account, condition=same_username)
    engine.delete(account, atomic=True)
    with pytest.raises(MissingObjectsError):
        engine.load(Account(id=account.id))


def test_transactions_commit_and_cancel_under_mock_aws(aws: None) -> None:
    """Write and read transactions commit under moto, and a failed condition cancels one."""
    engine = Engine()
    engine.bind(Event)
    with engine.transaction() as tx:
        tx.save(Event(stream="s", at=1, kind="open"), Event(stream="s", at=2, kind="pay"))
    first, second = Event(stream="s", at=1), Event(stream="s", at=2)
    with engine.transaction(mode="r") as rx:
        rx.load(first, second)
    assert (first.kind, second.kind) == ("open", "pay")

    with pytest.raises(TransactionCanceledError), engine.transaction() as tx:
        tx.save(Event(stream="s", at=3, kind="ship"))
        tx.check(first, Event.kind == "closed")
    with pytest.raises(MissingObjectsError):
        engine.load(Event(stream="s", at=3))


def test_batches_of_saves_loads_and_deletes_under_mock_aws(aws: None) -> None:
    """Several objects saved, loaded and deleted in one call each go through moto."""
    engine = Engine()
    engine.bind(Event)
    events = [Event(stream="b", at=n, kind=f"k{n}") for n in range(30)]
    engine.save(*events)
    loaded = [Event(stream="b", at=n) for n in range(30)]
    engine.load(*loaded)
    assert [e.kind for e in loaded] == [f"k{n}" for n in range(30)]
    engine.delete(*events[:10])
    with pytest.raises(MissingObjectsError) as missing:
        engine.load(*(Event(stream="b", at=n) for n in range(12)))
    assert sorted(e.at for e in missing.value.objects) == list(range(10))


def test_query_and_scan_under_mock_aws(aws: None) -> None:
    """Key conditions, filters, first/one/all/count of queries and scans work against moto."""
    engine = Engine()
    engine.bind(Event)
    engine.save(
        *(
            Event(stream=s, at=n, kind="even" if n % 2 == 0 else "odd")
            for s in "xy"
            for n in range(6)
        )
    )
    query = engine.query(Event).key((Event.stream == "x") & (Event.at >= 2))
    assert [e.at for e in query.all()] == [2, 3, 4, 5]
    assert engine.query(Event).key(Event.stream == "x").filter(Event.kind == "odd").count() == 3
    assert engine.query(Event).key((Event.stream == "y") & (Event.at == 4)).one().kind == "even"
    assert engine.scan(Event).count() == 12
    assert {e.stream for e in engine.scan(Event).filter(Event.at == 5)} == {"x", "y"}


def test_stream_and_worker_read_changes_under_mock_aws(aws: None) -> None:
    """A stream read from trim_horizon and a worker run until caught up get moto's records."""
    engine = Engine()
    engine.bind(Event)
    engine.save(Event(stream="w", at=1, kind="a"))
    updated = Event(stream="w", at=1)
    engine.load(updated)
    updated.kind = "b"
    engine.save(updated)
    engine.delete(updated)

    stream = engine.stream(Event, "trim_horizon")
    changes = [c for c in (next(stream) for _ in range(10)) if c is not None]
    # moto 5.2.6 writes two INSERT records for an UpdateItem that creates an item (DynamoDB
    # writes one), so only the set of events is checked, and their order by sequence number.
    assert {c.event for c in changes} == {"insert", "modify", "remove"}
    assert [c.event for c in changes][-2:] == ["modify", "remove"]

    handled: list[Change] = []
    worker = Worker(engine, group="moto")
    worker.subscribe(Event)(handled.append)
    worker.run(until_caught_up=True)
    assert [c.sequence_number for c in handled] == [c.sequence_number for c in changes]
