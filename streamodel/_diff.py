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
    version_is,
)
from streamodel.exceptions import InvalidConditionError, UndecodableItemError, ValidationError
from streamodel.models import BaseModel, new_instance
from streamodel.schema import check_values
from streamodel.types import Wire, same_wire

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


@dataclass(slots=True)
class SavePlan:
    """Everything one save of one object writes, computed before anything is sent."""

    obj: BaseModel
    key: dict[str, Wire]
    # The columns SET, and their wire values.
    set_columns: list[Any] = field(default_factory=list)
    set_wires: list[Wire] = field(default_factory=list)
    removes: list[Any] = field(default_factory=list)  # columns
    # Update actions and path updates; their results are read back (``returns``).
    updates: list[Update] = field(default_factory=list)
    checked: dict[str, Any] = field(default_factory=dict)  # every column checked, by name
    # What the object knew to be stored (None: nothing), the old side of ``diff``.
    snapshot: dict[str, Wire | None] | None = None
    # ``diff`` entries of the columns under updates and of the version.
    other_changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    new_version: int | None = None
    # The version column when checked, and what the stored item must hold (None: none).
    version: Any = None
    expected_version: Wire | None = None
    version_condition: Condition | None = None
    condition: Condition | None = None
    returns: str | None = None  # ReturnValues of the UpdateItem, when values are read back
    _diff: dict[str, tuple[Any, Any]] | None = None

    @property
    def diff(self) -> dict[str, tuple[Any, Any]]:
        """Column name -> (old value, new value) of every column this save changes; built
        when first read (by signal receivers), not on every save."""
        if self._diff is None:
            snapshot, checked = self.snapshot, self.checked
            loads = compiled(type(self.obj)).load
            diff = {}
            for column in self.set_columns + self.removes:
                name = column.name
                if name in checked:
                    old = None if snapshot is None else snapshot.get(column.dynamo_name)
                    diff[name] = (None if old is None else loads[name](old), checked[name])
            for name, change in self.other_changes.items():
                diff.setdefault(name, change)
            self._diff = diff
        return self._diff

    @property
    def writes_nothing(self) -> bool:
        return not self.set_columns and not self.removes and not self.updates

    def all_updates(self) -> list[Update]:
        """Every clause of the ``UpdateExpression``: plain SETs and REMOVEs, then actions."""
        plain = [
            Update(c, "SET", "value", (w,), computed=False)
            for c, w in zip(self.set_columns, self.set_wires, strict=True)
        ]
        plain += [Update(c, "REMOVE", computed=False) for c in self.removes]
        return [*plain, *self.updates]


