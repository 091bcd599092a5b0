"""One object's write, from its plan to its signals: the lifecycle that ``engine.save`` and
``engine.delete``, transactions and batch writes share.

A :class:`Write` is made by :func:`save`, :func:`delete`, :func:`put` or :func:`check`:
the object is validated and planned (:mod:`streamodel._diff`) and its request is built
(:mod:`streamodel.requests`). The operation that sends it, alone or bundled with others
(written as :mod:`streamodel.steps`, so for every shell), yields
:meth:`Write.announcements` before sending (``before_save``/``before_delete``), then
:meth:`Write.mark` and :meth:`Write.completions` after DynamoDB accepted it (the object is
marked saved or deleted, then ``object_saved``/``object_deleted``), or turns a refused
condition into the error to raise with :meth:`Write.refused`. :func:`send_steps` is one
write on its own. Nothing here sends anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from streamodel import requests, signals
from streamodel._compiled import compiled
from streamodel._diff import (
    MAX_ITEM_BYTES,
    SavePlan,
    _check_index_keys,
    check_condition,
    delete_condition,
    is_stored,
    key_of,
    mark_deleted,
    mark_saved,
    meta_of,
    plan_save,
)
from streamodel.actions import Action
from streamodel.conditions import Condition, Path
from streamodel.exceptions import (
    ConditionFailedError,
    InvalidConditionError,
    StaleVersionError,
    ValidationError,
)
from streamodel.models import BaseModel
from streamodel.schema import check_values
from streamodel.steps import Call, Emit, Steps
from streamodel.types import Wire, wire_size

if TYPE_CHECKING:
    pass

__all__ = ["Write", "check", "delete", "put", "save", "send_steps", "stale_versions"]

Kind = Literal["save", "delete", "put", "check"]


class Write:
    """One object's write: the request that does it, and what its answer means.

    ``request`` holds the operation's parameters: an ``UpdateItem`` (``save``), a
    ``DeleteItem`` (``delete``), a transaction's ``ConditionCheck`` (``check``) or, for
    ``put``, the whole item a batch puts.
    """

    __slots__ = ("_diff", "kind", "obj", "plan", "request", "table", "versioned")

    def __init__(
        self,
        kind: Kind,
        obj: BaseModel,
        table: str,
        request: dict[str, Any],
        *,
        plan: SavePlan | None = None,
        versioned: bool = False,
        diff: dict[str, tuple[Any, Any]] | None = None,
    ) -> None:
        self.kind = kind
        self.obj = obj
        self.table = table
        self.request = request
        self.plan = plan
        self.versioned = versioned
        self._diff = diff

    @property
    def diff(self) -> dict[str, tuple[Any, Any]]:
        """Column name to ``(old, new)`` of what the write changes (built when first read)."""
        if self.plan is not None:
            return self.plan.diff
        return self._diff or {}

    @property
    def needed(self) -> bool:
        """False for a save of an object known to be stored as it is, with no condition."""
        plan = self.plan
        return not (
            self.kind == "save"
            and plan is not None
            and plan.writes_nothing
            and plan.condition is None
            and is_stored(self.obj)
        )

    def announcements(self, engine: Any) -> list[Emit]:
        """The signals to send before the write (``before_save`` / ``before_delete``)."""
        model = type(self.obj)
        if self.kind in ("save", "put"):
            if signals.before_save.receivers:  # the diff is built only for receivers
                kwargs = {"engine": engine, "obj": self.obj, "diff": self.diff}
                return [Emit(signals.before_save, model, kwargs)]
        elif self.kind == "delete" and signals.before_delete.receivers:
            return [Emit(signals.before_delete, model, {"engine": engine, "obj": self.obj})]
        return []

    def mark(self, returned: Mapping[str, Wire] | None = None) -> None:
        """DynamoDB accepted the write: the object is saved (with what an ``UpdateItem``
        read back), put or deleted."""
        if self.kind == "save":
            assert self.plan is not None
            mark_saved(self.plan, returned)
        elif self.kind == "put":
            _mark_put(self.obj, self.request)
        elif self.kind == "delete":
            mark_deleted(self.obj)

    def completions(self, engine: Any) -> list[Emit]:
        """The signals to send once the write is applied (``object_saved`` /
        ``object_deleted``)."""
        model, obj = type(self.obj), self.obj
        if self.kind in ("save", "put"):
            if signals.object_saved.receivers:
                kwargs = {"engine": engine, "obj": obj, "diff": self.diff}
                return [Emit(signals.object_saved, model, kwargs)]
        elif self.kind == "delete" and signals.object_deleted.receivers:
            return [Emit(signals.object_deleted, model, {"engine": engine, "obj": obj})]
        return []

    def refused(self, error: ConditionFailedError) -> ConditionFailedError:
        """The error a refused condition means for this object: a ``StaleVersionError`` when
        the stored version is not the object's, else a ``ConditionFailedError``."""
        obj, item = self.obj, error.item
        name = type(obj).__name__
        if self.versioned:
            stale = stale_versions(obj, item)
            if stale is not None:
                stored, mine = stale
                return StaleVersionError(
                    f"{name}: stored version is {stored}, this object has {mine}; "
                    "reload, merge and retry",
                    obj=obj,
                    item=item,
                )
        return ConditionFailedError(f"{name}: the write's condition failed", obj=obj, item=item)


