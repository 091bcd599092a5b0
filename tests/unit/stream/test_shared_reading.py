"""Reading a stream under leases: the coordinator's lease-aware methods and the pure
checkpoint transitions, against FakeStreams (no DynamoDB)."""

from __future__ import annotations

from typing import Any

from streamodel.stream.checkpoints import SHARD_END, next_checkpoint, position_of
from streamodel.stream.coordinator import Coordinator
from streamodel.stream.shards import ShardPosition, pad_sequence
from streamodel.testing.fake_streams import FakeStreams


def key(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{i}"}}


def open_coordinator(fake: FakeStreams) -> Coordinator:
    ticks = iter(range(1000, 10**6))  # a clock moving a second per look: no backoff waits
    return Coordinator(
        fake, fake.stream_arn, "trim_horizon", sleep=lambda _: None, clock=lambda: next(ticks)
    )


def read_all(coordinator: Coordinator, tries: int = 50) -> list[str]:
    sequences = []
    for _ in range(tries):
        record = coordinator.next_record()
        if record is not None:
            sequences.append(record.sequence_number)
    return sequences


def test_a_shard_is_read_only_while_held_and_its_position_is_checkpointable() -> None:
    """restrict() to no shard reads nothing; assign() at a checkpoint reads after it; position()
    gives the last record handed out as 40 digits, and done once a closed shard is read."""
    fake = FakeStreams()
    records = [fake.put(key(i), {"pk": {"S": f"k{i}"}}) for i in range(3)]
    (shard_id,) = fake.shard_ids()
    coordinator = open_coordinator(fake)
    coordinator.restrict(set())
    assert read_all(coordinator, 5) == []
    assert coordinator.lineage() == [(shard_id, None)]
    first = records[0]["dynamodb"]["SequenceNumber"]
    coordinator.assign(shard_id, after=pad_sequence(int(first)), done=False, parent=None)
    expected = [r["dynamodb"]["SequenceNumber"] for r in records[1:]]
    assert read_all(coordinator) == expected
    assert coordinator.position(shard_id) == ShardPosition(pad_sequence(int(expected[-1])), False)
    assert coordinator.at_end(shard_id, empty_polls=2)
    fake.close(shard_id)
    read_all(coordinator)
    assert coordinator.position(shard_id) == ShardPosition(pad_sequence(int(expected[-1])), True)
    assert coordinator.position("shardId-unknown") is None
    assert not coordinator.at_end("shardId-unknown", empty_polls=2)


def test_a_shard_with_records_buffered_is_not_at_its_end() -> None:
    """at_end() is false while fetched records wait to be handed out."""
    fake = FakeStreams()
    for i in range(3):
        fake.put(key(i), {"pk": {"S": f"k{i}"}})
    (shard_id,) = fake.shard_ids()
    coordinator = open_coordinator(fake)
    assert coordinator.next_record() is not None  # one of a page of three
    assert not coordinator.at_end(shard_id, empty_polls=0)


def test_stored_checkpoints_become_positions() -> None:
    """No checkpoint: from the start; a sequence number: after it; the shard end: done."""
    assert position_of(None) == ShardPosition(None, False)
    assert position_of("0" * 39 + "7") == ShardPosition("0" * 39 + "7", False)
    assert position_of(SHARD_END) == ShardPosition(None, True)


def test_the_checkpoint_moves_to_what_was_handled_and_to_the_shard_end_only_when_all_was() -> None:
    """A handled record moves the checkpoint; nothing handled keeps it; a finished shard is
    recorded as ended only if its last record read was handled; an unchanged value is no write."""
    five, seven = pad_sequence(5), pad_sequence(7)
    assert next_checkpoint(None, handled=five, read=ShardPosition(seven, False)) == five
    assert next_checkpoint(five, handled=five, read=ShardPosition(seven, False)) is None
    assert next_checkpoint(five, handled=None, read=ShardPosition(seven, False)) is None
    assert next_checkpoint(None, handled=five, read=ShardPosition(seven, True)) == five
    assert next_checkpoint(five, handled=seven, read=ShardPosition(seven, True)) == SHARD_END
    assert next_checkpoint(None, handled=None, read=ShardPosition(None, True)) == SHARD_END
    assert next_checkpoint(SHARD_END, handled=None, read=ShardPosition(None, True)) is None
    assert next_checkpoint(None, handled=five, read=None) == five
