"""Conditions: trees built from column paths with Python operators.

``Account.name == "x"``, ``Account.tags.contains("a") & ~Account.email.is_(None)``,
``Account.address["city"].begins_with("Ber")``, ``Account.items.size() > 3``.
A condition only describes; :mod:`streamodel._render` turns it into DynamoDB's expression
syntax, and values are converted to wire values by the column's type when the condition is
built, so a bad value fails at once, naming the column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Union

from streamodel._marshmallow import marshmallow
from streamodel.exceptions import InvalidConditionError
from streamodel.types import JSON, DynamoType, List, Map, Set, Wire

if TYPE_CHECKING:
    from streamodel.columns import Column

__all__ = [
    "And",
    "AttributeType",
    "BeginsWith",
    "Between",
    "Comparison",
    "Condition",
    "Contains",
    "Exists",
    "In",
    "Not",
    "NotExists",
    "Or",
    "Path",
    "Size",
    "Value",
    "all_of",
]

ATTRIBUTE_TYPES = frozenset({"S", "SS", "N", "NS", "B", "BS", "BOOL", "NULL", "L", "M"})
MAX_IN_OPERANDS = 100


class Operand:
    """Something that can stand on either side of a comparison."""

    def describe(self) -> str:
        raise NotImplementedError


class Value(Operand):
    """A wire value, rendered as a ``:v`` placeholder."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire

    def describe(self) -> str:
        return repr(self.wire)


OperandLike = Union["Path", "Size", Any]


class Comparable(Operand):
    """Comparison operators shared by paths and ``size()``."""

    def _operand(self, value: Any) -> Operand:
        raise NotImplementedError

    def _compare(self, op: str, value: Any) -> Condition:
        operand = self._operand(value)
        _require_distinct(self, operand)
        if op not in ("=", "<>"):
            _require_ordered(self, operand, op)
        return Comparison(op, self, operand)

    def __eq__(self, value: Any) -> Condition:  # type: ignore[override]
        return self._compare("=", value)

    def __ne__(self, value: Any) -> Condition:  # type: ignore[override]
        return self._compare("<>", value)

    def __lt__(self, value: Any) -> Condition:
        return self._compare("<", value)

    def __le__(self, value: Any) -> Condition:
        return self._compare("<=", value)

    def __gt__(self, value: Any) -> Condition:
        return self._compare(">", value)

    def __ge__(self, value: Any) -> Condition:
        return self._compare(">=", value)

    def between(self, low: Any, high: Any) -> Condition:
        lo, hi = self._operand(low), self._operand(high)
        _require_distinct(self, lo, hi)
        _require_ordered(self, lo, "BETWEEN")
        _require_ordered(self, hi, "BETWEEN")
        if isinstance(lo, Value) and isinstance(hi, Value):
            from streamodel.evaluate import _compare

            if _compare(">", lo.wire, hi.wire):
                # DynamoDB refuses the whole request rather than matching nothing.
                raise InvalidConditionError(
                    f"{self.describe()}.between({low!r}, {high!r}): the lower bound is above "
                    "the upper bound"
                )
        return Between(self, lo, hi)

    def in_(self, *values: Any) -> Condition:
        if len(values) == 1 and isinstance(values[0], list | tuple | set | frozenset):
            values = tuple(values[0])
        if not values:
            raise InvalidConditionError(f"{self.describe()}.in_() needs at least one value")
        if len(values) > MAX_IN_OPERANDS:
            raise InvalidConditionError(
                f"{self.describe()}.in_() takes at most {MAX_IN_OPERANDS} values "
                f"(DynamoDB's limit), got {len(values)}"
            )
        operands = [self._operand(v) for v in values]
        _require_distinct(self, *operands)
        return In(self, operands)

    __hash__ = object.__hash__


