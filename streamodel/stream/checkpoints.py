"""Worker state in DynamoDB: one checkpoint item per (group, stream, shard), and dead letters.

The state lives in one table (``streamodel-workers`` by default, named through the engine's
``table_name_template`` like every table) and is modelled with streamodel itself:

- :class:`ShardState` items, keyed ``("<group>|<stream arn>", shard id)``, hold the last
  handled sequence number (zero-padded to 40 digits) or the shard-end marker, the parent
  shard, the owner and a counter. The counter is a version column, so every write is
  conditional on it: two processes can never silently overwrite each other's checkpoints.
- :class:`DeadLetter` items, keyed ``("dead|<group>", "<time>|<shard>|<sequence>")``, hold
  a change that handlers could not take (or a record that did not fit its model), with
  the error and the raw record, so nothing is skipped silently.
"""

from __future__ import annotations

import datetime
import json
import traceback
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from streamodel.columns import Column
from streamodel.models import new_base
from streamodel.stream.shards import ShardPosition
from streamodel.transport.json_shape import to_json_shape
from streamodel.types import JSON, DateTime, Float, Integer, String

if TYPE_CHECKING:
    from streamodel.engine import Engine

__all__ = [
    "DEFAULT_STATE_TABLE",
    "MARKER_PREFIX",
    "SHARD_END",
    "START_MARKER",
    "StateStore",
    "next_checkpoint",
    "position_of",
    "raw_record_json",
]

DEFAULT_STATE_TABLE = "streamodel-workers"
SHARD_END = "SHARD_END"
# Ids starting with this are markers, never leases (shard ids never start with it).
MARKER_PREFIX = "~"
# The shard id of the item holding a group's start time ("latest" or a datetime start).
START_MARKER = "~start"


def state_model(
    name: str, table: str, *, range_key: str, ttl: str | None = None, **columns: Column
) -> Any:
    """A model of one item kind in a state table.

    Every kind shares the table's key schema, defined here once: hash key ``pk`` (the Python
    column ``scope``) and range key ``sk`` (named ``range_key`` in Python); no stream.
    ``ttl`` names the kind's expiry column (DynamoDB's TTL on the table, enabled by binding
    the kind); kinds without one, and items that leave it unset, never expire.
    """
    meta: dict[str, Any] = {"table_name": table, "stream": None}
    if ttl is not None:
        meta["ttl"] = {"column": ttl}
    attrs: dict[str, Any] = {
        "Meta": type("Meta", (), meta),
        "scope": Column(String, hash_key=True, name="pk"),
        range_key: Column(String, range_key=True, name="sk"),
        **columns,
    }
    return type(name, (new_base(),), attrs)


def _state_models(table: str) -> tuple[Any, Any]:
    """The two item kinds of one state table the worker uses."""
    shard_state = state_model(
        "ShardState",
        table,
        range_key="shard_id",
        stream_arn=Column(String),
        model=Column(String),
        checkpoint=Column(String),
        parent=Column(String),
        owner=Column(String),
        counter=Column(Integer, version=True),
        updated_at=Column(DateTime),
        # Published by the owner with each checkpoint, for `streamodel status`.
        records=Column(Integer),
        rate=Column(Float),
        last_created_at=Column(DateTime),
        # Only on a snapshot's marker item (see streamodel.stream.snapshot): the pinned
        # stream position (a stream token) and the number of scan segments.
        position=Column(JSON),
        segments=Column(Integer),
    )
    dead_letter = state_model(
        "DeadLetter",
        table,
        range_key="sort",
        group=Column(String),
        worker=Column(String),
        model=Column(String),
        shard_id=Column(String),
        sequence_number=Column(String),
        event_id=Column(String),
        error=Column(String),
        attempts=Column(Integer),
        record=Column(JSON),
        created_at=Column(DateTime),
    )
    return shard_state, dead_letter