def check_condition(obj: BaseModel, condition: Condition | None) -> Condition | None:
    """Refuse what is not a condition (an expression string, a dict), and a condition on
    columns of another model: it would test an attribute that the object's item may hold for
    another reason, and silently pass or fail."""
    if condition is None:
        return None
    model = type(obj)
    if not isinstance(condition, Condition):
        raise InvalidConditionError(
            f"condition= for {model.__name__} must be a condition built from its columns "
            f"(for example {model.__name__}.<column> == value), got "
            f"{type(condition).__name__} {condition!r}"
        )
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
    model = type(obj)
    meta: Any = model.Meta
    if condition is not None:
        check_condition(obj, condition)
    cm = compiled(model)
    values = obj._sm_values
    key = cm.key(values) or _key_of_reference(obj)  # key_of, with cm at hand
    snapshot = obj._sm_snapshot if is_stored(obj) else None
    touched = obj._sm_touched
    version = meta.version

    # Every assigned column is written, and every column the snapshot knows is compared
    # again unless its value cannot have changed in place: an immutable value that was not
    # assigned is the very one loaded or saved with the snapshot. A list, set or dict may
    # have been changed in place, so it is dumped and compared with what is stored.
    # Columns holding an action are not diffed (encode names them); changes beside actions
    # given per path are, so that an overlap between the two is refused rather than one
    # silently dropped.
    wanted: set[str]
    if snapshot is None:
        wanted = touched  # encode looks at plain columns only: neither key nor version
    else:
        wanted = {
            name
            for name, dynamo_name in cm.plain
            if name in touched
            or (dynamo_name in snapshot and type(values.get(name)) not in _IMMUTABLE)
        }
    encoded = cm.encode(values, wanted)
    if encoded is not None:
        checked, columns, wires, removes, bound, acted = encoded  # bound: bytes, or a bit more
    else:
        acted = [n for n in wanted if isinstance(values.get(n), Action)]
    version_acted = version is not None and isinstance(values.get(version.name), Action)
    updates = _bind_actions(obj, actions) if acted or actions or version_acted else []
    if encoded is None:
        plain = {n: values.get(n) for n, _ in cm.plain if n in wanted and n not in acted}
        checked = check_values(model, plain)  # raises, listing every bad column
        dumped = [(cm.columns_by_name[n][0], cm.dump[n](v)) for n, v in checked.items()]
        columns = [column for column, wire in dumped if wire is not None]
        wires = [wire for _, wire in dumped if wire is not None]
        removes = [column for column, wire in dumped if wire is None]
        bound = MAX_ITEM_BYTES + 1  # not known: counted exactly below
    if meta.indexes:
        _check_index_keys(meta, checked)
    schema = cm.schema_column
    if schema is not None:
        # A new object, or one loaded from an item below the model's version, writes the
        # version; an object that did not read the attribute (a projected read) does not:
        # the item's other columns may still be in an older shape.
        schema_wire = cm.versions.current_wire
        if snapshot is None or snapshot.get(schema.dynamo_name, schema_wire) != schema_wire:
            columns.append(schema)
            wires.append(schema_wire)
    entity = cm.entity_column
    if entity is not None and snapshot is None:
        # A new object names its entity; a stored one was read as this entity already.
        columns.append(entity)
        wires.append(cm.entity_wire)

    if snapshot is not None:  # write only what differs (absent and known absent are alike)
        changed = [
            i
            for i, (c, wire) in enumerate(zip(columns, wires, strict=True))
            if wire != (old := snapshot.get(c.dynamo_name)) and not same_wire(wire, old)
        ]
        columns, wires = [columns[i] for i in changed], [wires[i] for i in changed]
        removes = [c for c in removes if snapshot.get(c.dynamo_name, False) is not None]
    plan = SavePlan(obj, key, columns, wires, removes, updates, checked, snapshot)
    other_changes = plan.other_changes
    for update in updates:
        column = update.path.column
        old = snapshot.get(column.dynamo_name) if snapshot is not None else None
        new = values.get(column.name) if not update.path.segments else update
        other_changes.setdefault(column.name, (cm.load[column.name](old), new))

    if version is not None and version_check:
        current = values.get(version.name)
        if current is not None:
            found = cm.check_values({version.name: current})
            if found is None:
                found = check_values(model, {version.name: current})
            current = found[version.name]
        plan.version = version
        plan.new_version = (current or 0) + 1
        wire = cm.dump[version.name](plan.new_version)
        assert wire is not None
        columns.append(version)
        wires.append(wire)
        other_changes[version.name] = (current, plan.new_version)
        if current is None:
            plan.version_condition = cm.version_absent
        else:
            plan.expected_version = cm.dump[version.name](current)
            plan.version_condition = version_is(version, plan.expected_version)
    elif version is not None:
        # No check, yet never a rollback: DynamoDB adds 1 to whatever is stored.
        updates.append(Update(version, "ADD", "value", ({"N": "1"},)))
        other_changes[version.name] = (values.get(version.name), None)
    if updates:
        _check_overlaps(plan)
    _check_size(plan, bound + cm.frame_bound)
    if condition is None and not atomic:
        plan.condition = plan.version_condition
    else:
        plan.condition = all_of(
            condition, plan.version_condition, atomic_condition(obj) if atomic else None
        )
    # Nested updates return partial documents with UPDATED_NEW: read whole items then.
    if sync or (updates and any(u.path.segments for u in updates)):
        plan.returns = "ALL_NEW"
    elif updates:
        plan.returns = "UPDATED_NEW"
    return plan


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


