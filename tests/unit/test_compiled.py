"""The compiled wire functions (streamodel._compiled) equal the types' reference methods."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

import marshmallow
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamodel import Column, new_base
from streamodel._compiled import checker, compiled, dumper, loader, sizer
from streamodel._diff import MAX_ITEM_BYTES, fill, fill_reference, load_new, plan_save
from streamodel.actions import add
from streamodel.exceptions import UndecodableItemError, ValidationError
from streamodel.models import new_instance
from streamodel.schema import check_values
from streamodel.types import (
    ALL_TYPES,
    Binary,
    Boolean,
    DateTime,
    DynamoType,
    Float,
    Integer,
    List,
    Map,
    Number,
    Scalar,
    Set,
    String,
    _attribute_size,
    wire_size,
)
from streamodel.types import UUID as UUIDType

IDS = [type(factory()).__name__ + str(i) for i, (factory, _) in enumerate(ALL_TYPES)]
UTC = datetime.UTC

# Values every type must judge exactly as its reference check does (accept or refuse).
AWKWARD = [
    "text",
    "",
    "2026-01-01T00:00:00+00:00",
    "2026-01-01T00:00:00",
    "12345678-1234-5678-1234-567812345678",
    "GREEN",
    "1e500",
    0,
    -1,
    10**38 - 1,
    10**38,
    -(10**38),
    True,
    1.5,
    float("nan"),
    float("inf"),
    1e300,
    5e-324,
    -0.0,
    decimal.Decimal("1.5"),
    decimal.Decimal("NaN"),
    decimal.Decimal("sNaN"),
    10**400,
    decimal.Decimal("1E+126"),
    decimal.Decimal("1E-131"),
    decimal.Decimal("0E+200"),
    decimal.Decimal("1." + "1" * 40),
    b"bytes",
    bytearray(b"x"),
    datetime.datetime(2026, 1, 1, tzinfo=UTC),
    datetime.datetime(2026, 1, 1),
    datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
    uuid.UUID(int=5),
    {"a", "b"},
    {1, 2},
    frozenset({"a"}),
    {"a", None},
    [1, 2, None],
    ["a", 1],
    (1, 2),
    [],
    set(),
    {"street": "x", "number": 1},
    {"street": 1},
    {"nope": 1},
    {"a": [1, 2.5, "x", None, True]},
    object(),
]


def outcome(fn: Any, *args: Any) -> tuple[str, Any]:
    """What a call gives: ("ok", value) or ("error", (type, message or messages))."""
    try:
        return ("ok", fn(*args))
    except marshmallow.ValidationError as error:
        return ("error", (type(error), error.messages))
    except Exception as error:
        return ("error", (type(error), str(error)))


@pytest.mark.parametrize(("factory", "sample"), ALL_TYPES, ids=IDS)
def test_every_type_round_trips_like_the_reference(factory: Any, sample: Any) -> None:
    """For every type, compiled check, dump, load and size equal the reference methods."""
    typ = factory()
    checked = typ.check(sample)
    assert checker(typ)(sample) == checked
    wire = typ.dynamo_dump(checked)
    assert dumper(typ)(checked) == wire
    assert dumper(typ)(None) is None
    assert loader(typ)(wire) == typ.dynamo_load(wire)
    assert loader(typ)(None) is None
    assert loader(typ)({"NULL": True}) == typ.dynamo_load({"NULL": True})
    assert sizer(typ)(wire) == _attribute_size(wire)


@pytest.mark.parametrize(("factory", "sample"), ALL_TYPES, ids=IDS)
@pytest.mark.parametrize("value", AWKWARD, ids=[repr(v)[:30] for v in AWKWARD])
def test_every_type_judges_awkward_values_like_the_reference(
    factory: Any, sample: Any, value: Any
) -> None:
    """Compiled checks accept, normalize and refuse (same messages) exactly as the types do,
    and dumps of what they accept are the same wire values."""
    typ = factory()
    expected = outcome(typ.check, value)
    assert outcome(checker(typ), value) == expected
    if expected[0] == "ok":
        assert outcome(dumper(typ), expected[1]) == outcome(typ.dynamo_dump, expected[1])


WRONG_WIRES: list[Any] = [
    {"S": "x"},
    {"N": "12"},
    {"N": "not a number"},
    {"BOOL": True},
    {"SS": ["a"]},
    {"NS": ["1", "2"]},
    {"L": [{"N": "1"}, {"NULL": True}]},
    {"L": [{"S": "x"}]},
    {"M": {"street": {"S": "s"}, "other": {"N": "1"}}},
    {"S": "x", "N": "1"},
    {},
    "S",
    ["S"],
]


@pytest.mark.parametrize(("factory", "sample"), ALL_TYPES, ids=IDS)
@pytest.mark.parametrize("wire", WRONG_WIRES, ids=[repr(w)[:30] for w in WRONG_WIRES])
def test_loads_of_unexpected_wire_values_match_the_reference(
    factory: Any, sample: Any, wire: Any
) -> None:
    """A wire value of another type or shape loads, or fails, as the reference does; a
    whole-object fill raises the reference's UndecodableItemError."""
    typ = factory()
    expected = outcome(typ.dynamo_load, wire)
    got = outcome(loader(typ), wire)
    if expected[0] == "ok":
        assert got == expected
    else:
        assert got[0] == "error"  # fill then hands the item to the reference
        model = _one_column_model(typ)
        item = {"id": {"S": "k"}, "value": wire}
        assert outcome(fill, new_instance(model), item) == outcome(
            fill_reference, new_instance(model), item
        )


