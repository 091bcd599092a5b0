"""The I/O of a snapshot: pinning the stream position, and scanning leased segments.

:func:`pin_position` reads the stream to its current end and returns the position as a
stream token; :class:`SegmentScan` (shared with migrations, :mod:`streamodel.migrate`) reads
the segments this process holds (leased through a
:class:`~streamodel.stream.leases.LeaseManager`, like shards), one page at a time, and
remembers the last *handled* item per segment, which is the only thing checkpointed;
:class:`SnapshotScan` turns its items into snapshot changes. What
to read next, what to checkpoint and when the snapshot is done are decided by the pure
functions of :mod:`streamodel.stream.snapshot`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from streamodel._diff import meta_of
from streamodel.entities import Collection
from streamodel.exceptions import ConditionFailedError, TransportError
from streamodel.models import BaseModel
from streamodel.search import encode_token
from streamodel.stream.coordinator import Coordinator
from streamodel.stream.leases import LeaseManager
from streamodel.stream.records import Change
from streamodel.stream.snapshot import (
    SEGMENT_END,
    item_checkpoint,
    next_segment,
    resume_key,
    segment_checkpoint,
    segment_ids,
    segment_index,
    snapshot_change,
    snapshot_done,
)
from streamodel.transport.base import Transport
from streamodel.types import Wire

logger = logging.getLogger("streamodel.stream")

if TYPE_CHECKING:
    from streamodel.engine import Engine

__all__ = ["PIN_EMPTY_POLLS", "SegmentScan", "SnapshotScan", "key_checkpoint", "pin_position"]

# An open shard counts as read to its end (then) after this many empty pages in a row.
PIN_EMPTY_POLLS = 1


def pin_position(
    transport: Transport,
    stream_arn: str,
    *,
    max_seconds: float = 120.0,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """The stream's current position as a token: closed shards done, open shards after the
    last record read from them (see :mod:`streamodel.stream.snapshot`, step 1).

    Reading stops once every open shard answered an empty page (was read to its end of that
    moment), or after ``max_seconds``: any record seen before the scan starts is a correct
    pin, a later one only saves redeliveries.
    """
    # "latest" marks the closed shards done; then the open ones are read from their start.
    token = Coordinator(transport, stream_arn, "latest").token
    for entry in token["shards"].values():
        entry["start"] = "trim_horizon"
    reader = Coordinator(transport, stream_arn, token)
    deadline = clock() + max_seconds
    # Shards that answered an empty page once: read to what was their end at that moment.
    # Records keep coming while others are read; reading on is optional, so a stream
    # written as fast as it is read still ends its pin.
    reached: set[str] = set()
    while clock() < deadline:
        reader.next_record()
        shards = [sid for sid, _ in reader.lineage()]
        reached.update(sid for sid in shards if reader.at_end(sid, empty_polls=PIN_EMPTY_POLLS))
        if reached.issuperset(shards):
            break
    return reader.token


@dataclass
class SegmentScan:
    """A parallel scan of one model's (or collection's) items over the segments this
    process holds (leased through a :class:`~streamodel.stream.leases.LeaseManager`, like
    shards), one page at a time, remembering the last *handled* item per segment: the only
    thing checkpointed.

    Shared by the snapshot of a worker group (:class:`SnapshotScan`) and migrations
    (:mod:`streamodel.migrate`): the caller takes items with :meth:`next_item`, tells which
    were handled with :meth:`mark_handled`, and writes :meth:`due_checkpoints`.
    """

    engine: Engine
    source: type[BaseModel] | Collection
    total: int
    leases: LeaseManager
    page_size: int | None = None
    # Fetched items not handed out yet, per held segment.
    buffers: dict[str, deque[dict[str, Wire]]] = field(default_factory=dict)
    # Where the next page of a segment starts (its last page's LastEvaluatedKey); a
    # segment whose last page was fetched maps to SEGMENT_END.
    next_start: dict[str, Any] = field(default_factory=dict)
    # The checkpoint of the last item every handler took, per held segment.
    handled: dict[str, str] = field(default_factory=dict)
    # When each buffered page was read (the created_at of its changes).
    read_at: dict[str, datetime] = field(default_factory=dict)
    scans: int = 0  # Scan requests sent (for tests and metrics)

    @property
    def states(self) -> dict[str, Any]:
        return self.leases.states

    def maintain(self) -> None:
        """One lease round when due: take, renew, steal, drop segments."""
        leases = self.leases
        if not leases.due():
            return
        result = leases.run_round([(sid, None) for sid in segment_ids(self.total)])
        for sid in result.lost:
            self.drop(sid)
        for sid in result.taken:
            self.forget(sid)

    def forget(self, sid: str) -> None:
        """Drop what was fetched of a segment: it is read again from its checkpoint."""
        self.buffers.pop(sid, None)
        self.next_start.pop(sid, None)
        self.handled.pop(sid, None)
        self.read_at.pop(sid, None)

    def drop(self, sid: str) -> None:
        """The lease on a segment is gone: stop reading it."""
        self.leases.held.discard(sid)
        self.forget(sid)

    def checkpoints(self) -> dict[str, str | None]:
        """Every known segment's checkpoint (ours as handled, others' as last seen)."""
        return {sid: state.checkpoint for sid, state in self.states.items()}

    def done(self) -> bool:
        return snapshot_done(self.checkpoints(), self.total)

    def _finished(self, sid: str) -> bool:
        """The segment's scan ended and all its items were handed out."""
        return self.next_start.get(sid) == SEGMENT_END and not self.buffers.get(sid)

    def next_item(self) -> tuple[str, dict[str, Wire]] | None:
        """``(segment, raw item)``: the next scanned item of a held segment, or ``None`` when
        none is readable now. Fetches at most one page per call."""
        leases = self.leases
        ready = [sid for sid in leases.held if leases.ready(sid)]
        # Empty pages (a filtered or sparse stretch) fetch on, a bounded number of times.
        for _ in range(len(ready) + 1):
            finished = {
                sid
                for sid in ready
                if self.states[sid].checkpoint == SEGMENT_END or self._finished(sid)
            }
            buffered = {sid for sid in ready if self.buffers.get(sid)}
            sid = next_segment(ready, finished=finished, buffered=buffered)
            if sid is None:
                return None
            buffer = self.buffers.get(sid)
            if sid not in self.next_start and not self.leases.refresh(sid):
                # Before a segment's first page: is it still ours? A peer may have taken it
                # since the last lease round; reading it would deliver its items twice.
                self.forget(sid)
                ready.remove(sid)
                continue
            if not buffer:
                self._fetch(sid)
                buffer = self.buffers[sid]
                if not buffer:
                    continue
            return sid, buffer.popleft()
        return None

    def _fetch(self, sid: str) -> None:
        start = self.next_start.get(sid)
        if start is None:
            stored = self.handled.get(sid) or self.states[sid].checkpoint
            start = resume_key(stored)
        search = (
            self.engine.scan(self.source)
            .consistent()
            .segment(segment_index(sid), self.total)
            .move_to(encode_token(start) if start else None)
        )
        if self.page_size is not None:
            search = search.page_size(self.page_size)
        self.scans += 1
        page = next(search.pages())
        self.read_at[sid] = datetime.now(UTC)
        self.buffers[sid] = deque(page.get("Items") or [])
        last = page.get("LastEvaluatedKey")
        self.next_start[sid] = last if last else SEGMENT_END

    def mark_handled(self, sid: str, keys: Mapping[str, Wire]) -> None:
        """Every handler took the item with these key attributes (or it was dead-lettered):
        its segment may be checkpointed after it."""
        self.handled[sid] = key_checkpoint(self.source, keys)
        state = self.states.get(sid)
        if state is not None:
            state.records = (state.records or 0) + 1

    def rewind(self, sid: str) -> None:
        """A change could not be handled: read the segment again from the last handled item."""
        self.buffers.pop(sid, None)
        self.next_start.pop(sid, None)

    def due_checkpoints(self) -> list[tuple[str, str]]:
        """``(segment, new checkpoint)`` of every held segment whose checkpoint moves."""
        due = []
        for sid in sorted(self.leases.held):
            value = segment_checkpoint(
                self.states[sid].checkpoint,
                handled=self.handled.get(sid),
                finished=self._finished(sid),
            )
            if value is not None:
                due.append((sid, value))
        return due

    def save_due_checkpoints(self, store: Any, who: str) -> None:
        """Write every segment checkpoint that is due to ``store``, under this process's
        lease: a segment whose lease was lost meanwhile is dropped, a failed write is left
        due for the next time (its lease state is read again). ``who`` names the caller in
        the log."""
        for sid, value in self.due_checkpoints():
            state = self.states[sid]
            state.checkpoint = value
            try:
                store.save(state)
            except ConditionFailedError:
                logger.warning("%s: lease on %s lost before its checkpoint", who, sid)
                self.drop(sid)
            except TransportError as error:
                logger.warning("%s: checkpoint of %s: %s", who, sid, error)
                self.leases.refresh(sid)


