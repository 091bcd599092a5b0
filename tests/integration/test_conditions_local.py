"""Every condition operator and update action against DynamoDB Local, on attribute names
that only work through placeholders, and a Hypothesis check that DynamoDB decides random
condition trees exactly as condition.evaluate() does."""

from __future__ import annotations

import decimal
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamodel import (
    JSON,
    Binary,
    Column,
    Engine,
    Integer,
    List,
    Map,
    Number,
    Set,
    String,
    TransactionCanceledError,
    add,
    add_to_set,
    append,
    delete_from_set,
    if_not_exists,
    new_base,
    prepend,
    remove,
)
from streamodel.conditions import Condition

Base = new_base()


class Odd(Base):
    """Names that are reserved words or hold . - # : spaces and non-ASCII characters."""

    pk = Column(String, hash_key=True, name="key.with-dots#and:colons ü")
    sk = Column(Integer, range_key=True, name="size")
    n = Column(Integer, name="count")
    m = Column(Number, name="a.b-c#d:e f ä")
    s = Column(String, name="values")
    t = Column(String, name="name")
    b = Column(Binary, name="data:bin")
    tags = Column(Set(String), name="tag set")
    nums = Column(List(Integer), name="list-of:nums")
    doc = Column(Map(**{"k.ey": Integer, "city name": String, "seen": List(String)}), name="doc#")
    js = Column(JSON, name="json ü")
    touch = Column(Integer, name="#touch")


@pytest.fixture(scope="module", autouse=True)
def bound(engine: Engine) -> None:
    engine.bind(base=Base)


def raw(engine: Engine, obj: Odd) -> dict[str, Any] | None:
    key = {"key.with-dots#and:colons ü": {"S": obj.pk}, "size": {"N": str(obj.sk)}}
    response = engine.transport.call(
        "dynamodb",
        "GetItem",
        {"TableName": engine.table_name(Odd), "Key": key, "ConsistentRead": True},
    )
    return response.get("Item")


def holds(engine: Engine, obj: Odd, condition: Condition) -> bool:
    """DynamoDB's decision, from a transaction's ConditionCheck (it writes nothing)."""
    try:
        with engine.transaction() as tx:
            tx.check(obj, condition)  # type: ignore[union-attr]
    except TransactionCanceledError:
        return False
    return True


def filtered(engine: Engine, obj: Odd, condition: Condition) -> bool:
    """DynamoDB's decision, from a query on the item's partition filtered by ``condition``."""
    query = engine.query(Odd).key((Odd.pk == obj.pk) & (Odd.sk == obj.sk)).consistent()
    return query.filter(condition).first() is not None


SAMPLE = {
    "n": 5,
    "m": decimal.Decimal("2.5"),
    "s": "héllo",
    "t": "world",
    "b": b"\x00\xff",
    "tags": {"a", "b"},
    "nums": [1, 2, 3],
    "doc": {"k.ey": 7, "city name": "Berlin", "seen": ["x"]},
    "js": {"a": [1, "two", None], "b": {"c": True}},
}

OPERATORS: list[tuple[str, Callable[[], Condition]]] = [
    ("eq", lambda: Odd.n == 5),
    ("ne", lambda: Odd.n != 4),
    ("lt", lambda: Odd.m < 3),
    ("le", lambda: Odd.s <= "i"),
    ("gt", lambda: Odd.b > b"\x00"),
    ("ge", lambda: Odd.n >= 5),
    ("between", lambda: Odd.m.between(1, 2.5)),
    ("in", lambda: Odd.t.in_("x", "world")),
    ("begins_with", lambda: Odd.s.begins_with("hé")),
    ("begins_with bytes", lambda: Odd.b.begins_with(b"\x00")),
    ("contains string", lambda: Odd.s.contains("ll")),
    ("contains set", lambda: Odd.tags.contains("a")),
    ("contains list", lambda: Odd.nums.contains(2)),
    ("exists", lambda: Odd.doc["city name"].exists()),
    ("not_exists", lambda: Odd.touch.not_exists()),
    ("is None", lambda: Odd.touch.is_(None)),
    ("attribute_type", lambda: Odd.js["a"].attribute_type("L")),
    ("size", lambda: Odd.tags.size() == 2),
    ("size of path", lambda: Odd.doc["seen"].size() < Odd.n),
    ("column vs column", lambda: Odd.s < Odd.t),
    ("nested map key", lambda: Odd.doc["k.ey"] == 7),
    ("nested list index", lambda: Odd.nums[2] == 3),
    ("json path", lambda: Odd.js["b"]["c"] == True),  # noqa: E712
    ("json list element", lambda: Odd.js["a"][1] == "two"),
    ("and", lambda: (Odd.n == 5) & (Odd.t == "world")),
    ("or", lambda: (Odd.n == 4) | (Odd.t == "world")),
    ("not", lambda: ~(Odd.n == 4)),
]


