"""Transactions: all-or-nothing writes (``TransactWriteItems``) and snapshot reads."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamodel import signals
from streamodel._diff import (
    SavePlan,
    check_condition,
    fill,
    is_stored,
    key_of,
    mark_deleted,
    mark_saved,
    meta_of,
    plan_save,
)
from streamodel._render import Renderer
from streamodel.conditions import Condition, Path
from streamodel.exceptions import (
    InvalidConditionError,
    MissingObjectsError,
    TransactionCanceledError,
)
from streamodel.models import BaseModel

if TYPE_CHECKING:
    from streamodel.engine import Engine

__all__ = ["MAX_ITEMS", "ReadTransaction", "WriteTransaction"]

MAX_ITEMS = 100  # DynamoDB's limit of items in one transaction


class _Transaction:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._keys: set[tuple[str, str]] = set()
        self.committed = False

    def _claim(self, obj: BaseModel) -> dict[str, Any]:
        if self.committed:
            raise InvalidConditionError("this transaction was already committed")
        if not isinstance(obj, BaseModel):
            raise TypeError(f"expected a model object, got {obj!r}")
        key = key_of(obj)
        ident = (self.engine.table_name(type(obj)), repr(sorted(key.items())))
        if ident in self._keys:
            raise InvalidConditionError(
                f"{type(obj).__name__} {key} appears twice in one transaction; "
                "DynamoDB allows one operation per item"
            )
        if len(self._keys) >= MAX_ITEMS:
            raise InvalidConditionError(
                f"a transaction holds at most {MAX_ITEMS} items (DynamoDB's limit)"
            )
        self._keys.add(ident)
        return key


class WriteTransaction(_Transaction):
    """``with engine.transaction() as tx: tx.save(a); tx.delete(b); tx.check(c, cond)``."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._items: list[dict[str, Any]] = []
        # (kind, obj, plan) per item, in order, to map cancellation reasons and signals.
        self._entries: list[tuple[str, BaseModel, SavePlan | None]] = []

    def save(
        self,
        *objs: BaseModel,
        condition: Condition | None = None,
        atomic: bool = False,
        version_check: bool = True,
        actions: Mapping[Path, Any] | None = None,
    ) -> None:
        """Save each object in the transaction, as ``engine.save`` would.

        Versions are checked and advanced as in ``engine.save``. A transaction returns no
        values, so columns updated by actions (and a version advanced with
        ``version_check=False``) read as ``None`` after the commit until loaded again.
        """
        for obj in objs:
            if not isinstance(obj, BaseModel):
                raise TypeError(f"expected a model object, got {obj!r}")
            plan = plan_save(
                obj,
                condition=condition,
                atomic=atomic,
                version_check=version_check,
                actions=actions,
            )
            request = self.engine.update_request(plan)
            if "UpdateExpression" in request:
                kind = "Update"
            elif "ConditionExpression" in request:
                kind = "ConditionCheck"  # nothing to write: only the condition takes part
            elif is_stored(obj):
                continue  # known to be stored as it is
            else:
                raise InvalidConditionError(
                    f"{type(obj).__name__}: a new object with only key values cannot be "
                    "created in a transaction (DynamoDB's transactional update needs an "
                    "attribute to set); give it a value or use engine.save()"
                )
            self._claim(obj)
            self._items.append({kind: request})
            self._entries.append(("save", obj, plan))

    def delete(
        self,
        *objs: BaseModel,
        condition: Condition | None = None,
        atomic: bool = False,
        version_check: bool = True,
    ) -> None:
        for obj in objs:
            self._claim(obj)
            request = self.engine.delete_request(
                obj, condition=condition, atomic=atomic, version_check=version_check
            )
            self._items.append({"Delete": request})
            self._entries.append(("delete", obj, None))

    def check(self, obj: BaseModel, condition: Condition) -> None:
        """Require ``condition`` to hold on ``obj``'s stored item for the whole transaction."""
        check_condition(obj, condition)
        key = self._claim(obj)
        r = Renderer()
        request: dict[str, Any] = {
            "TableName": self.engine.table_name(type(obj)),
            "Key": key,
            "ConditionExpression": r.condition(condition),
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        request.update(r.params())
        self._items.append({"ConditionCheck": request})
        self._entries.append(("check", obj, None))

    def commit(self) -> None:
        """Send every item in one ``TransactWriteItems``; signals fire after it succeeded."""
        self.committed = True
        if not self._items:
            return
        for kind, obj, plan in self._entries:
            if kind == "save" and plan is not None:
                if signals.before_save.receivers:  # the diff is built only for receivers
                    signals.before_save.send(type(obj), engine=self.engine, obj=obj, diff=plan.diff)
            elif kind == "delete":
                signals.before_delete.send(type(obj), engine=self.engine, obj=obj)
        request = {"TransactItems": self._items, "ClientRequestToken": uuid.uuid4().hex}
        try:
            self.engine.transport.call("dynamodb", "TransactWriteItems", request)
        except TransactionCanceledError as error:
            raise _with_objects(error, self._entries) from None
        for kind, obj, plan in self._entries:
            if kind == "save" and plan is not None:
                mark_saved(plan)
                if signals.object_saved.receivers:
                    signals.object_saved.send(
                        type(obj), engine=self.engine, obj=obj, diff=plan.diff
                    )
            elif kind == "delete":
                mark_deleted(obj)
                signals.object_deleted.send(type(obj), engine=self.engine, obj=obj)


class ReadTransaction(_Transaction):
    """``with engine.transaction(mode="r") as tx: tx.load(a, b)``: one consistent snapshot."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._objs: list[BaseModel] = []
        self._items: list[dict[str, Any]] = []

    def load(self, *objs: BaseModel) -> None:
        for obj in objs:
            key = self._claim(obj)
            self._objs.append(obj)
            self._items.append(
                {"Get": {"TableName": self.engine.table_name(type(obj)), "Key": key}}
            )

    def commit(self) -> None:
        """Read every item in one ``TransactGetItems`` and fill the objects."""
        self.committed = True
        if not self._items:
            return
        try:
            response = self.engine.transport.call(
                "dynamodb", "TransactGetItems", {"TransactItems": self._items}
            )
        except TransactionCanceledError as error:
            raise _with_objects(error, [("load", o, None) for o in self._objs]) from None
        missing = []
        for obj, result in zip(self._objs, response.get("Responses", []), strict=False):
            item = result.get("Item")
            if item is None:
                missing.append(obj)
                continue
            fill(obj, item)
            signals.object_loaded.send(type(obj), engine=self.engine, obj=obj)
        if missing:
            raise MissingObjectsError(f"{len(missing)} object(s) not found", objects=missing)


def _with_objects(
    error: TransactionCanceledError, entries: list[tuple[str, BaseModel, SavePlan | None]]
) -> TransactionCanceledError:
    reasons = []
    culprits = []
    for i, reason in enumerate(error.reasons):
        obj = entries[i][1] if i < len(entries) else None
        reasons.append({**reason, "obj": obj, "operation": entries[i][0] if obj else None})
        if reason.get("code") not in (None, "None") and obj is not None:
            culprits.append(
                f"{entries[i][0]} {type(obj).__name__} {meta_key(obj)}: {reason['code']}"
                + _stale_note(obj, reason.get("item"))
            )
    message = "transaction cancelled" + (": " + "; ".join(culprits) if culprits else f": {error}")
    return TransactionCanceledError(message, reasons=reasons)


def meta_key(obj: BaseModel) -> dict[str, Any]:
    return {c.name: obj._sm_values.get(c.name) for c in meta_of(obj).keys}


def _stale_note(obj: BaseModel, item: Mapping[str, Any] | None) -> str:
    """Say so when the failed item's stored version is not the object's."""
    version = meta_of(obj).version
    if version is None:
        return ""
    stored = None
    if item is not None and version.dynamo_name in item:
        stored = version.type.dynamo_load(item[version.dynamo_name])
    mine = obj._sm_values.get(version.name)
    return "" if stored == mine else f" (stale version: stored {stored}, object has {mine})"