class Path(Comparable):
    """A column, or a path into a column's document (``col["key"][0]``)."""

    def __init__(self, column: Column, segments: tuple[str | int, ...] = ()) -> None:
        self.column = column
        self.segments = segments

    # The column's type at this path; None where the document is untyped (JSON).
    @property
    def type(self) -> DynamoType[Any] | None:
        typ: DynamoType[Any] | None = self.column._type
        for segment in self.segments:
            if isinstance(typ, Map) and isinstance(segment, str):
                typ = typ.types[segment]
            elif isinstance(typ, List) and isinstance(segment, int):
                typ = typ.inner
            else:
                typ = None
        return typ

    def __getitem__(self, segment: str | int) -> Path:
        typ = self.type
        where = self.describe()
        if isinstance(segment, bool) or not isinstance(segment, str | int):
            raise InvalidConditionError(f"{where}[{segment!r}]: use a str key or an int index")
        if isinstance(typ, Map):
            if not isinstance(segment, str) or segment not in typ.types:
                raise InvalidConditionError(
                    f"{where}[{segment!r}]: not a key of the map (declared: {sorted(typ.types)})"
                )
        elif isinstance(typ, List):
            if not isinstance(segment, int) or segment < 0:
                raise InvalidConditionError(f"{where}[{segment!r}]: lists take an index >= 0")
        elif typ is not None and not isinstance(typ, JSON) and typ.backing_type != "*":
            raise InvalidConditionError(
                f"{where}[{segment!r}]: {type(typ).__name__} columns have no nested paths"
            )
        return Path(self.column, (*self.segments, segment))

    def describe(self) -> str:
        text = f"{self.column.model_name}.{self.column.name}"
        for segment in self.segments:
            text += f"[{segment!r}]"
        return text

    def dump(self, value: Any) -> Wire:
        """The wire value of ``value`` as this path's type, or a clear error."""
        typ = self.type
        try:
            if typ is None or isinstance(typ, JSON):
                from streamodel.types import _json_dump

                return _json_dump(value)
            wire = typ.dynamo_dump(typ.check(value))
        except marshmallow.ValidationError as error:
            raise InvalidConditionError(f"{self.describe()}: {error.messages}") from None
        if wire is None:
            raise InvalidConditionError(
                f"{self.describe()}: cannot compare with an empty value; "
                "use is_(None) to test that the attribute does not exist"
            )
        return wire

    def _operand(self, value: Any) -> Operand:
        if isinstance(value, Path | Size):
            return value
        return Value(self.dump(value))

    # None means "the attribute does not exist", as in the quickstart's ``is_(None)``.
    def __eq__(self, value: Any) -> Condition:  # type: ignore[override]
        return NotExists(self) if value is None else self._compare("=", value)

    def __ne__(self, value: Any) -> Condition:  # type: ignore[override]
        return Exists(self) if value is None else self._compare("<>", value)

    __hash__ = object.__hash__

    def is_(self, value: Any) -> Condition:
        return self.__eq__(value)

    def is_not(self, value: Any) -> Condition:
        return self.__ne__(value)

    def exists(self) -> Condition:
        return Exists(self)

    def not_exists(self) -> Condition:
        return NotExists(self)

    def begins_with(self, prefix: str | bytes) -> Condition:
        if isinstance(prefix, str):
            return BeginsWith(self, Value({"S": prefix}))
        if isinstance(prefix, bytes):
            return BeginsWith(self, Value({"B": prefix}))
        raise InvalidConditionError(f"{self.describe()}.begins_with() takes str or bytes")

    def contains(self, value: Any) -> Condition:
        typ = self.type
        if isinstance(typ, Set | List):
            element = Path(self.column, self.segments)
            inner = typ.inner
            try:
                wire = inner.dynamo_dump(inner.check(value))
            except marshmallow.ValidationError as error:
                raise InvalidConditionError(
                    f"{element.describe()}.contains(): {error.messages}"
                ) from None
            return Contains(self, Value(wire or {"NULL": True}))
        if isinstance(value, str):
            return Contains(self, Value({"S": value}))
        if isinstance(value, bytes):
            return Contains(self, Value({"B": value}))
        return Contains(self, Value(Path(self.column, self.segments).dump(value)))

    def attribute_type(self, tag: str) -> Condition:
        if tag not in ATTRIBUTE_TYPES:
            raise InvalidConditionError(
                f"{self.describe()}.attribute_type({tag!r}): one of {sorted(ATTRIBUTE_TYPES)}"
            )
        return AttributeType(self, tag)

    def size(self) -> Size:
        typ = self.type
        if typ is not None and typ.backing_type in ("N", "BOOL"):
            raise InvalidConditionError(
                f"{self.describe()}.size(): size() applies to strings, binary, sets, lists "
                f"and maps, not {type(typ).__name__}"
            )
        return Size(self)


def _same_operand(a: Operand, b: Operand) -> bool:
    if isinstance(a, Path) and isinstance(b, Path):
        return a.column is b.column and a.segments == b.segments
    if isinstance(a, Size) and isinstance(b, Size):
        return _same_operand(a.path, b.path)
    return False


def _require_distinct(first: Operand, *others: Operand) -> None:
    """DynamoDB refuses ``a = a``, ``a BETWEEN a AND b``, ``a IN (a)``: the first operand
    must be distinct from the others."""
    if any(_same_operand(first, other) for other in others):
        raise InvalidConditionError(
            f"{first.describe()} is compared with itself; DynamoDB refuses such conditions"
        )


def _require_ordered(operand: Operand, value: Operand, op: str) -> None:
    """DynamoDB orders only strings, numbers and binary; it refuses other literal values."""
    if isinstance(value, Value):
        tag = next(iter(value.wire))
        if tag not in ("S", "N", "B"):
            raise InvalidConditionError(
                f"{operand.describe()} {op} {value.describe()}: only strings, numbers and "
                f"binary values can be ordered, not {tag}"
            )


