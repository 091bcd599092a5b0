"""Per-object snapshots and the writes they imply.

Each object remembers what it knows to be stored: ``obj._sm_snapshot`` maps DynamoDB names to
wire values (``None`` for "known to be absent") for the columns it has seen, or is ``None``
when the object is not known to be stored at all. A save compares the current values with
that snapshot and writes only the difference; the snapshot is refreshed only after DynamoDB
accepted the write. All of this is per instance: there is no global tracking state.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamodel._compiled import compiled
from streamodel.actions import Action, Update, updates_for
from streamodel.conditions import (
    Comparison,
    Condition,
    Exists,
    NotExists,
    Path,
    Value,
    all_of,
)
from streamodel.exceptions import InvalidConditionError, UndecodableItemError, ValidationError
from streamodel.models import BaseModel, new_instance
from streamodel.schema import check_values
from streamodel.types import Wire

MAX_ITEM_BYTES = 400 * 1024
# Values that cannot change in place (None included): an unassigned one needs no new diff.
_IMMUTABLE = frozenset(
    {type(None), str, int, bool, float, decimal.Decimal, datetime.datetime, uuid.UUID, bytes}
)


def meta_of(obj: BaseModel | type[BaseModel]) -> Any:
    model = obj if isinstance(obj, type) else type(obj)
    return model.Meta


def key_of(obj: BaseModel) -> dict[str, Wire]:
    """The object's key as wire values; a clear error when a key column is unset or bad."""
    key: dict[str, Wire] | None = compiled(type(obj)).key(obj._sm_values)
    return key if key is not None else _key_of_reference(obj)


def _key_of_reference(obj: BaseModel) -> dict[str, Wire]:
    meta = meta_of(obj)
    values = {c.name: obj._sm_values.get(c.name) for c in meta.keys}
    missing = {name: ["Missing key value."] for name, value in values.items() if value is None}
    if missing:
        raise ValidationError(missing, data=values)
    checked = check_values(type(obj), values)
    key: dict[str, Wire] = {}
    errors: dict[str, list[str]] = {}
    for column in meta.keys:
        wire = column.type.dynamo_dump(checked[column.name])
        if wire is None or wire.get("S") == "" or wire.get("B") == b"":
            errors[column.name] = ["Key values cannot be empty."]
        else:
            key[column.dynamo_name] = wire
    if errors:
        raise ValidationError(errors, data=values)
    return key


def is_stored(obj: BaseModel) -> bool:
    """Whether the object is known to be stored under its current key."""
    snapshot = obj._sm_snapshot
    if snapshot is None:
        return False
    values = obj._sm_values
    for name, dynamo_name, _, dump in compiled(type(obj)).keys:
        value = values.get(name)
        wire = dump(value) if value is not None else None
        if wire != snapshot.get(dynamo_name):
            return False
    return True


@dataclass
class SavePlan:
    """Everything one save of one object writes, computed before anything is sent."""

    obj: BaseModel
    key: dict[str, Wire]
    sets: list[tuple[Any, Wire]] = field(default_factory=list)  # (column, wire)
    removes: list[Any] = field(default_factory=list)  # columns
    # Update actions and path updates; their results are read back (``returns``).
    updates: list[Update] = field(default_factory=list)
    diff: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    checked: dict[str, Any] = field(default_factory=dict)
    new_version: int | None = None
    version_condition: Condition | None = None
    condition: Condition | None = None
    returns: str | None = None  # ReturnValues of the UpdateItem, when values are read back
    # The wire value of each checked column (what ``mark_saved`` stores in the snapshot).
    wires: dict[str, Wire | None] = field(default_factory=dict)

    @property
    def writes_nothing(self) -> bool:
        return not self.sets and not self.removes and not self.updates

    def all_updates(self) -> list[Update]:
        """Every clause of the ``UpdateExpression``: plain SETs and REMOVEs, then actions."""
        plain = [Update(c, "SET", "{v[0]}", (w,), computed=False) for c, w in self.sets]
        plain += [Update(c, "REMOVE", computed=False) for c in self.removes]
        return [*plain, *self.updates]


def check_condition(obj: BaseModel, condition: Condition | None) -> Condition | None:
    """Refuse a condition on columns of another model: it would test an attribute that the
    object's item may hold for another reason, and silently pass or fail."""
    if condition is None:
        return None
    model = type(obj)
    for path in condition.paths():
        owner = path.column.model
        if owner is None or not issubclass(model, owner):
            raise InvalidConditionError(
                f"the condition on {model.__name__} names {path.describe()}, a column of "
                f"{getattr(owner, '__name__', 'no model')}"
            )
    return condition