@pytest.fixture(scope="module")
def sample(engine: Engine) -> Odd:
    obj = Odd(pk=uuid.uuid4().hex, sk=1, **SAMPLE)
    engine.save(obj)
    return obj


@pytest.mark.parametrize(("case", "build"), OPERATORS, ids=[c for c, _ in OPERATORS])
def test_every_operator_on_odd_names(
    engine: Engine, sample: Odd, case: str, build: Callable[[], Condition]
) -> None:
    """Each operator holds on the sample item in DynamoDB, in Python, and its negation
    fails in all three (conditional check, filtered query, evaluate)."""
    condition = build()
    assert condition.evaluate(sample) is True
    assert holds(engine, sample, condition) is True
    assert filtered(engine, sample, condition) is True
    assert (~condition).evaluate(sample) is False
    assert holds(engine, sample, ~condition) is False


def test_every_update_action_on_odd_names(engine: Engine) -> None:
    """Counters, set add/delete, append/prepend, if_not_exists, nested SET and REMOVE all
    reach the stored item, and the object reads back what DynamoDB computed."""
    obj = Odd(pk=uuid.uuid4().hex, sk=2, **SAMPLE)
    engine.save(obj)
    obj.n = add(10)
    obj.tags = add_to_set("c")
    obj.nums = prepend(0)
    obj.t = if_not_exists("ignored")
    obj.touch = if_not_exists(1)
    engine.save(obj)
    assert (obj.n, obj.tags, obj.nums, obj.t, obj.touch) == (
        15,
        {"a", "b", "c"},
        [0, 1, 2, 3],
        "world",
        1,
    )
    engine.save(
        obj,
        actions={
            Odd.doc["k.ey"]: add(-2),
            Odd.doc["seen"]: append("y", "z"),
            Odd.doc["city name"]: remove(),
            Odd.js["b"]["d"]: [1],
            Odd.js["a"][0]: remove(),
            Odd.tags: delete_from_set("a", "b", "c"),
            Odd.m: None,
        },
    )
    stored = raw(engine, obj)
    assert stored is not None
    assert stored["doc#"] == {"M": {"k.ey": {"N": "5"}, "seen": {"L": [{"S": s} for s in "xyz"]}}}
    assert stored["json ü"]["M"]["a"] == {"L": [{"S": "two"}, {"NULL": True}]}
    assert stored["json ü"]["M"]["b"]["M"]["d"] == {"L": [{"N": "1"}]}
    assert "tag set" not in stored and "a.b-c#d:e f ä" not in stored
    assert obj.doc == {"k.ey": 5, "seen": ["x", "y", "z"]}
    assert obj.tags is None and obj.m is None
    same = Odd(pk=obj.pk, sk=obj.sk)
    engine.load(same, consistent=True)
    assert Odd.Schema().dump(same) == Odd.Schema().dump(obj)


# -- random condition trees --------------------------------------------------------------
small_text = st.text(alphabet="aé😀b", max_size=3)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "n": st.integers(-3, 3),
    "m": st.decimals(-3, 3, places=1),
    "s": small_text,
    "t": small_text,
    "b": st.binary(max_size=3),
    "tags": st.sets(small_text, min_size=1, max_size=3),
    "nums": st.lists(st.integers(-2, 2), max_size=3),
    "doc": st.fixed_dictionaries(
        {}, optional={"k.ey": st.integers(-2, 2), "city name": small_text}
    ),
    "js": st.recursive(
        st.none() | st.booleans() | st.integers(-2, 2) | small_text,
        lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("ab"), inner),
        max_leaves=4,
    ),
}
items = st.fixed_dictionaries({}, optional=VALUES)
ORDERED = {"n": "n", "m": "n", "s": "s", "t": "s", "b": "b"}


