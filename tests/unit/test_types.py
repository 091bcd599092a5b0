"""The types: wire and JSON round trips, None, refusals, and per-type rules."""

from __future__ import annotations

import base64
import datetime
import decimal
import uuid
from typing import Any

import marshmallow
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import fields

from streamodel.types import (
    ALL_TYPES,
    JSON,
    UUID,
    Binary,
    Boolean,
    DateTime,
    DynamoType,
    Enum,
    Float,
    Integer,
    List,
    Map,
    Number,
    SampleColor,
    Set,
    String,
    Timestamp,
    resolve_type,
    wire_size,
)

UTC = datetime.UTC


def _make(factory: Any) -> DynamoType[Any]:
    return resolve_type(factory())


TYPE_IDS = [f"{i}-{type(_make(f)).__name__}" for i, (f, _) in enumerate(ALL_TYPES)]


@pytest.mark.parametrize(("factory", "sample"), ALL_TYPES, ids=TYPE_IDS)
def test_wire_round_trip(factory: Any, sample: Any) -> None:
    """dynamo_load(dynamo_dump(check(sample))) gives the sample back for every type."""
    typ = _make(factory)
    wire = typ.dynamo_dump(typ.check(sample))
    assert wire is not None
    assert typ.dynamo_load(wire) == sample


@pytest.mark.parametrize(("factory", "sample"), ALL_TYPES, ids=TYPE_IDS)
def test_json_round_trip(factory: Any, sample: Any) -> None:
    """_deserialize(_serialize(sample)) gives the sample back for every type."""
    typ = _make(factory)
    as_json = typ._serialize(sample, "x", None)
    assert typ._deserialize(as_json, "x", None) == sample


@pytest.mark.parametrize(("factory", "sample"), ALL_TYPES, ids=TYPE_IDS)
def test_none_dumps_and_loads_as_none(factory: Any, sample: Any) -> None:
    """None dumps to None (no attribute) and loads from None and from {"NULL": True}."""
    typ = _make(factory)
    assert typ.dynamo_dump(None) is None
    assert typ.dynamo_load(None) is None
    assert typ.dynamo_load({"NULL": True}) is None
    assert typ._serialize(None, "x", None) is None


@pytest.mark.parametrize(("factory", "sample"), ALL_TYPES, ids=TYPE_IDS)
@pytest.mark.parametrize("bad", [object(), 1j], ids=["object", "complex"])
def test_wrong_python_type_is_refused(factory: Any, sample: Any, bad: Any) -> None:
    """Every type refuses a value of the wrong Python type with a marshmallow ValidationError."""
    typ = _make(factory)
    with pytest.raises(marshmallow.ValidationError):
        typ.check(bad)


# -- Hypothesis: dump -> load is the identity -------------------------------------------

aware_datetimes = st.datetimes(
    min_value=datetime.datetime(1000, 1, 2),
    max_value=datetime.datetime(9999, 12, 30),
    timezones=st.sampled_from([UTC, datetime.timezone(datetime.timedelta(hours=-7, minutes=-30))]),
)
dynamo_decimals = st.builds(
    lambda sign, digits, exponent: decimal.Decimal((sign, tuple(digits), exponent)),
    st.integers(0, 1),
    st.lists(st.integers(0, 9), min_size=1, max_size=38).filter(lambda d: d[0] != 0),
    st.integers(-130, 125 - 37),
).filter(lambda d: -130 <= d.adjusted() <= 125)
ints_38 = st.integers(-(10**38) + 1, 10**38 - 1)
finite_floats = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: f == 0 or 1e-130 <= abs(f) < 1e125
)
json_values = st.recursive(
    st.none() | st.booleans() | st.text(max_size=5) | ints_38 | finite_floats,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)