def send_steps(write: Write, engine: Any, operation: str) -> Steps[None]:
    """One object's write on its own: announced, sent, marked and signalled (any shell)."""
    for emit in write.announcements(engine):
        yield emit
    try:
        response = yield Call("dynamodb", operation, write.request)
    except ConditionFailedError as error:
        raise write.refused(error) from None
    write.mark(response.get("Attributes"))
    for emit in write.completions(engine):
        yield emit


def stale_versions(obj: BaseModel, item: Mapping[str, Wire] | None) -> tuple[Any, Any] | None:
    """``(stored, object's)`` versions when they differ (no stored item: ``None`` stored);
    ``None`` when they agree or the model has no version column."""
    version = meta_of(obj).version
    if version is None:
        return None
    stored = None
    if item is not None and version.dynamo_name in item:
        stored = version.type.dynamo_load(item[version.dynamo_name])
    mine = obj._sm_values.get(version.name)
    return None if stored == mine else (stored, mine)


def save(
    table: str,
    obj: BaseModel,
    *,
    condition: Condition | None = None,
    atomic: bool = False,
    version_check: bool = True,
    actions: Mapping[Path, Any] | None = None,
    sync: bool = False,
    read_back: bool = True,
) -> Write:
    """A diff-based save: one ``UpdateItem`` of what changed (see ``engine.save``)."""
    plan = plan_save(
        obj,
        condition=condition,
        atomic=atomic,
        version_check=version_check,
        actions=actions,
        sync=sync,
    )
    request = requests.update_item(table, plan, read_back=read_back)
    versioned = plan.version_condition is not None
    return Write("save", obj, table, request, plan=plan, versioned=versioned)


def delete(
    table: str,
    obj: BaseModel,
    *,
    condition: Condition | None = None,
    atomic: bool = False,
    version_check: bool = True,
) -> Write:
    """A ``DeleteItem`` under ``condition``, the version check and (``atomic``) the snapshot."""
    combined = delete_condition(
        obj, condition=condition, atomic=atomic, version_check=version_check
    )
    request = requests.delete_item(table, key_of(obj), combined)
    versioned = version_check and meta_of(obj).version is not None
    return Write("delete", obj, table, request, versioned=versioned)


def check(table: str, obj: BaseModel, condition: Condition) -> Write:
    """A transaction's check that ``condition`` holds on ``obj``'s stored item."""
    check_condition(obj, condition)
    return Write("check", obj, table, requests.condition_check(table, key_of(obj), condition))


def put(table: str, obj: BaseModel) -> Write:
    """A batch put of the whole object, replacing what is stored (no condition, no version).

    The request is the item itself; the diff is against what the object knows is stored.
    """
    meta = meta_of(obj)
    name = type(obj).__name__
    if meta.version is not None:
        raise InvalidConditionError(
            f"{name} has a version column: a batch write cannot check or advance versions "
            "(BatchWriteItem takes no conditions); save it without replace=True"
        )
    values = obj._sm_values
    acting = sorted(n for n, v in values.items() if isinstance(v, Action))
    if acting:
        raise InvalidConditionError(
            f"{name}: columns {acting} hold update actions, which a batch put cannot apply"
        )
    item = key_of(obj)
    key_names = {c.name for c in meta.keys}
    checked = check_values(
        type(obj), {c.name: values.get(c.name) for c in meta.columns if c.name not in key_names}
    )
    _check_index_keys(meta, checked)
    snapshot = obj._sm_snapshot if is_stored(obj) else None
    diff: dict[str, tuple[Any, Any]] = {}
    for column in meta.columns:
        if column.name in key_names:
            continue
        wire = column.type.dynamo_dump(checked[column.name])
        old = snapshot.get(column.dynamo_name) if snapshot is not None else None
        if wire is not None:
            item[column.dynamo_name] = wire
        if wire != old:
            diff[column.name] = (column.type.dynamo_load(old), checked[column.name])
    cm = compiled(type(obj))
    versions = cm.versions
    if versions.writes:  # a whole item at the model's schema version
        item[versions.attribute] = versions.current_wire
    if cm.entity_wire is not None:
        item[meta.entity_attribute] = cm.entity_wire
    size = wire_size(item)
    if size > MAX_ITEM_BYTES:
        raise ValidationError(
            {"_item": [f"Item is {size} bytes; DynamoDB's limit is 400 KB ({MAX_ITEM_BYTES})."]}
        )
    return Write("put", obj, table, item, diff=diff)


def _mark_put(obj: BaseModel, item: Mapping[str, Wire]) -> None:
    """After a put, every column is known: stored as in ``item``, or absent."""
    meta = meta_of(obj)
    snapshot: dict[str, Wire | None] = {}
    for column in meta.columns:
        wire = item.get(column.dynamo_name)
        snapshot[column.dynamo_name] = wire
        obj._sm_values[column.name] = column.type.dynamo_load(wire)
    versions = compiled(type(obj)).versions
    if versions.writes:
        snapshot[versions.attribute] = item.get(versions.attribute)
    obj._sm_snapshot = snapshot
    obj._sm_touched = set()
