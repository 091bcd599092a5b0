"""LeanTransport against DynamoDB Local: identical to botocore, and the engine runs on it."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from streamodel import (
    Binary,
    Column,
    ConditionFailedError,
    Engine,
    GlobalSecondaryIndex,
    Integer,
    MissingObjectsError,
    Set,
    StaleVersionError,
    String,
    TransactionCanceledError,
    new_base,
)
from streamodel.exceptions import StreamodelError
from streamodel.stream import Change
from streamodel.transport import BotocoreTransport, LeanTransport, Transport
from streamodel.types import ALL_TYPES

Base = new_base()


class Doc(Base):
    id = Column(String, hash_key=True)
    owner = Column(String)
    blob = Column(Binary)
    blobs = Column(Set(Binary))
    count = Column(Integer)
    version = Column(Integer, version=True)
    by_owner = GlobalSecondaryIndex(hash_key="owner")


Typed = type(
    "LeanTyped",
    (Base,),
    {
        "Meta": type("Meta", (), {"table_name": "LeanTyped"}),
        "id": Column(String, hash_key=True),
        **{f"c{i}": Column(factory()) for i, (factory, _) in enumerate(ALL_TYPES)},
    },
)


@pytest.fixture(scope="module")
def lean_engine(local_endpoint: str, table_template: str) -> Engine:
    """An engine on the lean transport, its tables bound once."""
    engine = Engine(
        endpoint_url=local_endpoint, table_name_template=table_template, transport="lean"
    )
    engine.bind(base=Base)
    return engine


@pytest.fixture(scope="module")
def both(local_endpoint: str, nonce: str) -> tuple[LeanTransport, BotocoreTransport, str, str]:
    """Both transports and a raw stream table (string hash key, binary range key)."""
    lean = LeanTransport(endpoint_url=local_endpoint)
    boto = BotocoreTransport(endpoint_url=local_endpoint)
    table = f"lean-raw-{nonce}"
    boto.call(
        "dynamodb",
        "CreateTable",
        {
            "TableName": table,
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "B"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        },
    )
    arn = boto.call("dynamodb", "DescribeTable", {"TableName": table})["Table"]["LatestStreamArn"]
    return lean, boto, table, arn


def _item(pk: str, sk: bytes, n: int = 1) -> dict[str, Any]:
    return {
        "pk": {"S": pk},
        "sk": {"B": sk},
        "bin": {"B": bytes(range(256))},
        "bins": {"BS": [b"\x00", b"\xff\xfe", b"abc"]},
        "map": {"M": {"b": {"B": b"\x01"}, "l": {"L": [{"B": b"\x02"}, {"N": "1.5"}]}}},
        "n": {"N": str(n)},
        "s": {"S": "é ü \u2603"},
        "ss": {"SS": ["B", "BS"]},
        "null": {"NULL": True},
        "bool": {"BOOL": True},
    }


def typed(value: Any) -> Any:
    """``value`` with every leaf's type and repr spelled out, key order ignored."""
    if isinstance(value, dict):
        return sorted((key, typed(member)) for key, member in value.items())
    if isinstance(value, list):
        return [typed(member) for member in value]
    return (type(value).__name__, repr(value))


def _sets_sorted(value: Any) -> Any:
    """An item with its set values sorted (DynamoDB keeps no order in sets)."""
    if isinstance(value, dict):
        return {
            k: sorted(v) if k in ("SS", "NS", "BS") else _sets_sorted(v) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_sets_sorted(v) for v in value]
    return value


def _same(a: Any, b: Any) -> None:
    assert a == b
    assert typed(a) == typed(b)