def _one_column_model(typ: Any) -> Any:
    class One(new_base()):  # type: ignore[misc]
        id = Column(String, hash_key=True)
        value = Column(typ)

    return One


Base = new_base()


# A model with a column of every type in ALL_TYPES (c0, c1, ... stored as d0, d1, ...).
EverythingModel: Any = type(
    "EverythingModel",
    (Base,),
    {
        "__module__": __name__,
        "id": Column(String, hash_key=True),
        "version": Column(Integer, version=True),
        **{f"c{i}": Column(f(), name=f"d{i}") for i, (f, _) in enumerate(ALL_TYPES)},
    },
)


def _sample_object() -> Any:
    obj = EverythingModel(id="k", version=3)
    for i, (_, sample) in enumerate(ALL_TYPES):
        setattr(obj, f"c{i}", sample)
    return obj


def test_whole_objects_fill_and_size_like_the_reference() -> None:
    """A model of every type: check_values, item size, fill and load_new equal the reference."""
    obj = _sample_object()
    values = dict(obj._sm_values)
    cm = compiled(EverythingModel)
    checked = check_values(EverythingModel, values)
    assert cm.check_values(values) == checked
    item = {
        c.dynamo_name: w
        for c in EverythingModel.Meta.columns  # type: ignore[attr-defined]
        if (w := c.type.dynamo_dump(checked[c.name])) is not None
    }
    assert cm.item_size(item) == wire_size(item)
    assert cm.item_size({**item, "extra": {"S": "é"}}) == wire_size({**item, "extra": {"S": "é"}})
    fast, slow = new_instance(EverythingModel), new_instance(EverythingModel)
    fill(fast, item)
    fill_reference(slow, item)
    assert fast._sm_values == slow._sm_values
    assert fast._sm_snapshot == slow._sm_snapshot
    assert fast._sm_touched == slow._sm_touched == set()
    new = load_new(EverythingModel, item)
    assert new._sm_values == slow._sm_values and new._sm_snapshot == slow._sm_snapshot
    partial = {"id": {"S": "k"}, "d0": {"S": "x"}}
    fill(fast, partial)
    fill_reference(slow, partial)
    assert fast._sm_values == slow._sm_values and fast._sm_snapshot == slow._sm_snapshot


def test_check_values_refuses_with_the_reference_error() -> None:
    """Bad values make the compiled check step aside, and the reference error names each."""
    cm = compiled(EverythingModel)
    bad = {"c1": "not a number", "c3": float("nan"), "c0": "fine"}
    assert cm.check_values(bad) is None
    with pytest.raises(marshmallow.ValidationError) as info:
        check_values(EverythingModel, bad)
    assert set(info.value.messages) == {"c1", "c3"}  # type: ignore[arg-type]


def test_undecodable_items_raise_the_same_error() -> None:
    """A stored value of the wrong type raises the reference's UndecodableItemError."""
    item = {"id": {"S": "k"}, "d1": {"S": "text"}}
    with pytest.raises(UndecodableItemError) as fast:
        fill(new_instance(EverythingModel), item)
    with pytest.raises(UndecodableItemError) as slow:
        fill_reference(new_instance(EverythingModel), item)
    assert str(fast.value) == str(slow.value)
    assert fast.value.column == slow.value.column


