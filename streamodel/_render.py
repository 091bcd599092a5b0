"""The one place that writes DynamoDB expression syntax: conditions, operands, update
clauses and projections.

Conditions (:mod:`streamodel.conditions`) and update actions (:mod:`streamodel.actions`) only
describe; the :class:`Renderer` turns each kind of node into its syntax here.

Every attribute name goes through a ``#n`` placeholder and every value through a ``:v``
placeholder, so names that are reserved words or contain ``.``, ``-``, ``#``, ``:``, spaces
or non-ASCII characters just work. Placeholders are numbered in rendering order (so requests
are deterministic), names are de-duplicated, and only what is rendered is declared: DynamoDB
rejects unused placeholders.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

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
    version_is,
)
from streamodel.exceptions import InvalidConditionError
from streamodel.types import Wire

if TYPE_CHECKING:
    from streamodel.actions import Form, Update


class Renderer:
    """Collects placeholders for the expressions of one request."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._values: dict[str, Wire] = {}

    def name(self, attribute: str) -> str:
        placeholder = self._names.get(attribute)
        if placeholder is None:
            placeholder = self._names[attribute] = f"#n{len(self._names)}"
        return placeholder

    def path(self, attribute: str, segments: Sequence[str | int] = ()) -> str:
        text = self.name(attribute)
        for segment in segments:
            text += f"[{segment}]" if isinstance(segment, int) else "." + self.name(segment)
        return text

    def value(self, wire: Wire) -> str:
        placeholder = f":v{len(self._values)}"
        self._values[placeholder] = wire
        return placeholder

    def condition(self, condition: Condition) -> str:
        render = _CONDITIONS.get(type(condition))
        if render is None:  # a subclass: render it as its nearest known base
            known = (_CONDITIONS.get(cls) for cls in type(condition).__mro__)
            render = next((r for r in known if r is not None), None)
            if render is None:
                raise InvalidConditionError(f"cannot render {condition!r} as a condition")
        return render(self, condition)

    def operand(self, operand: Operand) -> str:
        if isinstance(operand, Value):
            return self.value(operand.wire)
        if isinstance(operand, Path):
            return self.path(operand.column.dynamo_name, operand.segments)
        if isinstance(operand, Size):
            return f"size({self.operand(operand.path)})"
        raise InvalidConditionError(f"cannot render {operand!r} as an operand")

    def projection(self, attributes: Sequence[str]) -> str:
        return ", ".join(self.name(a) for a in attributes)

    def params(self) -> dict[str, Any]:
        """``ExpressionAttributeNames``/``Values`` for what was rendered (omitted when empty)."""
        out: dict[str, Any] = {}
        if self._names:
            out["ExpressionAttributeNames"] = {p: n for n, p in self._names.items()}
        if self._values:
            out["ExpressionAttributeValues"] = dict(self._values)
        return out


def _function(name: str) -> Callable[[Renderer, Any], str]:
    def render(r: Renderer, c: Any) -> str:
        args = "".join(", " + r.operand(a) for a in c.args)
        return f"{name}({r.operand(c.path)}{args})"

    return render


# Each condition class and its syntax.
_CONDITIONS: dict[type, Callable[[Renderer, Any], str]] = {
    Comparison: lambda r, c: f"{r.operand(c.left)} {c.op} {r.operand(c.right)}",
    Between: lambda r, c: (
        f"{r.operand(c.operand)} BETWEEN {r.operand(c.low)} AND {r.operand(c.high)}"
    ),
    In: lambda r, c: f"{r.operand(c.operand)} IN ({', '.join(r.operand(v) for v in c.values)})",
    BeginsWith: _function("begins_with"),
    Contains: _function("contains"),
    Exists: _function("attribute_exists"),
    NotExists: _function("attribute_not_exists"),
    AttributeType: lambda r, c: f"attribute_type({r.operand(c.path)}, {r.value({'S': c.tag})})",
    And: lambda r, c: " AND ".join(f"({r.condition(part)})" for part in c.conditions),
    Or: lambda r, c: " OR ".join(f"({r.condition(part)})" for part in c.conditions),
    Not: lambda r, c: f"NOT ({r.condition(c.condition)})",
}

# Each update form and its syntax: {p} is the path, {v[i]} the i-th value's placeholder.
_FORMS: dict[Form, str] = {
    "value": "{v[0]}",
    "increment": "if_not_exists({p}, {v[0]}) + {v[1]}",
    "append": "list_append(if_not_exists({p}, {v[0]}), {v[1]})",
    "prepend": "list_append({v[1]}, if_not_exists({p}, {v[0]}))",
    "if_not_exists": "if_not_exists({p}, {v[0]})",
}


def _clause(r: Renderer, update: Update) -> tuple[str, str]:
    """``(path, right-hand side)`` of one SET, ADD or DELETE clause, path first."""
    path = r.operand(update.path)
    values = [r.value(w) for w in update.values]
    return path, _FORMS[update.form].format(p=path, v=values)


