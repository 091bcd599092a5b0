"""Schema versions on DynamoDB Local: items written raw in versions 1 and 2 (no model) are
read as version-3 objects by every read path, and the next save stores version 3."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from streamodel import (
    Column,
    Engine,
    GlobalSecondaryIndex,
    Integer,
    SchemaVersionError,
    String,
    new_base,
)
from streamodel.stream import Change, DeadLetterInfo, Stream, Worker
from streamodel.stream.aws_lambda import lambda_event, lambda_record

Base = new_base()


def split_name(item: dict[str, Any]) -> dict[str, Any]:
    """v1 -> v2: ``fullname`` becomes ``first`` and ``last``."""
    first, _, last = item.pop("fullname").partition(" ")
    item["first"], item["last"] = first, last
    return item


def scale_points(item: dict[str, Any]) -> dict[str, Any]:
    """v2 -> v3: ``points`` becomes ``score`` (ten times); ``legacy`` is dropped."""
    item["score"] = item.pop("points") * 10
    item.pop("legacy", None)
    return item


class Member(Base):
    class Meta:
        schema_version = 3
        upgrades = {1: split_name, 2: scale_points}

    id = Column(String, hash_key=True)
    team = Column(String)
    first = Column(String)
    last = Column(String)
    score = Column(Integer)
    legacy = Column(String)
    by_team = GlobalSecondaryIndex(hash_key="team")


@pytest.fixture(scope="module", autouse=True)
def bound(engine: Engine) -> None:
    engine.bind(base=Base)


def put_raw(engine: Engine, item: dict[str, Any]) -> None:
    """Write ``item`` as it is, without any model."""
    table = engine.table_name(Member)
    engine.transport.call("dynamodb", "PutItem", {"TableName": table, "Item": item})


def get_raw(engine: Engine, key: str) -> dict[str, Any]:
    table = engine.table_name(Member)
    found = engine.transport.call(
        "dynamodb",
        "GetItem",
        {"TableName": table, "Key": {"id": {"S": key}}, "ConsistentRead": True},
    )
    item: dict[str, Any] = found["Item"]
    return item


def v1(key: str, team: str, name: str = "Ada Lovelace", points: int = 4) -> dict[str, Any]:
    return {
        "id": {"S": key},
        "team": {"S": team},
        "fullname": {"S": name},
        "points": {"N": str(points)},
        "legacy": {"S": "old"},
    }


def v2(key: str, team: str, first: str = "Alan", points: int = 7) -> dict[str, Any]:
    return {
        "id": {"S": key},
        "team": {"S": team},
        "first": {"S": first},
        "last": {"S": "Turing"},
        "points": {"N": str(points)},
        "_schema": {"N": "2"},
    }


def ids() -> tuple[str, str, str]:
    """Fresh keys for a v1 item, a v2 item, and a team."""
    u = uuid.uuid4().hex[:10]
    return f"a-{u}", f"b-{u}", f"t-{u}"


def as_v3(obj: Member) -> tuple[Any, ...]:
    return (obj.first, obj.last, obj.score, obj.legacy)


ADA = ("Ada", "Lovelace", 40, None)
ALAN = ("Alan", "Turing", 70, None)


def test_load_query_scan_and_transactions_upgrade(engine: Engine) -> None:
    """Raw v1 and v2 items load, query (a GSI), scan and transact-load as v3 objects."""
    a, b, team = ids()
    put_raw(engine, v1(a, team))
    put_raw(engine, v2(b, team))

    first, second = Member(id=a), Member(id=b)
    engine.load(first, second, consistent=True)
    assert (as_v3(first), as_v3(second)) == (ADA, ALAN)

    queried = {m.id: as_v3(m) for m in engine.query(Member.by_team).key(Member.team == team)}
    assert queried == {a: ADA, b: ALAN}
    scanned = {m.id: as_v3(m) for m in engine.scan(Member).filter(Member.team == team)}
    assert scanned == {a: ADA, b: ALAN}

    x, y = Member(id=a), Member(id=b)
    with engine.transaction(mode="r") as tx:
        tx.load(x, y)
    assert (as_v3(x), as_v3(y)) == (ADA, ALAN)


def test_a_save_after_loading_stores_version_3(engine: Engine) -> None:
    """Saving an upgraded object writes its upgraded columns and version 3, and REMOVEs the
    column the upgrade dropped; attributes that are no columns are left alone."""
    a, b, team = ids()
    put_raw(engine, v1(a, team))
    obj = Member(id=a)
    engine.load(obj, consistent=True)
    engine.save(obj)
    stored = get_raw(engine, a)
    assert stored["_schema"] == {"N": "3"}
    assert (stored["first"], stored["last"], stored["score"]) == (
        {"S": "Ada"},
        {"S": "Lovelace"},
        {"N": "40"},
    )
    assert "legacy" not in stored
    assert stored["fullname"] == {"S": "Ada Lovelace"}  # not a column: not this save's business
    again = Member(id=a)
    engine.load(again, consistent=True)
    assert as_v3(again) == ADA  # read as v3: no upgrade runs again (points would be gone)

    # A save in a transaction, and a new object's save, write the version too.
    put_raw(engine, v2(b, team))
    loaded = Member(id=b)
    engine.load(loaded, consistent=True)
    with engine.transaction() as tx:
        tx.save(loaded)
    assert get_raw(engine, b)["_schema"] == {"N": "3"}
    assert get_raw(engine, b)["score"] == {"N": "70"}
    fresh = Member(id=f"c-{team}", first="New")
    engine.save(fresh)
    assert get_raw(engine, fresh.id)["_schema"] == {"N": "3"}


def test_newer_items_and_failing_upgrades_are_clear_errors(engine: Engine) -> None:
    """A v4 item and an item an upgrade cannot handle raise SchemaVersionError naming the
    key and both versions."""
    a, b, team = ids()
    put_raw(engine, {**v2(a, team), "_schema": {"N": "4"}})
    with pytest.raises(
        SchemaVersionError,
        match=rf"Member item {{'id': '{a}'}}: stored at "
        "schema version 4, the model is at version 3",
    ):
        engine.load(Member(id=a), consistent=True)
    broken = v1(b, team)
    del broken["fullname"]
    put_raw(engine, broken)
    with pytest.raises(SchemaVersionError, match=rf"'{b}'.*version 1.*version 3.*KeyError"):
        engine.load(Member(id=b), consistent=True)
    with pytest.raises(SchemaVersionError):
        engine.query(Member.by_team).key(Member.team == team).all()


def drain(stream: Stream, expected: int, timeout: float = 20.0) -> list[Change]:
    changes: list[Change] = []
    deadline = time.monotonic() + timeout
    while len(changes) < expected and time.monotonic() < deadline:
        change = next(stream)
        if change is not None:
            changes.append(change)
    return changes


def test_stream_images_are_upgraded(engine: Engine) -> None:
    """engine.stream: both images of a MODIFY from v1 to v2 are v3 objects; inserts and
    removes too."""
    stream = engine.stream(Member, "latest")
    a, _, team = ids()
    put_raw(engine, v1(a, team))
    put_raw(engine, v2(a, team, first="Ada", points=5))
    engine.transport.call(
        "dynamodb",
        "DeleteItem",
        {"TableName": engine.table_name(Member), "Key": {"id": {"S": a}}},
    )
    insert, modify, remove = drain(stream, 3)
    assert [c.event for c in (insert, modify, remove)] == ["insert", "modify", "remove"]
    assert as_v3(insert.new) == ADA
    assert as_v3(modify.old) == ADA and as_v3(modify.new) == ("Ada", "Turing", 50, None)
    assert modify.changed == ("last", "score")
    assert as_v3(remove.old) == ("Ada", "Turing", 50, None)


def test_a_worker_gets_upgraded_changes_and_dead_letters_newer_ones(engine: Engine) -> None:
    """A Worker hands v3 objects to its handler; a record from a newer version is
    dead-lettered with the clear error, and the worker goes on."""
    letters: list[DeadLetterInfo] = []
    worker = Worker(
        engine, group=f"g{uuid.uuid4().hex[:10]}", start="latest", dead_letter=letters.append
    )
    seen: dict[str, tuple[Any, ...]] = {}

    @worker.subscribe(Member)
    def handle(change: Change) -> None:
        seen[change.key["id"]] = as_v3(change.new)

    worker.run(until_caught_up=True)
    a, b, team = ids()
    newer = f"n-{team}"
    put_raw(engine, v1(a, team))
    put_raw(engine, {**v2(newer, team), "_schema": {"N": "4"}})
    put_raw(engine, v2(b, team))
    worker.run(until_caught_up=True)
    assert {k: v for k, v in seen.items() if team in k or k in (a, b)} == {a: ADA, b: ALAN}
    mine = [i for i in letters if i.record["dynamodb"]["Keys"]["id"] == {"S": newer}]
    assert len(mine) == 1
    assert "stored at schema version 4, the model is at version 3" in str(mine[0].error)


def test_lambda_events_are_upgraded(engine: Engine) -> None:
    """worker.lambda_handler: a MODIFY from v1 to v2 arrives as two v3 objects; a newer
    record is dead-lettered and the batch succeeds."""
    table = engine.table_name(Member)
    arn = f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2024-01-01T00:00:00.000"
    a, _, team = ids()
    newer = {**v2(f"n-{team}", team), "_schema": {"N": "4"}}
    raw = [
        ("MODIFY", v1(a, team), v2(a, team, first="Ada", points=5)),
        ("INSERT", None, newer),
    ]
    records = []
    for i, (event, old, new) in enumerate(raw):
        data: dict[str, Any] = {
            "Keys": {"id": (new or old)["id"]},
            "SequenceNumber": f"{i + 1:021d}",
            "ApproximateCreationDateTime": 1700000000,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        if old is not None:
            data["OldImage"] = old
        data["NewImage"] = new
        records.append(
            lambda_record(
                {"eventID": str(i), "eventName": event, "dynamodb": data}, event_source_arn=arn
            )
        )
    letters: list[DeadLetterInfo] = []
    worker = Worker(engine, group=f"g{uuid.uuid4().hex[:10]}", dead_letter=letters.append)
    changes: list[Change] = []
    worker.subscribe(Member)(changes.append)
    assert worker.lambda_handler(lambda_event(records), None) == {"batchItemFailures": []}
    (modify,) = changes
    assert as_v3(modify.old) == ADA and as_v3(modify.new) == ("Ada", "Turing", 50, None)
    (letter,) = letters
    assert "stored at schema version 4, the model is at version 3" in str(letter.error)