class Size(Comparable):
    """``size(path)``: length of a string, binary, set, list or map."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return f"size({self.path.describe()})"

    def _operand(self, value: Any) -> Operand:
        if isinstance(value, Path | Size):
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidConditionError(f"{self.describe()} compares with an int, got {value!r}")
        return Value({"N": str(value)})

    __hash__ = object.__hash__


class Condition:
    """Base of every condition; combine with ``&``, ``|`` and ``~``."""

    def __and__(self, other: Condition) -> Condition:
        return And([self, _check(other)])

    def __or__(self, other: Condition) -> Condition:
        return Or([self, _check(other)])

    def __invert__(self) -> Condition:
        return Not(self)

    def __bool__(self) -> bool:
        raise TypeError(
            "a condition has no truth value: combine conditions with &, | and ~, "
            "not with and, or and not"
        )

    def paths(self) -> Iterable[Path]:
        """Every column path this condition reads."""
        return ()

    def evaluate(self, obj_or_values: Any) -> bool:
        """Whether this condition holds on an item holding ``obj_or_values`` (a model object,
        or a mapping of column names to values), decided as DynamoDB would decide it.

        See :mod:`streamodel.evaluate`; ``streamodel.evaluate.evaluate(condition, item)``
        takes a raw stored item instead.
        """
        from streamodel.evaluate import evaluate, item_of

        return evaluate(self, item_of(self, obj_or_values))


def _check(other: Any) -> Condition:
    if not isinstance(other, Condition):
        raise InvalidConditionError(f"cannot combine a condition with {other!r}")
    return other


def _operand_paths(*operands: Operand) -> list[Path]:
    out: list[Path] = []
    for operand in operands:
        if isinstance(operand, Path):
            out.append(operand)
        elif isinstance(operand, Size):
            out.append(operand.path)
    return out


class Comparison(Condition):
    def __init__(self, op: str, left: Operand, right: Operand) -> None:
        self.op, self.left, self.right = op, left, right

    def paths(self) -> Iterable[Path]:
        return _operand_paths(self.left, self.right)


class Between(Condition):
    def __init__(self, operand: Operand, low: Operand, high: Operand) -> None:
        self.operand, self.low, self.high = operand, low, high

    def paths(self) -> Iterable[Path]:
        return _operand_paths(self.operand, self.low, self.high)


class In(Condition):
    def __init__(self, operand: Operand, values: Sequence[Operand]) -> None:
        self.operand, self.values = operand, list(values)

    def paths(self) -> Iterable[Path]:
        return _operand_paths(self.operand, *self.values)


class _Function(Condition):
    function = ""

    def __init__(self, path: Path, *args: Operand) -> None:
        self.path, self.args = path, args

    def paths(self) -> Iterable[Path]:
        return [self.path]


class BeginsWith(_Function):
    function = "begins_with"


class Contains(_Function):
    function = "contains"


class Exists(_Function):
    function = "attribute_exists"


class NotExists(_Function):
    function = "attribute_not_exists"


class AttributeType(Condition):
    def __init__(self, path: Path, tag: str) -> None:
        self.path, self.tag = path, tag

    def paths(self) -> Iterable[Path]:
        return [self.path]


class And(Condition):
    def __init__(self, conditions: Sequence[Condition]) -> None:
        flat: list[Condition] = []
        for c in conditions:
            flat.extend(c.conditions if isinstance(c, And) else [c])
        self.conditions: list[Condition] = flat

    def paths(self) -> Iterable[Path]:
        return [p for c in self.conditions for p in c.paths()]


class Or(Condition):
    def __init__(self, conditions: Sequence[Condition]) -> None:
        flat: list[Condition] = []
        for c in conditions:
            flat.extend(c.conditions if isinstance(c, Or) else [c])
        self.conditions: list[Condition] = flat

    def paths(self) -> Iterable[Path]:
        return [p for c in self.conditions for p in c.paths()]


class Not(Condition):
    def __init__(self, condition: Condition) -> None:
        self.condition = condition

    def paths(self) -> Iterable[Path]:
        return self.condition.paths()


def all_of(*conditions: Condition | None) -> Condition | None:
    """AND of the given conditions, skipping ``None``; ``None`` when there are none."""
    present = [c for c in conditions if c is not None]
    if not present:
        return None
    for c in present:
        _check(c)
    return present[0] if len(present) == 1 else And(present)


def version_is(version: Path, expected: Wire | None) -> Condition:
    """The stored ``version`` is ``expected`` (a wire value), or there is none."""
    return NotExists(version) if expected is None else Comparison("=", version, Value(expected))
