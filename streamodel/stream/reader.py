"""``engine.stream(Model, position)``: a model's change stream as :class:`Change` objects."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from streamodel import signals
from streamodel.models import BaseModel
from streamodel.stream.coordinator import Coordinator, GapCallback, Position
from streamodel.stream.records import Change, decode_record

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
