"""engine.stream() against DynamoDB Local: Changes with real model objects, in order."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from streamodel import Column, Engine, Integer, String, new_base, signals
from streamodel.stream import Change, Stream, UndecodableRecordError
from streamodel.types import ALL_TYPES

Base = new_base()


class Item(Base):
    id = Column(String, hash_key=True)
    count = Column(Integer)
    label = Column(String)


class Tailed(Base):
    id = Column(String, hash_key=True)
    count = Column(Integer)


Typed = type(
    "Typed",
    (Base,),
    {
        "id": Column(String, hash_key=True),
        **{f"c{i}": Column(factory()) for i, (factory, _) in enumerate(ALL_TYPES)},
    },
)


@pytest.fixture(scope="module", autouse=True)
def bound(engine: Engine) -> None:
    """Bind this module's models once."""
    engine.bind(base=Base)


def drain(stream: Stream, expected: int, timeout: float = 20.0) -> list[Change]:
    """Read changes until ``expected`` arrived or the deadline passed."""
    changes: list[Change] = []
    deadline = time.monotonic() + timeout
    while len(changes) < expected and time.monotonic() < deadline:
        change = next(stream)
        if change is not None:
            changes.append(change)
    return changes


def at_latest(engine: Engine, model: Any) -> Stream:
    """A stream opened at the current end, so a test reads only its own changes."""
    return engine.stream(model, "latest")


def test_insert_modify_remove_for_every_type(engine: Engine) -> None:
    """Every type comes back as typed values in new and old images of real model objects."""
    stream = at_latest(engine, Typed)
    values = {f"c{i}": sample for i, (_, sample) in enumerate(ALL_TYPES)}
    obj = Typed(id=uuid.uuid4().hex, **values)
    engine.save(obj)
    obj.c0 = "changed"
    engine.save(obj)
    engine.delete(obj)
    insert, modify, remove = drain(stream, 3)
    assert [c.event for c in (insert, modify, remove)] == ["insert", "modify", "remove"]
    assert insert.old is None and isinstance(insert.new, Typed)
    for name, sample in values.items():
        assert getattr(insert.new, name) == sample, name
        assert getattr(remove.old, name) == (obj.c0 if name == "c0" else sample), name
    assert modify.old.c0 == values["c0"] and modify.new.c0 == "changed"
    assert modify.changed == ("c0",)
    assert remove.new is None and remove.key == {"id": obj.id}
    assert not remove.expired
    assert insert.created_at.tzinfo is not None
    assert int(insert.sequence_number) < int(modify.sequence_number) < int(remove.sequence_number)


def test_order_per_item_holds(engine: Engine) -> None:
    """Many updates of several items come back in the order they were written, per item."""
    stream = at_latest(engine, Item)
    items = [Item(id=uuid.uuid4().hex, count=0) for _ in range(5)]
    rounds = 60
    for n in range(1, rounds + 1):
        for item in items:
            item.count = n
            engine.save(item)
    changes = drain(stream, rounds * len(items), timeout=60)
    assert len(changes) == rounds * len(items)
    for item in items:
        counts = [c.new.count for c in changes if c.key["id"] == item.id]
        assert counts == list(range(1, rounds + 1))


def test_token_resumes_exactly_after_the_last_change(engine: Engine) -> None:
    """A JSON round-tripped token resumes right after the last change handed out."""
    stream = at_latest(engine, Item)
    item = Item(id=uuid.uuid4().hex, count=0)
    for n in range(6):
        item.count = n
        engine.save(item)
    first = drain(stream, 3)
    token = json.loads(json.dumps(stream.token))
    resumed = engine.stream(Item, token)
    rest = drain(resumed, 3)
    assert [c.new.count for c in first + rest] == list(range(6))
    assert next(resumed) is None


def test_change_received_signal_has_the_model_as_sender(engine: Engine) -> None:
    """change_received is sent for each change with sender = the model class."""
    got: list[Change] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        assert sender is Item
        got.append(kwargs["change"])

    stream = at_latest(engine, Item)
    engine.save(Item(id=uuid.uuid4().hex, label="x"))
    signals.change_received.connect(receiver, sender=Item, weak=False)
    try:
        changes = drain(stream, 1)
    finally:
        signals.change_received.disconnect(receiver, sender=Item)
    assert got == changes


def test_foreign_record_is_reported_not_dropped(engine: Engine) -> None:
    """A record another program wrote that does not fit the model raises, then reading goes on."""
    stream = at_latest(engine, Item)
    bad_id, good_id = uuid.uuid4().hex, uuid.uuid4().hex
    engine.transport.call(
        "dynamodb",
        "PutItem",
        {
            "TableName": engine.table_name(Item),
            "Item": {"id": {"S": bad_id}, "count": {"S": "not a number"}},
        },
    )
    engine.save(Item(id=good_id, count=1))
    deadline = time.monotonic() + 20
    error = None
    while error is None and time.monotonic() < deadline:
        try:
            next(stream)
        except UndecodableRecordError as raised:
            error = raised
    assert error is not None and error.record["dynamodb"]["Keys"]["id"] == {"S": bad_id}
    (good,) = drain(stream, 1)
    assert good.key == {"id": good_id}


def test_order_per_item_over_ten_thousand_changes(engine: Engine) -> None:
    """10,000 changes over 100 items come back through the reader in write order per item."""
    stream = at_latest(engine, Item)
    ids = [uuid.uuid4().hex for _ in range(100)]
    table = engine.table_name(Item)
    for n in range(1, 101):
        # 100 puts per round as 4 BatchWriteItem calls, so the test spends its time reading.
        for start in range(0, 100, 25):
            requests = [
                {"PutRequest": {"Item": {"id": {"S": i}, "count": {"N": str(n)}}}}
                for i in ids[start : start + 25]
            ]
            response = engine.transport.call(
                "dynamodb", "BatchWriteItem", {"RequestItems": {table: requests}}
            )
            assert not response.get("UnprocessedItems")
    changes = drain(stream, 10_000, timeout=120)
    assert len(changes) == 10_000
    counts: dict[str, list[int]] = {i: [] for i in ids}
    for change in changes:
        counts[change.key["id"]].append(change.new.count)
    assert all(values == list(range(1, 101)) for values in counts.values())


def test_tail_prints_changes_as_json_lines(
    local_endpoint: str, table_template: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`streamodel tail MODULE:MODEL --from trim_horizon --count N` prints N JSON changes."""
    from streamodel.cli import main as cli_main

    # A table of its own (the CLI reads the stream from its start, and the module's
    # tests run once per transport).
    table_template = table_template.replace("{table_name}", uuid.uuid4().hex[:8] + "{table_name}")
    engine = Engine(endpoint_url=local_endpoint, table_name_template=table_template)
    engine.bind(Tailed)
    first, second = Tailed(id=uuid.uuid4().hex, count=7), Tailed(id=uuid.uuid4().hex, count=8)
    engine.save(first, second)
    code = cli_main(
        [
            "tail",
            f"{__name__}:Tailed",
            "--from",
            "trim_horizon",
            "--count",
            "2",
            "--table-name-template",
            table_template,
        ]
    )
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["event"], line["key"], line["new"]["count"]) for line in lines] == [
        ("insert", {"id": first.id}, 7),
        ("insert", {"id": second.id}, 8),
    ]
