"""``engine.stream(Model, position)``: a model's change stream as :class:`Change` objects.

A table has one stream whatever entities it holds (:mod:`streamodel.entities`): a reader of
a model or of a :class:`~streamodel.entities.Collection` reads the table's stream once and
turns each record into a change of the entity its image names, skipping the records of
entities it does not read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamodel import signals
from streamodel.entities import Collection
from streamodel.models import BaseModel
from streamodel.stream.coordinator import Coordinator, GapCallback, Position, RawRecord
from streamodel.stream.records import Change, decode_record, record_image
from streamodel.stream.shards import ShardPosition

if TYPE_CHECKING:
    from streamodel.engine import Engine

__all__ = ["Stream"]

logger = logging.getLogger("streamodel.stream")


class Stream:
    """Reads one model's (or one collection's) change stream, parents before children, in
    order per item.

    ``next(stream)`` returns the next :class:`Change`, or ``None`` when caught up right now
    (it never blocks for long). ``stream.token`` is a JSON-safe position made of sequence
    numbers; ``stream.move_to(token)`` resumes exactly after the last change handed out.
    Call ``stream.heartbeat()`` while handling changes slowly, so shard iterators (which
    expire after 15 minutes) stay fresh. A record that does not fit the model raises
    :class:`~streamodel.stream.records.UndecodableRecordError`, after the position moved past
    it, so the caller sees it and can go on.

    In a table shared by several entities, records of entities this reader does not read
    are passed over (``on_skip(raw)`` is told of each, so a checkpointing caller can move
    past them); those naming no known entity at all are also counted in ``skipped`` and
    logged once per name.
    """

    def __init__(
        self,
        engine: Engine,
        source: type[BaseModel] | Collection,
        position: Position,
        *,
        limit: int = 1000,
        on_gap: GapCallback | None = None,
        on_skip: Callable[[RawRecord], Any] | None = None,
    ) -> None:
        self.engine = engine
        self.collection = Collection.of(source)
        self.model = self.collection.models[0]
        self.on_skip = on_skip
        self.skipped = 0
        self.coordinator = Coordinator(
            engine.transport, engine.stream_arn(self.model), position, limit=limit, on_gap=on_gap
        )

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Change | None:
        collection = self.collection
        while True:
            raw = self.coordinator.next_record()
            if raw is None:
                return None
            model = collection.route(record_image(raw.record))
            if model is not None:
                break
            if collection.unknown(record_image(raw.record), f"stream of {collection!r}"):
                self.skipped += 1
            if self.on_skip is not None:
                self.on_skip(raw)
        change = decode_record(
            model, raw.record, shard_id=raw.shard_id, sequence_number=raw.sequence_number
        )
        signals.change_received.send(model, change=change)
        return change

    @property
    def token(self) -> dict[str, Any]:
        """The position right after the last change handed out (JSON-safe)."""
        return self.coordinator.token

    def move_to(self, position: Position) -> None:
        """Continue from ``position``: ``"trim_horizon"``, ``"latest"``, a datetime or a token."""
        self.coordinator.move_to(position)

    def heartbeat(self) -> None:
        """Renew shard iterators that are close to expiring, without reading records."""
        self.coordinator.heartbeat()

    # -- sharing the shards with other processes (leases) -----------------------------------
    # A reader that shares a stream reads only the shards it holds: ``read_only`` says which,
    # ``take`` places a shard at its checkpoint, ``release`` lets it go. ``position`` is what
    # to checkpoint; none of these builds the whole token.

    def lineage(self) -> list[tuple[str, str | None]]:
        """``(shard id, parent id)`` of every shard known now."""
        return self.coordinator.lineage()

    def read_only(self, shard_ids: set[str]) -> None:
        """Read only these shards from now on (those whose leases are held and ready)."""
        self.coordinator.restrict(shard_ids)

    def take(self, shard_id: str, at: ShardPosition, *, parent: str | None) -> None:
        """Read ``shard_id`` from ``at`` (its checkpoint), replacing the local position."""
        self.coordinator.assign(shard_id, after=at.after, done=at.done, parent=parent)

    def release(self, shard_id: str) -> None:
        """Stop reading ``shard_id`` and drop what was fetched of it."""
        self.coordinator.release(shard_id)

    def finished_elsewhere(self, shard_id: str) -> None:
        """Another process read ``shard_id`` to its end: its children may be read."""
        self.coordinator.mark_done(shard_id)

    def position(self, shard_id: str) -> ShardPosition | None:
        """Where reading stands in one shard (``None`` if the shard is not known)."""
        return self.coordinator.position(shard_id)

    def at_end(self, shard_id: str, *, empty_polls: int) -> bool:
        """Whether the shard is read to its current end, nothing fetched left to hand out."""
        return self.coordinator.at_end(shard_id, empty_polls=empty_polls)