# -- properties ------------------------------------------------------------------------------

numbers = st.decimals(allow_nan=True, allow_infinity=True, places=None) | st.decimals(
    min_value=-(10**40), max_value=10**40
)
datetimes = st.datetimes(
    timezones=st.sampled_from([UTC, datetime.timezone(datetime.timedelta(hours=-5))]) | st.none()
)
PROPERTY_TYPES: list[tuple[Any, Any]] = [
    (String(), st.text() | st.integers()),
    (Integer(), st.integers() | st.booleans() | st.text(max_size=3)),
    (Number(), numbers | st.floats() | st.integers()),
    (Float(), st.floats() | st.integers() | numbers),
    (DateTime(), datetimes),
    (
        Set(Number()),
        st.sets(st.decimals(allow_nan=False, places=None), max_size=4)
        | st.lists(st.integers(), max_size=3),
    ),
    (Set(String()), st.sets(st.text(), max_size=4) | st.sets(st.integers(), max_size=2)),
    (List(Number()), st.lists(numbers | st.none(), max_size=4)),
    (
        Map(a=String(), b=Number(), c=List(Integer())),
        st.dictionaries(
            st.sampled_from(["a", "b", "c", "d"]),
            st.none() | st.text() | numbers | st.lists(st.integers(), max_size=3),
        ),
    ),
]


def canonical(value: Any) -> str:
    """repr with sets in sorted order: two equal sets may iterate differently."""
    if isinstance(value, set | frozenset):
        return "{" + ", ".join(sorted(repr(v) for v in value)) + "}"
    return repr(value)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_property_compiled_paths_equal_the_reference(data: Any) -> None:
    """For generated values: compiled check/dump/load/size equal the reference, error or not."""
    typ, strategy = data.draw(st.sampled_from(PROPERTY_TYPES))
    value = data.draw(strategy)
    expected = outcome(typ.check, value)
    got = outcome(checker(typ), value)
    if expected[0] == "ok":
        assert got[0] == "ok"
        assert canonical(got[1]) == canonical(expected[1])  # NaN-safe, and same digits
        wire = typ.dynamo_dump(expected[1])
        assert dumper(typ)(expected[1]) == wire
        if wire is not None:
            assert canonical(loader(typ)(wire)) == canonical(typ.dynamo_load(wire))
            assert sizer(typ)(wire) == _attribute_size(wire)
    else:
        assert repr(got) == repr(expected)


# -- the fused encode of a save ---------------------------------------------------------------

ENCODE_TYPES: list[tuple[Any, Any]] = [
    *PROPERTY_TYPES,
    (Boolean(), st.booleans() | st.integers(0, 1) | st.none()),
    (List(String()), st.lists(st.text(max_size=3) | st.none() | st.integers(), max_size=4)),
    (List(DateTime()), st.lists(datetimes | st.none(), max_size=3)),
    (Set(String()), st.sets(st.text(max_size=3), max_size=4) | st.frozensets(st.text())),
    (
        Map(a=String(), b=Number(), c=Boolean(), d=DateTime()),
        st.dictionaries(
            st.sampled_from(["a", "b", "c", "d", "e"]),
            st.none() | st.text(max_size=3) | numbers | st.booleans() | datetimes,
            max_size=5,
        )
        | st.lists(st.text(), max_size=2),
    ),
    (String(validate=marshmallow.validate.Length(max=2)), st.text(max_size=4)),
]
_ENCODE_MODELS: dict[int, Any] = {}