def position_of(checkpoint: str | None) -> ShardPosition:
    """Where a shard's reading resumes, given its stored checkpoint."""
    if checkpoint == SHARD_END:
        return ShardPosition(None, True)
    return ShardPosition(checkpoint, False)


def next_checkpoint(
    stored: str | None, *, handled: str | None, read: ShardPosition | None
) -> str | None:
    """What a held shard's checkpoint becomes, or ``None`` when it stays as ``stored``.

    ``handled`` is the last record every handler took (40 digits), ``read`` where reading
    stands. The shard end is recorded only when the shard is read to its end *and* its last
    record was handled, so no record read but not handled is ever checkpointed past.
    """
    if read is not None and read.done and read.after == handled:
        value = SHARD_END
    elif handled is not None:
        value = handled
    else:
        return None
    return None if value == stored else value


def raw_record_json(record: Mapping[str, Any]) -> dict[str, Any]:
    """A raw stream record in Lambda's JSON shape (base64 binaries, epoch-second times)."""
    result: dict[str, Any] = to_json_shape(record)
    return result


class StateStore:
    """Checkpoints and dead letters of one worker group, in the state table."""

    def __init__(self, engine: Engine, group: str, *, table: str = DEFAULT_STATE_TABLE) -> None:
        self.engine = engine
        self.group = group
        self.ShardState, self.DeadLetter = _state_models(table)

    def setup(self) -> None:
        """Create the state table if missing (and wait until it is ACTIVE)."""
        self.engine.bind(self.ShardState)
        self.engine.bind(self.DeadLetter)

    def scope(self, stream_arn: str) -> str:
        return f"{self.group}|{stream_arn}"

    def load(self, stream_arn: str) -> dict[str, Any]:
        """Every shard state of this group on ``stream_arn``, by shard id."""
        query = self.engine.query(self.ShardState, consistent=True).key(
            self.ShardState.scope == self.scope(stream_arn)
        )
        return {state.shard_id: state for state in query}

    def new_state(self, stream_arn: str, shard_id: str, model: str) -> Any:
        return self.ShardState(
            scope=self.scope(stream_arn), shard_id=shard_id, stream_arn=stream_arn, model=model
        )

    def save(self, state: Any, *, at: datetime.datetime | None = None) -> None:
        """Write one shard state; raises StaleVersionError if another process moved it."""
        state.updated_at = at or datetime.datetime.now(datetime.UTC)
        self.engine.save(state)

    def add_dead_letter(
        self,
        *,
        model: str,
        shard_id: str,
        sequence_number: str,
        event_id: str,
        error: BaseException,
        attempts: int,
        record: Mapping[str, Any],
        worker: str | None = None,
    ) -> Any:
        now = datetime.datetime.now(datetime.UTC)
        letter = self.DeadLetter(
            scope=f"dead|{self.group}",
            sort=f"{now.isoformat()}|{shard_id}|{sequence_number}",
            group=self.group,
            worker=worker,
            model=model,
            shard_id=shard_id,
            sequence_number=sequence_number,
            event_id=event_id,
            error="".join(traceback.format_exception(error)).strip(),
            attempts=attempts,
            record=raw_record_json(record),
            created_at=now,
        )
        self.engine.save(letter)
        return letter

    def all_states(self) -> Iterator[Any]:
        """Every shard state of this group, on every stream (a scan of the state table)."""
        prefix = f"{self.group}|"
        yield from self.engine.scan(self.ShardState).filter(
            self.ShardState.scope.begins_with(prefix)
        )

    def dead_letters(self) -> Iterator[Any]:
        """This group's dead letters, oldest first."""
        return iter(
            self.engine.query(self.DeadLetter).key(self.DeadLetter.scope == f"dead|{self.group}")
        )


def dead_letter_json(letter: Any) -> str:
    """One dead letter as a JSON line (for ``streamodel dead-letters``)."""
    return json.dumps(type(letter).Schema().dump(letter), sort_keys=True)