def plan_save(
    obj: BaseModel,
    *,
    condition: Condition | None,
    atomic: bool,
    version_check: bool = True,
    actions: Mapping[Path, Any] | None = None,
    sync: bool = False,
) -> SavePlan:
    """The minimal write for ``obj``: changed columns SET, cleared ones REMOVEd, actions
    (assigned to columns or given per path in ``actions``) rendered as their clauses."""
    meta = meta_of(obj)
    model = type(obj)
    check_condition(obj, condition)
    cm = compiled(model)
    key = key_of(obj)
    stored = is_stored(obj)
    snapshot = obj._sm_snapshot if stored else None
    touched = obj._sm_touched
    values = obj._sm_values
    version = meta.version
    # Columns holding an action are not diffed; changes beside actions given per path are,
    # so that an overlap between the two is refused rather than one silently dropped.
    acted = {n for n, v in values.items() if isinstance(v, Action)}
    updates = _bind_actions(obj, actions) if acted or actions else []

    # Every assigned column is written, and every column the snapshot knows is compared
    # again unless its value cannot have changed in place: an immutable value that was not
    # assigned is the very one loaded or saved with the snapshot. A list, set or dict may
    # have been changed in place, so it is dumped and compared with what is stored.
    wanted: set[str] | frozenset[str]
    if snapshot is None:
        wanted = cm.plain_names & touched  # neither key nor version
    else:
        wanted = {
            name
            for name, dynamo_name in cm.plain
            if name in touched
            or (dynamo_name in snapshot and type(values.get(name)) not in _IMMUTABLE)
        }
    if acted:
        wanted -= acted
    encoded = cm.encode(values, wanted)
    if encoded is not None:
        checked, wires, bound = encoded  # bound: those columns' bytes, or a little more
    else:
        # raises, listing every bad column
        checked = check_values(
            model, {name: values.get(name) for name, _ in cm.plain if name in wanted}
        )
        wires = {name: cm.dump[name](value) for name, value in checked.items()}
        bound = MAX_ITEM_BYTES + 1  # not known: counted exactly below
    if meta.indexes:
        _check_index_keys(meta, checked)
    plan = SavePlan(obj=obj, key=key, checked=checked, updates=updates, wires=wires)
    item: dict[str, Wire] = dict(key)  # what the item holds besides the checked columns
    if snapshot is not None:  # what stays as stored: columns under actions, the version
        for name in acted:
            stored_wire = snapshot.get(cm.dynamo_names[name])
            if stored_wire is not None:
                item[cm.dynamo_names[name]] = stored_wire
        stored_version = snapshot.get(version.dynamo_name) if version is not None else None
        if stored_version is not None:
            item[version.dynamo_name] = stored_version
    loads, sets, removes, diff = cm.load, plan.sets, plan.removes, plan.diff
    for name, wire in wires.items():
        column, dynamo_name = cm.columns_by_name[name]
        if snapshot is not None and dynamo_name in snapshot:
            old_wire = snapshot[dynamo_name]
            if wire == old_wire:
                continue  # unchanged (or known absent and still absent)
        else:
            old_wire = None
        if wire is None:
            removes.append(column)
        else:
            sets.append((column, wire))
        diff[name] = (None if old_wire is None else loads[name](old_wire), checked[name])
    for update in updates:
        column = update.path.column
        old = snapshot.get(column.dynamo_name) if snapshot is not None else None
        new = values.get(column.name) if not update.path.segments else update
        plan.diff.setdefault(column.name, (loads[column.name](old), new))

    if version is not None and version_check:
        current = values.get(version.name)
        if current is not None:
            found = cm.check_values({version.name: current})
            if found is None:
                found = check_values(model, {version.name: current})
            current = found[version.name]
        plan.new_version = (current or 0) + 1
        wire = cm.dump[version.name](plan.new_version)
        assert wire is not None
        plan.sets.append((version, wire))
        item[version.dynamo_name] = wire
        plan.diff[version.name] = (current, plan.new_version)
        plan.version_condition = _version_is(version, current)
    elif version is not None:
        # No check, yet never a rollback: DynamoDB adds 1 to whatever is stored.
        plan.updates.append(Update(version, "ADD", "{v[0]}", ({"N": "1"},)))
        plan.diff[version.name] = (values.get(version.name), None)

    _check_overlaps(plan)
    size = bound + cm.item_size(item)
    if size > MAX_ITEM_BYTES:  # perhaps only by the bound: count the whole item exactly
        item.update((cm.dynamo_names[n], w) for n, w in wires.items() if w is not None)
        size = cm.item_size(item)
    if size > MAX_ITEM_BYTES:
        raise ValidationError(
            {
                "_item": [
                    f"Item is {size} bytes; DynamoDB's limit is 400 KB ({MAX_ITEM_BYTES} bytes)."
                ]
            }
        )
    if condition is None and not atomic:
        plan.condition = plan.version_condition
    else:
        plan.condition = all_of(
            condition, plan.version_condition, atomic_condition(obj) if atomic else None
        )
    # Nested updates return partial documents with UPDATED_NEW: read whole items then.
    if sync or (plan.updates and any(u.path.segments for u in plan.updates)):
        plan.returns = "ALL_NEW"
    elif plan.updates:
        plan.returns = "UPDATED_NEW"
    return plan


