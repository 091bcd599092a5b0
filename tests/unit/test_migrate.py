"""The pure parts of migrations: the throttle, the write and its condition, the item's new
shape, the resumption decisions, progress lines and the exit status."""

from __future__ import annotations

from typing import Any

import pytest

from streamodel import Column, Integer, String, new_base
from streamodel.migrate import (
    EXPRESSION_LIMIT,
    MigrationError,
    MigrationResult,
    TokenBucket,
    choose_progress,
    exit_status,
    progress_line,
    transform,
    write_request,
    write_units,
)
from streamodel.stream.snapshot import SEGMENT_END, resume_key, segment_checkpoint

Base = new_base()


def bump(item: dict[str, Any]) -> dict[str, Any]:
    item["bumps"] = item.get("bumps", 0) + 1
    return item


class Thing(Base):
    class Meta:
        schema_version = 2
        upgrades = {1: bump}

    id = Column(String, hash_key=True)
    bumps = Column(Integer)
    note = Column(String)


class Versioned(Base):
    id = Column(String, hash_key=True)
    note = Column(String)
    version = Column(Integer, version=True)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_spends_its_burst_then_paces_at_the_rate() -> None:
    """A bucket of 10/s lets a second's worth through at once, then asks for 0.1 s a token,
    refills with time (up to its burst only), and lets a large cost pass by going into debt."""
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock)
    assert [bucket.reserve() for _ in range(10)] == [0.0] * 10
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)
    clock.now += 0.2  # the two reserved tokens are paid for: empty again
    assert bucket.reserve() == pytest.approx(0.1)
    clock.now += 60  # a long idle stretch saves up one burst, no more
    assert [bucket.reserve() for _ in range(10)] == [0.0] * 10
    assert bucket.reserve(5) == pytest.approx(0.5)
    # 10 items/s over a simulated minute: each waits out its delay, 600 pass in 60 s.
    clock.now += 1000
    bucket = TokenBucket(10, clock=clock)
    start, passed = clock.now, 0
    while clock.now - start < 60:
        clock.now += bucket.reserve()
        passed += 1
    assert 600 <= passed <= 611  # the rate, plus the first burst
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_transform_upgrades_old_items_once() -> None:
    """An old item gets the chain and the current version; an item at the version needs no
    write (None), so rereading it after a crash never upgrades it again."""
    old = {"id": {"S": "a"}, "bumps": {"N": "4"}}
    new = transform(Thing, old)
    assert new == {"id": {"S": "a"}, "bumps": {"N": "5"}, "_schema": {"N": "2"}}
    assert new is not None and transform(Thing, new) is None


