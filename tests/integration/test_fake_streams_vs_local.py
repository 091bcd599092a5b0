"""FakeStreams against DynamoDB Local: the same writes, read through the same reader, give the
same records.

The lease, split and fault tests run on FakeStreams because DynamoDB Local keeps one shard per
table; this test is what makes that stand-in trustworthy. Each write is made on a real table
and fed to FakeStreams as the project's tests feed it (``fake.put(keys, new_image=...,
old_image=...)``, with the item as stored before and after the write, and nothing for a write
that changed nothing); then both streams are read with ``engine.stream(Model,
"trim_horizon")``, once through DynamoDB Local and once through an Engine whose
``dynamodbstreams`` calls go to the fake.

Differences found, and what became of them:

- ``SizeBytes`` was the length of the images' JSON text; DynamoDB Local (like DynamoDB)
  counts the item size of keys and images (names plus values, ``streamodel.types.wire_size``).
  Fixed in FakeStreams.
- ``DescribeStream``'s ``KeySchema`` always named a hash key ``pk``; it now is the key of the
  records put (or ``key_schema=`` when given). Fixed in FakeStreams.
- Left alone, as configuration or DynamoDB Local quirks rather than errors of the fake:
  ``awsRegion`` is ``ddblocal`` on DynamoDB Local and the fake's ``region``; ``eventID`` is a
  dashed UUID on DynamoDB Local and 32 hex digits on the fake (as on AWS); DynamoDB Local
  rounds ``ApproximateCreationDateTime`` down to the minute, the fake to the second (as AWS
  does); DynamoDB Local numbers records from 1, zero-padded to 21 digits, the fake from a
  21-digit number unless ``first_sequence=1``; set members come back in no fixed order.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from streamodel import Binary, Column, Engine, Integer, Map, Set, String, new_base
from streamodel.stream import Change
from streamodel.testing.fake_streams import FakeStreams

Base = new_base()


class Diffed(Base):
    id = Column(String, hash_key=True)
    n = Column(Integer)
    blob = Column(Binary)
    tags = Column(Set(String))
    blobs = Column(Set(Binary))
    doc = Column(Map(name=String, inner=Map(depth=Integer, raw=Binary, seen=Set(Integer))))


@pytest.fixture(scope="module")
def bound(engine: Engine) -> Engine:
    engine.bind(Diffed)
    return engine


class Feeder:
    """Makes writes on DynamoDB Local and feeds each one to FakeStreams as its record."""

    def __init__(self, engine: Engine, fake: FakeStreams) -> None:
        self.engine = engine
        self.fake = fake
        self.table = engine.table_name(Diffed)
        self.fed = 0

    def item(self, key: dict[str, Any]) -> dict[str, Any] | None:
        request = {"TableName": self.table, "Key": key, "ConsistentRead": True}
        found: dict[str, Any] | None = self.engine.transport.call(
            "dynamodb", "GetItem", request
        ).get("Item")
        return found

    def write(self, key: dict[str, Any], operation: str, params: dict[str, Any]) -> None:
        before = self.item(key)
        self.engine.transport.call("dynamodb", operation, {"TableName": self.table, **params})
        after = self.item(key)
        if before != after:  # a write that changes nothing writes no stream record
            self.fake.put(key, new_image=after, old_image=before)
            self.fed += 1


def _normal(wire: Any) -> Any:
    """A wire value with set members sorted (DynamoDB returns them in no fixed order)."""
    if isinstance(wire, dict):
        out = {}
        for tag, value in wire.items():
            if tag in ("SS", "NS", "BS"):
                out[tag] = sorted(value)
            elif isinstance(value, dict | list):
                out[tag] = _normal(value)
            else:
                out[tag] = value
        return out
    if isinstance(wire, list):
        return [_normal(v) for v in wire]
    return wire


def _read(engine: Engine, ids: set[str]) -> list[Change]:
    stream = engine.stream(Diffed, "trim_horizon")
    found: list[Change] = []
    idle = 0
    while idle < 3:  # DynamoDB Local's shard stays open: caught up after a few empty polls
        change = next(stream)
        if change is None:
            idle += 1
            continue
        idle = 0
        if change.key["id"] in ids:
            found.append(change)
    return found


def _writes(feeder: Feeder, run: str) -> Iterator[str]:
    """Inserts, modifies (one writing the same values again), removes; binary values, sets
    and nested maps. Yields the ids written."""
    a, b = f"{run}-a", f"{run}-b"
    key_a, key_b = {"id": {"S": a}}, {"id": {"S": b}}
    full = {
        **key_a,
        "n": {"N": "1"},
        "blob": {"B": b"\x00\xff\x10"},
        "tags": {"SS": ["red", "green"]},
        "blobs": {"BS": [b"\x01", b"\x02\x03"]},
        "doc": {
            "M": {
                "name": {"S": "first"},
                "inner": {
                    "M": {"depth": {"N": "2"}, "raw": {"B": b"\xfe"}, "seen": {"NS": ["1", "20"]}}
                },
            }
        },
    }
    feeder.write(key_a, "PutItem", {"Item": full})  # INSERT
    feeder.write(
        key_a,
        "UpdateItem",
        {
            "Key": key_a,
            "UpdateExpression": "SET #n = :n, #d.#i.#depth = :d ADD #t :t",
            "ExpressionAttributeNames": {
                "#n": "n",
                "#d": "doc",
                "#i": "inner",
                "#depth": "depth",
                "#t": "tags",
            },
            "ExpressionAttributeValues": {
                ":n": {"N": "2"},
                ":d": {"N": "3"},
                ":t": {"SS": ["blue"]},
            },
        },
    )  # MODIFY: a number, a nested map member, a set member
    feeder.write(key_a, "PutItem", {"Item": feeder.item(key_a)})  # the same values: no record
    feeder.write(
        key_a,
        "UpdateItem",
        {
            "Key": key_a,
            "UpdateExpression": "REMOVE #b",
            "ExpressionAttributeNames": {"#b": "blob"},
        },
    )  # MODIFY: an attribute removed
    feeder.write(key_b, "PutItem", {"Item": {**key_b, "n": {"N": "-7.5e3"}}})  # INSERT
    feeder.write(key_a, "DeleteItem", {"Key": key_a})  # REMOVE
    feeder.write(key_b, "DeleteItem", {"Key": key_b})  # REMOVE
    yield from (a, b)


def test_fake_streams_matches_dynamodb_local(bound: Engine, table_template: str) -> None:
    """The same writes give the same changes and record shapes on FakeStreams as on DynamoDB
    Local, read through the same reader: event names, keys, images (binary values as bytes,
    sets, nested maps), view type, sizes, the sequence-number format, the type of
    ApproximateCreationDateTime, no userIdentity, and no record for a write that changed
    nothing."""
    engine = bound
    arn = engine.stream_arn(Diffed)
    fake = FakeStreams(stream_arn=arn, inner=engine.transport)
    feeder = Feeder(engine, fake)
    ids = set(_writes(feeder, uuid.uuid4().hex[:10]))
    assert feeder.fed == 6  # the no-op write fed nothing

    faked = Engine(transport=fake, table_name_template=table_template)
    faked.bind(Diffed)
    assert faked.stream_arn(Diffed) == arn
    real = _read(engine, ids)
    fakes = _read(faked, ids)

    assert [c.event for c in real] == ["insert", "modify", "modify", "insert", "remove", "remove"]
    assert [c.event for c in fakes] == [c.event for c in real]
    for r, f in zip(real, fakes, strict=True):
        assert f.key == r.key
        assert f.changed == r.changed
        assert f.expired is r.expired is False
        for image in ("old", "new"):
            got, want = getattr(f, image), getattr(r, image)
            assert (got is None) == (want is None)
            if want is not None:
                assert Diffed.Schema().dump(got) == Diffed.Schema().dump(want)
        rr, fr = r.record, f.record
        assert fr.keys() == rr.keys()  # no userIdentity on either, same top-level fields
        assert "userIdentity" not in rr and "userIdentity" not in fr
        assert fr["eventName"] == rr["eventName"]
        assert fr["eventSource"] == rr["eventSource"] == "aws:dynamodb"
        assert fr["eventVersion"] == rr["eventVersion"]
        for record in (rr, fr):
            assert isinstance(record["eventID"], str) and record["eventID"]
            assert isinstance(record["awsRegion"], str) and record["awsRegion"]
        rb, fb = rr["dynamodb"], fr["dynamodb"]
        assert fb.keys() == rb.keys()
        for part in ("Keys", "NewImage", "OldImage"):
            assert _normal(fb.get(part)) == _normal(rb.get(part)), part
        assert fb["StreamViewType"] == rb["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert fb["SizeBytes"] == rb["SizeBytes"]
        for body in (rb, fb):
            assert re.fullmatch(r"[0-9]{21,40}", body["SequenceNumber"])
            created = body["ApproximateCreationDateTime"]
            assert isinstance(created, datetime) and created.tzinfo is not None
    binary = real[0].record["dynamodb"]["NewImage"]["blob"]["B"]
    assert (
        isinstance(binary, bytes) and binary == fakes[0].record["dynamodb"]["NewImage"]["blob"]["B"]
    )
    for changes in (real, fakes):
        numbers = [int(c.sequence_number) for c in changes]
        assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_fake_streams_describes_the_stream_like_dynamodb_local(bound: Engine) -> None:
    """DescribeStream on FakeStreams has DynamoDB Local's fields and values for the same
    table: ARN, label, status, view type, table name, key schema and the shard's shape."""
    engine = bound
    arn = engine.stream_arn(Diffed)
    fake = FakeStreams(stream_arn=arn, inner=engine.transport)
    fake.put({"id": {"S": "x"}}, new_image={"id": {"S": "x"}})
    real = engine.transport.call("dynamodbstreams", "DescribeStream", {"StreamArn": arn})
    faked = fake.call("dynamodbstreams", "DescribeStream", {"StreamArn": arn})
    r, f = real["StreamDescription"], faked["StreamDescription"]
    assert f.keys() == r.keys()
    for name in ("StreamArn", "StreamLabel", "StreamStatus", "StreamViewType", "TableName"):
        assert f[name] == r[name], name
    assert f["KeySchema"] == r["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert isinstance(f["CreationRequestDateTime"], datetime)
    (real_shard,) = r["Shards"]
    (fake_shard,) = f["Shards"]
    assert fake_shard.keys() == real_shard.keys()
    assert fake_shard["SequenceNumberRange"].keys() == real_shard["SequenceNumberRange"].keys()
    for shard in (real_shard, fake_shard):
        assert re.fullmatch(r"shardId-[0-9]{20}-[0-9a-f]{8}", shard["ShardId"])
