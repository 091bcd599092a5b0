"""Optimistic versions under real contention on DynamoDB Local: no lost update, ever."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from streamodel import (
    Column,
    Engine,
    Integer,
    StaleVersionError,
    String,
    add,
    new_base,
)

Base = new_base()

THREADS = 8
CYCLES = 100


class Counter(Base):
    id = Column(String, hash_key=True)
    count = Column(Integer, default=0)
    note = Column(String)
    version = Column(Integer, version=True)


class Tally(Base):
    """No version column: engine.update() falls back to atomic saves."""

    id = Column(String, hash_key=True)
    count = Column(Integer, default=0)


@pytest.fixture(scope="module", autouse=True)
def bound(engine: Engine) -> None:
    engine.bind(base=Base)


def raw_item(engine: Engine, model: Any, key: str) -> dict[str, Any] | None:
    response = engine.transport.call(
        "dynamodb",
        "GetItem",
        {"TableName": engine.table_name(model), "Key": {"id": {"S": key}}, "ConsistentRead": True},
    )
    return response.get("Item")


def run_threads(work: Callable[[], None]) -> None:
    """Run ``work`` on THREADS threads started together; re-raise the first failure."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(THREADS)

    def target() -> None:
        try:
            barrier.wait()
            work()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=target) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def test_hand_written_read_increment_save_loses_nothing(engine: Engine) -> None:
    """8 threads x 100 read-increment-save cycles, retrying on StaleVersionError, end with
    exactly 800 increments and version 801 (the engine is shared: it is thread-safe)."""
    key = uuid.uuid4().hex
    engine.save(Counter(id=key))
    conflicts: list[int] = []

    def work() -> None:
        stale = 0
        for _ in range(CYCLES):
            tries = 0
            while True:
                obj = Counter(id=key)  # streamodel objects are never shared between threads
                engine.load(obj, consistent=True)
                obj.count += 1
                try:
                    engine.save(obj)
                    break
                except StaleVersionError:
                    stale += 1
                    tries += 1
                    # Full jitter: a random wait below an exponentially growing bound.
                    time.sleep(random.uniform(0, min(0.1, 0.004 * 2**tries)))
        conflicts.append(stale)

    run_threads(work)
    stored = raw_item(engine, Counter, key)
    assert stored is not None
    assert stored["count"] == {"N": str(THREADS * CYCLES)}
    assert stored["version"] == {"N": str(THREADS * CYCLES + 1)}
    assert sum(conflicts) > 0  # there was real contention
    print(f"hand-written loop: {sum(conflicts)} stale saves retried")


def test_engine_update_loses_nothing(engine: Engine) -> None:
    """The same 8 x 100 cycles through engine.update() end at 800 and version 801."""
    key = uuid.uuid4().hex
    engine.save(Counter(id=key))

    def bump(obj: Counter) -> None:
        obj.count += 1

    def work() -> None:
        for _ in range(CYCLES):
            obj = engine.update(Counter(id=key), bump, retries=200, backoff=0.004, max_backoff=0.1)
            assert obj.count is not None and obj.version == obj.count + 1

    run_threads(work)
    final = Counter(id=key)
    engine.load(final, consistent=True)
    assert (final.count, final.version) == (THREADS * CYCLES, THREADS * CYCLES + 1)


def test_server_side_counter_and_unchecked_versions(engine: Engine) -> None:
    """add() and version_check=False need no retries: 8 x 25 concurrent saves each add 1
    to the count and to the version, and every object reads its own result back."""
    key = uuid.uuid4().hex
    engine.save(Counter(id=key))
    seen: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(25):
            obj = Counter(id=key)
            obj.count = add(1)
            engine.save(obj, version_check=False)
            with lock:
                seen.append(obj.count)

    run_threads(work)
    assert sorted(seen) == list(range(1, THREADS * 25 + 1))
    stored = raw_item(engine, Counter, key)
    assert stored is not None and stored["version"] == {"N": str(THREADS * 25 + 1)}


def test_update_of_unversioned_model_loses_nothing(engine: Engine) -> None:
    """engine.update() on a model without a version column (atomic saves) under 8 threads
    x 10 cycles ends with exactly 80 increments."""
    key = uuid.uuid4().hex
    engine.save(Tally(id=key))

    def work() -> None:
        for _ in range(10):
            engine.update(
                Tally(id=key),
                lambda t: setattr(t, "count", t.count + 1),
                retries=200,
                backoff=0.002,
                max_backoff=0.05,
            )

    run_threads(work)
    stored = raw_item(engine, Tally, key)
    assert stored is not None and stored["count"] == {"N": str(THREADS * 10)}


def test_stale_save_and_delete_leave_the_item_unchanged(engine: Engine) -> None:
    """A stale copy's save and delete raise StaleVersionError carrying the stored item, and
    the stored item stays exactly as the winner wrote it."""
    key = uuid.uuid4().hex
    first = Counter(id=key, note="first")
    engine.save(first)
    stale = Counter(id=key)
    engine.load(stale)
    first.note = "winner"
    engine.save(first)
    before = raw_item(engine, Counter, key)
    stale.note = "loser"
    with pytest.raises(StaleVersionError) as raised:
        engine.save(stale)
    assert raised.value.item == before
    with pytest.raises(StaleVersionError):
        engine.delete(stale)
    assert raw_item(engine, Counter, key) == before
    assert stale.version == 1 and stale.note == "loser"
