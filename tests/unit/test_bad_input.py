"""The bad-input table: each bad input to the public API, the clear error it gets, and proof
that nothing was sent to DynamoDB (the fake transport recorded no write)."""

from __future__ import annotations

import datetime
import decimal
import math
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from streamodel import (
    JSON,
    UUID,
    Binary,
    Boolean,
    Column,
    DateTime,
    Enum,
    Float,
    Integer,
    InvalidConditionError,
    InvalidModelError,
    List,
    Map,
    Number,
    Set,
    String,
    Timestamp,
    ValidationError,
    new_base,
)
from streamodel.cli import main as cli_main
from streamodel.exceptions import InvalidPositionError
from streamodel.stream.records import UndecodableRecordError, decode_record
from streamodel.types import SampleColor

Base = new_base()


class Everything(Base):
    id = Column(String, hash_key=True)
    string = Column(String)
    integer = Column(Integer)
    number = Column(Number)
    float_ = Column(Float)
    boolean = Column(Boolean)
    binary = Column(Binary)
    uuid_ = Column(UUID)
    datetime_ = Column(DateTime)
    timestamp = Column(Timestamp)
    enum = Column(Enum(SampleColor))
    strings = Column(Set(String))
    integers = Column(Set(Integer))
    list_ = Column(List(Integer))
    map_ = Column(Map(a=String, b=Integer))
    json = Column(JSON)


class Other(Base):
    id = Column(String, hash_key=True)
    x = Column(Integer)


class Event(Base):
    id = Column(String, hash_key=True)
    amount = Column(Integer)


NAIVE = datetime.datetime(2024, 1, 1)

# (column, bad value): a value of the wrong type for every column type, and the values each
# type must refuse on its own (naive datetimes, NaN, mixed sets, ...).
BAD_VALUES: list[tuple[str, Any]] = [
    ("string", 12),
    ("integer", "twelve"),
    ("integer", 1.5),
    ("integer", True),
    ("number", "lots"),
    ("number", decimal.Decimal("NaN")),
    ("float_", "1.0"),
    ("float_", math.nan),
    ("float_", math.inf),
    ("boolean", "yes"),
    ("binary", 3),
    ("uuid_", 3.5),
    ("datetime_", "2024-01-01"),
    ("datetime_", NAIVE),
    ("timestamp", NAIVE),
    ("enum", "purple"),
    ("strings", {"a", 1}),
    ("strings", {"a", None}),
    ("integers", {1, "two"}),
    ("list_", [1, "x"]),
    ("map_", {"a": 1}),
    ("map_", {"unknown": "x"}),
    ("json", {"a": object()}),
    ("json", {"a": math.nan}),
]


@pytest.mark.parametrize(("column", "value"), BAD_VALUES, ids=[f"{c}={v!r}" for c, v in BAD_VALUES])
def test_bad_value_is_refused_naming_its_column(
    engine: Any, transport: Any, column: str, value: Any
) -> None:
    """A bad value for any column type raises ValidationError naming that column, and nothing
    is sent."""
    obj = Everything(id="k")
    setattr(obj, column, value)
    with pytest.raises(ValidationError) as raised:
        engine.save(obj)
    assert column in raised.value.messages
    assert transport.calls == []


def save(obj: Any, **options: Any) -> Callable[[Any], None]:
    return lambda engine: engine.save(obj, **options)


BAD_CALLS: list[tuple[str, Callable[[Any], Any], type[Exception], str]] = [
    ("empty hash key", save(Everything(id="")), ValidationError, "cannot be empty"),
    ("missing hash key", save(Everything(string="x")), ValidationError, "Missing key"),
    (
        "item over 400 KB",
        save(Everything(id="k", string="x" * 410_000)),
        ValidationError,
        "400 KB",
    ),
    (
        "item over 400 KB in a batch",
        lambda engine: engine.save(
            Other(id="a", x=1), Everything(id="k", string="x" * 410_000), replace=True
        ),
        ValidationError,
        "400 KB",
    ),
    (
        "key condition on another model",
        lambda engine: engine.query(Everything).key(Other.id == "a").all(),
        InvalidConditionError,
        "key condition",
    ),
    (
        "expression string as a save condition",
        save(Everything(id="k", string="x"), condition="string = :x"),
        InvalidConditionError,
        r"condition= for Everything must be a condition built from its columns .* str 'string",
    ),
    (
        "dict as a delete condition",
        lambda engine: engine.delete(Everything(id="k"), condition={"string": "x"}),
        InvalidConditionError,
        "condition= for Everything must be a condition",
    ),
    (
        "string in a transaction check",
        lambda engine: _in_transaction(
            engine, lambda tx: tx.check(Everything(id="k"), "attribute_exists(id)")
        ),
        InvalidConditionError,
        "condition= for Everything",
    ),
    (
        "string as a key condition",
        lambda engine: engine.query(Everything).key("id = :k").all(),
        InvalidConditionError,
        "key\\(\\) takes a condition",
    ),
    (
        "malformed query token",
        lambda engine: engine.query(Everything).key(Everything.id == "a").move_to({"bad": 1}),
        InvalidPositionError,
        "not a search token",
    ),
    (
        "query token that is not a dict",
        lambda engine: engine.query(Everything).key(Everything.id == "a").move_to("nonsense"),
        InvalidPositionError,
        "not a search token",
    ),
]