def _reference_encode(model: Any, value: Any) -> tuple[str, Any]:
    """check_values, dump and size of the one column ``value``, as plan_save did them."""
    try:
        checked = check_values(model, {"value": value})["value"]
    except marshmallow.ValidationError as error:
        return ("error", error.messages)
    wire = model.Meta.columns_by_name["value"].type.dynamo_dump(checked)
    size = 0 if wire is None else wire_size({"stored-as": wire})
    return ("ok", (canonical(checked), wire, size))


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_property_encode_equals_check_dump_and_size(data: Any) -> None:
    """The fused encode of a save gives the reference's checked value and wire value, at
    least the reference's size, and steps aside (None) exactly when the reference refuses."""
    index = data.draw(st.integers(0, len(ENCODE_TYPES) - 1))
    typ, strategy = ENCODE_TYPES[index]
    model = _ENCODE_MODELS.get(index)
    if model is None:

        class One(new_base()):  # type: ignore[misc]
            id = Column(String, hash_key=True)
            value = Column(typ, name="stored-as")

        model = _ENCODE_MODELS[index] = One
    value = data.draw(strategy)
    expected = _reference_encode(model, value)
    got = compiled(model).encode({"id": "k", "value": value}, {"value"})
    if expected[0] == "error":
        assert got is None
    else:
        checked, columns, wires, removes, size, acted = got
        column = model.Meta.columns_by_name["value"]
        wire = expected[1][1]
        written = ([column], [wire], []) if wire is not None else ([], [], [column])
        assert (columns, wires, removes) == written
        assert canonical(checked["value"]) == expected[1][0]
        assert acted == []
        assert size >= expected[1][2]  # numbers are counted by their text: a bound


def test_encode_of_every_type_equals_the_reference() -> None:
    """A model of every type: encode of all its plain columns, and of a subset."""
    obj = _sample_object()
    values = dict(obj._sm_values)
    cm = compiled(EverythingModel)
    wanted = {name for name, _ in cm.plain}
    checked = check_values(EverythingModel, {n: values.get(n) for n in sorted(wanted)})
    columns = EverythingModel.Meta.columns_by_name  # type: ignore[attr-defined]
    wires = {n: columns[n].type.dynamo_dump(v) for n, v in checked.items()}
    size = wire_size({columns[n].dynamo_name: w for n, w in wires.items() if w is not None})
    got_checked, set_columns, set_wires, removes, got_size, acted = cm.encode(values, wanted)
    got_wires = dict(zip([c.name for c in set_columns], set_wires, strict=True))
    got_wires.update((c.name, None) for c in removes)
    assert got_checked == checked and got_wires == wires and got_size >= size
    assert list(got_checked) == [n for n, _ in cm.plain]  # in column order, like the diff
    assert [c.name for c in set_columns] == [n for n in got_checked if wires[n] is not None]
    assert acted == []
    assert cm.encode(values, {"c0"})[0] == {"c0": checked["c0"]}
    assert cm.encode({**values, "c1": "not a number"}, wanted) is None
    # A column holding an update action is named, and left out of the rest.
    got_checked, columns, _, removes, _, acted = cm.encode({**values, "c1": add(1)}, wanted)
    assert acted == ["c1"] and "c1" not in got_checked
    assert all(c.name != "c1" for c in columns + removes)


def test_saves_at_the_size_limit_are_counted_exactly() -> None:
    """encode's size of numbers is a bound; near 400 KB plan_save counts exactly, so an item
    of exactly 400 KB passes and one byte more is refused with its exact size."""

    class Big(new_base()):  # type: ignore[misc]
        id = Column(String, hash_key=True)
        text = Column(String)
        numbers = Column(List(Number()))

    numbers = [decimal.Decimal("0.0000001")] * 1000  # a bound of 5 bytes each, exactly 2
    small = {
        "id": {"S": "k"},
        "text": {"S": ""},
        "numbers": Big.Meta.columns_by_name["numbers"].type.dynamo_dump(numbers),
    }
    room = MAX_ITEM_BYTES - wire_size(small)
    fits = Big(id="k", text="x" * room, numbers=numbers)
    assert plan_save(fits, condition=None, atomic=False).set_wires  # exactly 400 KB: accepted
    over = Big(id="k", text="x" * (room + 1), numbers=numbers)
    with pytest.raises(ValidationError, match=f"Item is {MAX_ITEM_BYTES + 1} bytes"):
        plan_save(over, condition=None, atomic=False)


def test_a_loaded_objects_unchanged_columns_count_toward_its_size() -> None:
    """A save of a loaded object writes only what changed, yet the item it leaves holds the
    unchanged columns too: they count toward the 400 KB, and removed ones do not."""

    class Two(new_base()):  # type: ignore[misc]
        id = Column(String, hash_key=True)
        a = Column(String)
        b = Column(String)

    stored = load_new(Two, {"id": {"S": "k"}, "a": {"S": "x" * 300_000}})
    stored.b = "y" * 150_000
    with pytest.raises(ValidationError, match="Item is 450005 bytes"):
        plan_save(stored, condition=None, atomic=False)
    stored.a = None  # removed: the item keeps only the key and b
    assert plan_save(stored, condition=None, atomic=False).removes == [Two.a]


