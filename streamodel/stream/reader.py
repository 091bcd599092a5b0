"""``engine.stream(Model, position)``: a model's change stream as :class:`Change` objects."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from streamodel import signals
from streamodel.models import BaseModel
from streamodel.stream.coordinator import Coordinator, GapCallback, Position
from streamodel.stream.records import Change, decode_record
from streamodel.stream.shards import ShardPosition

if TYPE_CHECKING:
    from streamodel.engine import Engine

__all__ = ["Stream"]

logger = logging.getLogger("streamodel.stream")


class Stream:
    """Reads one model's change stream, parents before children, in order per item.

    ``next(stream)`` returns the next :class:`Change`, or ``None`` when caught up right now
    (it never blocks for long). ``stream.token`` is a JSON-safe position made of sequence
    numbers; ``stream.move_to(token)`` resumes exactly after the last change handed out.
    Call ``stream.heartbeat()`` while handling changes slowly, so shard iterators (which
    expire after 15 minutes) stay fresh. A record that does not fit the model raises
    :class:`~streamodel.stream.records.UndecodableRecordError`, after the position moved past
    it, so the caller sees it and can go on.
    """

    def __init__(
        self,
        engine: Engine,
        model: type[BaseModel],
        position: Position,
        *,
        limit: int = 1000,
        on_gap: GapCallback | None = None,
    ) -> None:
        self.engine = engine
        self.model = model
        self.coordinator = Coordinator(
            engine.transport, engine.stream_arn(model), position, limit=limit, on_gap=on_gap
        )

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Change | None:
        raw = self.coordinator.next_record()
        if raw is None:
            return None
        change = decode_record(
            self.model, raw.record, shard_id=raw.shard_id, sequence_number=raw.sequence_number
        )
        signals.change_received.send(self.model, change=change)
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