def test_data_plane_responses_are_identical(
    both: tuple[LeanTransport, BotocoreTransport, str, str],
) -> None:
    """Every data-plane operation answers the same through both transports, binaries too."""
    lean, boto, table, _ = both
    pk = uuid.uuid4().hex
    key = {"pk": {"S": pk}, "sk": {"B": b"\x00k"}}
    cap = {"ReturnConsumedCapacity": "TOTAL"}

    def each(operation: str, params: dict[str, Any]) -> tuple[Any, Any]:
        return (
            lean.call("dynamodb", operation, params),
            boto.call("dynamodb", operation, params),
        )

    put = {"TableName": table, "Item": _item(pk, b"\x00k"), "ReturnValues": "ALL_OLD", **cap}
    boto.call("dynamodb", "PutItem", put)
    _same(*each("PutItem", put))
    _same(*each("GetItem", {"TableName": table, "Key": key, "ConsistentRead": True, **cap}))
    update = {
        "TableName": table,
        "Key": key,
        "UpdateExpression": "SET #b = :b, #m.#l[0] = :b",
        "ExpressionAttributeNames": {"#b": "bin", "#m": "map", "#l": "l"},
        "ExpressionAttributeValues": {":b": {"B": b"\x10\x20"}},
        "ReturnValues": "ALL_NEW",
        **cap,
    }
    _same(*each("UpdateItem", update))
    for i in range(5):
        boto.call("dynamodb", "PutItem", {"TableName": table, "Item": _item(pk, bytes([i]), i)})
    query = {
        "TableName": table,
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": pk}},
        "Limit": 3,
        **cap,
    }
    lean_page, boto_page = each("Query", query)
    _same(lean_page, boto_page)
    assert isinstance(lean_page["LastEvaluatedKey"]["sk"]["B"], bytes)
    next_page = {**query, "ExclusiveStartKey": lean_page["LastEvaluatedKey"]}
    _same(*each("Query", next_page))
    lean_scan, boto_scan = each("Scan", {"TableName": table, **cap})
    _same(
        sorted(lean_scan.pop("Items"), key=repr),
        sorted(boto_scan.pop("Items"), key=repr),
    )
    _same(lean_scan, boto_scan)
    keys = [{"pk": {"S": pk}, "sk": {"B": bytes([i])}} for i in range(5)]
    lean_batch, boto_batch = each(
        "BatchGetItem", {"RequestItems": {table: {"Keys": keys, "ConsistentRead": True}}, **cap}
    )
    _same(
        sorted(lean_batch["Responses"][table], key=repr),
        sorted(boto_batch["Responses"][table], key=repr),
    )
    _same(lean_batch["UnprocessedKeys"], boto_batch["UnprocessedKeys"])
    writes = {"RequestItems": {table: [{"PutRequest": {"Item": _item(pk, b"w")}}]}, **cap}
    _same(*each("BatchWriteItem", writes))
    _same(
        *each(
            "TransactGetItems",
            {"TransactItems": [{"Get": {"TableName": table, "Key": k}} for k in keys[:3]], **cap},
        )
    )
    transact = {
        "TransactItems": [
            {"Put": {"TableName": table, "Item": _item(pk, b"t")}},
            {
                "Update": {
                    **{k: update[k] for k in ("TableName", "Key", "UpdateExpression")},
                    "ExpressionAttributeNames": update["ExpressionAttributeNames"],
                    "ExpressionAttributeValues": update["ExpressionAttributeValues"],
                }
            },
        ],
        **cap,
    }
    _same(*each("TransactWriteItems", transact))
    boto.call("dynamodb", "PutItem", {"TableName": table, "Item": _item(pk, b"d")})
    delete = {"TableName": table, "Key": {"pk": {"S": pk}, "sk": {"B": b"d"}}}
    lean_delete = lean.call("dynamodb", "DeleteItem", {**delete, "ReturnValues": "ALL_OLD"})
    boto.call("dynamodb", "PutItem", {"TableName": table, "Item": _item(pk, b"d")})
    boto_delete = boto.call("dynamodb", "DeleteItem", {**delete, "ReturnValues": "ALL_OLD"})
    _same(lean_delete, boto_delete)


