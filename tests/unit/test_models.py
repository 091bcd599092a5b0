"""Model declaration: validation errors, inheritance, Meta introspection, defaults, signals."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from streamodel import (
    JSON,
    Binary,
    Boolean,
    Column,
    GlobalSecondaryIndex,
    Integer,
    InvalidModelError,
    List,
    LocalSecondaryIndex,
    Map,
    Number,
    String,
    Timestamp,
    new_base,
    signals,
)
from streamodel.models import BaseModel


def test_new_base_is_fresh_and_abstract() -> None:
    """new_base() returns a new abstract BaseModel subclass each time."""
    a, b = new_base(), new_base()
    assert a is not b
    assert issubclass(a, BaseModel)
    assert a.Meta.abstract is True


def _declare(body: dict[str, Any], meta: dict[str, Any] | None = None) -> type:
    attrs = dict(body)
    if meta is not None:
        attrs["Meta"] = type("Meta", (), meta)
    return type("Thing", (new_base(),), attrs)


BAD_MODELS: list[tuple[str, dict[str, Any], dict[str, Any] | None, str]] = [
    (
        "no hash key",
        {"x": Column(String)},
        None,
        r"Thing needs exactly one hash_key column, found none",
    ),
    (
        "two hash keys",
        {"a": Column(String, hash_key=True), "b": Column(String, hash_key=True)},
        None,
        r"Thing needs exactly one hash_key column, found \['a', 'b'\]",
    ),
    (
        "two range keys",
        {
            "h": Column(String, hash_key=True),
            "a": Column(String, range_key=True),
            "b": Column(String, range_key=True),
        },
        None,
        r"Thing has more than one range_key column: \['a', 'b'\]",
    ),
    (
        "two versions",
        {
            "h": Column(String, hash_key=True),
            "v1": Column(Integer, version=True),
            "v2": Column(Integer, version=True),
        },
        None,
        r"Thing has more than one version column: \['v1', 'v2'\]",
    ),
    (
        "version not Integer",
        {"h": Column(String, hash_key=True), "v": Column(Number, version=True)},
        None,
        r"Thing\.v: a version column must be Integer",
    ),
    (
        "index on unknown column",
        {"h": Column(String, hash_key=True), "by_x": GlobalSecondaryIndex(hash_key="x")},
        None,
        r"Thing\.by_x: hash_key 'x' is not a column of Thing",
    ),
    (
        "LSI without table range key",
        {
            "h": Column(String, hash_key=True),
            "r": Column(String),
            "by_r": LocalSecondaryIndex(range_key="r"),
        },
        None,
        r"Thing\.by_r: a LocalSecondaryIndex needs the table to have a range_key",
    ),
    (
        "TTL column not number-backed",
        {"h": Column(String, hash_key=True), "exp": Column(String)},
        {"ttl": {"column": "exp"}},
        r"Thing\.exp: the TTL column must be number-backed epoch seconds "
        r"\(use Timestamp\), not String",
    ),
    (
        "unknown Meta option",
        {"h": Column(String, hash_key=True)},
        {"read_unitz": 3},
        r"Thing\.Meta: unknown option\(s\) \['read_unitz'\]",
    ),
    (
        "same DynamoDB name",
        {"h": Column(String, hash_key=True), "a": Column(String, name="x"), "x": Column(String)},
        None,
        r"Thing: columns 'a' and 'x' share the DynamoDB name 'x'",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "meta", "message"), BAD_MODELS, ids=[c[0] for c in BAD_MODELS]
)
def test_invalid_models_raise_precise_errors(
    case: str, body: dict[str, Any], meta: dict[str, Any] | None, message: str
) -> None:
    """Each badly declared model raises InvalidModelError (a ValueError) with a precise message."""
    with pytest.raises(InvalidModelError, match=f"^{message}") as info:
        _declare(body, meta)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("typ", [Boolean, lambda: List(String), lambda: Map(a=String), JSON])
@pytest.mark.parametrize("role", ["hash_key", "range_key"])
def test_key_column_of_non_key_type_refused(typ: Any, role: str) -> None:
    """A hash or range key stored as BOOL, L, M or JSON is refused."""
    column_type = typ() if not isinstance(typ, type) else typ
    body: dict[str, Any] = {"k": Column(column_type, **{role: True})}
    if role == "range_key":
        body["h"] = Column(String, hash_key=True)
    with pytest.raises(
        InvalidModelError,
        match=r"Thing\.k: a key column must be stored as a string, number or bytes",
    ):
        _declare(body)


def test_gsi_on_non_key_type_refused() -> None:
    """An index key column must be stored as a string, number or bytes."""
    with pytest.raises(InvalidModelError, match=r"Thing\.by_b: hash_key 'b' must be stored"):
        _declare(
            {
                "h": Column(String, hash_key=True),
                "b": Column(Boolean),
                "by_b": GlobalSecondaryIndex(hash_key="b"),
            }
        )


def test_ttl_with_timestamp_accepted() -> None:
    """A Timestamp column is accepted as the TTL column and exposed in Meta.ttl."""
    model = _declare(
        {"h": Column(String, hash_key=True), "exp": Column(Timestamp)}, {"ttl": {"column": "exp"}}
    )
    assert model.Meta.ttl == {"column": model.exp}


def test_binary_key_accepted() -> None:
    """Binary columns can be keys."""
    model = _declare({"h": Column(Binary, hash_key=True)})
    assert model.Meta.hash_key is model.h


def test_columns_and_indexes_from_abstract_bases_and_mixins_are_copied() -> None:
    """Columns and indexes inherited from abstract bases and mixins are per-model copies."""
    Base = new_base()

    class Mixin:
        created = Column(Timestamp)
        by_created = GlobalSecondaryIndex(hash_key="created")

    class Abstract(Base):
        class Meta:
            abstract = True

        id = Column(String, hash_key=True)
        name = Column(String, name="n")

    class One(Mixin, Abstract):
        pass

    class Two(Mixin, Abstract):
        extra = Column(Integer)

    for model in (One, Two):
        assert model.id is not Abstract.id
        assert model.id.model is model
        assert model.created is not Mixin.created
        assert model.created.model is model
        assert model.name.dynamo_name == "n"
        (index,) = model.Meta.indexes
        assert index.model is model
        assert index.hash_key is model.created
    assert One.id is not Two.id
    assert One.by_created is not Two.by_created
    assert [c.name for c in One.Meta.columns] == ["id", "name", "created"]
    assert [c.name for c in Two.Meta.columns] == ["id", "name", "created", "extra"]
    assert Abstract.Meta.abstract is True
    assert One.Meta.abstract is False


def test_concrete_subclass_gets_own_table_unless_meta_names_one() -> None:
    """A concrete subclass of a concrete model has its own table name unless Meta names one."""
    Base = new_base()

    class Parent(Base):
        id = Column(String, hash_key=True)

    class Child(Parent):
        extra = Column(String)

    class Named(Parent):
        class Meta:
            table_name = "shared"

    assert Parent.Meta.table_name == "Parent"
    assert Child.Meta.table_name == "Child"
    assert Named.Meta.table_name == "shared"
    assert Child.id is not Parent.id
    assert Child.id.model is Child
    assert Parent.id.model is Parent
    assert [c.name for c in Parent.Meta.columns] == ["id"]


def test_meta_introspection() -> None:
    """Meta exposes columns, keys, indexes, version and the stream view type."""
    Base = new_base()

    class M(Base):
        class Meta:
            read_units = 3

        h = Column(String, hash_key=True)
        r = Column(Integer, range_key=True)
        v = Column(Integer, version=True)
        e = Column(String)
        by_e = GlobalSecondaryIndex(hash_key="e", range_key="r", projection="keys")
        by_v = LocalSecondaryIndex(range_key="e")

    meta: Any = M.Meta
    assert meta.columns == [M.h, M.r, M.v, M.e]
    assert meta.hash_key is M.h
    assert meta.range_key is M.r
    assert meta.keys == [M.h, M.r]
    assert meta.indexes == [M.by_e, M.by_v]
    assert meta.version is M.v
    assert meta.read_units == 3
    assert meta.write_units is None
    assert meta.stream_view_type == "NEW_AND_OLD_IMAGES"
    assert M.by_e.hash_key is M.e and M.by_e.range_key is M.r
    assert M.by_v.hash_key is M.h and M.by_v.range_key is M.e


def test_meta_stream_none_turns_stream_off() -> None:
    """Meta.stream = None gives stream_view_type None."""
    model = _declare({"h": Column(String, hash_key=True)}, {"stream": None})
    assert model.Meta.stream_view_type is None


@pytest.mark.parametrize(("given", "view"), [("keys", "KEYS_ONLY"), ("NEW_IMAGE", "NEW_IMAGE")])
def test_meta_stream_view_types(given: str, view: str) -> None:
    """Meta.stream takes short names or DynamoDB's StreamViewType names."""
    model = _declare({"h": Column(String, hash_key=True)}, {"stream": given})
    assert model.Meta.stream_view_type == view