PROPERTY_CASES: list[tuple[str, Any, Any]] = [
    ("String", String, st.text()),
    ("Integer", Integer, ints_38),
    ("Number", Number, dynamo_decimals),
    ("Float", Float, finite_floats),
    ("Boolean", Boolean, st.booleans()),
    ("Binary", Binary, st.binary(min_size=1)),
    ("UUID", UUID, st.uuids()),
    ("DateTime", DateTime, aware_datetimes),
    ("Timestamp", Timestamp, aware_datetimes.map(lambda d: d.replace(microsecond=0))),
    ("Enum", lambda: Enum(SampleColor), st.sampled_from(SampleColor)),
    ("SetString", lambda: Set(String), st.sets(st.text(), min_size=1, max_size=5)),
    ("SetInteger", lambda: Set(Integer), st.sets(ints_38, min_size=1, max_size=5)),
    ("SetBinary", lambda: Set(Binary), st.sets(st.binary(min_size=1), min_size=1, max_size=5)),
    ("ListInteger", lambda: List(Integer), st.lists(ints_38, max_size=5)),
    (
        "Map",
        lambda: Map(a=String, b=Integer),
        st.fixed_dictionaries({}, optional={"a": st.text(), "b": ints_38}),
    ),
    ("JSON", JSON, json_values),
]


@pytest.mark.parametrize(
    ("name", "factory", "strategy"), PROPERTY_CASES, ids=[c[0] for c in PROPERTY_CASES]
)
def test_property_dump_load_identity(name: str, factory: Any, strategy: Any) -> None:
    """For generated values of each type, loading the dumped wire value is the identity."""
    typ = _make(factory)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(strategy)
    def check(value: Any) -> None:
        checked = typ.check(value)
        wire = typ.dynamo_dump(checked)
        assert typ.dynamo_load(wire) == value
        assert typ._deserialize(typ._serialize(checked, "x", None), "x", None) == value

    check()


# -- specific rules ----------------------------------------------------------------------


def test_naive_datetime_refused() -> None:
    """DateTime and Timestamp refuse naive datetimes."""
    naive = datetime.datetime(2026, 1, 1, 12, 0)
    for typ in (DateTime(), Timestamp()):
        with pytest.raises(marshmallow.ValidationError, match="Naive"):
            typ.check(naive)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("typ", [Number, Float, JSON])
def test_nan_and_infinity_refused(typ: Any, bad: float) -> None:
    """Number, Float and JSON refuse NaN and infinities."""
    with pytest.raises(marshmallow.ValidationError, match="NaN and infinity"):
        typ().check(bad)


def test_nan_inside_json_and_decimal_nan_refused() -> None:
    """NaN nested in a JSON document and Decimal NaN/sNaN are refused as ValidationError."""
    with pytest.raises(marshmallow.ValidationError):
        JSON().check({"a": [1, float("nan")]})
    for bad in (decimal.Decimal("NaN"), decimal.Decimal("sNaN"), decimal.Decimal("Infinity")):
        with pytest.raises(marshmallow.ValidationError):
            Number().check(bad)
        with pytest.raises(marshmallow.ValidationError):
            JSON().check(bad)
        with pytest.raises(marshmallow.ValidationError):
            Float().check(bad)
    with pytest.raises(marshmallow.ValidationError, match="does not fit"):
        Float().check(10**400)  # float() itself would raise OverflowError


@pytest.mark.parametrize(
    "bad",
    [
        decimal.Decimal("1" * 39),
        decimal.Decimal("1." + "1" * 38),
        10**38 + 1,
        decimal.Decimal("1E+126"),
        decimal.Decimal("1E-131"),
    ],
)
def test_number_out_of_dynamodb_range_refused_not_rounded(bad: Any) -> None:
    """Numbers beyond 38 significant digits or DynamoDB's magnitude range are refused."""
    typ = Integer() if isinstance(bad, int) else Number()
    with pytest.raises(marshmallow.ValidationError, match="does not fit"):
        typ.check(bad)


@pytest.mark.parametrize(
    "good",
    [
        decimal.Decimal("9" * 38),
        decimal.Decimal("9.9999999999999999999999999999999999999E+125"),
        decimal.Decimal("-1E-130"),
    ],
)
def test_number_at_dynamodb_limits_kept_exactly(good: decimal.Decimal) -> None:
    """Numbers at DynamoDB's limits are accepted and stored with every digit."""
    typ = Number()
    wire = typ.dynamo_dump(typ.check(good))
    assert wire == {"N": str(good)}
    assert typ.dynamo_load(wire) == good


def test_float_beyond_dynamodb_range_refused() -> None:
    """Float refuses finite values DynamoDB cannot store (1e308, 5e-324)."""
    for bad in (1e308, 5e-324):
        with pytest.raises(marshmallow.ValidationError):
            Float().check(bad)


