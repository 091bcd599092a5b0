"""Update actions: values that DynamoDB computes from what is stored.

Assign one to a column (``obj.views = add(1)``) or pass a mapping of paths to values and
actions to ``engine.save(obj, actions={Model.doc["k"]: "v", Model.tags: add_to_set("x")})``.
The save then sends them in its ``UpdateItem`` and reads the stored results back into the
object, because only DynamoDB knows them (two processes adding 1 both see their own sum).

An action only describes: :meth:`Action.bind` checks its operands with the target path's
type (so a bad value fails before anything is sent, naming the path) and returns an
:class:`Update`, which :mod:`streamodel._render` turns into one clause of the expression.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from streamodel._marshmallow import marshmallow
from streamodel.conditions import Path
from streamodel.exceptions import InvalidConditionError
from streamodel.types import JSON, DynamoType, List, Set, Wire, _json_dump

__all__ = [
    "Action",
    "Update",
    "add",
    "add_to_set",
    "append",
    "delete_from_set",
    "if_not_exists",
    "prepend",
    "remove",
    "updates_for",
]

Clause = Literal["SET", "REMOVE", "ADD", "DELETE"]


Form = Literal["value", "increment", "append", "prepend", "if_not_exists"]
"""What a SET, ADD or DELETE clause does with its values (``_render`` writes the syntax):
``value`` the value itself; ``increment`` the stored number (0 when missing) plus
``values[1]``; ``append``/``prepend`` the stored list (``values[0]`` when missing) with
``values[1]`` after or before it; ``if_not_exists`` the stored value, else ``values[0]``."""


@dataclass(frozen=True)
class Update:
    """One clause of an update, described: ``path``, the ``clause`` it goes in, what it does
    (``form``) and its wire ``values``, in the order their placeholders are numbered."""

    path: Path
    clause: Clause
    form: Form = "value"
    values: tuple[Wire, ...] = ()
    # Whether the result is only known after DynamoDB computed it (read back after a save).
    computed: bool = True

    @property
    def key(self) -> tuple[str | int, ...]:
        """The document path as a tuple, to detect overlapping updates."""
        return (self.path.column.dynamo_name, *self.path.segments)


class Action:
    """Base of every update action."""

    def bind(self, path: Path) -> Update:
        """The update of ``path``, with operands checked by its type."""
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _type_name(typ: DynamoType[Any] | None) -> str:
    return "an untyped document path" if typ is None else type(typ).__name__


def _untyped(typ: DynamoType[Any] | None) -> bool:
    return typ is None or isinstance(typ, JSON) or typ.backing_type == "*"


def _check(path: Path, typ: DynamoType[Any], value: Any, what: str) -> Wire | None:
    try:
        return typ.dynamo_dump(typ.check(value))
    except marshmallow.ValidationError as error:
        raise InvalidConditionError(f"{path.describe()}: {what}: {error.messages}") from None


def _json(path: Path, value: Any, what: str) -> Wire:
    try:
        return _json_dump(value)
    except marshmallow.ValidationError as error:
        raise InvalidConditionError(f"{path.describe()}: {what}: {error.messages}") from None


def _top_level(path: Path, what: str) -> None:
    # DynamoDB's ADD and DELETE clauses only take top-level attributes.
    if path.segments:
        raise InvalidConditionError(
            f"{path.describe()}: {what} applies to whole columns only "
            "(DynamoDB's ADD and DELETE take top-level attributes)"
        )


class _Add(Action):
    def __init__(self, amount: Any) -> None:
        self.amount = amount

    def bind(self, path: Path) -> Update:
        typ = path.type
        if isinstance(self.amount, bool) or not isinstance(
            self.amount, int | float | decimal.Decimal
        ):
            raise InvalidConditionError(f"{path.describe()}: add() takes a number")
        wire: Wire | None
        if _untyped(typ):
            wire = _json(path, self.amount, "add()")
        elif typ is not None and typ.backing_type == "N":
            wire = _check(path, typ, self.amount, "add()")
        else:
            raise InvalidConditionError(
                f"{path.describe()}: add() needs a number column, not {_type_name(typ)}"
            )
        if wire is None or "N" not in wire:
            raise InvalidConditionError(f"{path.describe()}: add() takes a number")
        if not path.segments:
            return Update(path, "ADD", "value", (wire,))
        # Nested numbers cannot be ADDed: count from zero where the value is missing.
        return Update(path, "SET", "increment", ({"N": "0"}, wire))


class _SetAction(Action):
    clause: Clause = "ADD"
    name = ""

    def __init__(self, values: Iterable[Any]) -> None:
        self.values = list(values)

    def bind(self, path: Path) -> Update:
        _top_level(path, f"{self.name}()")
        typ = path.type
        if not isinstance(typ, Set):
            raise InvalidConditionError(
                f"{path.describe()}: {self.name}() needs a Set column, not {_type_name(typ)}"
            )
        if not self.values:
            raise InvalidConditionError(f"{path.describe()}: {self.name}() needs at least a value")
        wire = _check(path, typ, self.values, f"{self.name}()")
        assert wire is not None  # a non-empty set always dumps
        return Update(path, self.clause, "value", (wire,))


class _AddToSet(_SetAction):
    clause = "ADD"
    name = "add_to_set"


class _DeleteFromSet(_SetAction):
    clause = "DELETE"
    name = "delete_from_set"


class _ListAction(Action):
    name = ""
    form: Form = "append"

    def __init__(self, values: Iterable[Any]) -> None:
        self.values = list(values)

    def bind(self, path: Path) -> Update:
        typ = path.type
        if not self.values:
            raise InvalidConditionError(f"{path.describe()}: {self.name}() needs at least a value")
        wire: Wire | None
        if isinstance(typ, List):
            wire = _check(path, typ, self.values, f"{self.name}()")
        elif _untyped(typ):
            wire = _json(path, self.values, f"{self.name}()")
        else:
            raise InvalidConditionError(
                f"{path.describe()}: {self.name}() needs a List column, not {_type_name(typ)}"
            )
        assert wire is not None
        # A missing list counts as empty, so appending to a new object's column works.
        return Update(path, "SET", self.form, ({"L": []}, wire))


class _Append(_ListAction):
    name = "append"
    form = "append"


class _Prepend(_ListAction):
    name = "prepend"
    form = "prepend"


class _IfNotExists(Action):
    def __init__(self, value: Any) -> None:
        self.value = value

    def bind(self, path: Path) -> Update:
        wire = _value_wire(path, self.value, "if_not_exists()")
        if wire is None:
            raise InvalidConditionError(f"{path.describe()}: if_not_exists() needs a value")
        return Update(path, "SET", "if_not_exists", (wire,))


class _Remove(Action):
    def bind(self, path: Path) -> Update:
        return Update(path, "REMOVE", computed=False)


def _value_wire(path: Path, value: Any, what: str) -> Wire | None:
    typ = path.type
    if _untyped(typ):
        return _json(path, value, what)
    assert typ is not None
    return _check(path, typ, value, what)


def add(amount: int | float | decimal.Decimal) -> Action:
    """Add ``amount`` (negative to subtract) to a number; a missing number counts as 0."""
    return _Add(amount)


def add_to_set(*values: Any) -> Action:
    """Add elements to a set column (``add_to_set("a", "b")`` or ``add_to_set({"a"})``)."""
    return _AddToSet(_flatten(values))


def delete_from_set(*values: Any) -> Action:
    """Remove elements from a set column; DynamoDB removes the attribute once it is empty."""
    return _DeleteFromSet(_flatten(values))


def append(*values: Any) -> Action:
    """Append items to a list (``list_append``); a missing list counts as empty."""
    return _Append(_flatten(values))


def prepend(*values: Any) -> Action:
    """Put items in front of a list (``list_append``); a missing list counts as empty."""
    return _Prepend(_flatten(values))


def if_not_exists(value: Any) -> Action:
    """Set ``value`` only where the attribute does not exist yet."""
    return _IfNotExists(value)


def remove() -> Action:
    """Remove the attribute, map key or list element at the path."""
    return _Remove()


def _flatten(values: tuple[Any, ...]) -> list[Any]:
    if len(values) == 1 and isinstance(values[0], list | tuple | set | frozenset):
        return list(values[0])
    return list(values)


def updates_for(path: Path, value: Any) -> Update:
    """The update of ``path`` to a plain value or an action (``None`` removes)."""
    if isinstance(value, Action):
        return value.bind(path)
    if value is None:
        return Update(path, "REMOVE", computed=False)
    wire = _value_wire(path, value, "value")
    if wire is None:  # an empty set is no attribute at all
        return Update(path, "REMOVE", computed=False)
    return Update(path, "SET", "value", (wire,), computed=False)
