"""Batch writes: whole-item puts and unconditional deletes, 25 per ``BatchWriteItem``.

A batch put replaces the whole stored item and takes no condition, so it is not what a
diff-based save does: :meth:`Engine.save` uses it only when asked (``replace=True``), and
refuses versioned objects there, because their version could not be checked. A batch delete
is exactly an unconditional ``DeleteItem``, so ``engine.delete`` of several objects without
any condition uses it by itself.

DynamoDB may leave some requests unprocessed; they are sent again with backoff, within the
engine's retry policy (the resends and the retries of each request share its attempts).
Whatever is still not written then is reported per object (:class:`BatchWriteError`), never
dropped. Every object is validated, and every
``before_save``/``before_delete`` receiver has run, before the first request is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from streamodel import requests, steps, writes
from streamodel._diff import key_of
from streamodel.exceptions import (
    BatchWriteError,
    InvalidConditionError,
    ServerError,
    ThrottledError,
)
from streamodel.models import BaseModel
from streamodel.steps import Call, Steps
from streamodel.transport.retry import AttemptsExhausted
from streamodel.types import Wire

if TYPE_CHECKING:
    from streamodel.engine import Engine

__all__ = ["BATCH_WRITE_LIMIT", "BatchWriteError", "BatchWriter"]

BATCH_WRITE_LIMIT = 25  # DynamoDB's limit of requests in one BatchWriteItem


class _Entry:
    """One object's put or delete in a batch, and whether DynamoDB accepted it yet."""

    __slots__ = ("done", "key", "table", "write")

    def __init__(self, write: writes.Write) -> None:
        self.write, self.table = write, write.table
        self.key: dict[str, Wire] = key_of(write.obj)
        self.done = False

    def request(self) -> dict[str, Any]:
        if self.write.kind == "put":
            return {"PutRequest": {"Item": self.write.request}}
        return {"DeleteRequest": {"Key": self.write.request["Key"]}}


class BatchWriter:
    """Writes many objects with ``BatchWriteItem``; see the module docstring."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- planning ------------------------------------------------------------------------
    def put(self, objs: Sequence[BaseModel]) -> None:
        """Replace each object's stored item with the object (every column it holds)."""
        steps.run(self.engine.transport, self.put_steps(objs))

    def put_steps(self, objs: Sequence[BaseModel]) -> Steps[None]:
        return self.write_steps([writes.put(self.engine.table_name(type(o)), o) for o in objs])

    def delete(self, objs: Sequence[BaseModel]) -> None:
        """Delete each object's item, unconditionally."""
        self.write([writes.delete(self.engine.table_name(type(o)), o) for o in objs])

    def write(self, planned: Sequence[writes.Write]) -> None:
        """Send puts and unconditional deletes (every one announced before the first
        request), marking and signalling each object once DynamoDB accepted it."""
        steps.run(self.engine.transport, self.write_steps(planned))

    def write_steps(self, planned: Sequence[writes.Write]) -> Steps[None]:
        """:meth:`write` as steps (any shell runs them)."""
        for write in planned:
            if write.kind not in ("put", "delete") or "ConditionExpression" in write.request:
                raise InvalidConditionError(
                    f"{type(write.obj).__name__}: a batch takes only whole-item puts and "
                    "unconditional deletes"
                )
        entries = [_Entry(write) for write in planned]
        _refuse_duplicates(entries)
        for entry in entries:
            yield from entry.write.announcements(self.engine)
        yield from self._write(entries)

    # -- sending -------------------------------------------------------------------------
    def _write(self, entries: list[_Entry]) -> Steps[None]:
        for start in range(0, len(entries), BATCH_WRITE_LIMIT):
            chunk = entries[start : start + BATCH_WRITE_LIMIT]
            try:
                yield from self._send(chunk)
            except Exception as error:
                for entry in chunk:
                    if entry.done:
                        entry.write.mark()
                        yield from entry.write.completions(self.engine)
                missing = [e.write.obj for e in entries if not e.done]
                # After a 5xx or a broken connection the last call may have landed.
                unknown = (
                    [e.write.obj for e in chunk if not e.done]
                    if isinstance(error, ServerError)
                    else []
                )
                detail = f" ({len(unknown)} in a call whose outcome is unknown)" if unknown else ""
                raise BatchWriteError(
                    f"{len(missing)} of {len(entries)} object(s) not known to be written"
                    f"{detail}: {error}",
                    objects=missing,
                    unknown=unknown,
                ) from error
            for entry in chunk:
                entry.write.mark()
                yield from entry.write.completions(self.engine)

    def _send(self, chunk: list[_Entry]) -> Steps[None]:
        """One chunk, its unprocessed requests sent again until none are left: the resends and
        the retries of each request share the engine's attempts. Entries DynamoDB accepted are
        marked ``done``."""
        pending = {(e.table, _ident(e.key)): e for e in chunk}
        key_names = {e.table: list(e.key) for e in chunk}
        attempts = self.engine.retry.operation()
        while pending:
            request = requests.batch_write_item(
                [(entry.table, entry.request()) for entry in pending.values()]
            )
            try:
                with attempts.active():  # active in the shell's context while it sends
                    response = yield Call("dynamodb", "BatchWriteItem", request)
            except AttemptsExhausted:
                # What DynamoDB keeps leaving unprocessed is throttling by another name.
                raise ThrottledError(
                    f"BatchWriteItem left {len(pending)} request(s) unprocessed after "
                    f"{attempts.taken} attempts",
                    operation="BatchWriteItem",
                    code="UnprocessedItems",
                ) from None
            left: dict[tuple[str, str], _Entry] = {}
            for table, unprocessed in (response.get("UnprocessedItems") or {}).items():
                for r in unprocessed:
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


def _ident(item: dict[str, Wire]) -> str:
    return repr(sorted(item.items()))


def _refuse_duplicates(entries: list[_Entry]) -> None:
    # DynamoDB refuses a batch naming one key twice; say which object.
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        ident = (entry.table, _ident(entry.key))
        if ident in seen:
            raise InvalidConditionError(
                f"{type(entry.write.obj).__name__} {entry.key} appears twice in one batch write"
            )
        seen.add(ident)
