"""Optimistic versions: checks, the server-side opt-out, transactions, batches, update()."""

from __future__ import annotations

from typing import Any

import pytest
from meaning import condition, meaning, same_request, update

from streamodel import (
    Column,
    ConditionFailedError,
    Integer,
    InvalidConditionError,
    MissingObjectsError,
    StaleVersionError,
    String,
    TransactionCanceledError,
    add,
    new_base,
)

Base = new_base()


class Doc(Base):
    id = Column(String, hash_key=True)
    body = Column(String)
    hits = Column(Integer)
    version = Column(Integer, version=True)


class Plain(Base):
    id = Column(String, hash_key=True)
    body = Column(String)


def item(version: int, body: str = "b", id: str = "d") -> dict[str, Any]:
    return {"id": {"S": id}, "body": {"S": body}, "version": {"N": str(version)}}


def loaded(engine: Any, transport: Any, version: int, body: str = "b") -> Doc:
    transport.queue("GetItem", {"Item": item(version, body)})
    doc = Doc(id="d")
    engine.load(doc)
    transport.calls.clear()
    return doc


def test_version_check_false_adds_on_the_server(engine: Any, transport: Any) -> None:
    """version_check=False sends no version condition, ADDs 1 and reads the result back."""
    doc = loaded(engine, transport, 7)
    doc.body = "new"
    transport.queue("UpdateItem", {"Attributes": {"body": {"S": "new"}, "version": {"N": "9"}}})
    engine.save(doc, version_check=False)
    assert same_request(
        transport.only("UpdateItem"),
        {
            "TableName": "Doc",
            "Key": {"id": {"S": "d"}},
            "UpdateExpression": "SET #body = :new ADD #version :one",
            "ExpressionAttributeNames": {"#body": "body", "#version": "version"},
            "ExpressionAttributeValues": {":new": {"S": "new"}, ":one": {"N": "1"}},
            "ReturnValues": "UPDATED_NEW",
        },
    )
    assert doc.version == 9  # never rolled back to 8: whatever is stored, plus one


def test_version_check_false_on_a_key_only_object(engine: Any, transport: Any) -> None:
    """A key-only object saved without the check continues the stored count."""
    transport.queue("UpdateItem", {"Attributes": {"version": {"N": "4"}, "body": {"S": "x"}}})
    doc = Doc(id="d", body="x")
    engine.save(doc, version_check=False)
    assert doc.version == 4


def test_key_only_object_is_never_reset_to_version_one(engine: Any, transport: Any) -> None:
    """A new object built from a stored item's key requires that no version is stored, so
    it cannot overwrite the item and reset it to 1 (PynamoDB #1247)."""
    transport.queue("UpdateItem", ConditionFailedError("failed", item=item(5)))
    doc = Doc(id="d", body="blind")
    with pytest.raises(StaleVersionError) as raised:
        engine.save(doc)
    request = transport.only("UpdateItem")
    assert request["ConditionExpression"] == "attribute_not_exists(#n1)"
    assert request["ExpressionAttributeNames"]["#n1"] == "version"
    assert raised.value.item == item(5)
    assert doc.version is None and doc._sm_snapshot is None  # unchanged after a failure