def _in_transaction(engine: Any, body: Callable[[Any], Any]) -> None:
    with engine.transaction() as tx:
        body(tx)


@pytest.mark.parametrize(
    ("case", "call", "error", "text"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS]
)
def test_bad_call_gets_a_clear_error_and_writes_nothing(
    engine: Any,
    transport: Any,
    case: str,
    call: Callable[[Any], Any],
    error: type[Exception],
    text: str,
) -> None:
    """Each bad call raises its streamodel error with a message that says what is wrong, and
    no request of any kind was sent."""
    with pytest.raises(error, match=text):
        call(engine)
    assert transport.calls == []


def test_condition_on_a_column_of_another_model_is_refused(engine: Any, transport: Any) -> None:
    """A condition naming a column of another model is refused before anything is sent."""
    with pytest.raises(InvalidConditionError):
        engine.save(Everything(id="k", string="x"), condition=Other.x == 1)
    assert transport.calls == []


@pytest.mark.parametrize("name", [""])
def test_unusable_attribute_names_are_refused_at_declaration(name: str) -> None:
    """An empty attribute name is refused when the model is declared."""
    with pytest.raises(InvalidModelError):
        type("Bad", (Base,), {"id": Column(String, hash_key=True, name=name)})


def test_reserved_and_exotic_names_only_travel_as_placeholders(engine: Any, transport: Any) -> None:
    """Reserved words and DynamoDB syntax characters as attribute names are sent only as
    #placeholders, never inside the expression text."""
    names = ["size", "a.b", "#x", ":v", "ключ"]
    model = type(
        "Exotic",
        (Base,),
        {
            "id": Column(String, hash_key=True),
            **{f"c{i}": Column(String, name=n) for i, n in enumerate(names)},
        },
    )
    obj = model(id="k", **{f"c{i}": "v" for i in range(len(names))})
    engine.save(obj, condition=model.c1 == "v")
    request = transport.only("UpdateItem")
    text = request["UpdateExpression"] + request["ConditionExpression"]
    for name in names:
        assert name not in text.replace("#", " ").split()
    assert set(request["ExpressionAttributeNames"].values()) >= set(names)


@pytest.mark.parametrize(
    "position",
    [{"garbage": True}, "yesterday", datetime.datetime(2024, 1, 1), {"shards": "x"}],
)
def test_malformed_stream_positions_are_refused(engine: Any, transport: Any, position: Any) -> None:
    """A stream position that is not trim_horizon, latest, an aware datetime or a token is
    refused with InvalidPositionError, and no stream is read."""
    transport.queue(
        "DescribeTable",
        {
            "Table": {
                "TableName": "Event",
                "LatestStreamArn": "arn:aws:dynamodb:us-east-1:1:table/Event/stream/x",
            }
        },
    )
    with pytest.raises(InvalidPositionError):
        engine.stream(Event, position)
    assert [op for op in transport.operations() if op != "DescribeTable"] == []


def test_stream_record_of_another_schema_is_undecodable() -> None:
    """A stream record whose key or values do not fit the model raises
    UndecodableRecordError carrying the raw record (the worker dead-letters it)."""
    record = {
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"id": {"N": "1"}},
            "NewImage": {"id": {"N": "1"}, "amount": {"S": "lots"}},
            "SequenceNumber": "1",
        },
    }
    with pytest.raises(UndecodableRecordError) as raised:
        decode_record(Event, record, shard_id="s", sequence_number="1")
    assert raised.value.record == record and "does not fit Event" in str(raised.value)


@pytest.mark.parametrize("spec", ["json:no_such_worker", "no_such_module_xyz:worker", "json"])
def test_cli_with_a_missing_module_attr_exits_2(
    spec: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`streamodel worker MODULE:ATTR` naming nothing exits with status 2 and says why."""
    assert cli_main(["worker", spec]) == 2
    err = capsys.readouterr().err
    assert "streamodel: error:" in err and spec.split(":")[-1] in err


def test_uuid_for_keys_is_checked_too(engine: Any, transport: Any) -> None:
    """A key of the wrong type is refused like any value."""
    keyed = type("Keyed", (Base,), {"id": Column(UUID, hash_key=True)})
    with pytest.raises(ValidationError):
        engine.save(keyed(id="not-a-uuid"))
    engine.save(keyed(id=uuid.uuid4()))
    assert transport.operations() == ["UpdateItem"]
