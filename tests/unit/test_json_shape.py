"""The one conversion between DynamoDB's JSON shapes and botocore's."""

from __future__ import annotations

import datetime

import pytest

from streamodel.transport.json_shape import item_from_json, to_json_shape

ITEM = {
    "b": {"B": b"\x00\xff"},
    "bs": {"BS": [b"a", b"b"]},
    "m": {"M": {"inner": {"L": [{"B": b"x"}, {"N": "1"}, {"NULL": True}]}}},
    "s": {"S": "text"},
}


def test_items_round_trip_through_json() -> None:
    """Binary values become base64 text and come back as bytes, nested ones included."""
    as_json = to_json_shape(ITEM)
    assert as_json["b"] == {"B": "AP8="} and as_json["m"]["M"]["inner"]["L"][0] == {"B": "eA=="}
    assert item_from_json(as_json) == ITEM
    assert item_from_json(ITEM) == ITEM  # already botocore-shaped: unchanged


def test_times_become_epoch_seconds() -> None:
    """Aware datetimes become epoch seconds, as Lambda's events carry them."""
    moment = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    assert to_json_shape({"at": moment}) == {"at": 1767225600.0}


def test_a_binary_that_is_not_base64_text_is_refused() -> None:
    """A B value that is neither bytes nor text raises, instead of passing through."""
    with pytest.raises(TypeError):
        item_from_json({"b": {"B": 1}})
