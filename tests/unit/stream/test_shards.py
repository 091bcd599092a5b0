"""ShardReader: one shard's iterator, pages, position and expiry recovery."""

from __future__ import annotations

from typing import Any

import pytest

from streamodel.stream.shards import (
    EMPTY_BACKOFF_MAX,
    RawRecord,
    ShardInfo,
    ShardReader,
    StreamStats,
    pad_sequence,
    parse_sequence,
)
from streamodel.testing.fake_streams import FakeStreams
from streamodel.transport import RetryingTransport, RetryPolicy

FAST = RetryPolicy(base=0.0001, max_wait=0.001)


def reader(fake: FakeStreams, **options: Any) -> ShardReader:
    (shard_id,) = fake.shard_ids()[:1]
    return ShardReader(
        RetryingTransport(fake, FAST),
        fake.stream_arn,
        shard_id,
        None,
        stats=StreamStats(),
        **options,
    )


def put(fake: FakeStreams, n: int, shard_id: str | None = None) -> list[str]:
    return [
        fake.put(
            {"pk": {"S": "a"}}, new_image={"pk": {"S": "a"}, "n": {"N": str(i)}}, shard_id=shard_id
        )["dynamodb"]["SequenceNumber"]
        for i in range(n)
    ]


def drain(shard: ShardReader, now: float = 0.0) -> list[str]:
    out: list[str] = []
    for _ in range(1000):
        while shard.buffer:
            out.append(shard.pop()["dynamodb"]["SequenceNumber"])
        if shard.closed or not shard.fetch(now):
            return out
    raise AssertionError("shard never ran dry")


def test_sequence_numbers_pad_and_parse() -> None:
    """Sequence numbers pad to 40 digits for tokens and parse back to the same integer."""
    assert pad_sequence(12345) == "0" * 35 + "12345"
    big = 10**39 + 7
    assert parse_sequence(pad_sequence(big)) == big
    assert parse_sequence("000000000000000000001") == 1
    for bad in ("", "12a", "-1", "1" * 41, 12, None, "\uff11\uff12"):
        with pytest.raises(ValueError):
            parse_sequence(bad)


def test_iterator_request_uses_unpadded_sequence_after_a_record() -> None:
    """Iterators resume AFTER_SEQUENCE_NUMBER in decimal of at least 21 digits, or at the origin."""
    fake = FakeStreams()
    assert reader(fake).iterator_request()["ShardIteratorType"] == "TRIM_HORIZON"
    assert reader(fake, origin="latest").iterator_request()["ShardIteratorType"] == "LATEST"
    request = reader(fake, after=10**20 + 5).iterator_request()
    assert request["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
    assert request["SequenceNumber"] == str(10**20 + 5)
    assert reader(fake, after=7).iterator_request()["SequenceNumber"] == "0" * 20 + "7"


def test_token_entry_is_padded_and_json_safe() -> None:
    """A shard's token entry holds the padded sequence number and never an iterator."""
    fake = FakeStreams()
    written = put(fake, 3)
    shard = reader(fake)
    shard.fetch(0.0)
    shard.pop()
    entry = shard.token_entry()
    assert entry == {
        "after": written[0].zfill(40),
        "done": False,
        "parent": None,
        "start": "trim_horizon",
    }
    assert shard.iterator is not None and shard.iterator not in str(entry)


def test_closing_page_records_are_delivered_before_done() -> None:
    """A page without NextShardIterator closes the shard; done only once its records are taken."""
    fake = FakeStreams()
    written = put(fake, 3)
    fake.close(fake.shard_ids()[0])
    shard = reader(fake)
    assert shard.fetch(0.0) == 3
    assert shard.closed and not shard.done
    assert [shard.pop()["dynamodb"]["SequenceNumber"] for _ in range(3)] == written
    assert shard.done
    with pytest.raises(RuntimeError):
        shard.fetch(0.0)


def test_expired_iterator_is_rebuilt_from_position() -> None:
    """GetRecords on an expired iterator is repeated once with an iterator after the position."""
    fake = FakeStreams(max_page_size=2)
    written = put(fake, 5)
    shard = reader(fake)
    got = [shard.pop()["dynamodb"]["SequenceNumber"] for _ in range(shard.fetch(0.0))]
    fake.expire_iterators()
    got += drain(shard)
    assert got == written
    assert shard.stats.expired_iterators == 1


def test_empty_pages_back_off_and_records_reset_it() -> None:
    """Each empty page pushes the next poll back further, up to a second; records reset it."""
    fake = FakeStreams()
    shard = reader(fake)
    delays = []
    for _ in range(8):
        assert shard.fetch(100.0) == 0
        delays.append(round(shard.not_before - 100.0, 3))
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert EMPTY_BACKOFF_MAX == 1.0
    put(fake, 1)
    assert shard.fetch(200.0) == 1
    assert shard.not_before == 200.0 and shard.empty_streak == 0
    assert shard.stats.empty_polls == 8


def test_renew_keeps_position_with_pending_records() -> None:
    """A renewed iterator starts after the last record fetched, so pending ones are not re-read."""
    fake = FakeStreams(max_page_size=3)
    written = put(fake, 6)
    shard = reader(fake)
    shard.fetch(0.0)
    first = shard.pop()["dynamodb"]["SequenceNumber"]
    shard.renew(700.0)
    assert shard.issued_at == 700.0
    fake.expire_iterators()
    shard.renew(701.0)
    assert [first, *drain(shard)] == written


def test_restart_from_oldest_after_trim() -> None:
    """After a gap the shard restarts at TRIM_HORIZON while its token keeps the old position."""
    fake = FakeStreams()
    written = put(fake, 4)
    shard = reader(fake, after=int(written[0]))
    fake.trim(before=written[2])
    shard.restart_from_oldest()
    assert shard.iterator_request()["ShardIteratorType"] == "TRIM_HORIZON"
    assert shard.token_entry()["after"] == written[0].zfill(40)
    assert drain(shard) == written[2:]


def test_shard_info_and_raw_record() -> None:
    """ShardInfo reads DescribeStream's shard dicts; RawRecord is a frozen value."""
    info = ShardInfo.from_wire(
        {
            "ShardId": "shardId-1",
            "ParentShardId": "shardId-0",
            "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"},
        }
    )
    assert info.closed and info.parent_id == "shardId-0"
    assert not ShardInfo.from_wire({"ShardId": "s", "SequenceNumberRange": {}}).closed
    record = RawRecord("s", "1", {})
    with pytest.raises(AttributeError):
        record.shard_id = "t"  # type: ignore[misc]
