"""``Model.Schema``: JSON-safe dump and load through marshmallow."""

from __future__ import annotations

import datetime
import decimal
import enum
import json
import uuid

import marshmallow
import pytest
from marshmallow import fields

import streamodel
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
    List,
    Map,
    Number,
    Set,
    String,
    Timestamp,
    new_base,
)


class Color(enum.Enum):
    RED = 1
    BLUE = 2


Base = new_base()


class Everything(Base):
    id = Column(UUID, hash_key=True)
    s = Column(String)
    i = Column(Integer)
    n = Column(Number)
    f = Column(Float)
    b = Column(Boolean)
    raw = Column(Binary)
    dt = Column(DateTime)
    ts = Column(Timestamp)
    color = Column(Enum(Color))
    tags = Column(Set(String))
    bins = Column(Set(Binary))
    nums = Column(List(Integer))
    addr = Column(Map(city=String, zip=Integer))
    doc = Column(JSON)
    email = Column(fields.Email())
    unset = Column(String)


VALUES = {
    "id": uuid.UUID(int=1),
    "s": "héllo",
    "i": 10**20,
    "n": decimal.Decimal("1.10"),
    "f": 0.5,
    "b": False,
    "raw": b"\x00\xff",
    "dt": datetime.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=datetime.UTC),
    "ts": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
    "color": Color.BLUE,
    "tags": {"b", "a"},
    "bins": {b"x"},
    "nums": [1, 2],
    "addr": {"city": "Rome", "zip": 100},
    "doc": {"a": [1, "x", None]},
    "email": "x@example.com",
}


def test_schema_is_marshmallow_schema() -> None:
    """Model.Schema is a marshmallow.Schema subclass with one field per column."""
    assert issubclass(Everything.Schema, marshmallow.Schema)
    assert set(Everything.Schema().fields) == {c.name for c in Everything.Meta.columns}


def test_dump_is_json_safe() -> None:
    """dump gives a JSON-safe dict for a model holding every type."""
    dumped = Everything.Schema().dump(Everything(**VALUES))
    text = json.dumps(dumped)
    assert json.loads(text) == dumped
    assert dumped["id"] == str(uuid.UUID(int=1))
    assert dumped["n"] == "1.10"
    assert dumped["raw"] == "AP8="
    assert dumped["ts"] == int(VALUES["ts"].timestamp())  # type: ignore[attr-defined]
    assert dumped["color"] == "BLUE"
    assert dumped["tags"] == ["a", "b"]
    assert dumped["unset"] is None


def test_load_returns_equal_model_object() -> None:
    """load of a dump returns a model object whose values equal the original's."""
    schema = Everything.Schema()
    loaded = schema.load(json.loads(json.dumps(schema.dump(Everything(**VALUES)))))
    assert isinstance(loaded, Everything)
    for name, value in VALUES.items():
        assert getattr(loaded, name) == value, name
    assert loaded.unset is None


def test_bad_json_raises_streamodel_validation_error_per_field() -> None:
    """Bad JSON raises streamodel.ValidationError with messages keyed by column name."""
    with pytest.raises(streamodel.ValidationError) as info:
        Everything.Schema().load(
            {"id": "not-a-uuid", "i": "x", "email": "nope", "addr": {"zzz": 1}, "s": "ok"}
        )
    assert isinstance(info.value, marshmallow.ValidationError)
    assert set(info.value.messages) == {"id", "i", "email", "addr"}  # type: ignore[arg-type]


def test_unknown_json_field_refused() -> None:
    """load refuses fields that are not columns."""
    with pytest.raises(streamodel.ValidationError) as info:
        Everything.Schema().load({"id": str(uuid.UUID(int=1)), "bogus": 1})
    assert "bogus" in info.value.messages  # type: ignore[operator]
