"""Batch writes and transactions on DynamoDB Local: whole-item puts, batch deletes,
100-item transactions, cancellation naming the culprit, signals only after commit."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from streamodel import (
    Column,
    Engine,
    Integer,
    InvalidConditionError,
    MissingObjectsError,
    String,
    TransactionCanceledError,
    add,
    new_base,
    signals,
)

Base = new_base()


class Box(Base):
    id = Column(String, hash_key=True)
    label = Column(String)
    weight = Column(Integer)
    version = Column(Integer, version=True)


class Crate(Base):
    id = Column(String, hash_key=True)
    label = Column(String)
    weight = Column(Integer)


@pytest.fixture(scope="module", autouse=True)
def bound(engine: Engine) -> None:
    engine.bind(base=Base)


def new_id() -> str:
    return uuid.uuid4().hex


def stored(engine: Engine, model: Any, key: str) -> dict[str, Any] | None:
    response = engine.transport.call(
        "dynamodb",
        "GetItem",
        {"TableName": engine.table_name(model), "Key": {"id": {"S": key}}, "ConsistentRead": True},
    )
    return response.get("Item")


def test_batch_put_replaces_whole_items_and_batch_delete(recorder: Any) -> None:
    """save(replace=True) of 60 objects takes 3 BatchWriteItem calls and replaces whole
    items (a column not set is gone); delete of all 60 takes 3 more."""
    engine, transport = recorder
    crates = [Crate(id=new_id(), label=f"c{i}", weight=i) for i in range(60)]
    engine.save(*crates)
    crates[0].weight = None  # a plain save would leave the stored weight alone...
    fresh = [Crate(id=c.id, label=c.label, weight=c.weight) for c in crates]
    transport.calls.clear()
    engine.save(*fresh, replace=True)
    assert [op for _, op, _ in transport.calls] == ["BatchWriteItem"] * 3
    assert stored(engine, Crate, crates[0].id) == {
        "id": {"S": crates[0].id},
        "label": {"S": "c0"},
    }  # ...a whole-item put removes it
    transport.calls.clear()
    engine.delete(*fresh)
    assert [op for _, op, _ in transport.calls] == ["BatchWriteItem"] * 3
    with pytest.raises(MissingObjectsError) as missing:
        engine.load(*[Crate(id=c.id) for c in crates])
    assert len(missing.value.objects) == 60


def test_versioned_objects_refused_in_batch_puts(engine: Engine) -> None:
    """A batch put of versioned objects is refused before anything is written."""
    boxes = [Box(id=new_id()), Box(id=new_id())]
    with pytest.raises(InvalidConditionError, match="version"):
        engine.save(*boxes, replace=True)
    assert all(stored(engine, Box, b.id) is None for b in boxes)


def test_transaction_of_100_items_commits(engine: Engine) -> None:
    """A transaction of 100 versioned saves commits them all; each version becomes 1."""
    boxes = [Box(id=new_id(), label=f"b{i}") for i in range(100)]
    with engine.transaction() as tx:
        tx.save(*boxes)
    assert all(b.version == 1 for b in boxes)
    copies = [Box(id=b.id) for b in boxes]
    engine.load(*copies, consistent=True)
    assert [c.label for c in copies] == [f"b{i}" for i in range(100)]
    with pytest.raises(InvalidConditionError, match="at most 100"), engine.transaction() as tx:
        tx.save(*[Box(id=new_id(), label="x") for _ in range(101)])


def test_one_failing_condition_cancels_all_and_names_the_culprit(engine: Engine) -> None:
    """Among 100 items, one stale version cancels the transaction: nothing is written, the
    error names that object and its versions, and no object_saved signal is sent."""
    boxes = [Box(id=new_id(), label="old", weight=1) for _ in range(99)]
    engine.save(*boxes)
    culprit = Box(id=new_id(), label="old")
    engine.save(culprit)
    other = Box(id=culprit.id)
    engine.load(other)
    other.label = "moved on"
    engine.save(other)  # culprit is now stale
    saved: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        saved.append(kwargs["obj"])

    for b in [*boxes, culprit]:
        b.label = "new"
    signals.object_saved.connect(receiver, sender=Box)
    try:
        with pytest.raises(TransactionCanceledError) as raised, engine.transaction() as tx:
            tx.save(*boxes, actions={Box.weight: add(1)})
            tx.save(culprit)
    finally:
        signals.object_saved.disconnect(receiver, sender=Box)
    assert saved == []
    reasons = raised.value.reasons
    failed = [r for r in reasons if r["code"] != "None"]
    assert len(reasons) == 100 and len(failed) == 1
    assert failed[0]["obj"] is culprit
    assert culprit.id in str(raised.value) and "stale version: stored 2, object has 1" in str(
        raised.value
    )
    assert stored(engine, Box, boxes[0].id)["label"] == {"S": "old"}  # type: ignore[index]
    assert boxes[0].version == 1 and culprit.version == 1


def test_transaction_actions_and_checks(engine: Engine) -> None:
    """A transaction mixes counters, deletes and checks; after commit the counter column
    is unknown until loaded, deleted objects are new again."""
    a, b, c = Crate(id=new_id(), weight=1), Crate(id=new_id()), Crate(id=new_id(), label="c")
    engine.save(a, b, c)
    with engine.transaction() as tx:
        tx.save(a, actions={Crate.weight: add(5)})
        tx.delete(b)
        tx.check(c, Crate.label == "c")
    assert a.weight is None
    engine.load(a)
    assert a.weight == 6
    assert stored(engine, Crate, b.id) is None