def test_datetime_dump_fixed_width_utc_and_sorts() -> None:
    """DateTime dumps fixed-width ISO UTC text whose order is the datetimes' order."""
    typ = DateTime()
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    values = [
        datetime.datetime(999, 5, 1, tzinfo=UTC),
        datetime.datetime(2026, 1, 1, 1, 0, tzinfo=plus_two),  # 2025-12-31T23:00Z
        datetime.datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
        datetime.datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
    ]
    texts = [typ.dynamo_dump(v)["S"] for v in values]  # type: ignore[index]
    assert texts[1] == "2025-12-31T23:00:00.000000+00:00"
    assert texts[0] == "0999-05-01T00:00:00.000000+00:00"
    assert len({len(t) for t in texts}) == 1
    assert sorted(texts) == [typ.dynamo_dump(v)["S"] for v in sorted(values)]  # type: ignore[index]
    assert typ.dynamo_load({"S": texts[1]}) == values[1]


def test_timestamp_is_whole_epoch_seconds() -> None:
    """Timestamp stores whole epoch seconds as N, dropping sub-second parts."""
    typ = Timestamp()
    value = datetime.datetime(2026, 11, 26, 12, 30, 45, 999999, tzinfo=UTC)
    wire = typ.dynamo_dump(typ.check(value))
    assert wire == {"N": str(int(value.replace(microsecond=0).timestamp()))}
    assert typ.dynamo_load(wire) == value.replace(microsecond=0)
    assert typ.dynamo_load({"N": "0"}) == datetime.datetime(1970, 1, 1, tzinfo=UTC)


def test_empty_set_dumps_to_none() -> None:
    """An empty set is not stored: it dumps to None."""
    assert Set(String).dynamo_dump(set()) is None
    assert Set(String).dynamo_dump(Set(String).check(set())) is None


def test_set_dump_is_sorted_and_typed() -> None:
    """A set dumps to the SS/NS/BS tag with its elements in a stable order."""
    assert Set(String).dynamo_dump({"b", "a"}) == {"SS": ["a", "b"]}
    assert Set(Integer).dynamo_dump({3, 1}) == {"NS": ["1", "3"]}
    assert Set(Binary).dynamo_dump({b"y", b"x"}) == {"BS": [b"x", b"y"]}


@pytest.mark.parametrize("bad", [{"a", 1}, {"a", None}, {b"x", "y"}])
def test_set_refuses_mixed_types_and_none(bad: set[Any]) -> None:
    """Set(String) refuses elements of other types and None."""
    with pytest.raises(marshmallow.ValidationError):
        Set(String).check(bad)


def test_set_of_non_key_type_refused() -> None:
    """Sets only hold strings, numbers or bytes."""
    with pytest.raises(TypeError):
        Set(Boolean)


def test_map_refuses_unknown_keys() -> None:
    """Map refuses keys it does not declare, in check() and in JSON."""
    typ = Map(a=String)
    with pytest.raises(marshmallow.ValidationError, match="Unknown keys"):
        typ.check({"a": "x", "zzz": 1})
    with pytest.raises(marshmallow.ValidationError, match="Unknown keys"):
        typ._deserialize({"zzz": 1}, "x", None)


def test_map_reports_nested_errors_per_key() -> None:
    """Map reports each bad nested value under its own key."""
    typ = Map(a=String, b=Integer, inner=Map(c=Boolean))
    with pytest.raises(marshmallow.ValidationError) as info:
        typ.check({"a": 1, "b": "x", "inner": {"c": "no"}})
    messages = info.value.messages
    assert isinstance(messages, dict)
    assert set(messages) == {"a", "b", "inner"}
    assert set(messages["inner"]) == {"c"}  # type: ignore[arg-type]


def test_map_dump_skips_absent_values() -> None:
    """A Map dumps to M with None values left out."""
    typ = Map(a=String, b=Integer)
    assert typ.dynamo_dump({"a": "x", "b": None}) == {"M": {"a": {"S": "x"}}}


def test_json_stores_dicts_as_m_and_lists_as_l() -> None:
    """JSON stores dicts as M, lists as L, and scalars natively."""
    wire = JSON().dynamo_dump({"d": {"k": 1}, "l": [True, None, "s", 1.5]})
    assert wire == {
        "M": {
            "d": {"M": {"k": {"N": "1"}}},
            "l": {"L": [{"BOOL": True}, {"NULL": True}, {"S": "s"}, {"N": "1.5"}]},
        }
    }
    assert JSON().dynamo_dump([1]) == {"L": [{"N": "1"}]}


