"""Conditions and the renderer: golden expressions, placeholders and refusals."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from meaning import meaning

from streamodel import (
    JSON,
    Binary,
    Column,
    Integer,
    InvalidConditionError,
    List,
    Map,
    Set,
    String,
    new_base,
)
from streamodel._render import Renderer, update_expression

Base = new_base()


class Item(Base):
    id = Column(String, hash_key=True)
    n = Column(Integer)
    m = Column(Integer)
    s = Column(String)
    tags = Column(Set(String))
    nums = Column(List(Integer))
    addr = Column(Map(city=String, zip=Integer, lines=List(String)))
    doc = Column(JSON)
    blob = Column(Binary)
    reserved = Column(String, name="size")
    dotted = Column(String, name="a.b")
    dashed = Column(String, name="x-y")
    hashed = Column(String, name="#h")
    colon = Column(String, name=":c")
    spaced = Column(String, name="with space")
    accented = Column(String, name="café")


Render = Callable[[Any], tuple[str, dict[str, Any]]]

GOLDEN: list[tuple[str, Callable[[], Any], str, dict[str, str], dict[str, Any]]] = [
    ("eq", lambda: Item.n == 1, "#n0 = :v0", {"#n0": "n"}, {":v0": {"N": "1"}}),
    ("ne", lambda: Item.n != 1, "#n0 <> :v0", {"#n0": "n"}, {":v0": {"N": "1"}}),
    ("lt", lambda: Item.n < 1, "#n0 < :v0", {"#n0": "n"}, {":v0": {"N": "1"}}),
    ("le", lambda: Item.n <= 1, "#n0 <= :v0", {"#n0": "n"}, {":v0": {"N": "1"}}),
    ("gt", lambda: Item.n > 1, "#n0 > :v0", {"#n0": "n"}, {":v0": {"N": "1"}}),
    ("ge", lambda: Item.n >= 1, "#n0 >= :v0", {"#n0": "n"}, {":v0": {"N": "1"}}),
    ("eq None", lambda: Item.s == None, "attribute_not_exists(#n0)", {"#n0": "s"}, {}),  # noqa: E711
    ("ne None", lambda: Item.s != None, "attribute_exists(#n0)", {"#n0": "s"}, {}),  # noqa: E711
    ("is_ None", lambda: Item.s.is_(None), "attribute_not_exists(#n0)", {"#n0": "s"}, {}),
    ("is_not None", lambda: Item.s.is_not(None), "attribute_exists(#n0)", {"#n0": "s"}, {}),
    ("is_ value", lambda: Item.s.is_("x"), "#n0 = :v0", {"#n0": "s"}, {":v0": {"S": "x"}}),
    ("is_not value", lambda: Item.s.is_not("x"), "#n0 <> :v0", {"#n0": "s"}, {":v0": {"S": "x"}}),
    (
        "begins_with",
        lambda: Item.s.begins_with("ab"),
        "begins_with(#n0, :v0)",
        {"#n0": "s"},
        {":v0": {"S": "ab"}},
    ),
    (
        "begins_with bytes",
        lambda: Item.blob.begins_with(b"\x00"),
        "begins_with(#n0, :v0)",
        {"#n0": "blob"},
        {":v0": {"B": b"\x00"}},
    ),
    (
        "between",
        lambda: Item.n.between(1, 5),
        "#n0 BETWEEN :v0 AND :v1",
        {"#n0": "n"},
        {":v0": {"N": "1"}, ":v1": {"N": "5"}},
    ),
    (
        "contains string",
        lambda: Item.s.contains("x"),
        "contains(#n0, :v0)",
        {"#n0": "s"},
        {":v0": {"S": "x"}},
    ),
    (
        "contains set element",
        lambda: Item.tags.contains("red"),
        "contains(#n0, :v0)",
        {"#n0": "tags"},
        {":v0": {"S": "red"}},
    ),
    (
        "contains list element",
        lambda: Item.nums.contains(3),
        "contains(#n0, :v0)",
        {"#n0": "nums"},
        {":v0": {"N": "3"}},
    ),
    (
        "in_",
        lambda: Item.n.in_(1, 2, 3),
        "#n0 IN (:v0, :v1, :v2)",
        {"#n0": "n"},
        {":v0": {"N": "1"}, ":v1": {"N": "2"}, ":v2": {"N": "3"}},
    ),
    (
        "in_ list",
        lambda: Item.s.in_(["a"]),
        "#n0 IN (:v0)",
        {"#n0": "s"},
        {":v0": {"S": "a"}},
    ),
    (
        "attribute_type",
        lambda: Item.doc.attribute_type("M"),
        "attribute_type(#n0, :v0)",
        {"#n0": "doc"},
        {":v0": {"S": "M"}},
    ),
    (
        "size",
        lambda: Item.tags.size() > 2,
        "size(#n0) > :v0",
        {"#n0": "tags"},
        {":v0": {"N": "2"}},
    ),
    (
        "size between",
        lambda: Item.s.size().between(1, 3),
        "size(#n0) BETWEEN :v0 AND :v1",
        {"#n0": "s"},
        {":v0": {"N": "1"}, ":v1": {"N": "3"}},
    ),
    (
        "size vs column",
        lambda: Item.s.size() <= Item.n,
        "size(#n0) <= #n1",
        {"#n0": "s", "#n1": "n"},
        {},
    ),
    ("column vs column", lambda: Item.n < Item.m, "#n0 < #n1", {"#n0": "n", "#n1": "m"}, {}),
    (
        "map path",
        lambda: Item.addr["city"] == "Berlin",
        "#n0.#n1 = :v0",
        {"#n0": "addr", "#n1": "city"},
        {":v0": {"S": "Berlin"}},
    ),
    (
        "map then list path",
        lambda: Item.addr["lines"][1].begins_with("Apt"),
        "begins_with(#n0.#n1[1], :v0)",
        {"#n0": "addr", "#n1": "lines"},
        {":v0": {"S": "Apt"}},
    ),
    (
        "list path",
        lambda: Item.nums[0] >= 10,
        "#n0[0] >= :v0",
        {"#n0": "nums"},
        {":v0": {"N": "10"}},
    ),
    (
        "json path",
        lambda: Item.doc["a"]["b"][2] == {"k": [1]},
        "#n0.#n1.#n2[2] = :v0",
        {"#n0": "doc", "#n1": "a", "#n2": "b"},
        {":v0": {"M": {"k": {"L": [{"N": "1"}]}}}},
    ),
    (
        "and",
        lambda: (Item.n == 1) & (Item.s == "x"),
        "(#n0 = :v0) AND (#n1 = :v1)",
        {"#n0": "n", "#n1": "s"},
        {":v0": {"N": "1"}, ":v1": {"S": "x"}},
    ),
    (
        "or",
        lambda: (Item.n == 1) | Item.s.is_(None),
        "(#n0 = :v0) OR (attribute_not_exists(#n1))",
        {"#n0": "n", "#n1": "s"},
        {":v0": {"N": "1"}},
    ),
    ("not", lambda: ~(Item.n == 1), "NOT (#n0 = :v0)", {"#n0": "n"}, {":v0": {"N": "1"}}),
    (
        "and flattened, names de-duplicated",
        lambda: (Item.n > 1) & (Item.n < 5) & (Item.s == "x"),
        "(#n0 > :v0) AND (#n0 < :v1) AND (#n1 = :v2)",
        {"#n0": "n", "#n1": "s"},
        {":v0": {"N": "1"}, ":v1": {"N": "5"}, ":v2": {"S": "x"}},
    ),
    (
        "or flattened, nested and kept",
        lambda: (Item.n == 1) | ((Item.n == 2) & (Item.m == 3)) | (Item.m == 4),
        "(#n0 = :v0) OR ((#n0 = :v1) AND (#n1 = :v2)) OR (#n1 = :v3)",
        {"#n0": "n", "#n1": "m"},
        {":v0": {"N": "1"}, ":v1": {"N": "2"}, ":v2": {"N": "3"}, ":v3": {"N": "4"}},
    ),
]


@pytest.mark.parametrize(
    ("case", "build", "expression", "names", "values"), GOLDEN, ids=[g[0] for g in GOLDEN]
)
def test_golden_rendering(
    render: Render,
    case: str,
    build: Callable[[], Any],
    expression: str,
    names: dict[str, str],
    values: dict[str, Any],
) -> None:
    """Each operator renders to an expression that means the one written here: the same
    attributes compared with the same values in the same way, every placeholder used
    (placeholder numbering is spelling, not meaning)."""
    text, params = render(build())
    expected = {"ConditionExpression": expression}
    if names:
        expected["ExpressionAttributeNames"] = names
    if values:
        expected["ExpressionAttributeValues"] = values
    assert meaning({"ConditionExpression": text, **params}) == meaning(expected)


def test_rendering_is_deterministic(render: Render) -> None:
    """Rendering the same condition twice gives identical text and placeholders."""
    condition = (Item.addr["city"] == "x") & Item.tags.contains("a") | ~(Item.n.in_(1, 2))
    assert render(condition) == render(condition)


@pytest.mark.parametrize(
    "column", ["reserved", "dotted", "dashed", "hashed", "colon", "spaced", "accented"]
)
def test_awkward_names_go_through_placeholders(render: Render, column: str) -> None:
    """Reserved words and names with . - # : spaces or non-ASCII render as #n placeholders."""
    col = getattr(Item, col_name := column)
    text, params = render(col == "v")
    assert col.dynamo_name not in text  # only its placeholder is
    assert list(params["ExpressionAttributeNames"].values()) == [col.dynamo_name]
    assert meaning({"ConditionExpression": text, **params}) == {
        "ConditionExpression": meaning(
            {
                "ConditionExpression": "#a = :v",
                "ExpressionAttributeNames": {"#a": col.dynamo_name},
                "ExpressionAttributeValues": {":v": {"S": "v"}},
            }
        )["ConditionExpression"]
    }
    assert col_name != col.dynamo_name