def test_transform_backfill() -> None:
    """A backfill sees plain values at the current version and writes what it returns (None:
    leave it); it may not change the key."""
    seen: list[dict[str, Any]] = []

    def fill(item: dict[str, Any]) -> dict[str, Any]:
        seen.append(dict(item))
        return {**item, "note": "x"}

    new = transform(Thing, {"id": {"S": "a"}}, fill)
    assert seen == [{"id": "a", "bumps": 1}]
    assert new == {"id": {"S": "a"}, "bumps": {"N": "1"}, "note": {"S": "x"}, "_schema": {"N": "2"}}
    assert transform(Thing, {"id": {"S": "a"}}, lambda item: None) is None
    with pytest.raises(MigrationError, match="key column 'id'"):
        transform(Thing, {"id": {"S": "a"}}, lambda item: {**item, "id": "b"})
    with pytest.raises(MigrationError, match="raised ZeroDivisionError"):
        transform(Thing, {"id": {"S": "a"}}, lambda item: 1 // 0)


def test_write_request_updates_the_differences_under_the_item_as_read() -> None:
    """The write SETs changed attributes and REMOVEs dropped ones, and its condition names
    every attribute read (equal) and every column missing (absent)."""
    old = {"id": {"S": "a"}, "bumps": {"N": "4"}, "extra": {"L": [{"S": "x"}]}}
    new = {"id": {"S": "a"}, "bumps": {"N": "5"}, "_schema": {"N": "2"}}
    request = write_request("t", Thing, old, new)
    assert request is not None
    names = request["ExpressionAttributeNames"]
    values = request["ExpressionAttributeValues"]

    def placeholder(name: str) -> str:
        return next(p for p, n in names.items() if n == name)

    update, condition = request["UpdateExpression"], request["ConditionExpression"]
    assert request["Key"] == {"id": {"S": "a"}}
    assert f"{placeholder('bumps')} = " in update and f"{placeholder('_schema')} = " in update
    assert update.endswith(f"REMOVE {placeholder('extra')}")
    assert placeholder("id") not in update
    compared = {
        names[p]: values[v]
        for p, _, v in (t.split() for t in condition.split(" AND ") if " = " in t)
    }
    assert compared == old
    for absent in ("note", "_schema"):
        assert f"attribute_not_exists({placeholder(absent)})" in condition
    assert request["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    assert write_request("t", Thing, new, dict(new)) is None


def test_a_wide_versioned_item_is_checked_by_its_version() -> None:
    """When comparing every attribute would pass DynamoDB's expression limit, a versioned
    model's write checks the version column and the schema version instead."""
    old: dict[str, Any] = {f"a{i:04d}": {"S": "v"} for i in range(EXPRESSION_LIMIT // 10)}
    old.update(id={"S": "k"}, version={"N": "7"})
    request = write_request("t", Versioned, old, {**old, "note": {"S": "n"}})
    assert request is not None
    names = request["ExpressionAttributeNames"]
    condition = request["ConditionExpression"]
    assert len(condition) < 200
    referenced = {names[token] for token in names if token in condition}
    assert referenced == {"version", "_schema"}
    assert {"N": "7"} in request["ExpressionAttributeValues"].values()


def test_write_units() -> None:
    """One write unit per started KB of the larger image."""
    small = {"id": {"S": "a"}}
    assert write_units(small, small) == 1
    assert write_units(small, {"id": {"S": "a"}, "b": {"S": "x" * 2000}}) == 2


def test_resumption_decisions() -> None:
    """A segment resumes after its last handled item; items handled but not yet
    checkpointed are read again (and need no write: transform gives None); a finished
    segment is not read again."""
    after_a = segment_checkpoint(None, handled='{"id": "a"}', finished=False)
    assert after_a == '{"id": "a"}'
    assert segment_checkpoint(after_a, handled=after_a, finished=False) is None
    assert segment_checkpoint(after_a, handled=after_a, finished=True) == SEGMENT_END
    assert resume_key(None) is None
    with pytest.raises(ValueError):
        resume_key(SEGMENT_END)


def test_progress_choice_and_lines() -> None:
    """tqdm on a terminal when installed, log lines otherwise; a line has done, rate, ETA."""
    assert choose_progress("auto", tty=True, tqdm_available=True) == "tqdm"
    assert choose_progress("auto", tty=True, tqdm_available=False) == "log"
    assert choose_progress("auto", tty=False, tqdm_available=True) == "log"
    assert choose_progress("off", tty=True, tqdm_available=True) == "off"
    with pytest.raises(ValueError, match="streamodel\\[cli\\]"):
        choose_progress("tqdm", tty=True, tqdm_available=False)
    line = progress_line("M@v2", 300, 1000, 10.0, since=100)
    assert line == "migration M@v2: 300/1000 item(s) (30%), 20 items/s, ETA 35s"
    assert progress_line("M@v2", 5, None, 1.0, since=0) == "migration M@v2: 5 item(s), 5 items/s"


def test_exit_status() -> None:
    """0 once every segment is finished (items migrated or dead-lettered), else 1."""
    assert exit_status(MigrationResult("n", "g", dead_lettered=3, complete=True)) == 0
    assert exit_status(MigrationResult("n", "g", complete=False)) == 1