@st.composite
def leaves(draw: st.DrawFn) -> Condition:
    name = draw(st.sampled_from(sorted(VALUES)))
    column = getattr(Odd, name)
    kind = draw(st.sampled_from(["cmp", "between", "in", "exists", "size", "func", "path"]))
    if kind == "exists":
        return column.exists() if draw(st.booleans()) else column.not_exists()
    if kind == "size" and name not in ("n", "m"):
        sizes = [Odd.n] + ([Odd.nums.size()] if name != "nums" else [])
        other = draw(st.integers(0, 3) | st.sampled_from(sizes))
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        return _apply(column.size(), op, other)
    if kind == "path":
        path = draw(
            st.sampled_from(
                [Odd.doc["k.ey"], Odd.nums[0], Odd.js["a"], Odd.js[0], Odd.doc["city name"]]
            )
        )
        choice = draw(st.sampled_from(["exists", "type", "eq"]))
        if choice == "exists":
            return path.exists()
        if choice == "type":
            return path.attribute_type(draw(st.sampled_from(["S", "N", "L", "M", "NULL"])))
        typ = path.type
        if isinstance(typ, Integer):
            return path == draw(st.integers(-2, 2))
        if isinstance(typ, String):
            return path == draw(small_text)
        return path == draw(st.integers(-2, 2) | small_text)
    if kind == "func":
        if name in ("s", "t"):
            fn = draw(st.sampled_from(["begins_with", "contains"]))
            return getattr(column, fn)(draw(small_text))
        if name == "b":
            return column.begins_with(draw(st.binary(max_size=2)))
        if name in ("tags", "nums"):
            inner = small_text if name == "tags" else st.integers(-2, 2)
            return column.contains(draw(inner))
        if name == "js":
            return column.attribute_type(draw(st.sampled_from(["S", "N", "L", "M", "BOOL"])))
    if name in ORDERED:
        same = [c for c, t in ORDERED.items() if t == ORDERED[name]]
        others = [getattr(Odd, c) for c in same if c != name]
        operand = draw(VALUES[name] | st.sampled_from(others) if others else VALUES[name])
        if kind == "between" and not isinstance(operand, Column):
            low, high = sorted([draw(VALUES[name]), draw(VALUES[name])], key=_order_key)
            return column.between(low, high)
        if kind == "in":
            return column.in_(draw(st.lists(VALUES[name], min_size=1, max_size=3)))
        op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="]))
        return _apply(column, op, operand)
    value = draw(VALUES[name])
    if name == "tags" or value in (None, [], {}):
        return column.exists()
    return column == value if draw(st.booleans()) else column != value


def _order_key(value: Any) -> Any:
    return value.encode("utf-8") if isinstance(value, str) else value


def _apply(left: Any, op: str, right: Any) -> Condition:
    import operator

    ops = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le}
    ops.update({">": operator.gt, ">=": operator.ge})
    result: Condition = ops[op](left, right)
    return result


conditions = st.recursive(
    leaves(),
    lambda inner: st.one_of(
        st.builds(lambda a, b: a & b, inner, inner),
        st.builds(lambda a, b: a | b, inner, inner),
        st.builds(lambda a: ~a, inner),
    ),
    max_leaves=5,
)


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(values=items, condition=conditions)
def test_dynamodb_decides_as_evaluate_says(
    engine: Engine, values: dict[str, Any], condition: Condition
) -> None:
    """A random item and a random condition tree: DynamoDB Local accepts the rendered
    expression, and its conditional check and filtered query both decide as evaluate()."""
    obj = Odd(pk=uuid.uuid4().hex, sk=3, **values)
    engine.save(obj)
    expected = condition.evaluate(obj)
    assert holds(engine, obj, condition) is expected
    assert filtered(engine, obj, condition) is expected
