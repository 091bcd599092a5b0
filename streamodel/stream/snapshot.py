"""Snapshot, then the stream: the pure decisions of a ``start="snapshot"`` worker group.

A group with no checkpoints that starts with a snapshot goes through three steps (the
worker, :mod:`streamodel.stream.scan`, does the I/O; everything decided is here):

1. **Pin.** Before anything is scanned, the stream's position is recorded in the state
   table: a stream token (see :mod:`streamodel.stream.coordinator`) in which every closed
   shard is done and every open shard stands at the last record read from it. DynamoDB
   Streams has no "now" iterator to store (``LATEST`` is an iterator, not a position, and it
   expires), so the pin reads each open shard to its current end and keeps the last
   sequence number seen. Any record seen before the scan starts is a correct pin: its write
   happened before the scan, so every change the scan can miss comes after it. Stopping
   early (a sparse stretch of a shard answering empty) only means more is delivered twice.
   The pin, the segment count and the phase live in one marker item (``~snapshot``), written
   create-only: of two processes pinning at once, one pin wins and both use it.
2. **Scan.** Every item is read with a *strongly consistent* parallel scan (an eventually
   consistent read could miss a write older than the pin) of ``segments`` segments. Each
   segment is leased exactly like a shard (:class:`~streamodel.stream.leases.LeaseManager`,
   one lease per segment, in the scope ``<group>|<stream arn>|snapshot``), so several
   processes share the segments, and its checkpoint is the key of the last item every
   handler took (a search token, as JSON), or :data:`SEGMENT_END`. A restarted or
   taken-over segment resumes after that key; a finished one is never read again.
3. **Stream.** Once every segment is finished, the pin becomes the group's shard
   checkpoints (create-only, the same for every process) and the marker's phase becomes
   ``"done"``; the worker then reads the stream from there like any other group.

Each scanned item becomes a :class:`~streamodel.stream.records.Change` with ``event ==
"insert"``, ``snapshot=True``, ``old=None``, ``sequence_number=None``, ``shard_id`` the
segment's lease id (``"snapshot-segment-0003"``), ``event_id`` ``"snapshot:"`` plus a digest
of the item's key (the same on a redelivery), and ``created_at`` the time the page was read.

Delivery across the boundary is at-least-once: a change made while the scan runs can arrive
both in the scan and from the stream, in either state. A projection compares versions to
skip stale deliveries (docs/streams.md).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from streamodel._diff import meta_of
from streamodel.exceptions import InvalidPositionError
from streamodel.models import BaseModel
from streamodel.search import decode_token, encode_token
from streamodel.stream.checkpoints import SHARD_END
from streamodel.stream.records import Change, decode_record
from streamodel.transport.json_shape import to_json_shape
from streamodel.types import Wire

__all__ = [
    "PHASE_DONE",
    "PHASE_SCANNING",
    "SEGMENT_END",
    "SNAPSHOT_MARKER",
    "SNAPSHOT_SCOPE_SUFFIX",
    "SnapshotProgress",
    "StartPlan",
    "item_checkpoint",
    "next_segment",
    "plan_start",
    "progress",
    "resume_key",
    "seed_checkpoints",
    "segment_checkpoint",
    "segment_id",
    "segment_ids",
    "segment_index",
    "snapshot_change",
    "snapshot_done",
    "snapshot_scope",
]

SEGMENT_END = SHARD_END
SNAPSHOT_MARKER = "~snapshot"
SNAPSHOT_SCOPE_SUFFIX = "|snapshot"
PHASE_SCANNING = "scanning"
PHASE_DONE = "done"
# DynamoDB's bound on TotalSegments.
MAX_SEGMENTS = 1_000_000
_SEGMENT_PREFIX = "snapshot-segment-"

StartPlan = Literal["resume", "remember", "snapshot", "token"]


def snapshot_scope(stream_arn: str) -> str:
    """The "stream" under which a snapshot's marker and segment leases are stored."""
    return stream_arn + SNAPSHOT_SCOPE_SUFFIX


def segment_id(index: int) -> str:
    """The lease id of segment ``index`` (also the ``shard_id`` of its changes)."""
    return f"{_SEGMENT_PREFIX}{index:04d}"


def segment_index(lease_id: str) -> int:
    if not lease_id.startswith(_SEGMENT_PREFIX) or not lease_id[len(_SEGMENT_PREFIX) :].isdigit():
        raise ValueError(f"not a snapshot segment: {lease_id!r}")
    return int(lease_id[len(_SEGMENT_PREFIX) :])


def segment_ids(total: int) -> list[str]:
    return [segment_id(i) for i in range(total)]


def plan_start(start: Any, *, has_checkpoints: bool, marker_phase: str | None) -> StartPlan:
    """How a worker begins a model's stream, given what the state table holds.

    - ``"snapshot"``: a snapshot is under way (its marker is there and not done), or the group
      has no checkpoints and ``start == "snapshot"``. Every process of the group follows a
      snapshot marker, whatever its own ``start``.
    - ``"token"``: no checkpoints yet and ``start`` is a stream token: it seeds them.
    - ``"remember"``: no checkpoints yet and ``start`` is ``"latest"`` or a datetime: the
      start time is made durable first.
    - ``"resume"``: checkpoints (or a finished snapshot) are there, or ``"trim_horizon"``.
    """
    if marker_phase is not None and marker_phase != PHASE_DONE:
        return "snapshot"
    if has_checkpoints or marker_phase == PHASE_DONE:
        return "resume"
    if start == "snapshot":
        return "snapshot"
    if isinstance(start, Mapping):
        return "token"
    if start == "trim_horizon":
        return "resume"
    return "remember"