def test_names_shared_across_expressions_of_one_request(placeholders_used: Any) -> None:
    """One renderer shares names across expressions and declares only what was rendered."""
    r = Renderer()
    update = update_expression(r, set_=[(r.path("n"), r.value({"N": "2"}))], remove=[r.path("s")])
    condition = r.condition(Item.n == 1)
    assert update == "SET #n0=:v0 REMOVE #n1"
    assert condition == "#n0 = :v1"
    params = r.params()
    assert params["ExpressionAttributeNames"] == {"#n0": "n", "#n1": "s"}
    placeholders_used(f"{update} {condition}", params)


def test_empty_renderer_declares_nothing() -> None:
    """A renderer that rendered nothing declares no placeholders at all."""
    assert Renderer().params() == {}


def test_projection_rendering() -> None:
    """A projection renders names through placeholders, de-duplicated."""
    r = Renderer()
    assert r.projection(["id", "size", "id"]) == "#n0, #n1, #n0"
    assert r.params() == {"ExpressionAttributeNames": {"#n0": "id", "#n1": "size"}}


def test_in_refuses_more_than_100_values_and_none() -> None:
    """in_() takes 1 to 100 values."""
    assert len(Item.n.in_(*range(100)).values) == 100
    with pytest.raises(InvalidConditionError, match="at most 100"):
        Item.n.in_(*range(101))
    with pytest.raises(InvalidConditionError, match="at least one"):
        Item.n.in_()


