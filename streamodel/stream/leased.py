"""One table's stream, read under this process's leases.

:class:`LeasedStream` joins a :class:`~streamodel.stream.reader.Stream` and a
:class:`~streamodel.stream.leases.LeaseManager`: after each lease round it points the stream
at the shards this process holds (each placed at its checkpoint), and it remembers the last
*handled* record per shard, which is the only thing ever checkpointed. It drives the stream
through its public, lease-aware methods only (``lineage``, ``take``, ``release``,
``read_only``, ``position``, ``at_end``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streamodel.entities import Collection
from streamodel.stream.checkpoints import SHARD_END, next_checkpoint, position_of
from streamodel.stream.leases import LeaseManager
from streamodel.stream.reader import Stream
from streamodel.stream.shards import ShardPosition, pad_sequence, parse_sequence

__all__ = ["CAUGHT_UP_EMPTY_POLLS", "LeasedStream"]

# An open shard counts as read to its current end after this many empty pages in a row
# (DynamoDB can need a few calls to cross a sparse part of a shard).
CAUGHT_UP_EMPTY_POLLS = 2


@dataclass
class LeasedStream:
    """One table's stream (for the subscribed entities of it), its leases and what was
    handled since the checkpoint."""

    collection: Collection
    stream_arn: str
    stream: Stream
    leases: LeaseManager
    # The last handled sequence number per held shard (40 digits): the only thing
    # checkpointed, so a change that was read but not handled is never checkpointed past.
    handled: dict[str, str] = field(default_factory=dict)
    # How many of each shard's handled records were already added to its lease item.
    published: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Records of entities nobody here subscribed to are handled by being passed over.
        self.stream.on_skip = lambda raw: self.mark_handled(raw.shard_id, raw.sequence_number)

    @property
    def states(self) -> dict[str, Any]:
        return self.leases.states

    def maintain(self) -> None:
        """One lease round when due; then read exactly the held shards that are ready."""
        stream, leases = self.stream, self.leases
        if leases.due():
            result = leases.run_round(stream.lineage())
            for sid in result.lost:
                self.drop(sid)
            for sid in result.finished_elsewhere:
                stream.finished_elsewhere(sid)
            for sid, state in result.taken.items():
                stream.take(sid, position_of(state.checkpoint), parent=state.parent)
                self.handled.pop(sid, None)
        stream.read_only({sid for sid in leases.held if leases.ready(sid)})

    def drop(self, shard_id: str) -> None:
        """The lease on ``shard_id`` is gone: stop reading it, forget what was handled."""
        self.leases.held.discard(shard_id)
        self.stream.release(shard_id)
        self.handled.pop(shard_id, None)

    def mark_handled(self, shard_id: str, sequence_number: str) -> None:
        self.handled[shard_id] = pad_sequence(parse_sequence(sequence_number))

    def rewind(self, shard_id: str) -> None:
        """Read ``shard_id`` again from the last handled change (or its checkpoint), so a
        change taken from the stream but not handled is not skipped in this process."""
        state = self.states.get(shard_id)
        after = self.handled.get(shard_id)
        if after is None and state is not None and state.checkpoint != SHARD_END:
            after = state.checkpoint
        parent = state.parent if state is not None else None
        self.stream.take(shard_id, ShardPosition(after, False), parent=parent)

    def due_checkpoints(self) -> list[tuple[str, str]]:
        """``(shard id, new checkpoint)`` of every held shard whose checkpoint moves."""
        due = []
        for shard_id in sorted(self.leases.held):
            value = next_checkpoint(
                self.states[shard_id].checkpoint,
                handled=self.handled.get(shard_id),
                read=self.stream.position(shard_id),
            )
            if value is not None:
                due.append((shard_id, value))
        return due

    def caught_up(self) -> bool:
        """Every held shard read to its current end and handled, and none left to take.

        Shards held by a peer seen alive are that peer's to finish; a lease whose owner was
        never seen renewing may belong to a dead process, so it is waited for until it
        expires and taken.
        """
        leases = self.leases
        if leases.last_round == float("-inf") or leases.takeable() or leases.awaiting_expiry():
            return False
        return all(
            leases.ready(sid) and self.stream.at_end(sid, empty_polls=CAUGHT_UP_EMPTY_POLLS)
            for sid in leases.held
        )
