"""DynamoDB types as marshmallow fields.

Each type is a marshmallow field (so ``Model.Schema`` dumps and loads JSON with it) that also
knows DynamoDB's wire format. This module is the only place where Python values become wire
values (``{"S": "x"}``) and back:

- ``check(value)`` validates a Python value given by user code and returns it normalized; it
  raises ``marshmallow.ValidationError`` (types, ranges, then the field's ``validate=``).
- ``dynamo_dump(value)`` turns a checked Python value into a wire value, or ``None`` when the
  attribute should not exist (``None``, an empty set).
- ``dynamo_load(wire)`` turns a wire value read from DynamoDB back into a Python value. Data
  coming from DynamoDB is trusted: it is converted, not re-validated.
- marshmallow's ``_serialize``/``_deserialize`` hooks give the JSON form.
- ``fast`` declares, next to the wire dump/load, the common case as source templates
  (:class:`~streamodel._wire.Scalar`, :class:`~streamodel._wire.Container`), from which
  :mod:`streamodel._typegen` generates fast functions equal to these methods.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import enum
import math
import uuid
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Generic, TypeVar, cast

from streamodel._marshmallow import fields, marshmallow
from streamodel._wire import Container, Scalar, same_wire, wire_size
from streamodel._wire import attribute_size as _attribute_size  # noqa: F401  (tests import it here)

__all__ = [
    "ALL_TYPES",
    "JSON",
    "UUID",
    "Binary",
    "Boolean",
    "DateTime",
    "DynamoType",
    "Enum",
    "Float",
    "Integer",
    "List",
    "Map",
    "Number",
    "Set",
    "String",
    "Timestamp",
    "resolve_type",
    "same_wire",
    "wire_size",
]

T = TypeVar("T")
Wire = dict[str, Any]

# DynamoDB numbers: 38 significant digits, magnitudes from 1e-130 to below 1e126.
# Emin/Emax bound the adjusted exponent (that of the first digit): 1E-130 is the smallest
# magnitude and 9.99...E+125 the largest; smaller values are subnormal and trapped.
DYNAMO_CONTEXT = decimal.Context(
    Emin=-130,
    Emax=125,
    prec=38,
    traps=[
        decimal.Clamped,
        decimal.Overflow,
        decimal.Inexact,
        decimal.Rounded,
        decimal.Subnormal,
        decimal.Underflow,
    ],
)


def _fail(message: str) -> marshmallow.ValidationError:
    return marshmallow.ValidationError(message)


class DynamoType(fields.Field[T], Generic[T]):
    """Base of every streamodel type.

    ``backing_type`` is the DynamoDB type the value is stored as (``"S"``, ``"N"``, ``"B"``,
    ``"BOOL"``, ``"SS"``, ``"NS"``, ``"BS"``, ``"L"``, ``"M"``, or ``"*"`` for types that
    choose per value). Only ``S``, ``N`` and ``B`` types can be table or index keys.
    """

    backing_type: ClassVar[str] = "*"
    python_type: ClassVar[str] = "value"
    #: The common case for generated code (see :mod:`streamodel._wire`), or None: generated
    #: code then calls ``check``, ``dynamo_dump`` and ``dynamo_load``. Read from the class
    #: itself only, never inherited: a subclass may override any hook, so it declares its own.
    fast: ClassVar[Scalar | Container | None] = None

    def __init__(self, **kwargs: Any) -> None:
        # A column that was never set reads as None, and the JSON form says so.
        kwargs.setdefault("allow_none", True)
        super().__init__(**kwargs)

    @property
    def key_able(self) -> bool:
        return self.backing_type in ("S", "N", "B")

    # -- Python side -------------------------------------------------------------------
    def check(self, value: Any) -> T:
        """Validate a user-given Python value and return it normalized."""
        checked = self._check_type(value)
        if self.validators:
            self._validate(checked)
        return checked

    def _check_type(self, value: Any) -> T:
        raise NotImplementedError

    # -- wire side -----------------------------------------------------------------------
    def dynamo_dump(self, value: T | None) -> Wire | None:
        """The wire value for a checked Python value; ``None`` means "no attribute"."""
        if value is None:
            return None
        return {self.backing_type: self._dump(value)}

    def dynamo_load(self, wire: Wire | None) -> T | None:
        """The Python value for a wire value read from DynamoDB (``None`` when absent)."""
        if wire is None or "NULL" in wire:
            return None
        ((tag, raw),) = wire.items()
        backing = self.backing_type
        if tag != backing and backing != "*":
            # Another writer stored another type here: say so rather than coerce it.
            raise ValueError(f"stored as {tag}, expected {backing}")
        return self._load(tag, raw)

    def _dump(self, value: T) -> Any:
        return value

    def _load(self, tag: str, raw: Any) -> T:
        return cast(T, raw)

    # -- JSON side (marshmallow hooks) ---------------------------------------------------
    def _serialize(self, value: T | None, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if value is None:
            return None
        return self._to_json(value)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> T:
        return self._check_type(self._from_json(value))

    def _to_json(self, value: T) -> Any:
        return value

    def _from_json(self, value: Any) -> Any:
        return value


class String(DynamoType[str]):
    """A ``str``, stored as ``S``. Empty strings are stored (allowed outside keys)."""

    backing_type = "S"
    python_type = "str"
    fast = Scalar(check="type({v}) is _str", dump="{v}", load="{w}")

    def _check_type(self, value: Any) -> str:
        if not isinstance(value, str):
            raise _fail(f"Not a valid string: {type(value).__name__}.")
        return value


def _check_number_text(text: str) -> str:
    try:
        DYNAMO_CONTEXT.create_decimal(text)
    except decimal.DecimalException:
        raise _fail(
            f"Number {text} does not fit DynamoDB's numbers "
            "(38 significant digits, magnitude 1e-130 to 1e126)."
        ) from None
    return text


class Integer(DynamoType[int]):
    """An ``int``, stored as ``N`` (at most 38 digits)."""

    backing_type = "N"
    python_type = "int"
    fast = Scalar(
        check="type({v}) is _int and -_INT_LIMIT < {v} < _INT_LIMIT",
        dump="_str({v})",
        load="_int({w})",
        names={"_INT_LIMIT": 10**38},  # ints below this in magnitude have at most 38 digits
    )

    def _check_type(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str):
                try:
                    value = int(value)
                except ValueError:
                    raise _fail(f"Not a valid integer: {value!r}.") from None
            else:
                raise _fail(f"Not a valid integer: {type(value).__name__}.")
        _check_number_text(str(value))
        return int(value)

    def _dump(self, value: int) -> str:
        return str(value)

    def _load(self, tag: str, raw: Any) -> int:
        return int(raw)

    def _from_json(self, value: Any) -> Any:
        return value


class Number(DynamoType[decimal.Decimal]):
    """An exact ``decimal.Decimal``, stored as ``N``.

    Ints are accepted and floats are converted through their shortest repr. NaN, infinities
    and numbers beyond DynamoDB's 38 significant digits are refused rather than rounded.
    """

    backing_type = "N"
    python_type = "Decimal"
    fast = Scalar(
        # At most 38 characters (so digits), and the first digit's exponent far from both
        # ends of DynamoDB's range (1e-130 to below 1e126): exact in DYNAMO_CONTEXT.
        check=(
            "type({v}) is _Decimal and {v}.is_finite() and -90 <= {v}.adjusted() <= 100"
            " and len({r} := _str({v})) <= 38"
        ),
        dump="{r}",
        load="_Decimal({w})",
    )

    def _check_type(self, value: Any) -> decimal.Decimal:
        if isinstance(value, bool):
            raise _fail("Not a valid number: bool.")
        if isinstance(value, float):
            value = decimal.Decimal(repr(value))
        elif isinstance(value, int | str):
            try:
                value = decimal.Decimal(value)
            except decimal.InvalidOperation:
                raise _fail(f"Not a valid number: {value!r}.") from None
        if not isinstance(value, decimal.Decimal):
            raise _fail(f"Not a valid number: {type(value).__name__}.")
        if not value.is_finite():
            raise _fail("NaN and infinity cannot be stored in DynamoDB.")
        _check_number_text(str(value))
        return value

    def _dump(self, value: decimal.Decimal) -> str:
        return str(value)

    def _load(self, tag: str, raw: Any) -> decimal.Decimal:
        return decimal.Decimal(raw)

    def _to_json(self, value: decimal.Decimal) -> Any:
        # Exact in JSON: a string keeps every digit that a float would lose.
        return str(value)


class Float(DynamoType[float]):
    """A ``float``, stored as ``N`` with its shortest round-tripping repr (17 digits at most).

    Values round-trip exactly; use :class:`Number` for decimal arithmetic.
    """

    backing_type = "N"
    python_type = "float"
    fast = Scalar(
        # Finite, and its repr (17 digits at most) fits DynamoDB.
        check="type({v}) is _float and ({v} == 0.0 or 1e-120 < abs({v}) < 1e120)",
        dump="_repr({v})",
        load="_float({w})",
    )

    def _check_type(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal):
            raise _fail(f"Not a valid float: {type(value).__name__}.")
        if isinstance(value, decimal.Decimal) and value.is_snan():
            raise _fail("NaN and infinity cannot be stored in DynamoDB.")  # float() raises
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            raise _fail(
                "Number does not fit DynamoDB's numbers "
                "(38 significant digits, magnitude 1e-130 to 1e126)."
            ) from None
        if not math.isfinite(number):
            raise _fail("NaN and infinity cannot be stored in DynamoDB.")
        _check_number_text(repr(number))  # e.g. 1e308 is beyond DynamoDB's range
        return number

    def _dump(self, value: float) -> str:
        return repr(value)

    def _load(self, tag: str, raw: Any) -> float:
        return float(raw)


class Boolean(DynamoType[bool]):
    """A ``bool``, stored as ``BOOL``."""

    backing_type = "BOOL"
    python_type = "bool"
    fast = Scalar(check="type({v}) is _bool", dump="{v}", load="{w}")

    def _check_type(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise _fail(f"Not a valid boolean: {type(value).__name__}.")
        return value


class Binary(DynamoType[bytes]):
    """``bytes``, stored as ``B``; base64 text in JSON."""

    backing_type = "B"
    python_type = "bytes"
    # Loads take base64 text too (see _load): the type's own load does.
    fast = Scalar(check="type({v}) is _bytes", dump="{v}", load=None)

    def _check_type(self, value: Any) -> bytes:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise _fail(f"Not valid bytes: {type(value).__name__}.")
        return bytes(value)

    def _load(self, tag: str, raw: Any) -> bytes:
        # botocore hands bytes; Lambda's JSON events hand base64 text.
        return base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)

    def _to_json(self, value: bytes) -> str:
        return base64.b64encode(value).decode("ascii")

    def _from_json(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise _fail("Not valid base64 text.")
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            raise _fail("Not valid base64 text.") from None


class UUID(DynamoType[uuid.UUID]):
    """A ``uuid.UUID``, stored as its canonical ``S`` form."""

    backing_type = "S"
    python_type = "UUID"
    fast = Scalar(
        check="type({v}) is _UUID", dump="_str({v})", load="_UUID({w})", names={"_UUID": uuid.UUID}
    )

    def _check_type(self, value: Any) -> uuid.UUID:
        if isinstance(value, uuid.UUID):
            return value
        if isinstance(value, str):
            try:
                return uuid.UUID(value)
            except ValueError:
                pass
        raise _fail(f"Not a valid UUID: {value!r}.")

    def _dump(self, value: uuid.UUID) -> str:
        return str(value)

    def _load(self, tag: str, raw: Any) -> uuid.UUID:
        return uuid.UUID(raw)

    def _to_json(self, value: uuid.UUID) -> str:
        return str(value)


def _check_aware(value: Any) -> datetime.datetime:
    if not isinstance(value, datetime.datetime):
        raise _fail(f"Not a valid datetime: {type(value).__name__}.")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        raise _fail("Naive datetime: give a timezone, e.g. datetime.now(timezone.utc).")
    return value


class DateTime(DynamoType[datetime.datetime]):
    """An aware ``datetime``, stored as fixed-width ISO-8601 UTC text (so it sorts).

    Naive datetimes are refused: their meaning depends on the machine that wrote them.
    Values load back in UTC with microsecond precision.
    """

    backing_type = "S"
    python_type = "datetime"
    fast = Scalar(
        # Aware in UTC itself: astimezone(UTC) is the identity and cannot overflow.
        check="type({v}) is _datetime and {v}.tzinfo is _UTC",
        # isoformat() shows the microseconds by itself when there are some: no keyword.
        dump="({v}.isoformat() if {v}.microsecond else {v}.isoformat(timespec='microseconds'))",
        load="_fromiso({w})",
        names={"_fromiso": datetime.datetime.fromisoformat},
    )

    def _check_type(self, value: Any) -> datetime.datetime:
        if isinstance(value, str):
            try:
                value = datetime.datetime.fromisoformat(value)
            except ValueError:
                raise _fail(f"Not a valid ISO-8601 datetime: {value!r}.") from None
        checked = _check_aware(value)
        try:
            checked.astimezone(datetime.UTC)  # what dump does; fails near datetime.min/max
        except OverflowError:
            raise _fail(f"Datetime {checked.isoformat()} is out of range in UTC.") from None
        return checked

    def _dump(self, value: datetime.datetime) -> str:
        # isoformat zero-pads the year (strftime's %Y does not below 1000), so the text
        # stays fixed-width and sorts like the datetimes.
        return value.astimezone(datetime.UTC).isoformat(timespec="microseconds")

    def _load(self, tag: str, raw: Any) -> datetime.datetime:
        return datetime.datetime.fromisoformat(raw)

    def _to_json(self, value: datetime.datetime) -> str:
        return self._dump(value)


class Timestamp(DynamoType[datetime.datetime]):
    """An aware ``datetime``, stored as whole epoch seconds in ``N`` (the type DynamoDB TTL reads).

    Sub-second parts are dropped when stored.
    """

    backing_type = "N"
    python_type = "datetime"

    def _check_type(self, value: Any) -> datetime.datetime:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.datetime.fromtimestamp(int(value), datetime.UTC)
        return _check_aware(value)

    def _dump(self, value: datetime.datetime) -> str:
        return str(math.floor(value.timestamp()))

    def _load(self, tag: str, raw: Any) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(int(decimal.Decimal(raw)), datetime.UTC)

    def _to_json(self, value: datetime.datetime) -> int:
        return math.floor(value.timestamp())


E = TypeVar("E", bound=enum.Enum)


class Enum(DynamoType[E]):
    """A member of ``enum_cls``, stored as the member's name in ``S``."""

    backing_type = "S"
    python_type = "enum"

    def __init__(self, enum_cls: type[E], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.enum_cls = enum_cls

    def _check_type(self, value: Any) -> E:
        if isinstance(value, self.enum_cls):
            return value
        if isinstance(value, str) and value in self.enum_cls.__members__:
            return self.enum_cls[value]
        names = ", ".join(self.enum_cls.__members__)
        raise _fail(f"Not a member of {self.enum_cls.__name__} ({names}): {value!r}.")

    def _dump(self, value: E) -> str:
        return value.name

    def _load(self, tag: str, raw: Any) -> E:
        return self.enum_cls[raw]

    def _to_json(self, value: E) -> str:
        return value.name


def resolve_type(typ: Any) -> DynamoType[Any]:
    """A type instance for a column: streamodel types, their classes, or any marshmallow field."""
    if isinstance(typ, type) and issubclass(typ, fields.Field):
        typ = typ()
    if isinstance(typ, DynamoType):
        return typ
    if isinstance(typ, fields.Field):
        return Foreign(typ)
    raise TypeError(f"Not a column type: {typ!r} (use a streamodel type or a marshmallow field)")


class Set(DynamoType[set[Any]]):
    """A ``set`` of one type, stored as ``SS``, ``NS`` or ``BS``. An empty set is not stored."""

    python_type = "set"
    fast = Container("set")

    def __init__(self, typ: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner = resolve_type(typ)
        if not self.inner.key_able:
            raise TypeError(
                f"Set({type(self.inner).__name__}): sets hold strings, numbers or bytes"
            )

    @property
    def backing_type(self) -> str:  # type: ignore[override]
        return self.inner.backing_type + "S"

    def _check_type(self, value: Any) -> set[Any]:
        if not isinstance(value, set | frozenset | list | tuple):
            raise _fail(f"Not a valid set: {type(value).__name__}.")
        checked = set()
        for item in value:
            if item is None:
                raise _fail("Sets cannot hold None.")
            checked.add(self.inner.check(item))
        return checked

    def dynamo_dump(self, value: set[Any] | None) -> Wire | None:
        if not value:
            return None
        dump = self.inner._dump
        return {self.backing_type: sorted(dump(v) for v in value)}

    def _load(self, tag: str, raw: Any) -> set[Any]:
        load = self.inner._load
        inner_tag = tag[0]
        return {load(inner_tag, v) for v in raw}

    def _to_json(self, value: set[Any]) -> list[Any]:
        to_json = self.inner._to_json
        return sorted(to_json(v) for v in value)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> set[Any]:
        if not isinstance(value, list):
            raise _fail("Not a valid list.")
        return {self.inner._deserialize(v, None, None) for v in value}


class List(DynamoType[list[Any]]):
    """A ``list`` whose items are of one type, stored as ``L``."""

    backing_type = "L"
    python_type = "list"
    fast = Container("list")

    def __init__(self, typ: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner = resolve_type(typ)

    def _check_type(self, value: Any) -> list[Any]:
        if not isinstance(value, list | tuple):
            raise _fail(f"Not a valid list: {type(value).__name__}.")
        return [None if v is None else self.inner.check(v) for v in value]

    def _dump(self, value: list[Any]) -> list[Wire]:
        dump = self.inner.dynamo_dump
        return [dump(v) or {"NULL": True} for v in value]

    def _load(self, tag: str, raw: Any) -> list[Any]:
        load = self.inner.dynamo_load
        return [load(v) for v in raw]

    def _to_json(self, value: list[Any]) -> list[Any]:
        to_json = self.inner._to_json
        return [None if v is None else to_json(v) for v in value]

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> list[Any]:
        if not isinstance(value, list):
            raise _fail("Not a valid list.")
        return [None if v is None else self.inner._deserialize(v, None, None) for v in value]


class Map(DynamoType[dict[str, Any]]):
    """A document with typed keys, ``Map(street=String, zip=Integer)``, stored as ``M``.

    The Python value is a ``dict``; keys not declared are refused, missing keys read as absent.
    """

    backing_type = "M"
    python_type = "dict"
    fast = Container("map")

    def __init__(self, **types: Any) -> None:
        kwargs = {k: types.pop(k) for k in ("validate", "required", "metadata") if k in types}
        super().__init__(**kwargs)
        self.types = {name: resolve_type(t) for name, t in types.items()}

    def _check_type(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _fail(f"Not a valid mapping: {type(value).__name__}.")
        unknown = sorted(set(value) - set(self.types))
        if unknown:
            raise _fail(f"Unknown keys {unknown}; declared: {sorted(self.types)}.")
        errors: dict[str, Any] = {}
        checked: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                checked[key] = None
                continue
            try:
                checked[key] = self.types[key].check(item)
            except marshmallow.ValidationError as error:
                errors[key] = error.messages
        if errors:
            raise marshmallow.ValidationError(errors)
        return checked

    def _dump(self, value: dict[str, Any]) -> dict[str, Wire]:
        out = {}
        for key, item in value.items():
            wire = self.types[key].dynamo_dump(item)
            if wire is not None:
                out[key] = wire
        return out

    def _load(self, tag: str, raw: Any) -> dict[str, Any]:
        types = self.types
        return {k: types[k].dynamo_load(v) for k, v in raw.items() if k in types}

    def _to_json(self, value: dict[str, Any]) -> dict[str, Any]:
        return {
            k: None if v is None else self.types[k]._to_json(v)
            for k, v in value.items()
            if k in self.types
        }

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise _fail("Not a valid mapping.")
        unknown = sorted(set(value) - set(self.types))
        if unknown:
            raise _fail(f"Unknown keys {unknown}; declared: {sorted(self.types)}.")
        return {
            k: None if v is None else self.types[k]._deserialize(v, None, None)
            for k, v in value.items()
        }


def _json_dump(value: Any, path: str = "") -> Wire:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, int):
        return {"N": _check_number_text(str(value))}
    if isinstance(value, float | decimal.Decimal):
        # Decimal.is_finite: math.isfinite raises ValueError on a signaling NaN.
        if not decimal.Decimal(value).is_finite():
            raise _fail(f"NaN and infinity cannot be stored in DynamoDB{path}.")
        return {"N": _check_number_text(repr(value) if isinstance(value, float) else str(value))}
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _fail(f"JSON object keys must be strings{path}: {key!r}.")
            out[key] = _json_dump(item, f"{path}.{key}")
        return {"M": out}
    if isinstance(value, list | tuple):
        return {"L": [_json_dump(v, f"{path}[{i}]") for i, v in enumerate(value)]}
    raise _fail(f"Not a JSON value{' at ' + path if path else ''}: {type(value).__name__}.")


def _json_number(text: str) -> int | float | decimal.Decimal:
    if "." not in text and "e" not in text and "E" not in text:
        return int(text)
    number = float(text)
    # Keep full precision where a float would lose digits.
    return (
        number if decimal.Decimal(repr(number)) == decimal.Decimal(text) else decimal.Decimal(text)
    )


def _json_load(wire: Wire) -> Any:
    ((tag, raw),) = wire.items()
    if tag == "M":
        return {k: _json_load(v) for k, v in raw.items()}
    if tag == "L":
        return [_json_load(v) for v in raw]
    if tag == "N":
        return _json_number(raw)
    if tag == "NULL":
        return None
    if tag in ("SS", "BS"):
        return sorted(raw)
    if tag == "NS":
        return sorted(_json_number(v) for v in raw)
    return raw


class JSON(DynamoType[Any]):
    """Any JSON document (dicts, lists, strings, numbers, booleans, null), stored natively.

    Objects become ``M`` and arrays ``L``, so conditions and update paths reach inside them.
    Numbers come back as ``int`` when integral, else ``float`` (or ``Decimal`` when a float
    would lose digits).
    """

    backing_type = "*"
    python_type = "JSON"

    def _check_type(self, value: Any) -> Any:
        _json_dump(value)
        return value

    def dynamo_dump(self, value: Any) -> Wire | None:
        if value is None:
            return None
        return _json_dump(value)

    def dynamo_load(self, wire: Wire | None) -> Any:
        if wire is None:
            return None
        return _json_load(wire)

    def _to_json(self, value: Any) -> Any:
        return value


_FOREIGN_BACKING = (
    (fields.String, "S"),
    (fields.UUID, "S"),
    (fields.Number, "N"),
    (fields.Boolean, "BOOL"),
)


class Foreign(DynamoType[Any]):
    """Any other marshmallow field used as a column type (``fields.Email()``, ``fields.Url()``).

    The field's own JSON form is what is stored, so its validation and formats apply
    unchanged: a value is checked by a JSON round trip through the field.
    """

    python_type = "value"

    def __init__(self, field: fields.Field[Any]) -> None:
        super().__init__()
        self.field = field
        self.backing = next((tag for cls, tag in _FOREIGN_BACKING if isinstance(field, cls)), "*")

    @property
    def backing_type(self) -> str:  # type: ignore[override]
        return self.backing

    def _check_type(self, value: Any) -> Any:
        field = self.field
        try:
            as_json = field._serialize(value, None, None)
        except (TypeError, ValueError, AttributeError) as error:
            raise _fail(f"Not a valid value for {type(field).__name__}: {error}") from None
        return field.deserialize(as_json)

    def dynamo_dump(self, value: Any) -> Wire | None:
        if value is None:
            return None
        return _json_dump(self.field._serialize(value, None, None))

    def dynamo_load(self, wire: Wire | None) -> Any:
        if wire is None or "NULL" in wire:
            return None
        return self.field.deserialize(_json_load(wire))

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return None if value is None else self.field._serialize(value, attr, obj)

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> Any:
        return self.field.deserialize(value)


class SampleColor(enum.Enum):
    """An enum for the samples in :data:`ALL_TYPES`."""

    RED = "red"
    GREEN = "green"


#: Every built-in type with a sample value; drives the same round-trip tests over all types.
ALL_TYPES: list[tuple[Callable[[], DynamoType[Any]], Any]] = [
    (String, "héllo wörld"),
    (Integer, 12345678901234567890),
    (Number, decimal.Decimal("3.14159265358979323846264338327950288")),
    (Float, 0.1),
    (Boolean, True),
    (Binary, b"\x00\xffbytes"),
    (UUID, uuid.UUID("12345678-1234-5678-1234-567812345678")),
    (DateTime, datetime.datetime(2026, 11, 26, 12, 30, 45, 123456, tzinfo=datetime.UTC)),
    (Timestamp, datetime.datetime(2026, 11, 26, 12, 30, 45, tzinfo=datetime.UTC)),
    (lambda: Enum(SampleColor), SampleColor.GREEN),
    (lambda: Set(String), {"a", "b", "c"}),
    (lambda: Set(Integer), {1, 2, 3}),
    (lambda: Set(Binary), {b"x", b"y"}),
    (lambda: List(Integer), [1, 2, 3, 4, 5]),
    (
        lambda: Map(street=String, number=Integer, tags=Set(String)),
        {
            "street": "Main",
            "number": 7,
            "tags": {"home"},
        },
    ),
    (JSON, {"a": [1, 2.5, "x", None, True], "b": {"c": {"d": []}}}),
    (lambda: Foreign(fields.Email()), "someone@example.com"),
]