def _version_is(version: Any, current: int | None) -> Condition:
    if current is None:
        return NotExists(version)
    return Comparison("=", version, Value(version.type.dynamo_dump(current) or {}))


def _bind_actions(obj: BaseModel, actions: Mapping[Path, Any] | None) -> list[Update]:
    """Actions assigned to columns, then those given per path; each checked by its type."""
    meta = meta_of(obj)
    name = type(obj).__name__
    targets: list[tuple[Path, Any]] = [
        (meta.columns_by_name[n], v) for n, v in obj._sm_values.items() if isinstance(v, Action)
    ]
    for path, value in (actions or {}).items():
        if not isinstance(path, Path):
            raise InvalidConditionError(
                f"{name}: actions= maps column paths (Model.col or Model.col['k']) to values, "
                f"got key {path!r}"
            )
        if meta.columns_by_name.get(path.column.name) is not path.column:
            raise InvalidConditionError(f"{path.describe()} is not a column path of {name}")
        targets.append((path, value))
    updates = []
    for path, value in targets:
        column = path.column
        if any(column is k for k in meta.keys):
            raise InvalidConditionError(
                f"{path.describe()}: key columns cannot be updated (they identify the item)"
            )
        if column is meta.version:
            raise InvalidConditionError(
                f"{path.describe()}: the version column is managed by streamodel; "
                "use save(version_check=False) to skip its check"
            )
        updates.append(updates_for(path, value))
    return updates


def _check_overlaps(plan: SavePlan) -> None:
    """DynamoDB refuses two updates of overlapping document paths; say which ones."""
    if not plan.updates:
        return  # plain SETs and REMOVEs name distinct top-level columns: no overlap
    # Linear check first (each path against the prefixes seen so far and vice versa); only
    # an overlap runs the pairwise search that names the first two overlapping paths.
    paths: set[tuple[str | int, ...]] = set()
    prefixes: set[tuple[str | int, ...]] = set()
    for update in plan.all_updates():
        path = update.key
        if path in prefixes or any(path[:i] in paths for i in range(1, len(path) + 1)):
            break
        paths.add(path)
        prefixes.update(path[:i] for i in range(1, len(path) + 1))
    else:
        return
    seen: list[Update] = []
    for update in plan.all_updates():
        for other in seen:
            shorter = min(len(update.key), len(other.key))
            if update.key[:shorter] == other.key[:shorter]:
                raise InvalidConditionError(
                    f"{other.path.describe()} and {update.path.describe()} overlap: one save "
                    "cannot update a document path and a path inside it (or the same path "
                    "twice); the first may be a column changed on the object"
                )
        seen.append(update)


def _check_index_keys(meta: Any, checked: dict[str, Any]) -> None:
    """DynamoDB refuses empty strings and bytes in index key attributes; say which."""
    errors: dict[str, list[str]] = {}
    for index in meta.indexes:
        for column in (index.hash_key, index.range_key):
            if column is None or column.name not in checked:
                continue
            if checked[column.name] in ("", b""):
                errors.setdefault(column.name, []).append(
                    f"Empty values cannot be stored in a key of index {index.name!r}."
                )
    if errors:
        raise ValidationError(errors, data=checked)


def atomic_condition(obj: BaseModel) -> Condition:
    """Stored item equals what the object last saw: every known column unchanged.

    For an object not known to be stored, the item must not exist.
    """
    meta = meta_of(obj)
    if not is_stored(obj):
        return NotExists(meta.hash_key)
    snapshot = obj._sm_snapshot or {}
    key_names = {c.dynamo_name for c in meta.keys}
    conditions: list[Condition | None] = []
    for column in meta.columns:
        name = column.dynamo_name
        if name in key_names or name not in snapshot:
            continue
        wire = snapshot[name]
        conditions.append(
            NotExists(column) if wire is None else Comparison("=", column, Value(wire))
        )
    # A stored object with only its key known: the item must still exist.
    combined = all_of(*conditions)
    return combined if combined is not None else Exists(meta.hash_key)


