"""One shard of a DynamoDB stream: its iterator, its reads and its position.

A :class:`ShardReader` knows where it is in its shard by sequence number, never by
iterator: ``after`` is the last record handed out (the checkpoint), and the iterator is only
a cache that can be thrown away and rebuilt with ``AFTER_SEQUENCE_NUMBER`` at any time. That
is what makes expired iterators, heartbeats and resumed tokens lose and repeat nothing.

Sequence numbers are compared as integers, only within one shard; tokens store them
zero-padded to 40 characters, the API gets them back as plain decimal strings.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from streamodel import requests
from streamodel.exceptions import ExpiredIteratorError
from streamodel.transport.base import Transport

__all__ = [
    "SEQUENCE_WIDTH",
    "Origin",
    "RawRecord",
    "ShardInfo",
    "ShardPosition",
    "ShardReader",
    "StreamStats",
    "pad_sequence",
    "parse_sequence",
]

SEQUENCE_WIDTH = 40
Origin = Literal["trim_horizon", "latest"]

# Empty pages push the next poll of a shard back: 0.05 s, doubling, at most 1 s. A page with
# records resets it, so a busy shard is read as fast as it yields.
EMPTY_BACKOFF_BASE = 0.05
EMPTY_BACKOFF_MAX = 1.0


def pad_sequence(sequence: int) -> str:
    """The 40-character, zero-padded form of a sequence number, as tokens store it."""
    return str(sequence).zfill(SEQUENCE_WIDTH)


# The API wants at least 21 digits; DynamoDB Local's numbers are small and zero-padded to
# that width, real ones are 21 digits or more.
API_SEQUENCE_MIN_WIDTH = 21


def api_sequence(sequence: int) -> str:
    """The form of a sequence number that GetShardIterator accepts."""
    return str(sequence).zfill(API_SEQUENCE_MIN_WIDTH)


def parse_sequence(text: object) -> int:
    """A sequence number from its API or token form; ``ValueError`` if it is not one."""
    if not isinstance(text, str) or not text.isdigit() or not text.isascii():
        raise ValueError(f"not a sequence number: {text!r}")
    if len(text) > SEQUENCE_WIDTH:
        raise ValueError(f"sequence number longer than {SEQUENCE_WIDTH} digits: {text!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One stream record as GetRecords returned it, with the shard it came from.

    ``record`` is the raw dict: ``eventID``, ``eventName``, ``dynamodb`` (``Keys``,
    ``NewImage``, ``OldImage``, ``SequenceNumber``, ``ApproximateCreationDateTime``, ...) and,
    for TTL deletes, ``userIdentity``.
    """

    shard_id: str
    sequence_number: str
    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ShardInfo:
    """A shard as DescribeStream lists it."""

    shard_id: str
    parent_id: str | None
    starting_sequence: str | None
    ending_sequence: str | None

    @property
    def closed(self) -> bool:
        """A shard with an ending sequence number takes no more records."""
        return self.ending_sequence is not None

    @classmethod
    def from_wire(cls, shard: dict[str, Any]) -> ShardInfo:
        numbers = shard.get("SequenceNumberRange", {})
        return cls(
            shard_id=shard["ShardId"],
            parent_id=shard.get("ParentShardId"),
            starting_sequence=numbers.get("StartingSequenceNumber"),
            ending_sequence=numbers.get("EndingSequenceNumber"),
        )


@dataclass(frozen=True, slots=True)
class ShardPosition:
    """Where reading stands in one shard, in checkpointable form.

    ``after`` is the last record handed out (40 digits, ``None`` before the first); ``done``
    is true once the shard is closed and every record of it was handed out.
    """

    after: str | None
    done: bool


@dataclass
class StreamStats:
    """Counters of one stream reader, for metrics and tests."""

    records: int = 0
    skipped: int = 0
    get_records_calls: int = 0
    empty_polls: int = 0
    get_shard_iterator_calls: int = 0
    describe_stream_calls: int = 0
    expired_iterators: int = 0
    iterators_renewed: int = 0
    trimmed_gaps: int = 0
    throttled: int = 0