@pytest.mark.parametrize(
    "build",
    [
        lambda: Item.n == "not a number",
        lambda: Item.n < 1.5,
        lambda: Item.s.between(1, 2),
        lambda: Item.n.in_(1, "x"),
        lambda: Item.tags.contains(5),
        lambda: Item.addr["zip"] == "x",
        lambda: Item.nums[0] == "x",
        lambda: Item.doc == {1: 2},
    ],
)
def test_bad_values_raise_invalid_condition_naming_column(build: Callable[[], Any]) -> None:
    """A value the column's type refuses raises InvalidConditionError naming the column."""
    with pytest.raises(InvalidConditionError, match=r"Item\.(n|s|tags|addr|nums|doc)"):
        build()


def test_empty_set_comparison_refused() -> None:
    """Comparing with an empty set is refused with a hint to use is_(None)."""
    with pytest.raises(InvalidConditionError, match=r"is_\(None\)"):
        Item.tags == set()  # noqa: B015


def test_condition_has_no_truth_value() -> None:
    """bool(condition) raises TypeError, so and/or/not cannot silently drop a part."""
    with pytest.raises(TypeError, match="no truth value"):
        bool(Item.n == 1)
    with pytest.raises(TypeError):
        _ = (Item.n == 1) and (Item.s == "x")


def test_combining_with_non_condition_refused() -> None:
    """& and | refuse operands that are not conditions."""
    with pytest.raises(InvalidConditionError):
        (Item.n == 1) & True  # type: ignore[operator]


@pytest.mark.parametrize(
    "build",
    [
        lambda: Item.addr["country"],
        lambda: Item.addr[0],
        lambda: Item.nums["x"],
        lambda: Item.nums[-1],
        lambda: Item.s["x"],
        lambda: Item.n[0],
    ],
)
def test_bad_paths_refused(build: Callable[[], Any]) -> None:
    """Unknown map keys, wrong index kinds and paths into scalars are refused."""
    with pytest.raises(InvalidConditionError):
        build()


def test_bad_attribute_type_and_size_operand_refused() -> None:
    """attribute_type takes a DynamoDB type tag; size() compares with ints or paths."""
    with pytest.raises(InvalidConditionError):
        Item.doc.attribute_type("STRING")
    with pytest.raises(InvalidConditionError):
        Item.s.size() == "3"  # noqa: B015
    with pytest.raises(InvalidConditionError):
        Item.s.begins_with(3)  # type: ignore[arg-type]


def test_paths_lists_every_column_read() -> None:
    """condition.paths() lists every column a condition reads, through & | ~ and size()."""
    condition = ~((Item.n == Item.m) | (Item.s.size() > 1)) & Item.tags.contains("x")
    assert [p.column for p in condition.paths()] == [Item.n, Item.m, Item.s, Item.tags]