def test_json_refuses_non_json_values() -> None:
    """JSON refuses non-string keys and non-JSON values."""
    for bad in ({1: "x"}, {"a": {1, 2}}, b"bytes"):
        with pytest.raises(marshmallow.ValidationError):
            JSON().check(bad)


def test_binary_loads_bytes_and_base64_text() -> None:
    """Binary loads botocore's bytes and Lambda's base64 text alike."""
    typ = Binary()
    assert typ.dynamo_load({"B": b"\x00\x01"}) == b"\x00\x01"
    assert typ.dynamo_load({"B": base64.b64encode(b"\x00\x01").decode()}) == b"\x00\x01"
    assert Set(Binary).dynamo_load({"BS": ["AAE=", b"\x02"]}) == {b"\x00\x01", b"\x02"}


def test_binary_json_is_base64_and_refuses_bad_text() -> None:
    """Binary's JSON form is base64 text; text that is not base64 is refused."""
    typ = Binary()
    assert typ._serialize(b"\xff", "x", None) == "/w=="
    with pytest.raises(marshmallow.ValidationError):
        typ._deserialize("not base64!!", "x", None)


def test_marshmallow_foreign_field_validates_and_round_trips() -> None:
    """A marshmallow Email field validates, stores as S and round-trips."""
    typ = resolve_type(fields.Email())
    assert typ.backing_type == "S"
    assert typ.key_able
    wire = typ.dynamo_dump(typ.check("a@example.com"))
    assert wire == {"S": "a@example.com"}
    assert typ.dynamo_load(wire) == "a@example.com"
    with pytest.raises(marshmallow.ValidationError):
        typ.check("not an email")


def test_resolve_type_refuses_non_fields() -> None:
    """resolve_type accepts classes and instances of fields, and refuses anything else."""
    assert isinstance(resolve_type(String), String)
    with pytest.raises(TypeError):
        resolve_type(str)


def test_user_validators_run_in_check() -> None:
    """A type's validate= runs in check()."""
    typ = String(validate=marshmallow.validate.Length(max=3))
    assert typ.check("abc") == "abc"
    with pytest.raises(marshmallow.ValidationError):
        typ.check("abcd")


def test_bool_is_not_a_number() -> None:
    """Integer, Number and Float refuse bools."""
    for typ in (Integer(), Number(), Float()):
        with pytest.raises(marshmallow.ValidationError):
            typ.check(True)


def test_uuid_and_enum_accept_their_text_forms() -> None:
    """UUID and Enum accept their canonical text and refuse other text."""
    u = uuid.UUID(int=5)
    assert UUID().check(str(u)) == u
    assert UUID().dynamo_dump(u) == {"S": str(u)}
    assert Enum(SampleColor).check("RED") is SampleColor.RED
    assert Enum(SampleColor).dynamo_dump(SampleColor.RED) == {"S": "RED"}
    with pytest.raises(marshmallow.ValidationError):
        Enum(SampleColor).check("red")
    with pytest.raises(marshmallow.ValidationError):
        UUID().check("nope")


def test_list_dumps_none_elements_as_null() -> None:
    """List stores None elements as NULL and loads them back as None."""
    typ = List(Integer)
    wire = typ.dynamo_dump(typ.check([1, None]))
    assert wire == {"L": [{"N": "1"}, {"NULL": True}]}
    assert typ.dynamo_load(wire) == [1, None]


def test_wire_size_of_known_item() -> None:
    """wire_size counts names plus values as DynamoDB does for a known item."""
    item = {
        "id": {"S": "abc"},  # 2 + 3
        "n": {"N": "123"},  # 1 + (2 + 1)
        "ok": {"BOOL": True},  # 2 + 1
        "b": {"B": b"\x00\x01"},  # 1 + 2
        "l": {"L": [{"S": "x"}, {"NULL": True}]},  # 1 + 3 + (1 + 1) + (1 + 1)
        "m": {"M": {"k": {"S": "vv"}}},  # 1 + 3 + (1 + 1 + 2)
        "é": {"SS": ["a", "bc"]},  # 2 + 3
    }
    assert wire_size(item) == 5 + 4 + 3 + 3 + 8 + 8 + 5
