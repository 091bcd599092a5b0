"""The shard tree of one stream, and a raw reader over all of it.

:class:`Coordinator` keeps every shard DescribeStream lists, with its parent, and reads them
round-robin, a parent always to its end (including the records of its closing page) before
any of its children, so the records of one item come out in the order they were written.
It never blocks for long: :meth:`Coordinator.next_record` makes at most one GetRecords call
per readable shard and returns ``None`` when nothing is there right now. Shards that answer
with empty pages are polled less and less often (up to once a second); a shard that yields
records is read as fast as it yields them.

Its position is :attr:`Coordinator.token`, a JSON-safe dict of sequence numbers per shard::

    {
        "v": 1,
        "stream_arn": "arn:aws:dynamodb:...:table/t/stream/2024-...",
        "since": None,                  # or an ISO datetime: records created before it skipped
        "shards": {
            "shardId-...": {
                "after": "0000...0123",  # last record handed out, 40 digits, or None
                "done": False,           # read to its end: never read again
                "parent": "shardId-...", # or None
                "start": "trim_horizon", # where to start while "after" is None ("latest")
            },
        },
    }

Resuming from it reads each shard ``AFTER_SEQUENCE_NUMBER`` of its ``after``; children of
a finished parent start at ``TRIM_HORIZON``. Shards of the token that are gone from the
stream before they were read to their end are reported as gaps, and reading resumes at the
oldest records of what is left of their lineage.

Other errors (a ``ServerError`` that outlived the transport's retries, say) propagate and
leave the reader consistent: calling :meth:`Coordinator.next_record` again retries.

Data loss is never silent: a trimmed gap is logged at ERROR on ``streamodel.stream``,
counted in ``stats.trimmed_gaps`` and passed to ``on_gap(shard_id, detail)``; an exception
raised by ``on_gap`` propagates and leaves the position where it was (the next read reports
the gap again).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from streamodel import requests
from streamodel.exceptions import (
    ExpiredIteratorError,
    InvalidPositionError,
    ResourceNotFoundError,
    ThrottledError,
    TrimmedDataError,
)
from streamodel.stream.positions import check_stream_position
from streamodel.stream.shards import (
    Origin,
    RawRecord,
    ShardInfo,
    ShardPosition,
    ShardReader,
    StreamStats,
    parse_sequence,
)
from streamodel.transport.base import Transport
from streamodel.transport.json_shape import datetime_from_json

__all__ = ["TOKEN_VERSION", "Coordinator", "Position", "RawRecord", "StreamStats"]

logger = logging.getLogger("streamodel.stream")

TOKEN_VERSION = 1
Position = str | datetime | Mapping[str, Any]
GapCallback = Callable[[str, str], None]

# DescribeStream allows about 10 calls a second per account and region: describe one stream
# at most once a second, and without a reason (a finished shard, a missing shard) every 10 s.
DESCRIBE_MIN_INTERVAL = 1.0
DESCRIBE_REFRESH_INTERVAL = 10.0
# Iterators expire 15 minutes after they were issued; heartbeat() renews them after 10.
ITERATOR_MAX_AGE = 600.0
# After a throttle that outlived the transport's retries: 0.25 s, doubling, at most 5 s.
THROTTLE_BACKOFF_BASE = 0.25
THROTTLE_BACKOFF_MAX = 5.0
# next_record() sleeps at most this long when every shard is backing off.
IDLE_SLEEP_MAX = 0.05
_RETRY_MISSING_SHARD = 1.0


class Coordinator:
    """Reads every shard of one stream, parents before children; see the module docstring.

    ``position`` is ``"trim_horizon"``, ``"latest"``, an aware ``datetime`` (there is no
    time-based iterator: reading starts at the trim horizon and skips the records whose
    ``ApproximateCreationDateTime``, rounded down to the second by DynamoDB, is before the
    second of that datetime) or a :attr:`token`. ``limit``
    is the GetRecords page size (1 to 1000). ``sleep`` and ``clock`` (monotonic seconds) are
    injectable for tests. Creating a coordinator describes the stream, so a wrong
    ``stream_arn`` raises :class:`~streamodel.exceptions.ResourceNotFoundError` at once.
    """

    def __init__(
        self,
        transport: Transport,
        stream_arn: str,
        position: Position = "trim_horizon",
        *,
        limit: int = 1000,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        on_gap: GapCallback | None = None,
    ) -> None:
        if not 1 <= limit <= 1000:
            raise ValueError("Coordinator: limit must be 1 to 1000")
        self.transport = transport
        self.stream_arn = stream_arn
        self.limit = limit
        self.on_gap = on_gap
        self.stats = StreamStats()
        self._sleep = sleep
        self._clock = clock
        self._shards: dict[str, ShardReader] = {}
        self._since: datetime | None = None
        self._cursor = 0
        self._described_at: float | None = None
        self._describe_due = True
        # "latest" applies to the open shards of the first successful description.
        self._latest_pending = False
        # With leases, only the shards this process holds are read (None: every shard).
        self._owned: set[str] | None = None
        self.move_to(position)

    # -- public interface --------------------------------------------------------------------

    @property
    def token(self) -> dict[str, Any]:
        """The position right after the last record handed out, as a JSON-safe dict."""
        return {
            "v": TOKEN_VERSION,
            "stream_arn": self.stream_arn,
            "since": None if self._since is None else self._since.isoformat(),
            "shards": {sid: shard.token_entry() for sid, shard in self._shards.items()},
        }

    @property
    def shards(self) -> Mapping[str, ShardReader]:
        """The shards known now, by id (read-only view, for metrics and debugging)."""
        return dict(self._shards)

    def move_to(self, position: Position) -> None:
        """Forget the current position and continue from ``position`` (see the class doc)."""
        shards, since, latest = self._parse_position(position)
        self._shards = shards
        self._since = since
        self._latest_pending = latest
        self._cursor = 0
        self._describe_due = True
        self._described_at = None
        self._maybe_describe(self._clock())

    def next_record(self) -> RawRecord | None:
        """The next record, or ``None`` when none is readable right now.

        Makes at most one GetRecords call per readable shard, and sleeps at most
        ``IDLE_SLEEP_MAX`` seconds when every shard is backing off.
        """
        now = self._clock()
        self._maybe_describe(now)
        ids = list(self._shards)
        count = len(ids)
        polled = False
        for step in range(count):
            index = (self._cursor + step) % count
            shard = self._shards.get(ids[index])
            if shard is None or not self._readable(shard):
                continue
            if not shard.buffer:
                if shard.closed or shard.not_before > now:
                    continue
                polled = True
                self._poll(shard, now)
            record = self._take(shard)
            if record is not None:
                # Stay on a shard until its page is handed out, then move on.
                self._cursor = index if shard.buffer else index + 1
                return record
        if not polled:
            self._idle(now)
        return None

    def heartbeat(self) -> int:
        """Renew iterators older than ten minutes, without reading; return how many.

        Call it while records are being handled slowly, so that no iterator reaches its
        15 minute expiry.
        """
        now = self._clock()
        renewed = 0
        for shard in list(self._shards.values()):
            if shard.iterator is None or now - shard.issued_at < ITERATOR_MAX_AGE:
                continue
            try:
                shard.renew(now)
            except TrimmedDataError as error:
                self._report_gap(shard, f"position trimmed before it was read: {error}")
                shard.restart_from_oldest()
                continue
            except ThrottledError:
                self.stats.throttled += 1
                continue
            except ResourceNotFoundError:
                shard.iterator = None
                self._describe_due = True
                continue
            renewed += 1
            self.stats.iterators_renewed += 1
        return renewed

    # -- reading -----------------------------------------------------------------------------

    # -- shard ownership (leases) ------------------------------------------------------------

    def restrict(self, shard_ids: set[str]) -> None:
        """Read only the given shards from now on (those this process holds leases on)."""
        self._owned = set(shard_ids)

    def assign(self, shard_id: str, *, after: str | None, done: bool, parent: str | None) -> None:
        """Start reading ``shard_id`` from a checkpoint (``after``), e.g. a lease just taken.

        The shard's local position is replaced: what another process handled is what counts.
        """
        shard = ShardReader(
            self.transport,
            self.stream_arn,
            shard_id,
            parent,
            stats=self.stats,
            after=None if after is None else parse_sequence(after),
            done=done,
            limit=self.limit,
        )
        self._shards[shard_id] = shard
        if self._owned is not None:
            self._owned.add(shard_id)

    def release(self, shard_id: str) -> None:
        """Stop reading ``shard_id`` (a lease lost or given away); drop what was buffered."""
        if self._owned is not None:
            self._owned.discard(shard_id)
        shard = self._shards.get(shard_id)
        if shard is not None:
            shard.buffer.clear()
            shard.iterator = None

    def mark_done(self, shard_id: str) -> None:
        """Record that another process read ``shard_id`` to its end (its children may start)."""
        shard = self._shards.get(shard_id)
        if shard is not None and not shard.done:
            shard.buffer.clear()
            shard.iterator = None
            shard.closed = shard.done = True

    def lineage(self) -> list[tuple[str, str | None]]:
        """``(shard id, parent id)`` of every shard known now, in DescribeStream's order."""
        return [(sid, shard.parent_id) for sid, shard in self._shards.items()]

    def position(self, shard_id: str) -> ShardPosition | None:
        """Where reading stands in one shard (``None`` for a shard not known)."""
        shard = self._shards.get(shard_id)
        return None if shard is None else shard.position()

    def at_end(self, shard_id: str, *, empty_polls: int) -> bool:
        """Whether a known shard is read to its current end with nothing left buffered
        (see :meth:`ShardReader.at_end`)."""
        shard = self._shards.get(shard_id)
        return shard is not None and shard.at_end(empty_polls=empty_polls)

    def _readable(self, shard: ShardReader) -> bool:
        if shard.done:
            return False
        if self._owned is not None and shard.shard_id not in self._owned:
            return False
        parent = self._shards.get(shard.parent_id) if shard.parent_id is not None else None
        return parent is None or parent.done

    def _poll(self, shard: ShardReader, now: float) -> None:
        try:
            shard.fetch(now)
        except TrimmedDataError as error:
            self._report_gap(shard, f"records trimmed before they were read: {error}")
            shard.restart_from_oldest()
        except ThrottledError:
            self.stats.throttled += 1
            delay = THROTTLE_BACKOFF_BASE * 2 ** min(shard.throttle_streak, 16)
            shard.throttle_streak += 1
            shard.not_before = now + min(delay, THROTTLE_BACKOFF_MAX)
        except ExpiredIteratorError:
            # Expired again right after renewal: try again on the next round.
            shard.iterator = None
        except ResourceNotFoundError:
            # The shard (or the whole stream) is gone: the description tells which, and
            # raises if it is the stream.
            shard.iterator = None
            shard.not_before = now + _RETRY_MISSING_SHARD
            self._describe_due = True
            self._maybe_describe(now)
        if shard.done:
            self._finished(shard)

    def _take(self, shard: ShardReader) -> RawRecord | None:
        while shard.buffer:
            record = shard.pop()
            if shard.done:
                self._finished(shard)
            if self._since is not None:
                created = _created_at(record)
                # Creation times are rounded down (to the second on AWS, to the minute on
                # DynamoDB Local): a record of the same minute as `since` may be newer than
                # it, so it is delivered rather than lost.
                if created is not None and created < self._since.replace(second=0, microsecond=0):
                    self.stats.skipped += 1
                    continue
            self.stats.records += 1
            return RawRecord(shard.shard_id, record["dynamodb"]["SequenceNumber"], record)
        return None

    def _finished(self, shard: ShardReader) -> None:
        # A finished parent's children may not be listed yet: look for them soon.
        if not any(s.parent_id == shard.shard_id for s in self._shards.values()):
            self._describe_due = True

    def _idle(self, now: float) -> None:
        waits = [
            s.not_before - now
            for s in self._shards.values()
            if self._readable(s) and not s.buffer and not s.closed
        ]
        if self._describe_due and self._described_at is not None:
            waits.append(self._described_at + DESCRIBE_MIN_INTERVAL - now)
        wait = min((w for w in waits if w > 0), default=0.0)
        if wait > 0:
            self._sleep(min(wait, IDLE_SLEEP_MAX))

    def _report_gap(self, shard: ShardReader, detail: str) -> None:
        if shard.gap_reported:
            return
        message = f"stream {self.stream_arn} shard {shard.shard_id}: data lost: {detail}"
        logger.error(message)
        self.stats.trimmed_gaps += 1
        if self.on_gap is not None:
            self.on_gap(shard.shard_id, message)
        shard.gap_reported = True

    # -- the shard tree ----------------------------------------------------------------------

    def _maybe_describe(self, now: float) -> None:
        last = self._described_at
        if last is not None:
            if now - last < DESCRIBE_MIN_INTERVAL:
                return
            if not self._describe_due and now - last < DESCRIBE_REFRESH_INTERVAL:
                return
        self._described_at = now
        try:
            shards = self._describe()
        except ThrottledError:
            self.stats.throttled += 1
            self._describe_due = True
            return
        self._describe_due = False
        self._merge(shards, now)

    def _describe(self) -> list[ShardInfo]:
        """Every shard of the stream: pages until DescribeStream names no last shard."""
        shards: list[ShardInfo] = []
        params = requests.describe_stream(self.stream_arn)
        while True:
            self.stats.describe_stream_calls += 1
            response = self.transport.call("dynamodbstreams", "DescribeStream", params)
            description = response["StreamDescription"]
            shards.extend(ShardInfo.from_wire(s) for s in description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            params = requests.describe_stream(self.stream_arn, last)

    def _merge(self, described: list[ShardInfo], now: float) -> None:
        listed = {info.shard_id: info for info in described}
        for shard in list(self._shards.values()):
            if shard.shard_id in listed:
                continue
            # Gone from the stream: trimmed. Its children now start its lineage.
            if not shard.done:
                self._report_gap(
                    shard,
                    "shard is no longer in the stream but was not read to its end; "
                    "continuing with the oldest records of its descendants",
                )
            del self._shards[shard.shard_id]
        latest = self._latest_pending
        self._latest_pending = False
        for info in described:
            if info.shard_id in self._shards:
                continue
            origin: Origin = "trim_horizon"
            done = False
            if latest:
                origin = "latest"
                done = info.closed
            shard = ShardReader(
                self.transport,
                self.stream_arn,
                info.shard_id,
                info.parent_id,
                stats=self.stats,
                origin=origin,
                done=done,
                limit=self.limit,
            )
            self._shards[info.shard_id] = shard
            if origin == "latest" and not done:
                # LATEST means now: take the iterator at once, not at the first read.
                try:
                    shard.renew(now)
                except ThrottledError:
                    self.stats.throttled += 1
                except ResourceNotFoundError:
                    # Listed a moment ago: try again lazily, after the next description.
                    self._describe_due = True

    # -- positions ---------------------------------------------------------------------------

    def _parse_position(
        self, position: object
    ) -> tuple[dict[str, ShardReader], datetime | None, bool]:
        if not isinstance(position, Mapping):
            # Strings, datetimes and anything else: one check, one wording, near-miss hints.
            check_stream_position(position)
        if isinstance(position, str):
            return {}, None, position == "latest"
        if isinstance(position, datetime):
            return {}, _aware(position, "position"), False
        assert isinstance(position, Mapping)
        return self._parse_token(position)

    def _parse_token(
        self, token: Mapping[str, Any]
    ) -> tuple[dict[str, ShardReader], datetime | None, bool]:
        version = token.get("v")
        if type(version) is not int or version != TOKEN_VERSION:
            raise InvalidPositionError(f"token: 'v' is {version!r}, expected {TOKEN_VERSION}")
        arn = token.get("stream_arn")
        if arn != self.stream_arn:
            raise InvalidPositionError(
                f"token: 'stream_arn' is {arn!r}, not this stream ({self.stream_arn})"
            )
        since_text = token.get("since")
        since: datetime | None = None
        if since_text is not None:
            if not isinstance(since_text, str):
                raise InvalidPositionError(f"token: 'since' is {since_text!r}, not a string")
            try:
                parsed = datetime.fromisoformat(since_text)
            except ValueError:
                raise InvalidPositionError(
                    f"token: 'since' is {since_text!r}, not an ISO datetime"
                ) from None
            since = _aware(parsed, "token: 'since'")
        entries = token.get("shards")
        if not isinstance(entries, Mapping):
            raise InvalidPositionError(f"token: 'shards' is {entries!r}, not a dict")
        shards: dict[str, ShardReader] = {}
        for shard_id, entry in entries.items():
            where = f"token: shard {shard_id!r}"
            if not isinstance(shard_id, str) or not shard_id:
                raise InvalidPositionError(f"{where}: shard ids must be non-empty strings")
            if not isinstance(entry, Mapping):
                raise InvalidPositionError(f"{where}: {entry!r} is not a dict")
            after_text = entry.get("after")
            after: int | None = None
            if after_text is not None:
                try:
                    after = parse_sequence(after_text)
                except ValueError as error:
                    raise InvalidPositionError(f"{where}: 'after': {error}") from None
            done = entry.get("done")
            if not isinstance(done, bool):
                raise InvalidPositionError(f"{where}: 'done' is {done!r}, not a bool")
            parent = entry.get("parent")
            if parent is not None and (not isinstance(parent, str) or not parent):
                raise InvalidPositionError(f"{where}: 'parent' is {parent!r}, not a shard id")
            start = entry.get("start", "trim_horizon")
            if start not in ("trim_horizon", "latest"):
                raise InvalidPositionError(
                    f"{where}: 'start' is {start!r}, not 'trim_horizon' or 'latest'"
                )
            shards[shard_id] = ShardReader(
                self.transport,
                self.stream_arn,
                shard_id,
                parent,
                stats=self.stats,
                after=after,
                origin="latest" if start == "latest" else "trim_horizon",
                done=done,
                limit=self.limit,
            )
        return shards, since, False


def _aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidPositionError(f"{what}: {value.isoformat()} is naive; give a timezone")
    return value


def _created_at(record: Mapping[str, Any]) -> datetime | None:
    """``ApproximateCreationDateTime`` as an aware datetime, whichever form it came in
    (None when missing or not a time: such a record is delivered, not skipped)."""
    value = record.get("dynamodb", {}).get("ApproximateCreationDateTime")
    if value is None:
        return None
    try:
        return datetime_from_json(value)
    except ValueError:
        return None
