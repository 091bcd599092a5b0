"""Transactions: all-or-nothing writes (``TransactWriteItems``) and snapshot reads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from streamodel import requests, signals, steps, writes
from streamodel._diff import fill, is_stored, key_of, meta_of
from streamodel.conditions import Condition, Path
from streamodel.entities import is_entity_item
from streamodel.exceptions import (
    InvalidConditionError,
    MissingObjectsError,
    TransactionCanceledError,
)
from streamodel.models import BaseModel
from streamodel.steps import Call, Emit, Steps

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
        # One write per item, in order, to map cancellation reasons and signals.
        self._writes: list[writes.Write] = []
        self._items: list[dict[str, Any]] = []

    def _add(self, kind: str, write: writes.Write) -> None:
        self._claim(write.obj)
        self._items.append({kind: write.request})
        self._writes.append(write)

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
            write = writes.save(
                self.engine.table_name(type(obj)),
                obj,
                condition=condition,
                atomic=atomic,
                version_check=version_check,
                actions=actions,
                read_back=False,
            )
            if "UpdateExpression" in write.request:
                self._add("Update", write)
            elif "ConditionExpression" in write.request:
                self._add("ConditionCheck", write)  # nothing to write: only the condition
            elif not is_stored(obj):
                raise InvalidConditionError(
                    f"{type(obj).__name__}: a new object with only key values cannot be "
                    "created in a transaction (DynamoDB's transactional update needs an "
                    "attribute to set); give it a value or use engine.save()"
                )
            # else: known to be stored as it is

    def delete(
        self,
        *objs: BaseModel,
        condition: Condition | None = None,
        atomic: bool = False,
        version_check: bool = True,
    ) -> None:
        for obj in objs:
            if not isinstance(obj, BaseModel):
                raise TypeError(f"expected a model object, got {obj!r}")
            write = writes.delete(
                self.engine.table_name(type(obj)),
                obj,
                condition=condition,
                atomic=atomic,
                version_check=version_check,
            )
            self._add("Delete", write)

    def check(self, obj: BaseModel, condition: Condition) -> None:
        """Require ``condition`` to hold on ``obj``'s stored item for the whole transaction."""
        if not isinstance(obj, BaseModel):
            raise TypeError(f"expected a model object, got {obj!r}")
        self._add("ConditionCheck", writes.check(self.engine.table_name(type(obj)), obj, condition))

    def commit(self) -> None:
        """Send every item in one ``TransactWriteItems``; signals fire after it succeeded."""
        steps.run(self.engine.transport, self.commit_steps())

    def commit_steps(self) -> Steps[None]:
        """:meth:`commit` as steps (any shell runs them)."""
        self.committed = True
        if not self._items:
            return
        for write in self._writes:
            yield from write.announcements(self.engine)
        request = requests.transact_write_items(self._items)
        try:
            yield Call("dynamodb", "TransactWriteItems", request)
        except TransactionCanceledError as error:
            raise _with_objects(error, [(w.kind, w.obj) for w in self._writes]) from None
        for write in self._writes:
            write.mark()
            yield from write.completions(self.engine)


class ReadTransaction(_Transaction):
    """``with engine.transaction(mode="r") as tx: tx.load(a, b)``: one consistent snapshot."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._objs: list[BaseModel] = []
        self._keys_in_order: list[tuple[str, dict[str, Any]]] = []

    def load(self, *objs: BaseModel) -> None:
        for obj in objs:
            key = self._claim(obj)
            self._objs.append(obj)
            self._keys_in_order.append((self.engine.table_name(type(obj)), key))

    def commit(self) -> None:
        """Read every item in one ``TransactGetItems`` and fill the objects."""
        steps.run(self.engine.transport, self.commit_steps())

    def commit_steps(self) -> Steps[None]:
        """:meth:`commit` as steps (any shell runs them)."""
        self.committed = True
        if not self._keys_in_order:
            return
        request = requests.transact_get_items(self._keys_in_order)
        try:
            response = yield Call("dynamodb", "TransactGetItems", request)
        except TransactionCanceledError as error:
            raise _with_objects(error, [("load", o) for o in self._objs]) from None
        missing = []
        for obj, result in zip(self._objs, response.get("Responses", []), strict=False):
            item = result.get("Item")
            if item is None or not is_entity_item(type(obj), item):
                missing.append(obj)
                continue
            fill(obj, item)
            yield Emit(signals.object_loaded, type(obj), {"engine": self.engine, "obj": obj})
        if missing:
            raise MissingObjectsError(f"{len(missing)} object(s) not found", objects=missing)


def _with_objects(
    error: TransactionCanceledError, entries: list[tuple[str, BaseModel]]
) -> TransactionCanceledError:
    """The cancellation with each reason's object and operation, and the culprits named."""
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
    stale = writes.stale_versions(obj, item)
    return "" if stale is None else f" (stale version: stored {stale[0]}, object has {stale[1]})"