def test_meta_bad_stream_refused() -> None:
    """An unknown Meta.stream value is refused."""
    with pytest.raises(InvalidModelError, match=r"Meta\.stream"):
        _declare({"h": Column(String, hash_key=True)}, {"stream": "sometimes"})


def test_callable_default_applied_once_per_new_object() -> None:
    """A callable default is called once for each new object; unset columns read None."""
    counter = itertools.count(1)
    model = _declare(
        {
            "h": Column(String, hash_key=True),
            "n": Column(Integer, default=lambda: next(counter)),
            "s": Column(String, default="fixed"),
            "other": Column(String),
        }
    )
    a, b = model(h="a"), model(h="b")
    assert (a.n, b.n) == (1, 2)
    assert a.n == 1  # reading does not call the default again
    assert a.s == "fixed"
    assert a.other is None
    assert model(h="c", n=99).n == 99
    assert next(counter) == 3  # an explicit value skips the default


def test_delete_attribute_reads_none() -> None:
    """Deleting a column's value makes it read None."""
    model = _declare({"h": Column(String, hash_key=True), "x": Column(String)})
    obj = model(h="a", x="y")
    del obj.x
    assert obj.x is None


def test_object_modified_signal() -> None:
    """object_modified fires with obj, column and value, sent by the model class."""
    model = _declare({"h": Column(String, hash_key=True), "x": Column(String)})
    other = _declare({"h": Column(String, hash_key=True)})
    received: list[tuple[Any, dict[str, Any]]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append((sender, kwargs))

    signals.object_modified.connect(receiver, sender=model)
    try:
        obj = model(h="a")
        obj.x = "new"
        del obj.x
        other(h="b")
    finally:
        signals.object_modified.disconnect(receiver, sender=model)
    assert [(s, k["obj"], k["column"], k["value"]) for s, k in received] == [
        (model, obj, model.h, "a"),
        (model, obj, model.x, "new"),
        (model, obj, model.x, None),
    ]


def test_unknown_constructor_kwargs_raise_type_error() -> None:
    """Unknown keyword arguments to a model raise TypeError naming them."""
    model = _declare({"h": Column(String, hash_key=True)})
    with pytest.raises(TypeError, match=r"unknown column\(s\) \['nope'\]"):
        model(h="a", nope=1)


def test_column_both_keys_and_bad_type_refused() -> None:
    """A column cannot be both keys, and its type must be a field."""
    with pytest.raises(InvalidModelError):
        Column(String, hash_key=True, range_key=True)
    with pytest.raises(InvalidModelError):
        Column(int)


def test_bad_index_projection_refused() -> None:
    """Index projections are 'all', 'keys' or column names that exist."""
    with pytest.raises(InvalidModelError):
        GlobalSecondaryIndex(hash_key="x", projection="some")
    with pytest.raises(InvalidModelError, match="projection names unknown column 'zz'"):
        _declare(
            {
                "h": Column(String, hash_key=True),
                "e": Column(String),
                "by_e": GlobalSecondaryIndex(hash_key="e", projection=["zz"]),
            }
        )