def test_errors_are_identical(both: tuple[LeanTransport, BotocoreTransport, str, str]) -> None:
    """Condition failures (with the stored item) and cancelled transactions match botocore's."""
    lean, boto, table, _ = both
    pk = uuid.uuid4().hex
    item = _item(pk, b"\xff")
    boto.call("dynamodb", "PutItem", {"TableName": table, "Item": item})
    conditional = {
        "TableName": table,
        "Item": item,
        "ConditionExpression": "attribute_not_exists(pk)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    failures: list[ConditionFailedError] = []
    for transport in (lean, boto):
        with pytest.raises(ConditionFailedError) as caught:
            transport.call("dynamodb", "PutItem", conditional)
        failures.append(caught.value)
    _same(failures[0].item, failures[1].item)
    assert _sets_sorted(failures[0].item) == _sets_sorted(item)
    assert str(failures[0]) == str(failures[1])
    transact = {
        "TransactItems": [
            {"Put": {"TableName": table, "Item": _item(pk, b"new")}},
            {"Put": conditional},
        ]
    }
    canceled: list[TransactionCanceledError] = []
    for transport in (lean, boto):
        with pytest.raises(TransactionCanceledError) as caught_tx:
            transport.call("dynamodb", "TransactWriteItems", transact)
        canceled.append(caught_tx.value)
    _same(canceled[0].reasons, canceled[1].reasons)
    assert canceled[0].reasons[1]["code"] == "ConditionalCheckFailed"
    assert _sets_sorted(canceled[0].reasons[1]["item"]) == _sets_sorted(item)
    errors: list[StreamodelError] = []
    for transport in (lean, boto):
        with pytest.raises(StreamodelError) as caught_error:
            transport.call("dynamodb", "GetItem", {"TableName": "no-such-table", "Key": {}})
        errors.append(caught_error.value)
    assert type(errors[0]) is type(errors[1])
    assert getattr(errors[0], "code", None) == getattr(errors[1], "code", None)


def _read_shard(transport: Transport, arn: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    description = transport.call("dynamodbstreams", "DescribeStream", {"StreamArn": arn})
    shard = description["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = transport.call(
        "dynamodbstreams",
        "GetShardIterator",
        {"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"},
    ).get("ShardIterator")
    records: list[dict[str, Any]] = []
    while iterator:
        page = transport.call("dynamodbstreams", "GetRecords", {"ShardIterator": iterator})
        records.extend(page["Records"])
        if not page["Records"]:
            break
        iterator = page.get("NextShardIterator")
    return description, records


def test_stream_responses_are_identical(
    both: tuple[LeanTransport, BotocoreTransport, str, str],
) -> None:
    """DescribeStream, GetRecords (images with binaries, datetimes) and ListStreams match."""
    lean, boto, table, arn = both
    pk = uuid.uuid4().hex
    lean.call("dynamodb", "PutItem", {"TableName": table, "Item": _item(pk, b"s1")})
    lean.call("dynamodb", "PutItem", {"TableName": table, "Item": _item(pk, b"s1", 2)})
    lean.call(
        "dynamodb", "DeleteItem", {"TableName": table, "Key": {"pk": {"S": pk}, "sk": {"B": b"s1"}}}
    )
    lean_description, lean_records = _read_shard(lean, arn)
    boto_description, boto_records = _read_shard(boto, arn)
    _same(lean_description, boto_description)
    assert len(lean_records) >= 3
    _same(lean_records, boto_records)
    mine = [r for r in lean_records if r["dynamodb"]["Keys"]["pk"]["S"] == pk]
    assert [r["eventName"] for r in mine] == ["INSERT", "MODIFY", "REMOVE"]
    assert b"\xff\xfe" in mine[1]["dynamodb"]["OldImage"]["bins"]["BS"]
    created = mine[0]["dynamodb"]["ApproximateCreationDateTime"]
    assert created.tzinfo is not None
    listed = {"TableName": table}
    _same(
        lean.call("dynamodbstreams", "ListStreams", listed),
        boto.call("dynamodbstreams", "ListStreams", listed),
    )


def test_on_request_hook_on_real_calls(local_endpoint: str, both: Any) -> None:
    """on_request sees operation, table, a duration and the consumed capacity asked for."""
    _, _, table, _ = both
    seen: list[tuple[str, str | None, float, Any]] = []
    lean = LeanTransport(endpoint_url=local_endpoint, on_request=lambda *a: seen.append(a))
    lean.call(
        "dynamodb",
        "GetItem",
        {
            "TableName": table,
            "Key": {"pk": {"S": "x"}, "sk": {"B": b"x"}},
            "ReturnConsumedCapacity": "TOTAL",
        },
    )
    operation, name, duration, capacity = seen[0]
    assert (operation, name) == ("GetItem", table)
    assert 0 < duration < 5
    assert capacity["TableName"] == table


# -- the engine on the lean transport -----------------------------------------------------


def test_engine_uses_the_lean_transport(lean_engine: Engine) -> None:
    """transport="lean" really puts a LeanTransport under the retries."""
    assert isinstance(lean_engine.transport.inner, LeanTransport)  # type: ignore[attr-defined]


def test_save_load_query_scan_delete(lean_engine: Engine) -> None:
    """The everyday operations work on the lean path, binary values included."""
    owner = uuid.uuid4().hex
    docs = [
        Doc(id=uuid.uuid4().hex, owner=owner, blob=bytes([i, 0, 255]), blobs={b"a", bytes([i])})
        for i in range(5)
    ]
    lean_engine.save(*docs)
    assert all(d.version == 1 for d in docs)
    fresh = [Doc(id=d.id) for d in docs]
    lean_engine.load(*fresh, consistent=True)
    assert [(f.blob, f.blobs, f.owner) for f in fresh] == [(d.blob, d.blobs, d.owner) for d in docs]
    found = lean_engine.query(Doc.by_owner).key(Doc.owner == owner).all()
    assert sorted(d.blob for d in found) == sorted(d.blob for d in docs)
    scanned = lean_engine.scan(Doc).filter(Doc.owner == owner).all()
    assert len(scanned) == 5
    assert lean_engine.scan(Doc).filter(Doc.owner == owner).count() == 5
    stale = Doc(id=docs[0].id)
    lean_engine.load(stale)
    docs[0].count = 7
    lean_engine.save(docs[0])
    stale.count = 8
    with pytest.raises(StaleVersionError) as caught:
        lean_engine.save(stale)
    assert caught.value.item is not None
    assert caught.value.item["blob"] == {"B": docs[0].blob}
    lean_engine.delete(*docs)
    with pytest.raises(MissingObjectsError) as missing:
        lean_engine.load(*[Doc(id=d.id) for d in docs])
    assert len(missing.value.objects) == 5


def test_conditions_and_transactions(lean_engine: Engine) -> None:
    """Conditional saves and both kinds of transaction, with cancellation reasons."""
    a = Doc(id=uuid.uuid4().hex, owner="tx", blob=b"\x00")
    b = Doc(id=uuid.uuid4().hex, owner="tx", blob=b"\x01")
    with lean_engine.transaction() as tx:
        tx.save(a, b)  # type: ignore[union-attr]
    with pytest.raises(ConditionFailedError):
        lean_engine.save(Doc(id=a.id, owner="other"), condition=Doc.id.is_(None))
    read_a, read_b = Doc(id=a.id), Doc(id=b.id)
    with lean_engine.transaction(mode="r") as rtx:
        rtx.load(read_a, read_b)  # type: ignore[union-attr]
    assert (read_a.blob, read_b.blob) == (b"\x00", b"\x01")
    with pytest.raises(TransactionCanceledError) as caught, lean_engine.transaction() as tx:
        a.count = 1
        tx.save(a)  # type: ignore[union-attr]
        tx.save(Doc(id=b.id, owner="clash"), condition=Doc.id.is_(None))  # type: ignore[union-attr]
    codes = [r["code"] for r in caught.value.reasons]
    assert codes == ["None", "ConditionalCheckFailed"]


def test_batch_load_of_more_than_one_page(lean_engine: Engine) -> None:
    """load() of 150 objects runs two BatchGetItem calls on the lean path."""
    docs = [Doc(id=f"batch-{uuid.uuid4().hex}", blob=bytes([i % 256])) for i in range(150)]
    with lean_engine.transaction() as tx:
        tx.save(*docs[:100])  # type: ignore[union-attr]
    lean_engine.save(*docs[100:])
    fresh = [Doc(id=d.id) for d in docs]
    lean_engine.load(*fresh)
    assert [f.blob for f in fresh] == [d.blob for d in docs]


def test_stream_of_every_type(lean_engine: Engine) -> None:
    """engine.stream() on the lean path yields Changes with every type decoded."""
    stream = lean_engine.stream(Typed, "latest")
    values = {f"c{i}": sample for i, (_, sample) in enumerate(ALL_TYPES)}
    obj = Typed(id=uuid.uuid4().hex, **values)
    lean_engine.save(obj)
    lean_engine.delete(obj)
    changes: list[Change] = []
    deadline = time.monotonic() + 20
    while len(changes) < 2 and time.monotonic() < deadline:
        change = next(stream)
        if change is not None:
            changes.append(change)
    assert [c.event for c in changes] == ["insert", "remove"]
    for name, value in values.items():
        assert getattr(changes[0].new, name) == value, name
        assert getattr(changes[1].old, name) == value, name
    assert changes[0].created_at.tzinfo is not None