def _check_size(plan: SavePlan, bound: int) -> None:
    """Refuse an item larger than DynamoDB's limit, saying how large. A new object's item is
    known to be at most ``bound`` bytes; anything else is counted exactly."""
    snapshot = plan.snapshot
    if snapshot is None and bound <= MAX_ITEM_BYTES:
        return
    item: dict[str, Wire] = {}
    if snapshot is not None:  # what stays as stored: unchanged columns, those under actions
        item.update((name, wire) for name, wire in snapshot.items() if wire is not None)
    item.update(plan.key)
    item.update(zip([c.dynamo_name for c in plan.set_columns], plan.set_wires, strict=True))
    for column in plan.removes:
        item.pop(column.dynamo_name, None)
    size = compiled(type(plan.obj)).item_size(item)
    if size > MAX_ITEM_BYTES:
        raise ValidationError(
            {
                "_item": [
                    f"Item is {size} bytes; DynamoDB's limit is 400 KB ({MAX_ITEM_BYTES} bytes)."
                ]
            }
        )


def _check_overlaps(plan: SavePlan) -> None:
    """DynamoDB refuses two updates of overlapping document paths; say which ones (plain
    SETs and REMOVEs name distinct top-level columns: only updates can overlap)."""
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
        version_condition = version_is(
            version, None if current is None else version.type.dynamo_dump(current)
        )
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
    # What was written; the checked columns left out of it already equal the snapshot.
    snapshot.update(zip([c.dynamo_name for c in plan.set_columns], plan.set_wires, strict=True))
    snapshot.update((column.dynamo_name, None) for column in plan.removes)
    obj._sm_values.update(plan.checked)
    if plan.new_version is not None:  # its wire is one of those set
        obj._sm_values[meta.version.name] = plan.new_version
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
    """Set ``obj`` from a stored item; ``columns`` are those the read returned (all if None).

    A whole item is brought to the model's schema version first (:func:`fill_whole`); a
    projected one (``columns``) is read as stored: it may lack the version attribute, and an
    upgrade is written for whole items.
    """
    if columns is None:
        cm = compiled(type(obj))
        if not cm.fill_all(obj, item):
            fill_whole(obj, item, cm)
        return
    fill_reference(obj, item, columns)


def load_new(model: type[BaseModel], item: Mapping[str, Wire]) -> BaseModel:
    """A new object of ``model`` filled from a whole stored item (no defaults applied)."""
    cm = compiled(model)
    obj = cm.new_from(item)
    if obj is None:
        obj = new_instance(model)
        fill_whole(obj, item, cm)
    return obj  # type: ignore[no-any-return]


def fill_whole(obj: BaseModel, item: Mapping[str, Wire], cm: Any = None) -> None:
    """Fill ``obj`` from a whole stored item through the model's upgrades (the path every
    read of a model with upgrades takes, and that of any item the compiled decode of a
    version-1 model stepped aside for).

    The object holds the upgraded values; its snapshot holds what is *stored* (the old item
    and its version), and the columns the upgrades changed count as set: the next save
    writes them, REMOVEs the columns they dropped, and writes the current version.
    """
    if cm is None:
        cm = compiled(type(obj))
    versions = cm.versions
    upgraded = versions.upgrade(item)  # SchemaVersionError for what cannot be upgraded
    if upgraded is item and not versions.writes:
        fill_reference(obj, item)  # a version-1 item the compiled decode stepped aside for
        return
    if not cm.fill_plain(obj, upgraded):
        fill_reference(obj, upgraded)
    snapshot = obj._sm_snapshot
    assert snapshot is not None
    if upgraded is item:
        # At the model's version: the version attribute is known to be stored as current.
        snapshot[versions.attribute] = versions.current_wire
        return
    touched = set()
    for column in cm.columns:
        name = column.dynamo_name
        before = item.get(name)
        after = snapshot.get(name)
        if after != before and not same_wire(after, before):
            touched.add(column.name)
        snapshot[name] = before
    snapshot[versions.attribute] = item.get(versions.attribute)
    obj._sm_touched = touched


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
