"""condition.evaluate(): DynamoDB's decisions, reproduced in Python (values observed on
DynamoDB Local), and conditions DynamoDB would refuse, refused when built."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streamodel import (
    JSON,
    Binary,
    Column,
    Integer,
    InvalidConditionError,
    List,
    Map,
    Number,
    Set,
    String,
    new_base,
)
from streamodel.evaluate import evaluate

Base = new_base()


class Item(Base):
    id = Column(String, hash_key=True)
    n = Column(Integer)
    m = Column(Number)
    s = Column(String)
    e = Column(String)
    b = Column(Binary)
    tags = Column(Set(Integer))
    nums = Column(List(Integer))
    addr = Column(Map(k=Integer, city=String))
    doc = Column(JSON)
    gone = Column(Integer)


ITEM = Item(
    id="a",
    n=5,
    m=5,
    s="héllo",
    e="😀",
    b=b"\xff\x00",
    tags={1, 2},
    nums=[1, 7],
    addr={"k": 1},
    doc={"x": [1, "y"]},
)

CASES: list[tuple[Callable[[], Any], bool]] = [
    (lambda: Item.gone != 1, True),
    (lambda: Item.gone == 1, False),
    (lambda: ~(Item.gone < 1), True),
    (lambda: Item.gone < 1, False),
    (lambda: Item.n == Item.m, True),
    (lambda: Item.n < Item.s, False),
    (lambda: Item.n != Item.s, True),
    (lambda: Item.s.size() == 5, True),
    (lambda: Item.e.size() == 2, True),  # UTF-16 code units
    (lambda: Item.doc["nope"].size() != 0, True),
    (lambda: Item.e < "\uffff", False),  # strings order by UTF-8 bytes
    (lambda: Item.s < "\uffff", True),
    (lambda: Item.b < b"\x00", False),
    (lambda: Item.b.between(b"\x00", b"\xff"), False),
    (lambda: Item.b.begins_with(b"\xff"), True),
    (lambda: Item.b.contains(b"\x00"), True),
    (lambda: Item.nums.contains(7), True),
    (lambda: Item.tags.contains(2), True),
    (lambda: Item.s.contains("éll"), True),
    (lambda: Item.s.begins_with(""), True),
    (lambda: Item.doc["x"][1] == "y", True),
    (lambda: Item.doc["x"][5].exists(), False),
    (lambda: Item.doc["x"]["no"].not_exists(), True),
    (lambda: Item.addr["k"] == 1, True),
    (lambda: Item.addr == {"k": 1}, True),
    (lambda: Item.tags == {2, 1}, True),
    (lambda: Item.n.in_(4, 5), True),
    (lambda: Item.gone.in_(1), False),
    (lambda: Item.n.attribute_type("N"), True),
    (lambda: Item.gone.attribute_type("N"), False),
    (lambda: Item.doc["x"][0].size() == Item.n, False),
    (lambda: Item.doc.size() == 1, True),
    (lambda: Item.n.between(Item.m, 1), False),
    (lambda: (Item.n > 1) & (Item.s.exists() | (Item.n == 0)), True),
]


@pytest.mark.parametrize(("build", "expected"), CASES)
def test_evaluate_matches_dynamodb(build: Callable[[], Any], expected: bool) -> None:
    """Each condition evaluates on the item as DynamoDB Local decided it."""
    assert build().evaluate(ITEM) is expected


def test_evaluate_mapping_and_raw_item() -> None:
    """evaluate() takes a mapping of column names to values; evaluate(cond, item) a raw
    stored item; both agree with evaluate(obj)."""
    condition = (Item.n >= 5) & Item.s.begins_with("h")
    assert condition.evaluate({"n": 5, "s": "hey"}) is True
    assert condition.evaluate({"n": 4, "s": "hey"}) is False
    assert evaluate(condition, {"n": {"N": "5.0"}, "s": {"S": "h"}}) is True
    assert evaluate(condition, None) is False
    with pytest.raises(InvalidConditionError, match="not columns"):
        condition.evaluate({"nope": 1})


@pytest.mark.parametrize(
    "build",
    [
        lambda: Item.s.between("z", "a"),
        lambda: Item.addr < {"k": 1},
        lambda: Item.doc > [1],
        lambda: Item.nums.between([1], [2]),
        lambda: Item.n.size(),
    ],
)
def test_conditions_dynamodb_refuses_are_refused_when_built(build: Callable[[], Any]) -> None:
    """BETWEEN with bounds reversed, ordering of maps, lists or sets, and size() of a
    number raise InvalidConditionError at once (DynamoDB would refuse the request)."""
    with pytest.raises(InvalidConditionError):
        build()


@pytest.mark.parametrize(
    "build",
    [
        lambda: Item.n == Item.n,
        lambda: Item.s.size() < Item.s.size(),
        lambda: Item.n.between(Item.n, 3),
        lambda: Item.n.in_(1, Item.n),
    ],
)
def test_comparing_a_path_with_itself_is_refused(build: Callable[[], Any]) -> None:
    """DynamoDB refuses an operator whose first operand reappears (found by Hypothesis)."""
    with pytest.raises(InvalidConditionError, match="with itself"):
        build()