KEY_TYPES: list[Any] = [
    String(),
    String(validate=marshmallow.validate.Length(max=3)),
    Integer(),
    Number(),
    Binary(),
    UUIDType(),
]
KEY_VALUES: list[Any] = [None, "", "k", "long key", 0, 7, decimal.Decimal("1.5"), b"", b"b"]
KEY_VALUES += [uuid.UUID(int=3), 1.5, True]


@pytest.mark.parametrize("hash_type", KEY_TYPES, ids=lambda t: repr(t)[:40])
@pytest.mark.parametrize("range_type", [String(), Integer()], ids=["S", "N"])
def test_generated_key_equals_the_reference(hash_type: Any, range_type: Any) -> None:
    """The generated key gives the reference key_of's wire values, and steps aside (None)
    exactly when the reference refuses (missing, empty or bad values)."""
    from streamodel._diff import _key_of_reference

    class Keyed(new_base()):  # type: ignore[misc]
        h = Column(hash_type, hash_key=True, name="h-key")
        r = Column(range_type, range_key=True)

    key = compiled(Keyed).key
    for h in KEY_VALUES:
        for r in ("x", "", 5, None):
            obj = new_instance(Keyed)
            obj._sm_values.update(h=h, r=r)
            expected = outcome(_key_of_reference, obj)
            got = key(obj._sm_values)
            if expected[0] == "ok":
                assert got == expected[1], (h, r)
            else:
                assert got is None, (h, r)


def test_generated_functions_have_their_source_in_linecache() -> None:
    """Each generated function is compiled under a name of its own and its source is in
    linecache, so tracebacks and inspect show the generated lines instead of <string>."""
    import inspect
    import linecache

    from streamodel._compiled import CompiledModel
    from streamodel.types import String

    Base = new_base()

    class Traced(Base):
        id = Column(String, hash_key=True)
        tags = Column(Set(String))

    model = CompiledModel(Traced)
    for function, name in ((model.encode, "encode"), (model.key, "key")):
        filename = function.__code__.co_filename
        assert filename.startswith(f"<streamodel generated: Traced.{name} #"), filename
        source = inspect.getsource(function)
        assert source.startswith(f"def {name}(")
        linecache.checkcache()  # what a traceback does first: the entry must survive it
        assert linecache.getline(filename, 1).startswith(f"def {name}(")


# -- declarations: a new type is one class --------------------------------------------------