@dataclass(init=False)
class SnapshotScan(SegmentScan):
    """One table's snapshot for the subscribed entities of a worker, read under this
    process's segment leases: a :class:`SegmentScan` whose items become snapshot changes,
    each of the entity its item names."""

    stream_arn: str = ""
    position: dict[str, Any] = field(default_factory=dict)

    def __init__(
        self,
        engine: Engine,
        source: Collection,
        stream_arn: str,
        position: dict[str, Any],
        total: int,
        leases: LeaseManager,
        page_size: int | None = None,
    ) -> None:
        super().__init__(engine, source, total, leases, page_size)
        self.collection = source
        self.skipped = 0  # items naming no entity the table knows
        self.stream_arn = stream_arn
        self.position = position

    def next_change(self) -> Change | None:
        """The next scanned item of a held segment, or ``None`` when none is readable now.

        Fetches at most one page per call. Raises ``UndecodableRecordError`` for an item
        that does not fit the model (after the segment moved past it). An item of an entity
        the collection does not read (written since the scan's filter, or of no known entity)
        is passed over, as handled.
        """
        collection = self.collection
        while True:
            taken = self.next_item()
            if taken is None:
                return None
            sid, item = taken
            model = collection.route(item)
            if model is not None:
                return snapshot_change(model, item, segment=sid, read_at=self.read_at[sid])
            if collection.unknown(item, f"snapshot of {collection!r}"):
                self.skipped += 1
            self.mark_handled(sid, item)


def key_checkpoint(source: type[BaseModel] | Collection, keys: Mapping[str, Wire]) -> str:
    """The checkpoint after an item, from its key attributes in the key order (which every
    entity of a table shares)."""
    model = source.models[0] if isinstance(source, Collection) else source
    ordered = {c.dynamo_name: keys[c.dynamo_name] for c in meta_of(model).keys}
    return item_checkpoint(ordered)
