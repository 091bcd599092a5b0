"""Loading objects by key, written once for every shell: ``engine.load(*objs)``.

:func:`load_steps` groups the objects' keys by table (two objects of one key share one
read), asks for them (one ``GetItem`` for a single key, else ``BatchGetItem`` with 100 keys
per call, its ``UnprocessedKeys`` asked again under the same attempts as the retries), fills
each object from its item, and reports those not found. It is a generator of
:mod:`streamodel.steps`: the sync engine runs it with ``steps.run``, the asyncio engine with
``steps.arun``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from streamodel import requests, signals
from streamodel._diff import fill, key_of, meta_of
from streamodel.entities import is_entity_item
from streamodel.exceptions import MissingObjectsError, ThrottledError
from streamodel.models import BaseModel
from streamodel.steps import Call, Emit, Steps
from streamodel.transport.retry import AttemptsExhausted, RetryPolicy
from streamodel.types import Wire

__all__ = ["BATCH_GET_LIMIT", "key_ident", "load_steps"]

BATCH_GET_LIMIT = 100

Item = dict[str, Wire]


def load_steps(
    engine: Any,
    objs: Iterable[BaseModel],
    *,
    consistent: bool,
    table_name: Callable[[type[BaseModel]], str],
    retry: RetryPolicy,
) -> Steps[None]:
    """Fill each object from its stored item; then :class:`MissingObjectsError` lists the
    objects not found (another entity's item under an object's key is not found)."""
    wanted: dict[tuple[str, Any], list[BaseModel]] = {}
    by_table: dict[str, list[Item]] = {}
    key_names: dict[str, list[str]] = {}  # per table, its key attributes
    for obj in objs:
        model = type(obj)
        table = table_name(model)
        key = key_of(obj)
        ident = (table, key_ident(key))
        if ident not in wanted:
            by_table.setdefault(table, []).append(key)
        wanted.setdefault(ident, []).append(obj)
        if table not in key_names:
            key_names[table] = [c.dynamo_name for c in meta_of(model).keys]
    found: set[int] = set()
    loaded = signals.object_loaded
    fetched = yield from _fetch_steps(by_table, consistent, retry)
    for table, item in fetched:
        ident = (table, key_ident({name: item[name] for name in key_names[table]}))
        for obj in wanted.get(ident, []):
            if not is_entity_item(type(obj), item):
                continue  # another entity's item under this key: not this object's
            fill(obj, item)
            if loaded.receivers:  # no receivers: no signal, no keyword arguments
                yield Emit(loaded, type(obj), {"engine": engine, "obj": obj})
            found.add(id(obj))
    missing = [obj for group in wanted.values() for obj in group if id(obj) not in found]
    if missing:
        raise MissingObjectsError(f"{len(missing)} object(s) not found", objects=missing)


def _fetch_steps(
    by_table: dict[str, list[Item]], consistent: bool, retry: RetryPolicy
) -> Steps[list[tuple[str, Item]]]:
    if sum(len(keys) for keys in by_table.values()) == 1:
        # One key: GetItem is the cheaper call (no batch envelope, nothing unprocessed).
        ((table, (key,)),) = by_table.items()
        answer = yield Call(
            "dynamodb", "GetItem", requests.get_item(table, key, consistent=consistent)
        )
        item = answer.get("Item")
        return [(table, item)] if item is not None else []
    pending = [(table, key) for table, keys in by_table.items() for key in keys]
    out: list[tuple[str, Item]] = []
    for start in range(0, len(pending), BATCH_GET_LIMIT):
        chunk = pending[start : start + BATCH_GET_LIMIT]
        request = requests.batch_get_item(chunk, consistent=consistent)
        out += yield from _batch_get_steps(request["RequestItems"], retry)
    return out


def _batch_get_steps(request: dict[str, Any], retry: RetryPolicy) -> Steps[list[tuple[str, Item]]]:
    """One BatchGetItem, its ``UnprocessedKeys`` sent again until none are left: the resends
    and the retries of each request share one operation's attempts (the attempts are active
    in the shell's context while the call is sent: a generator runs in its caller's)."""
    attempts = retry.operation()
    remaining = request
    out: list[tuple[str, Item]] = []
    while remaining:
        try:
            with attempts.active():
                answer = yield Call("dynamodb", "BatchGetItem", {"RequestItems": remaining})
        except AttemptsExhausted:
            # What DynamoDB keeps leaving unprocessed is throttling by another name.
            count = sum(len(keys["Keys"]) for keys in remaining.values())
            raise ThrottledError(
                f"BatchGetItem left {count} key(s) unprocessed after {attempts.taken} attempts",
                operation="BatchGetItem",
                code="UnprocessedKeys",
            ) from None
        for table, items in answer.get("Responses", {}).items():
            out += [(table, item) for item in items]
        remaining = answer.get("UnprocessedKeys") or {}
    return out


def key_ident(key: dict[str, Wire]) -> Any:
    """A hashable identity of a key (both sides built in the model's key order)."""
    # Key values are S, N or B: one (tag, str or bytes) pair each, hashable as they are.
    try:
        return tuple([(name, *wire.items()) for name, wire in key.items()])
    except TypeError:  # an unexpected shape: compare its text
        return repr([(name, sorted(wire.items())) for name, wire in key.items()])
