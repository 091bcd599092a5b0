"""The one place that writes DynamoDB expression syntax.

Every attribute name goes through a ``#n`` placeholder and every value through a ``:v``
placeholder, so names that are reserved words or contain ``.``, ``-``, ``#``, ``:``, spaces
or non-ASCII characters just work. Placeholders are numbered in rendering order (so requests
are deterministic), names are de-duplicated, and only what is rendered is declared: DynamoDB
rejects unused placeholders.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from streamodel.types import Wire

if TYPE_CHECKING:
    from streamodel.actions import Update
    from streamodel.conditions import Condition


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
        return condition.render(self)

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
    set_: list[tuple[str, str]] = []
    for u in groups["SET"]:
        path = u.path.render(r)
        set_.append((path, u.render(path, [r.value(w) for w in u.values])))
    remove = [u.path.render(r) for u in groups["REMOVE"]]
    pairs: dict[str, list[tuple[str, str]]] = {"ADD": [], "DELETE": []}
    for clause, out in pairs.items():
        for u in groups[clause]:
            path = u.path.render(r)
            out.append((path, u.render(path, [r.value(w) for w in u.values])))
    return update_expression(r, set_=set_, remove=remove, add=pairs["ADD"], delete=pairs["DELETE"])


# (columns set, columns removed) -> (UpdateExpression, attribute name -> placeholder)
_PLAIN_EXPRESSIONS: dict[
    tuple[tuple[Any, ...], tuple[Any, ...]], tuple[str | None, dict[str, str]]
] = {}
_PLAIN_EXPRESSIONS_MAX = 4096  # distinct column sets kept; the cache is emptied when full
_VALUE_PLACEHOLDERS = tuple(f":v{i}" for i in range(1024))


def render_plain(
    r: Renderer, sets: Sequence[tuple[Any, Wire]], removes: Sequence[Any]
) -> str | None:
    """:func:`render_updates` of plain whole-column SETs and REMOVEs (no actions): the same
    text and placeholders without building an ``Update`` per column.

    On a fresh renderer the text and the name placeholders depend only on the columns, so
    they are kept per column set and only the values are filled in.
    """
    if r._names or r._values or len(sets) > len(_VALUE_PLACEHOLDERS):
        return _render_plain(r, sets, removes)
    shape = (tuple([column for column, _ in sets]), tuple(removes))  # columns hash by id
    known = _PLAIN_EXPRESSIONS.get(shape)
    if known is None:
        fresh = Renderer()
        known = (_render_plain(fresh, sets, removes), fresh._names)
        if len(_PLAIN_EXPRESSIONS) >= _PLAIN_EXPRESSIONS_MAX:
            _PLAIN_EXPRESSIONS.clear()
        _PLAIN_EXPRESSIONS[shape] = known
    expression, names = known
    r._names.update(names)
    r._values.update(zip(_VALUE_PLACEHOLDERS, [wire for _, wire in sets], strict=False))
    return expression


def _render_plain(
    r: Renderer, sets: Sequence[tuple[Any, Wire]], removes: Sequence[Any]
) -> str | None:
    names, values = r._names, r._values
    set_ = []
    for column, wire in sets:
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