def delete_condition(
    obj: BaseModel, *, condition: Condition | None, atomic: bool, version_check: bool = True
) -> Condition | None:
    """User condition AND the version check AND (with ``atomic``) the snapshot check."""
    check_condition(obj, condition)
    meta = meta_of(obj)
    version = meta.version
    version_condition: Condition | None = None
    if version is not None and version_check:
        current = obj._sm_values.get(version.name)
        if isinstance(current, Action):
            raise InvalidConditionError(f"{type(obj).__name__}.{version.name} holds an action")
        version_condition = _version_is(version, current)
    return all_of(condition, version_condition, atomic_condition(obj) if atomic else None)


def mark_saved(plan: SavePlan, returned: Mapping[str, Wire] | None = None) -> None:
    """After a successful save: the object holds the checked values, and knows them stored.

    ``returned`` is the ``Attributes`` DynamoDB sent back (``plan.returns``); columns that
    DynamoDB computed but did not send back (a transaction) are left unknown.
    """
    obj = plan.obj
    meta = meta_of(obj)
    snapshot = dict(obj._sm_snapshot or {}) if is_stored(obj) else {}
    snapshot.update(plan.key)
    wires = plan.wires
    for name, value in plan.checked.items():
        obj._sm_values[name] = value
        column = meta.columns_by_name[name]
        snapshot[column.dynamo_name] = (
            wires[name] if name in wires else column.type.dynamo_dump(value)
        )
    if plan.new_version is not None:
        version = meta.version
        obj._sm_values[version.name] = plan.new_version
        snapshot[version.dynamo_name] = version.type.dynamo_dump(plan.new_version)
    obj._sm_snapshot = snapshot
    obj._sm_touched = set()
    if plan.returns == "ALL_NEW" and returned is not None:
        fill(obj, returned)
    else:
        for update in plan.updates:
            column = update.path.column
            if plan.returns == "UPDATED_NEW" and returned is not None:
                wire = returned.get(column.dynamo_name)
                obj._sm_values[column.name] = column.type.dynamo_load(wire)
                snapshot[column.dynamo_name] = wire
            else:
                obj._sm_values[column.name] = None
                snapshot.pop(column.dynamo_name, None)
    if returned is not None:
        for name, (old, _) in list(plan.diff.items()):
            if name in {u.path.column.name for u in plan.updates}:
                plan.diff[name] = (old, obj._sm_values.get(name))


def mark_deleted(obj: BaseModel) -> None:
    """After a delete the object is new again: a later save writes every value it holds."""
    meta = meta_of(obj)
    obj._sm_snapshot = None
    obj._sm_touched = {c.name for c in meta.columns if obj._sm_values.get(c.name) is not None}


def fill(obj: BaseModel, item: Mapping[str, Wire], columns: list[Any] | None = None) -> None:
    """Set ``obj`` from a stored item; ``columns`` are those the read returned (all if None)."""
    if columns is None and compiled(type(obj)).fill_all(obj, item):
        return
    fill_reference(obj, item, columns)


def load_new(model: type[BaseModel], item: Mapping[str, Wire]) -> BaseModel:
    """A new object of ``model`` filled from a whole stored item (no defaults applied)."""
    obj = compiled(model).new_from(item)
    if obj is None:
        obj = new_instance(model)
        fill_reference(obj, item)
    return obj  # type: ignore[no-any-return]


def fill_reference(
    obj: BaseModel, item: Mapping[str, Wire], columns: list[Any] | None = None
) -> None:
    """:func:`fill` through each type's ``dynamo_load``: the reference for the compiled path."""
    meta = meta_of(obj)
    known = meta.columns if columns is None else columns
    snapshot: dict[str, Wire | None] = {}
    values = obj._sm_values
    for column in known:
        wire = item.get(column.dynamo_name)
        try:
            values[column.name] = column.type.dynamo_load(wire)
        except (ValueError, TypeError, KeyError, ArithmeticError, AttributeError) as error:
            model = type(obj).__name__
            raise UndecodableItemError(
                f"{model}.{column.name}: stored value {wire!r} does not fit "
                f"{type(column.type).__name__} ({type(error).__name__}: {error})",
                model=type(obj),
                column=column.name,
                item=item,
            ) from error
        snapshot[column.dynamo_name] = wire
    obj._sm_snapshot = snapshot
    obj._sm_touched = set()