class Hex(DynamoType[int]):
    """A test type declared in this module only: a non-negative int stored as hex text."""

    backing_type = "S"
    python_type = "int"
    fast = Scalar(
        check="type({v}) is _int and {v} >= 0",
        dump="_hex_text({v})",
        load="_int({w}, 16)",
        names={"_hex_text": "{:x}".format},
    )

    def _check_type(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise marshmallow.ValidationError(f"Not a hex int: {type(value).__name__}.")
        if value < 0:
            raise marshmallow.ValidationError("Negative.")
        return int(value)

    def _dump(self, value: int) -> str:
        return f"{value:x}"

    def _load(self, tag: str, raw: Any) -> int:
        return int(raw, 16)


HEX_TYPES: list[Any] = [Hex(), Set(Hex()), List(Hex()), Map(h=Hex(), s=String())]
HEX_VALUES: list[Any] = [0, 255, -1, True, "ff", None, {1, 2}, [3, None], {"h": 10, "s": "x"}]
HEX_VALUES += [{"h": -1}, {"nope": 1}, set(), 1.5]


@pytest.mark.parametrize("typ", HEX_TYPES, ids=lambda t: type(t).__name__)
def test_a_new_type_gets_fast_paths_from_its_declaration_alone(typ: Any) -> None:
    """A type declared outside streamodel with a Scalar template gets generated check, dump,
    load, size and encode equal to its reference methods, alone and inside containers, and
    the generated code uses its template (nothing in streamodel names it)."""
    import inspect

    from streamodel._typegen import encoder

    for value in HEX_VALUES:
        expected = outcome(typ.check, value)
        assert outcome(checker(typ), value) == expected, value
        if expected[0] == "ok" and value is not None:
            wire = typ.dynamo_dump(expected[1])
            assert dumper(typ)(expected[1]) == wire
            if wire is not None:
                assert loader(typ)(wire) == typ.dynamo_load(wire)
                assert sizer(typ)(wire) == _attribute_size(wire)
            got = compiled(_one_column_model(typ)).encode({"id": "k", "value": value}, {"value"})
            assert got is not None and got[0]["value"] == expected[1]
            assert got[2] == ([] if wire is None else [wire])
            assert got[4] >= (0 if wire is None else wire_size({"value": wire}))
    generated = encoder(typ) if type(typ) is not Hex else dumper(typ)
    assert generated is not None and "_hex_text" in inspect.getsource(generated)


class Shouting(String):
    """A subclass that changes what a value means: it must not inherit String's fast path."""

    def _check_type(self, value: Any) -> str:
        return super()._check_type(value).upper()

    def _dump(self, value: str) -> str:
        return value.upper()

    def _load(self, tag: str, raw: Any) -> str:
        return str(raw).lower()


def test_fast_paths_are_not_inherited_by_subclasses() -> None:
    """A subclass of a built-in type is judged by its own hooks: its generated functions
    and a save's encode give what its reference methods give."""
    typ = Shouting()
    assert checker(typ)("quiet") == "QUIET"
    assert dumper(typ)("quiet") == {"S": "QUIET"}
    assert loader(typ)({"S": "LOUD"}) == "loud"
    got = compiled(_one_column_model(typ)).encode({"id": "k", "value": "quiet"}, {"value"})
    assert got[0] == {"value": "QUIET"} and got[2] == [{"S": "QUIET"}]
    for container in (Set(Shouting()), List(Shouting()), Map(a=Shouting())):
        sample = {"a": "x"} if isinstance(container, Map) else ["x"]
        checked = container.check(sample)
        assert checker(container)(sample) == checked
        assert dumper(container)(checked) == container.dynamo_dump(checked)


def _size_as_documented(wire: Any) -> int:
    """DynamoDB's attribute sizes, restated plainly (the definition _wire.SIZE must equal)."""
    ((tag, raw),) = wire.items()
    if tag == "S":
        return len(raw.encode("utf-8"))
    if tag == "N":
        return (len(raw.lstrip("-").replace(".", "").lstrip("0")) + 1) // 2 + 1
    if tag == "B":
        return len(raw)
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "SS":
        return sum(len(v.encode("utf-8")) for v in raw)
    if tag == "NS":
        return sum(_size_as_documented({"N": v}) for v in raw)
    if tag == "BS":
        return sum(len(v) for v in raw)
    if tag == "L":
        return 3 + sum(1 + _size_as_documented(v) for v in raw)
    assert tag == "M"
    return 3 + sum(len(k.encode("utf-8")) + 1 + _size_as_documented(v) for k, v in raw.items())


number_texts = st.decimals(allow_nan=False, allow_infinity=False, places=None).map(str)
scalar_wires = st.one_of(
    st.builds(lambda s: {"S": s}, st.text()),
    st.builds(lambda n: {"N": n}, number_texts),
    st.builds(lambda b: {"B": b}, st.binary()),
    st.builds(lambda b: {"BOOL": b}, st.booleans()),
    st.just({"NULL": True}),
    st.builds(lambda s: {"SS": sorted(s)}, st.sets(st.text(), min_size=1, max_size=4)),
    st.builds(lambda s: {"NS": sorted(s)}, st.sets(number_texts, min_size=1, max_size=4)),
    st.builds(lambda s: {"BS": sorted(s)}, st.sets(st.binary(), min_size=1, max_size=4)),
)
wires = st.recursive(
    scalar_wires,
    lambda inner: (
        st.builds(lambda items: {"L": items}, st.lists(inner, max_size=3))
        | st.builds(lambda m: {"M": m}, st.dictionaries(st.text(max_size=4), inner, max_size=3))
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(wire=wires)
def test_property_sizes_equal_dynamodb_rules(wire: Any) -> None:
    """attribute_size (generated from _wire.SIZE), every type's sizer and a model's item_size
    equal DynamoDB's size rules, stated plainly, for any wire value."""
    expected = _size_as_documented(wire)
    assert _attribute_size(wire) == expected
    for factory, _ in ALL_TYPES:
        assert sizer(factory())(wire) == expected
    item = {"id": {"S": "k"}, "d0": wire}
    assert compiled(EverythingModel).item_size(item) == 3 + 2 + expected == wire_size(item)