def update_expression(
    r: Renderer,
    *,
    set_: Sequence[tuple[str, str]] = (),
    remove: Sequence[str] = (),
    add: Sequence[tuple[str, str]] = (),
    delete: Sequence[tuple[str, str]] = (),
) -> str | None:
    """An ``UpdateExpression`` from rendered ``(path, value)`` pairs; ``None`` when empty."""
    clauses = []
    if set_:
        clauses.append("SET " + ", ".join(f"{p}={v}" for p, v in set_))
    if remove:
        clauses.append("REMOVE " + ", ".join(remove))
    if add:
        clauses.append("ADD " + ", ".join(f"{p} {v}" for p, v in add))
    if delete:
        clauses.append("DELETE " + ", ".join(f"{p} {v}" for p, v in delete))
    return " ".join(clauses) or None


def render_updates(r: Renderer, updates: Sequence[Update]) -> str | None:
    """An ``UpdateExpression`` of update clauses, grouped SET, REMOVE, ADD, DELETE.

    Each group is rendered in the order given, path before values, so placeholders are
    numbered as they appear in the expression.
    """
    groups: dict[str, list[Update]] = {"SET": [], "REMOVE": [], "ADD": [], "DELETE": []}
    for update in updates:
        groups[update.clause].append(update)
    return update_expression(
        r,
        set_=[_clause(r, u) for u in groups["SET"]],
        remove=[r.operand(u.path) for u in groups["REMOVE"]],
        add=[_clause(r, u) for u in groups["ADD"]],
        delete=[_clause(r, u) for u in groups["DELETE"]],
    )


# (columns set, columns removed, version column, no version expected)
#     -> (UpdateExpression, ConditionExpression, ExpressionAttributeNames)
_PLAIN_SHAPES: dict[tuple[Any, ...], tuple[str | None, str | None, dict[str, str]]] = {}
_PLAIN_SHAPES_MAX = 4096  # distinct shapes kept; the cache is emptied when full
_VALUE_PLACEHOLDERS = tuple(f":v{i}" for i in range(1024))


def plain_update(
    columns: Sequence[Any],
    wires: Sequence[Wire],
    removes: Sequence[Any],
    version: Any = None,
    expected: Wire | None = None,
) -> dict[str, Any]:
    """The expressions and placeholders of an ``UpdateItem`` that SETs whole ``columns`` to
    ``wires`` and REMOVEs ``removes`` (no actions), under the version check of the
    ``version`` column when one is given: the stored version is ``expected``, or there is
    none when that is ``None``.

    They are what a fresh :class:`Renderer` renders for ``render_updates`` and the version
    condition; their text and name placeholders depend only on the columns, so they are
    kept per shape and only the values are filled in.
    """
    expects = version is not None and expected is not None
    shape = (tuple(columns), tuple(removes), version, expected is None)
    known = _PLAIN_SHAPES.get(shape)
    if known is None or len(wires) >= len(_VALUE_PLACEHOLDERS):
        r = Renderer()
        expression = render_plain(r, columns, wires, removes)
        condition = None if version is None else r.condition(version_is(version, expected))
        if len(wires) >= len(_VALUE_PLACEHOLDERS):
            return _parts(expression, condition, r.params())
        if len(_PLAIN_SHAPES) >= _PLAIN_SHAPES_MAX:
            _PLAIN_SHAPES.clear()
        known = _PLAIN_SHAPES[shape] = (expression, condition, r.params().get(_NAMES, {}))
    expression, condition, names = known
    params: dict[str, Any] = {}
    if names:
        params[_NAMES] = dict(names)
    if wires or expects:
        values = params[_VALUES] = dict(zip(_VALUE_PLACEHOLDERS, wires, strict=False))
        if expects:
            values[_VALUE_PLACEHOLDERS[len(wires)]] = expected
    return _parts(expression, condition, params)


_NAMES, _VALUES = "ExpressionAttributeNames", "ExpressionAttributeValues"


def _parts(expression: str | None, condition: str | None, params: dict[str, Any]) -> dict[str, Any]:
    if expression is not None:
        params["UpdateExpression"] = expression
    if condition is not None:
        params["ConditionExpression"] = condition
    return params


def render_plain(
    r: Renderer, columns: Sequence[Any], wires: Sequence[Wire], removes: Sequence[Any]
) -> str | None:
    """:func:`render_updates` of SETs of whole ``columns`` to ``wires`` and REMOVEs of
    ``removes``, without an ``Update`` each."""
    names, values = r._names, r._values
    set_: list[str] = []
    for column, wire in zip(columns, wires, strict=True):
        attribute = column.dynamo_name
        placeholder = names.get(attribute)
        if placeholder is None:
            placeholder = names[attribute] = f"#n{len(names)}"
        value = f":v{len(values)}"
        values[value] = wire
        set_.append(f"{placeholder}={value}")
    remove = [r.name(column.dynamo_name) for column in removes]
    if set_ and remove:
        return "SET " + ", ".join(set_) + " REMOVE " + ", ".join(remove)
    if set_:
        return "SET " + ", ".join(set_)
    if remove:
        return "REMOVE " + ", ".join(remove)
    return None
