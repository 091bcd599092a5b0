"""Start positions and the snapshot's pure decisions (no DynamoDB)."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.exceptions import InvalidPositionError
from streamodel.stream import Worker
from streamodel.stream.checkpoints import SHARD_END
from streamodel.stream.positions import check_stream_position, check_worker_start
from streamodel.stream.snapshot import (
    SEGMENT_END,
    item_checkpoint,
    next_segment,
    plan_start,
    progress,
    resume_key,
    seed_checkpoints,
    segment_checkpoint,
    segment_id,
    segment_index,
    snapshot_change,
    snapshot_done,
)

Base = new_base()


class Box(Base):
    id = Column(String, hash_key=True)
    size = Column(Integer)


ACCEPTED = "'trim_horizon', 'latest', 'snapshot', an aware datetime or a token"


@pytest.mark.parametrize(
    "start",
    ["TRIM_HORIZON", "trim-horizon", "Latest", "now", "", None, 0, datetime.datetime(2024, 1, 1)],
)
def test_worker_refuses_unknown_starts_naming_the_accepted_ones(start: Any) -> None:
    """Worker(start=...) refuses anything but the accepted positions, with an error naming
    Worker(start=...) and every accepted value (a typo never silently means "latest")."""
    with pytest.raises(InvalidPositionError) as raised:
        Worker(Engine(endpoint_url="http://127.0.0.1:9"), group="g", start=start)
    assert "Worker(start=...)" in str(raised.value)
    assert ACCEPTED in str(raised.value)
    assert isinstance(raised.value, ValueError)


def test_near_misses_get_a_hint() -> None:
    """A start differing only in case or separators names the one that was meant."""
    with pytest.raises(InvalidPositionError, match="did you mean 'trim_horizon'"):
        check_worker_start("TRIM-HORIZON")


@pytest.mark.parametrize(
    "start",
    [
        "trim_horizon",
        "latest",
        "snapshot",
        datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC),
        {"v": 1, "stream_arn": "arn", "shards": {}},
    ],
)
def test_worker_accepts_the_documented_starts(start: Any) -> None:
    """The documented starts are accepted as they are."""
    assert check_worker_start(start) is start


def test_stream_reader_refuses_snapshot_and_typos() -> None:
    """engine.stream positions: no "snapshot" (a reader has no scan), same errors otherwise."""
    for bad in ("snapshot", "TRIM_HORIZON", None):
        with pytest.raises(InvalidPositionError, match=r"engine\.stream"):
            check_stream_position(bad)
    assert check_stream_position("latest") == "latest"


def test_plan_start() -> None:
    """A snapshot under way is followed by every process; checkpoints win over start."""
    plan = plan_start
    assert plan("snapshot", has_checkpoints=False, marker_phase=None) == "snapshot"
    assert plan("latest", has_checkpoints=True, marker_phase="scanning") == "snapshot"
    assert plan("snapshot", has_checkpoints=True, marker_phase="done") == "resume"
    assert plan("snapshot", has_checkpoints=True, marker_phase=None) == "resume"
    assert plan({"shards": {}}, has_checkpoints=False, marker_phase=None) == "token"
    assert plan("trim_horizon", has_checkpoints=False, marker_phase=None) == "resume"
    assert plan("latest", has_checkpoints=False, marker_phase=None) == "remember"


def test_segment_ids_round_trip() -> None:
    assert segment_index(segment_id(3)) == 3
    with pytest.raises(ValueError):
        segment_index("shardId-0001")


def test_next_segment_finishes_a_page_before_fetching_another() -> None:
    """Buffered items first, then the lowest segment not finished; None when all are."""
    a, b, c = segment_id(0), segment_id(1), segment_id(2)
    assert next_segment([c, b, a], finished=set(), buffered={c}) == c
    assert next_segment([c, b, a], finished={a}, buffered=set()) == b
    assert next_segment([a], finished={a}, buffered=set()) is None


def test_segment_checkpoints() -> None:
    """Only handled items are checkpointed; the end only once the last page was handled."""
    key = item_checkpoint({"id": {"S": "k7"}})
    assert segment_checkpoint(None, handled=None, finished=False) is None
    assert segment_checkpoint(None, handled=key, finished=False) == key
    assert segment_checkpoint(key, handled=key, finished=False) is None
    assert segment_checkpoint(key, handled=key, finished=True) == SEGMENT_END
    assert segment_checkpoint(SEGMENT_END, handled=key, finished=True) is None
    assert resume_key(key) == {"id": {"S": "k7"}}
    assert resume_key(None) is None
    with pytest.raises(ValueError):
        resume_key(SEGMENT_END)


def test_snapshot_done_needs_every_segment() -> None:
    done = {segment_id(i): SEGMENT_END for i in range(3)}
    assert snapshot_done(done, 3)
    assert not snapshot_done(done, 4)
    assert not snapshot_done({**done, segment_id(1): item_checkpoint({"id": {"S": "x"}})}, 3)
    report = progress("scanning", 4, {sid: (cp, 10) for sid, cp in done.items()})
    assert (report.segments_done, report.segments, report.items) == (3, 4, 30)


def test_seed_checkpoints_from_a_pinned_token() -> None:
    """Closed, read shards are finished; open ones resume after their last record, or at
    their oldest one when none was read."""
    token = {
        "v": 1,
        "stream_arn": "arn",
        "since": None,
        "shards": {
            "s1": {"after": "0" * 39 + "5", "done": True, "parent": None, "start": "trim_horizon"},
            "s2": {"after": "0" * 39 + "9", "done": False, "parent": "s1", "start": "trim_horizon"},
            "s3": {"after": None, "done": False, "parent": None, "start": "trim_horizon"},
        },
    }
    assert seed_checkpoints(token) == [
        ("s1", None, SHARD_END),
        ("s2", "s1", "0" * 39 + "9"),
        ("s3", None, None),
    ]


def test_snapshot_change_shape() -> None:
    """A scanned item becomes an insert with snapshot=True, no old image, no sequence
    number, its segment as shard id and a stable event id."""
    read_at = datetime.datetime(2024, 5, 1, tzinfo=datetime.UTC)
    item = {"id": {"S": "b1"}, "size": {"N": "3"}}
    change = snapshot_change(Box, item, segment=segment_id(2), read_at=read_at)
    assert change.event == "insert" and change.snapshot is True
    assert change.old is None and change.sequence_number is None
    assert change.new.size == 3 and change.key == {"id": "b1"}
    assert change.shard_id == segment_id(2) and change.created_at == read_at
    again = snapshot_change(Box, item, segment=segment_id(2), read_at=read_at)
    assert change.event_id == again.event_id and change.event_id.startswith("snapshot:")
