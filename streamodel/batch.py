"""Batch writes: whole-item puts and unconditional deletes, 25 per ``BatchWriteItem``.

A batch put replaces the whole stored item and takes no condition, so it is not what a
diff-based save does: :meth:`Engine.save` uses it only when asked (``replace=True``), and
refuses versioned objects there, because their version could not be checked. A batch delete
is exactly an unconditional ``DeleteItem``, so ``engine.delete`` of several objects without
any condition uses it by itself.

DynamoDB may leave some requests unprocessed; they are sent again with backoff, a bounded
number of times. Whatever is still not written then is reported per object
(:class:`BatchWriteError`), never dropped. Every object is validated, and every
``before_save``/``before_delete`` receiver has run, before the first request is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import tenacity

from streamodel import signals
from streamodel._diff import (
    MAX_ITEM_BYTES,
    _check_index_keys,
    is_stored,
    key_of,
    mark_deleted,
    meta_of,
)
from streamodel.actions import Action
from streamodel.exceptions import (
    BatchWriteError,
    InvalidConditionError,
    ServerError,
    ValidationError,
)
from streamodel.models import BaseModel
from streamodel.schema import check_values
from streamodel.types import Wire, wire_size

if TYPE_CHECKING:
    from streamodel.engine import Engine

__all__ = ["BATCH_WRITE_LIMIT", "BatchWriteError", "BatchWriter"]

BATCH_WRITE_LIMIT = 25  # DynamoDB's limit of requests in one BatchWriteItem
MAX_ATTEMPTS = 8


class _Unprocessed(Exception):
    """Requests left unprocessed: retried with backoff."""


class _Entry:
    __slots__ = ("done", "item", "key", "kind", "obj", "table")

    def __init__(
        self, kind: Literal["put", "delete"], obj: BaseModel, table: str, item: dict[str, Wire]
    ) -> None:
        self.kind, self.obj, self.table, self.item = kind, obj, table, item
        self.key = key_of(obj)
        self.done = False

    def request(self) -> dict[str, Any]:
        if self.kind == "put":
            return {"PutRequest": {"Item": self.item}}
        return {"DeleteRequest": {"Key": self.item}}


class BatchWriter:
    """Writes many objects with ``BatchWriteItem``; see the module docstring."""

    def __init__(self, engine: Engine, *, attempts: int = MAX_ATTEMPTS) -> None:
        self.engine = engine
        self.attempts = attempts

    # -- planning ------------------------------------------------------------------------
    def put(self, objs: Sequence[BaseModel]) -> None:
        """Replace each object's stored item with the object (every column it holds)."""
        entries, diffs = [], []
        for obj in objs:
            item, diff = _whole_item(obj)
            entries.append(_Entry("put", obj, self.engine.table_name(type(obj)), item))
            diffs.append(diff)
        _refuse_duplicates(entries)
        for entry, diff in zip(entries, diffs, strict=True):
            signals.before_save.send(type(entry.obj), engine=self.engine, obj=entry.obj, diff=diff)

        def done(entry: _Entry, index: int) -> None:
            _mark_put(entry.obj, entry.item)
            obj = entry.obj
            signals.object_saved.send(type(obj), engine=self.engine, obj=obj, diff=diffs[index])

        self._write(entries, done)

    def delete(self, objs: Sequence[BaseModel]) -> None:
        """Delete each object's item, unconditionally."""
        entries = [_Entry("delete", o, self.engine.table_name(type(o)), key_of(o)) for o in objs]
        _refuse_duplicates(entries)
        for entry in entries:
            signals.before_delete.send(type(entry.obj), engine=self.engine, obj=entry.obj)

        def done(entry: _Entry, index: int) -> None:
            mark_deleted(entry.obj)
            signals.object_deleted.send(type(entry.obj), engine=self.engine, obj=entry.obj)

        self._write(entries, done)

    # -- sending -------------------------------------------------------------------------
    def _write(self, entries: list[_Entry], done: Any) -> None:
        index = {id(e): i for i, e in enumerate(entries)}
        for start in range(0, len(entries), BATCH_WRITE_LIMIT):
            chunk = entries[start : start + BATCH_WRITE_LIMIT]
            try:
                self._send(chunk)
            except Exception as error:
                for entry in chunk:
                    if entry.done:
                        done(entry, index[id(entry)])
                missing = [e.obj for e in entries if not e.done]
                # After a 5xx or a broken connection the last call may have landed.
                unknown = (
                    [e.obj for e in chunk if not e.done] if isinstance(error, ServerError) else []
                )
                detail = f" ({len(unknown)} in a call whose outcome is unknown)" if unknown else ""
                raise BatchWriteError(
                    f"{len(missing)} of {len(entries)} object(s) not known to be written"
                    f"{detail}: {error}",
                    objects=missing,
                    unknown=unknown,
                ) from error
            for entry in chunk:
                done(entry, index[id(entry)])

    def _send(self, chunk: list[_Entry]) -> None:
        """One chunk; unprocessed requests again with full-jitter backoff, a bounded number
        of times. Entries DynamoDB accepted are marked ``done``."""
        pending = {(e.table, _ident(e.key)): e for e in chunk}
        key_names = {e.table: list(e.key) for e in chunk}
        # The engine's retry policy sets the pace (a test engine may wait 0).
        policy = getattr(self.engine.transport, "policy", None)
        base = getattr(policy, "base", 0.025)
        max_wait = getattr(policy, "max_wait", 2.0)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_Unprocessed),
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_random_exponential(multiplier=base, max=max_wait),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                request: dict[str, list[dict[str, Any]]] = {}
                for entry in pending.values():
                    request.setdefault(entry.table, []).append(entry.request())
                response = self.engine.transport.call(
                    "dynamodb", "BatchWriteItem", {"RequestItems": request}
                )
                left: dict[tuple[str, str], _Entry] = {}
                for table, requests in (response.get("UnprocessedItems") or {}).items():
                    for r in requests:
                        item = (r.get("PutRequest") or r.get("DeleteRequest") or {}).get(
                            "Item", r.get("DeleteRequest", {}).get("Key", {})
                        )
                        key = {n: item.get(n) for n in key_names.get(table, [])}
                        ident = (table, _ident(key))
                        if ident in pending:
                            left[ident] = pending[ident]
                for ident, entry in pending.items():
                    entry.done = ident not in left
                pending = left
                if pending:
                    raise _Unprocessed(f"BatchWriteItem left {len(pending)} request(s)")


