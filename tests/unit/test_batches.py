"""Batch writes: when save/delete use BatchWriteItem, retries of unprocessed items, and
failures reported per object."""

from __future__ import annotations

from typing import Any

import pytest

from streamodel import (
    BatchWriteError,
    Column,
    Engine,
    Integer,
    InvalidConditionError,
    String,
    ValidationError,
    new_base,
    signals,
)
from streamodel.exceptions import ServerError
from streamodel.transport import RetryPolicy

Base = new_base()


class Thing(Base):
    id = Column(String, hash_key=True)
    name = Column(String)
    size = Column(Integer)


def things(n: int) -> list[Thing]:
    return [Thing(id=f"t{i:02}", name=f"n{i}") for i in range(n)]


def test_replace_puts_whole_items_25_per_call(engine: Any, transport: Any) -> None:
    """save(replace=True) of 30 objects sends two BatchWriteItem calls (25 + 5) of whole
    items, and afterwards every column of each object is known stored."""
    objs = things(30)
    engine.save(*objs, replace=True)
    assert transport.operations() == ["BatchWriteItem", "BatchWriteItem"]
    first = transport.calls[0][2]["RequestItems"]["Thing"]
    assert len(first) == 25 and len(transport.calls[1][2]["RequestItems"]["Thing"]) == 5
    assert first[0] == {"PutRequest": {"Item": {"id": {"S": "t00"}, "name": {"S": "n0"}}}}
    assert objs[0]._sm_snapshot == {"id": {"S": "t00"}, "name": {"S": "n0"}, "size": None}
    transport.calls.clear()
    engine.save(*objs)  # stored as they are: nothing to send
    assert transport.calls == []


def test_plain_saves_stay_diff_based_updates(engine: Any, transport: Any) -> None:
    """Without replace=True, saving many new objects sends one UpdateItem each: a put would
    erase columns another writer stored under the same key."""
    engine.save(*things(3))
    assert transport.operations() == ["UpdateItem"] * 3


def test_unconditional_deletes_are_batched(engine: Any, transport: Any) -> None:
    """Deleting several objects without conditions uses BatchWriteItem DeleteRequests;
    conditional deletes stay DeleteItem calls."""
    objs = things(3)
    engine.delete(*objs)
    assert transport.only("BatchWriteItem") == {
        "RequestItems": {
            "Thing": [{"DeleteRequest": {"Key": {"id": {"S": f"t0{i}"}}}} for i in range(3)]
        }
    }
    transport.calls.clear()
    engine.delete(*objs, condition=Thing.name == "x")
    assert transport.operations() == ["DeleteItem"] * 3


def test_unprocessed_items_are_retried(transport: Any) -> None:
    """UnprocessedItems are sent again (only those) until DynamoDB takes them."""
    engine = Engine(transport=transport, retry=RetryPolicy(attempts=3, base=0.0, max_wait=0.0))

    def partial(params: dict[str, Any]) -> dict[str, Any]:
        return {"UnprocessedItems": {"Thing": params["RequestItems"]["Thing"][1:]}}

    transport.queue("BatchWriteItem", partial, partial, {})
    objs = things(3)
    engine.save(*objs, replace=True)
    sizes = [len(p["RequestItems"]["Thing"]) for _, _, p in transport.calls]
    assert sizes == [3, 2, 1]
    assert all(o._sm_snapshot is not None for o in objs)


def test_items_never_processed_are_reported_per_object(engine: Any, transport: Any) -> None:
    """After the retry bound, BatchWriteError lists exactly the objects not written; the
    others are marked saved and signalled."""
    saved: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        saved.append(kwargs["obj"])

    def stuck(params: dict[str, Any]) -> dict[str, Any]:
        left = [
            r
            for r in params["RequestItems"]["Thing"]
            if r["PutRequest"]["Item"]["id"]["S"] == "t01"
        ]
        return {"UnprocessedItems": {"Thing": left}}

    transport.queue("BatchWriteItem", *[stuck] * engine.retry.attempts)
    objs = things(3)
    signals.object_saved.connect(receiver, sender=Thing)
    try:
        with pytest.raises(BatchWriteError) as raised:
            engine.save(*objs, replace=True)
    finally:
        signals.object_saved.disconnect(receiver, sender=Thing)
    assert raised.value.objects == [objs[1]]
    assert saved == [objs[0], objs[2]]
    assert objs[1]._sm_snapshot is None
    # The resends share the engine's attempts with the retries of each request.
    assert len(transport.calls) == engine.retry.attempts
    assert "unprocessed after" in str(raised.value)


def test_failed_call_reports_that_chunk_and_the_rest(engine: Any, transport: Any) -> None:
    """When a call fails for good, its objects and every later one are reported, earlier ones
    not; the failed call's objects are marked as of unknown outcome."""
    failure = ServerError("boom", operation="BatchWriteItem")
    transport.queue("BatchWriteItem", {}, *[failure] * 20)
    objs = things(60)
    with pytest.raises(BatchWriteError) as raised:
        engine.delete(*objs)
    assert raised.value.objects == objs[25:]
    assert raised.value.unknown == objs[25:50]
    assert isinstance(raised.value.__cause__, ServerError)
    # Unconditional batch writes are idempotent: a server error is retried before that.
    assert transport.operations().count("BatchWriteItem") > 2


def test_bad_input_refused_before_anything_is_sent(engine: Any, transport: Any) -> None:
    """A bad value, a duplicate key or a condition is refused before the first call."""
    good, bad = things(2)
    bad.size = "big"  # type: ignore[assignment]
    with pytest.raises(ValidationError) as raised:
        engine.save(*things(30), bad, replace=True)
    assert set(raised.value.messages) == {"size"}  # type: ignore[arg-type]
    with pytest.raises(InvalidConditionError, match="appears twice"):
        engine.save(good, Thing(id=good.id), replace=True)
    with pytest.raises(InvalidConditionError, match="no condition"):
        engine.save(good, replace=True, condition=Thing.name == "x")
    with pytest.raises(InvalidConditionError, match="appears twice"):
        engine.delete(good, Thing(id=good.id))
    assert transport.calls == []


def test_vetoing_signal_stops_the_whole_batch(engine: Any, transport: Any) -> None:
    """before_save receivers all run before the first call, so a veto writes nothing."""

    def veto(sender: Any, **kwargs: Any) -> None:
        if kwargs["obj"].id == "t29":
            raise RuntimeError("no")

    signals.before_save.connect(veto, sender=Thing)
    try:
        with pytest.raises(RuntimeError):
            engine.save(*things(30), replace=True)
    finally:
        signals.before_save.disconnect(veto, sender=Thing)
    assert transport.calls == []


def test_resends_and_retries_share_one_bound(transport: Any) -> None:
    """Throttled calls and resends of unprocessed items draw on the same attempts: a batch
    never sends more requests than the engine's policy allows (the layers used to multiply,
    8 resends x 8 retries)."""
    from streamodel.exceptions import ThrottledError

    engine = Engine(transport=transport, retry=RetryPolicy(attempts=4, base=0.0, max_wait=0.0))

    def partial(params: dict[str, Any]) -> dict[str, Any]:
        return {"UnprocessedItems": {"Thing": params["RequestItems"]["Thing"][1:]}}

    throttled = ThrottledError("slow down", operation="BatchWriteItem", code="Throttling")
    transport.queue("BatchWriteItem", throttled, partial, throttled, partial, *[partial] * 20)
    with pytest.raises(BatchWriteError) as raised:
        engine.save(*things(4), replace=True)
    assert len(transport.calls) == 4
    assert isinstance(raised.value.__cause__, ThrottledError)
