"""The engine's writes, written once for every shell: ``save`` and ``delete`` of many objects.

Each is a generator of :mod:`streamodel.steps`: every object is validated and planned
before anything is sent (:mod:`streamodel.writes`), then each write is sent on its own (or,
for whole-item puts and unconditional deletes, in ``BatchWriteItem`` calls). ``Engine`` runs
them with ``steps.run``, ``AsyncEngine`` with ``steps.arun``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamodel import writes
from streamodel._diff import meta_of
from streamodel.batch import BatchWriter
from streamodel.conditions import Condition, Path
from streamodel.exceptions import (
    ConditionFailedError,
    InvalidConditionError,
    InvalidModelError,
    StaleVersionError,
)
from streamodel.models import BaseModel
from streamodel.steps import Steps
from streamodel.types import Wire

__all__ = ["delete_steps", "model_objects", "save_steps", "update_conflict", "update_retrying"]


def model_objects(objs: Sequence[Any]) -> list[BaseModel]:
    """``objs`` checked to be objects of concrete models."""
    for obj in objs:
        if not isinstance(obj, BaseModel):
            raise TypeError(f"expected a model object, got {obj!r}")
        if meta_of(obj).abstract:
            raise InvalidModelError(f"{type(obj).__name__} is abstract and has no table")
    return list(objs)


def save_steps(
    engine: Any,
    objs: Sequence[BaseModel],
    *,
    condition: Condition | None,
    atomic: bool,
    version_check: bool,
    sync: bool,
    actions: Mapping[Path, Any] | None,
    replace: bool,
) -> Steps[None]:
    """``engine.save(*objs, ...)``: see :meth:`streamodel.Engine.save`."""
    table_name: Callable[[type[BaseModel]], str] = engine.table_name
    if replace:
        if condition is not None or atomic or actions or sync:
            raise InvalidConditionError(
                "save(replace=True) writes whole items with BatchWriteItem, which takes "
                "no condition, atomic, actions or sync"
            )
        yield from BatchWriter(engine).put_steps(model_objects(objs))
        return
    planned = [
        writes.save(
            table_name(type(obj)),
            obj,
            condition=condition,
            atomic=atomic,
            version_check=version_check,
            actions=actions,
            sync=sync,
        )
        for obj in model_objects(objs)
    ]
    for write in planned:
        if sync or write.needed:
            yield from writes.send_steps(write, engine, "UpdateItem")


def delete_steps(
    engine: Any,
    objs: Sequence[BaseModel],
    *,
    condition: Condition | None,
    atomic: bool,
    version_check: bool,
) -> Steps[None]:
    """``engine.delete(*objs, ...)``: several deletes without any condition go in
    ``BatchWriteItem`` calls (a batch delete is exactly an unconditional ``DeleteItem``)."""
    planned = [
        writes.delete(
            engine.table_name(type(obj)),
            obj,
            condition=condition,
            atomic=atomic,
            version_check=version_check,
        )
        for obj in model_objects(objs)
    ]
    plain = [w for w in planned if "ConditionExpression" not in w.request]
    if len(plain) > 1:
        yield from BatchWriter(engine).write_steps(plain)
        planned = [w for w in planned if "ConditionExpression" in w.request]
    for write in planned:
        yield from writes.send_steps(write, engine, "DeleteItem")


# -- engine.update: read, modify, save until no other writer got in between ----------------


def update_retrying(retries: int, backoff: float, max_backoff: float) -> dict[str, Any]:
    """tenacity's options for ``engine.update`` (``Retrying`` or ``AsyncRetrying``): another
    try after a :class:`StaleVersionError`, at most ``retries`` more, full-jitter waits."""
    import tenacity  # here: only updates need it, not a cold start

    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"update(retries=...) must be an int >= 0, got {retries!r}")
    return {
        "retry": tenacity.retry_if_exception_type(StaleVersionError),
        "stop": tenacity.stop_after_attempt(retries + 1),
        "wait": tenacity.wait_random_exponential(multiplier=backoff, max=max_backoff),
        "reraise": True,
    }


def update_conflict(
    target: BaseModel, versioned: bool, error: ConditionFailedError
) -> ConditionFailedError:
    """What a refused save of an update means: another writer got in between (a
    :class:`StaleVersionError`, worth another try), or, when the stored item is still what
    was loaded, the caller's own condition failed (the error itself: retrying cannot help)."""
    if versioned or not _changed_since_load(target, error.item):
        return error
    return StaleVersionError(
        f"{type(target).__name__}: the stored item changed since it was loaded",
        obj=target,
        item=error.item,
    )


def _changed_since_load(obj: BaseModel, item: Mapping[str, Wire] | None) -> bool:
    """Whether the stored ``item`` differs from what ``obj`` last loaded."""
    if item is None:
        return True
    snapshot = obj._sm_snapshot or {}
    return any(item.get(name) != wire for name, wire in snapshot.items())