def _ident(item: dict[str, Wire]) -> str:
    return repr(sorted(item.items()))


def _refuse_duplicates(entries: list[_Entry]) -> None:
    # DynamoDB refuses a batch naming one key twice; say which object.
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        ident = (entry.table, _ident(entry.key))
        if ident in seen:
            raise InvalidConditionError(
                f"{type(entry.obj).__name__} {entry.key} appears twice in one batch write"
            )
        seen.add(ident)


def _whole_item(obj: BaseModel) -> tuple[dict[str, Wire], dict[str, tuple[Any, Any]]]:
    """The full item for a put of ``obj``, and its diff against what is known stored."""
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
    size = wire_size(item)
    if size > MAX_ITEM_BYTES:
        raise ValidationError(
            {"_item": [f"Item is {size} bytes; DynamoDB's limit is 400 KB ({MAX_ITEM_BYTES})."]}
        )
    return item, diff


def _mark_put(obj: BaseModel, item: dict[str, Wire]) -> None:
    """After a put, every column is known: stored as in ``item``, or absent."""
    meta = meta_of(obj)
    snapshot: dict[str, Wire | None] = {}
    for column in meta.columns:
        wire = item.get(column.dynamo_name)
        snapshot[column.dynamo_name] = wire
        obj._sm_values[column.name] = column.type.dynamo_load(wire)
    obj._sm_snapshot = snapshot
    obj._sm_touched = set()