def test_stale_delete_raises_stale_version(engine: Any, transport: Any) -> None:
    """A delete whose version is stale raises StaleVersionError carrying the stored item."""
    doc = loaded(engine, transport, 2)
    transport.queue("DeleteItem", ConditionFailedError("failed", item=item(3)))
    with pytest.raises(StaleVersionError) as raised:
        engine.delete(doc)
    assert raised.value.item == item(3) and raised.value.obj is doc
    assert transport.only("DeleteItem")["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"


def test_failed_user_condition_is_not_a_stale_version(engine: Any, transport: Any) -> None:
    """When the version matches, a failed condition is a plain ConditionFailedError."""
    doc = loaded(engine, transport, 2)
    doc.body = "x"
    transport.queue("UpdateItem", ConditionFailedError("failed", item=item(2)))
    with pytest.raises(ConditionFailedError) as raised:
        engine.save(doc, condition=Doc.body == "zzz")
    assert type(raised.value) is ConditionFailedError


def test_delete_without_version_check(engine: Any, transport: Any) -> None:
    """delete(version_check=False) sends no condition."""
    doc = loaded(engine, transport, 2)
    engine.delete(doc, version_check=False)
    assert transport.only("DeleteItem") == {"TableName": "Doc", "Key": {"id": {"S": "d"}}}


def test_versioned_save_in_transaction_checks_and_advances(engine: Any, transport: Any) -> None:
    """In a transaction a versioned save is conditioned on the version and advances it only
    after the commit."""
    doc = loaded(engine, transport, 2)
    doc.body = "tx"
    with engine.transaction() as tx:
        tx.save(doc)
        assert doc.version == 2
    update = transport.only("TransactWriteItems")["TransactItems"][0]["Update"]
    assert update["ConditionExpression"] == "#n1 = :v2"
    assert update["ExpressionAttributeValues"][":v2"] == {"N": "2"}
    assert doc.version == 3


def test_stale_version_in_transaction_is_named(engine: Any, transport: Any) -> None:
    """A cancelled transaction names the stale object and both versions."""
    doc = loaded(engine, transport, 2)
    doc.body = "tx"
    transport.queue(
        "TransactWriteItems",
        TransactionCanceledError(
            "cancelled",
            reasons=[{"code": "ConditionalCheckFailed", "message": "", "item": item(4)}],
        ),
    )
    stale = r"stale version: stored 4, object has 2"
    with pytest.raises(TransactionCanceledError, match=stale), engine.transaction() as tx:
        tx.save(doc)
    assert doc.version == 2


def test_batch_put_refuses_versioned_objects(engine: Any, transport: Any) -> None:
    """save(replace=True) of a versioned object is refused: a batch cannot check versions."""
    with pytest.raises(InvalidConditionError, match="version column"):
        engine.save(Doc(id="a"), Doc(id="b"), replace=True)
    assert transport.calls == []


def test_versioned_deletes_are_not_batched(engine: Any, transport: Any) -> None:
    """Deleting several versioned objects sends one conditional DeleteItem each."""
    a, b = Doc(id="a"), Doc(id="b")
    a.version, b.version = 1, 4
    engine.delete(a, b)
    assert transport.operations() == ["DeleteItem", "DeleteItem"]
    assert all("ConditionExpression" in p for _, _, p in transport.calls)


def test_update_reloads_and_retries_on_stale_versions(engine: Any, transport: Any) -> None:
    """update() loads consistently, applies fn, saves, and on a stale version reloads and
    tries again; it returns the saved object."""
    transport.queue(
        "GetItem",
        {"Item": item(1, "one")},
        {"Item": item(2, "two")},
    )
    transport.queue("UpdateItem", ConditionFailedError("failed", item=item(2, "two")))
    calls: list[str] = []

    def fn(doc: Doc) -> None:
        calls.append(doc.body)
        doc.body = doc.body + "!"

    doc = Doc(id="d")
    assert engine.update(doc, fn, backoff=0) is doc
    assert calls == ["one", "two"]
    assert transport.operations() == ["GetItem", "UpdateItem"] * 2
    assert transport.calls[0][2]["ConsistentRead"] is True
    last = transport.calls[-1][2]
    assert (
        update("SET #body = :b", b={"S": "two!"})["SET"] <= meaning(last)["UpdateExpression"]["SET"]
    )
    assert (doc.body, doc.version) == ("two!", 3)


def test_update_gives_up_after_retries(engine: Any, transport: Any) -> None:
    """update() raises the last StaleVersionError after ``retries`` more attempts."""
    for _ in range(3):
        transport.queue("GetItem", {"Item": item(1)})
        transport.queue("UpdateItem", ConditionFailedError("failed", item=item(9)))
    with pytest.raises(StaleVersionError):
        engine.update(Doc(id="d"), lambda d: setattr(d, "hits", add(1)), retries=2, backoff=0)
    assert transport.operations().count("UpdateItem") == 3


def test_update_of_unversioned_model_uses_atomic(engine: Any, transport: Any) -> None:
    """Without a version column, update() saves atomically and retries when the stored
    item changed, but not when the caller's own condition fails."""
    plain = {"id": {"S": "p"}, "body": {"S": "a"}}
    changed = {"id": {"S": "p"}, "body": {"S": "b"}}
    transport.queue("GetItem", {"Item": plain})
    transport.queue("GetItem", {"Item": changed})
    transport.queue("UpdateItem", ConditionFailedError("failed", item=changed))
    obj = engine.update(Plain(id="p"), lambda p: setattr(p, "body", p.body * 2), backoff=0)
    assert obj.body == "bb"
    assert meaning(transport.calls[-1][2])["ConditionExpression"] == condition(
        "#body = :b", b={"S": "b"}
    )

    transport.calls.clear()
    transport.queue("GetItem", {"Item": plain})
    transport.queue("UpdateItem", ConditionFailedError("failed", item=plain))
    with pytest.raises(ConditionFailedError):
        engine.update(
            Plain(id="p"), lambda p: setattr(p, "body", "x"), condition=Plain.body == "zzz"
        )
    assert transport.operations() == ["GetItem", "UpdateItem"]


def test_update_of_missing_item_raises(engine: Any, transport: Any) -> None:
    """update() of an item that does not exist raises MissingObjectsError, writing nothing."""
    with pytest.raises(MissingObjectsError):
        engine.update(Doc(id="nope"), lambda d: None)
    assert transport.operations() == ["GetItem"]