def seed_checkpoints(position: Mapping[str, Any]) -> list[tuple[str, str | None, str | None]]:
    """``(shard id, parent, checkpoint)`` for every shard of a stream token.

    A shard read to its end is finished (:data:`SHARD_END`); one with a last record resumes
    after it; one without starts at its oldest record. (A token's ``since`` and ``"latest"``
    entries are not kept: more is delivered, never less.)
    """
    shards = position.get("shards")
    if not isinstance(shards, Mapping):
        raise InvalidPositionError(f"stream token without shards: {position!r}")
    seeds: list[tuple[str, str | None, str | None]] = []
    for shard_id, entry in shards.items():
        if not isinstance(entry, Mapping):
            raise InvalidPositionError(f"stream token: shard {shard_id!r} is {entry!r}")
        after = entry.get("after")
        checkpoint = SHARD_END if entry.get("done") else after
        seeds.append((shard_id, entry.get("parent"), checkpoint))
    return seeds


def item_checkpoint(key: Mapping[str, Wire]) -> str:
    """A segment's checkpoint after the item with this (wire) key: a search token, as JSON."""
    return json.dumps(encode_token(dict(key)), sort_keys=True)


def resume_key(checkpoint: str | None) -> dict[str, Wire] | None:
    """The ``ExclusiveStartKey`` a segment resumes after (``None``: from its start)."""
    if checkpoint is None:
        return None
    if checkpoint == SEGMENT_END:
        raise ValueError("a finished segment is not read again")
    return decode_token(json.loads(checkpoint))


def next_segment(ready: Iterable[str], *, finished: set[str], buffered: set[str]) -> str | None:
    """Which held segment to read from next: one with fetched items waiting first (a page
    is handed out before another is fetched), else the lowest one not finished."""
    candidates = sorted(sid for sid in ready if sid not in finished)
    for sid in candidates:
        if sid in buffered:
            return sid
    return candidates[0] if candidates else None


def segment_checkpoint(stored: str | None, *, handled: str | None, finished: bool) -> str | None:
    """What a held segment's checkpoint becomes, or ``None`` when it stays as ``stored``.

    ``finished`` means the scan of the segment ended and every item of its last page was
    handled; ``handled`` is the checkpoint of the last item every handler took.
    """
    if finished:
        value: str | None = SEGMENT_END
    elif handled is not None:
        value = handled
    else:
        return None
    return None if value == stored else value


def snapshot_done(checkpoints: Mapping[str, str | None], total: int) -> bool:
    """Whether every one of the ``total`` segments is finished (``checkpoints`` by lease id)."""
    return all(checkpoints.get(sid) == SEGMENT_END for sid in segment_ids(total))


@dataclasses.dataclass(frozen=True)
class SnapshotProgress:
    segments_done: int
    segments: int
    items: int
    phase: str


def progress(
    marker_phase: str | None, total: int, segments: Mapping[str, tuple[str | None, int]]
) -> SnapshotProgress:
    """Segments finished out of ``total`` and items delivered (``segments``: lease id ->
    (checkpoint, items delivered))."""
    done = sum(1 for sid in segment_ids(total) if segments.get(sid, (None, 0))[0] == SEGMENT_END)
    items = sum(count for _, count in segments.values())
    return SnapshotProgress(done, total, items, marker_phase or PHASE_SCANNING)


def snapshot_change(
    model: type[BaseModel],
    item: Mapping[str, Wire],
    *,
    segment: str,
    read_at: datetime.datetime,
) -> Change:
    """The ``insert`` :class:`Change` of one scanned item (see the module docstring).

    Its ``record`` has the shape of a stream record (``eventName`` ``INSERT``, ``Keys``,
    ``NewImage``; ``eventSource`` ``"streamodel:snapshot"``), so dead letters store it like
    any other. Raises :class:`~streamodel.stream.records.UndecodableRecordError` when the
    item does not fit the model.
    """
    names = [c.dynamo_name for c in meta_of(model).keys]
    keys = {name: item[name] for name in names if name in item}
    digest = hashlib.sha256(
        json.dumps(to_json_shape(keys), sort_keys=True).encode("utf-8")
    ).hexdigest()[:32]
    record = {
        "eventID": f"snapshot:{digest}",
        "eventName": "INSERT",
        "eventSource": "streamodel:snapshot",
        "dynamodb": {
            "Keys": keys,
            "NewImage": dict(item),
            "ApproximateCreationDateTime": read_at,
            "StreamViewType": "NEW_IMAGE",
        },
    }
    change = decode_record(model, record, shard_id=segment, sequence_number="")
    return dataclasses.replace(change, sequence_number=None, snapshot=True)