class ShardReader:
    """Reads one shard page by page and keeps its position.

    ``after`` is the sequence number of the last record taken with :meth:`pop` (``None``
    before the first); ``done`` is true once the shard is closed and every record was taken.
    A new page is fetched only when the previous one was fully taken, so the iterator always
    stands right after ``after`` and can be rebuilt from it.
    """

    def __init__(
        self,
        transport: Transport,
        stream_arn: str,
        shard_id: str,
        parent_id: str | None,
        *,
        stats: StreamStats,
        after: int | None = None,
        origin: Origin = "trim_horizon",
        done: bool = False,
        limit: int = 1000,
    ) -> None:
        self.transport = transport
        self.stream_arn = stream_arn
        self.shard_id = shard_id
        self.parent_id = parent_id
        self.stats = stats
        self.after = after
        self.origin: Origin = origin
        self.done = done
        self.limit = limit
        # No more pages: the shard returned a page without NextShardIterator.
        self.closed = done
        self.buffer: deque[dict[str, Any]] = deque()
        self.iterator: str | None = None
        self.issued_at = 0.0
        # The shard is not polled again before this time (monotonic clock).
        self.not_before = 0.0
        self.empty_streak = 0
        self.throttle_streak = 0
        # A trimmed gap was reported and no record was read since: do not report it twice.
        self.gap_reported = False
        # The last record fetched: where a rebuilt iterator must start.
        self._fetched = after

    def __repr__(self) -> str:
        state = "done" if self.done else "closed" if self.closed else "open"
        return f"<ShardReader {self.shard_id} {state} after={self.after}>"

    # -- position --------------------------------------------------------------------------

    def iterator_request(self) -> dict[str, Any]:
        """GetShardIterator parameters that continue right after the last record fetched."""
        return requests.get_shard_iterator(
            self.stream_arn,
            self.shard_id,
            after=api_sequence(self._fetched) if self._fetched is not None else None,
            latest=self.origin == "latest",
        )

    def token_entry(self) -> dict[str, Any]:
        """This shard's part of a stream token: JSON-safe, sequence numbers only."""
        return {
            "after": None if self.after is None else pad_sequence(self.after),
            "done": self.done,
            "parent": self.parent_id,
            "start": self.origin,
        }

    def position(self) -> ShardPosition:
        """The position after the last record handed out (what a checkpoint may record)."""
        return ShardPosition(None if self.after is None else pad_sequence(self.after), self.done)

    def at_end(self, *, empty_polls: int) -> bool:
        """Everything fetched was handed out and the shard is read to its current end: done,
        closed, or ``empty_polls`` empty pages in a row (an open shard never ends for good)."""
        if self.buffer:
            return False
        return self.done or self.closed or self.empty_streak >= empty_polls

    def restart_from_oldest(self) -> None:
        """Continue at the oldest record still in the shard (after its position was trimmed)."""
        self._fetched = None
        self.origin = "trim_horizon"
        self.iterator = None
        self.not_before = 0.0

    # -- reading ---------------------------------------------------------------------------

    def renew(self, now: float) -> None:
        """Get a fresh iterator from the current position, without reading records.

        Raises what GetShardIterator raises (``TrimmedDataError`` when the position is older
        than the trim horizon, ``ResourceNotFoundError`` when the shard is gone).
        """
        self.stats.get_shard_iterator_calls += 1
        response = self.transport.call(
            "dynamodbstreams", "GetShardIterator", self.iterator_request()
        )
        self.iterator = response["ShardIterator"]
        self.issued_at = now

    def fetch(self, now: float) -> int:
        """Read one page into the buffer and return how many records it held.

        An expired iterator is rebuilt from the position and the read repeated once. Errors
        the caller must decide about (trimmed data, a missing shard, throttling that outlived
        the transport's retries) propagate with the position unchanged.
        """
        if self.buffer or self.closed:
            raise RuntimeError(f"{self.shard_id}: fetch with records pending or shard closed")
        if self.iterator is None:
            self.renew(now)
        try:
            response = self._get_records()
        except ExpiredIteratorError:
            self.stats.expired_iterators += 1
            self.iterator = None
            self.renew(now)
            response = self._get_records()
        self.throttle_streak = 0
        records: list[dict[str, Any]] = response.get("Records") or []
        following = response.get("NextShardIterator")
        self.iterator = following
        self.issued_at = now
        if records:
            self.buffer.extend(records)
            self._fetched = int(records[-1]["dynamodb"]["SequenceNumber"])
            self.empty_streak = 0
            self.not_before = now
        else:
            self.stats.empty_polls += 1
            self.empty_streak += 1
            delay = EMPTY_BACKOFF_BASE * 2 ** min(self.empty_streak - 1, 16)
            self.not_before = now + min(delay, EMPTY_BACKOFF_MAX)
        if following is None:
            self.closed = True
            self.done = not self.buffer
        return len(records)

    def pop(self) -> dict[str, Any]:
        """Take the next fetched record; the position moves past it."""
        record = self.buffer.popleft()
        self.after = int(record["dynamodb"]["SequenceNumber"])
        self.gap_reported = False
        if not self.buffer and self.closed:
            self.done = True
        return record

    def _get_records(self) -> dict[str, Any]:
        assert self.iterator is not None  # renewed by the caller
        self.stats.get_records_calls += 1
        return self.transport.call(
            "dynamodbstreams", "GetRecords", requests.get_records(self.iterator, self.limit)
        )
