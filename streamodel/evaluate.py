"""Conditions evaluated in Python, the way DynamoDB evaluates them on a stored item.

``condition.evaluate(obj)`` answers what a conditional write or a filter would decide for
an item holding ``obj``'s values, so conditions can be unit-tested without a table (and
the integration tests check the two agree). The rules, as DynamoDB applies them:

- A missing attribute, a path into something that is not a map or list, and ``size()`` of
  a number, boolean or null are *undefined*. Every comparison and function with an
  undefined operand is false, except ``<>``, which is ``NOT =`` (so it is true).
- ``=`` compares type and value: numbers numerically (``5 = 5.0``), sets as sets, lists
  and maps element by element.
- ``<``, ``<=``, ``>``, ``>=`` and ``BETWEEN`` order numbers, strings (by their UTF-8
  bytes) and binary (unsigned bytes) of the same type; any other pair is false.
- ``size()`` of a string counts UTF-16 code units (as DynamoDB Local does), of binary its
  bytes, of a set, list or map its elements.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from typing import Any

from streamodel.conditions import (
    And,
    AttributeType,
    BeginsWith,
    Between,
    Comparison,
    Condition,
    Contains,
    Exists,
    In,
    Not,
    NotExists,
    Operand,
    Or,
    Path,
    Size,
    Value,
)
from streamodel.exceptions import InvalidConditionError
from streamodel.types import Wire

__all__ = ["evaluate", "item_of"]

_ORDERED = frozenset({"S", "N", "B"})


def evaluate(condition: Condition, item: Mapping[str, Wire] | None) -> bool:
    """Whether ``condition`` holds on a raw stored ``item`` (``None``: no item at all)."""
    return _eval(condition, item or {})


def item_of(condition: Condition, obj_or_values: Any) -> dict[str, Wire]:
    """The wire item for a model object, or for a mapping of column names to values."""
    from streamodel.models import BaseModel

    if isinstance(obj_or_values, BaseModel):
        meta: Any = type(obj_or_values).Meta
        values = obj_or_values._sm_values
        return _dump(meta, {c.name: values.get(c.name) for c in meta.columns})
    if isinstance(obj_or_values, Mapping):
        models = {p.column.model for p in condition.paths()}
        if len(models) != 1:
            raise InvalidConditionError(
                "evaluate() with a mapping needs a condition on one model's columns; "
                "pass a model object instead"
            )
        (model,) = models
        meta = model.Meta  # type: ignore[union-attr]
        unknown = sorted(set(obj_or_values) - set(meta.columns_by_name))
        if unknown:
            raise InvalidConditionError(
                f"evaluate(): {unknown} are not columns of {model.__name__}"  # type: ignore[union-attr]
            )
        return _dump(meta, dict(obj_or_values))
    raise TypeError(f"evaluate() takes a model object or a mapping, got {obj_or_values!r}")


def _dump(meta: Any, values: Mapping[str, Any]) -> dict[str, Wire]:
    from streamodel.schema import check_values

    checked = check_values(meta.model, values)
    item: dict[str, Wire] = {}
    for name, value in checked.items():
        column = meta.columns_by_name[name]
        wire = column.type.dynamo_dump(value)
        if wire is not None:
            item[column.dynamo_name] = wire
    return item


# -- operands --------------------------------------------------------------------------
def _resolve(path: Path, item: Mapping[str, Wire]) -> Wire | None:
    wire: Wire | None = item.get(path.column.dynamo_name)
    for segment in path.segments:
        if wire is None:
            return None
        if isinstance(segment, str) and "M" in wire:
            wire = wire["M"].get(segment)
        elif isinstance(segment, int) and "L" in wire:
            items = wire["L"]
            wire = items[segment] if segment < len(items) else None
        else:
            return None
    return wire


def _size(wire: Wire | None) -> Wire | None:
    if wire is None:
        return None
    ((tag, raw),) = wire.items()
    if tag == "S":
        return {"N": str(len(raw.encode("utf-16-le", "surrogatepass")) // 2)}
    if tag in ("B", "SS", "NS", "BS", "L", "M"):
        return {"N": str(len(raw))}
    return None  # numbers, booleans and null have no size


def _operand(operand: Operand, item: Mapping[str, Wire]) -> Wire | None:
    if isinstance(operand, Value):
        return operand.wire
    if isinstance(operand, Path):
        return _resolve(operand, item)
    if isinstance(operand, Size):
        return _size(_resolve(operand.path, item))
    raise TypeError(f"cannot evaluate operand {operand!r}")


# -- values ----------------------------------------------------------------------------
def _canonical(wire: Wire) -> Any:
    """A hashable form in which equal DynamoDB values are equal Python values."""
    ((tag, raw),) = wire.items()
    if tag == "N":
        return ("N", decimal.Decimal(raw))
    if tag == "NS":
        return ("NS", frozenset(decimal.Decimal(v) for v in raw))
    if tag in ("SS", "BS"):
        return (tag, frozenset(bytes(v) if tag == "BS" else v for v in raw))
    if tag == "B":
        return ("B", bytes(raw))
    if tag == "L":
        return ("L", tuple(_canonical(v) for v in raw))
    if tag == "M":
        return ("M", frozenset((k, _canonical(v)) for k, v in raw.items()))
    return (tag, raw)


def _equal(a: Wire | None, b: Wire | None) -> bool:
    return a is not None and b is not None and _canonical(a) == _canonical(b)


def _key(wire: Wire) -> tuple[str, Any] | None:
    """A sort key for ordered types (strings by UTF-8 bytes), else None."""
    ((tag, raw),) = wire.items()
    if tag == "N":
        return ("N", decimal.Decimal(raw))
    if tag == "S":
        return ("S", raw.encode("utf-8", "surrogatepass"))
    if tag == "B":
        return ("B", bytes(raw))
    return None


def _compare(op: str, a: Wire | None, b: Wire | None) -> bool:
    if op == "=":
        return _equal(a, b)
    if op == "<>":
        return not _equal(a, b)
    if a is None or b is None:
        return False
    ka, kb = _key(a), _key(b)
    if ka is None or kb is None or ka[0] != kb[0]:
        return False
    x, y = ka[1], kb[1]
    if op == "<":
        return bool(x < y)
    if op == "<=":
        return bool(x <= y)
    if op == ">":
        return bool(x > y)
    if op == ">=":
        return bool(x >= y)
    raise InvalidConditionError(f"unknown comparison operator {op!r}")


def _contains(haystack: Wire | None, needle: Wire | None) -> bool:
    if haystack is None or needle is None:
        return False
    ((tag, raw),) = haystack.items()
    ((ntag, nraw),) = needle.items()
    if tag == "S":
        return ntag == "S" and nraw in raw
    if tag == "B":
        return ntag == "B" and bytes(nraw) in bytes(raw)
    if tag in ("SS", "NS", "BS"):
        return ntag == tag[0] and _canonical(needle) in {_canonical({ntag: v}) for v in raw}
    if tag == "L":
        return any(_equal(element, needle) for element in raw)
    return False


def _begins_with(wire: Wire | None, prefix: Wire | None) -> bool:
    if wire is None or prefix is None:
        return False
    ((tag, raw),) = wire.items()
    ((ptag, praw),) = prefix.items()
    if tag != ptag or tag not in ("S", "B"):
        return False
    return bytes(raw).startswith(bytes(praw)) if tag == "B" else str(raw).startswith(praw)


def _eval(condition: Condition, item: Mapping[str, Wire]) -> bool:
    if isinstance(condition, And):
        return all(_eval(c, item) for c in condition.conditions)
    if isinstance(condition, Or):
        return any(_eval(c, item) for c in condition.conditions)
    if isinstance(condition, Not):
        return not _eval(condition.condition, item)
    if isinstance(condition, Comparison):
        return _compare(
            condition.op, _operand(condition.left, item), _operand(condition.right, item)
        )
    if isinstance(condition, Between):
        value = _operand(condition.operand, item)
        low, high = _operand(condition.low, item), _operand(condition.high, item)
        return _compare(">=", value, low) and _compare("<=", value, high)
    if isinstance(condition, In):
        value = _operand(condition.operand, item)
        return any(_equal(value, _operand(v, item)) for v in condition.values)
    if isinstance(condition, Exists):
        return _resolve(condition.path, item) is not None
    if isinstance(condition, NotExists):
        return _resolve(condition.path, item) is None
    if isinstance(condition, BeginsWith):
        return _begins_with(_resolve(condition.path, item), _operand(condition.args[0], item))
    if isinstance(condition, Contains):
        return _contains(_resolve(condition.path, item), _operand(condition.args[0], item))
    if isinstance(condition, AttributeType):
        wire = _resolve(condition.path, item)
        return wire is not None and next(iter(wire)) == condition.tag
    raise TypeError(f"cannot evaluate {condition!r}")
