"""Migrations that resume: rewrite every stored item of a model, safely, in shared segments.

:class:`Migration` (and ``streamodel migrate MODULE:MODEL``) reads a model's items with a
strongly consistent parallel scan whose segments are leased and checkpointed in the worker
state table, exactly as a worker's snapshot is (:class:`~streamodel.stream.scan.SegmentScan`),
and rewrites each item that needs it:

- **Schema upgrades** (the default): an item below ``Meta.schema_version`` is brought up by
  the model's upgrade chain (:meth:`streamodel.upgrades.SchemaVersions.upgrade`) and written
  back at the current version; an item already there is left alone (no write).
- **Backfills** (``fn=``): ``fn(item)`` gets the item at the current schema version as plain
  values (as an upgrade does) and returns the new item, or ``None`` to leave it as stored.

Safe writes. Each write is one ``UpdateItem`` that SETs the attributes whose values changed
and REMOVEs the ones dropped, under a condition that the item is exactly as read: every
attribute read equals its value, and every column of the model (and the schema version
attribute) that was absent is still absent. An UpdateItem of the differences rather than a
PutItem of the whole item: an attribute a concurrent writer added that the condition cannot
name (not a column) survives, the request carries only what changes, and the write costs the
same capacity. Comparing every attribute costs request bytes, not capacity; only when that
condition would pass DynamoDB's 4 KB expression limit does a versioned model fall back to its
version column plus the schema version (every streamodel save moves the version). A refused
write re-reads the item (``ReturnValuesOnConditionCheckFailure``) and plans again, up to
``attempts`` times: an item deleted meanwhile is skipped (never recreated), one a concurrent
save already upgraded needs nothing.

Exactly once. An upgraded item carries the current version, so an item is upgraded by at
most one write: a run that dies between its write and its checkpoint reads the item again at
the current version and leaves it. (A backfill has no version to tell its work is done: make
``fn`` return ``None`` for items it already changed.)

What is decided here (pure): the write request and its condition, the item's outcome, the
throttle (:class:`TokenBucket`), progress lines and the exit status. The segment decisions
(where to resume, what to checkpoint, when all is done) are
:mod:`streamodel.stream.snapshot`'s, shared with snapshots.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TextIO

from streamodel._diff import meta_of
from streamodel._render import Renderer
from streamodel._wire import same_wire, wire_size
from streamodel.exceptions import (
    ConditionFailedError,
    MigrationError,
    ResourceNotFoundError,
    StreamodelError,
    TransportError,
)
from streamodel.models import BaseModel
from streamodel.stream.checkpoints import DEFAULT_STATE_TABLE, StateStore
from streamodel.stream.leases import LeaseManager, default_worker_id
from streamodel.stream.scan import SegmentScan
from streamodel.stream.snapshot import MAX_SEGMENTS, PHASE_DONE, PHASE_SCANNING, SEGMENT_END
from streamodel.transport.json_shape import to_json_shape
from streamodel.types import Wire
from streamodel.upgrades import _convert, schema_versions

if TYPE_CHECKING:
    from streamodel.engine import Engine

__all__ = [
    "DEFAULT_GROUP",
    "MIGRATION_MARKER",
    "Migration",
    "MigrationError",
    "MigrationResult",
    "TokenBucket",
    "choose_progress",
    "exit_status",
    "migration_scope",
    "transform",
    "unchanged_condition",
    "write_request",
    "write_units",
]

logger = logging.getLogger("streamodel.migrate")

DEFAULT_GROUP = "streamodel-migrate"
MIGRATION_MARKER = "~migration"
# DynamoDB's bound on the length of one expression (ConditionExpression).
EXPRESSION_LIMIT = 4096

Backfill = Callable[[dict[str, Any]], Mapping[str, Any] | None]
Outcome = Literal["written", "current", "deleted", "dead"]
ProgressMode = Literal["auto", "tqdm", "log", "off"]


# -- the pure core -------------------------------------------------------------------------


def migration_scope(table: str, name: str) -> str:
    """Where one migration's marker and segment leases live in the state table (the
    "stream" of its :class:`~streamodel.stream.leases.LeaseManager`)."""
    return f"migrate|{table}|{name}"


def transform(
    model: type[BaseModel], item: Mapping[str, Wire], fn: Backfill | None = None
) -> Mapping[str, Wire] | None:
    """The item to store instead of ``item``, or ``None`` when it stays as it is.

    Without ``fn``: the model's upgrade chain (``None`` for an item at the current version).
    With ``fn``: ``fn`` of the item at the current version, as plain values without the
    version attribute; its result, serialized, at the current version. Raises
    :class:`~streamodel.exceptions.SchemaVersionError` or
    :class:`~streamodel.exceptions.MigrationError`.
    """
    versions = schema_versions(model)
    upgraded = versions.upgrade(item)
    if fn is None:
        return None if upgraded is item else upgraded
    deserialize, serialize = _convert()
    data = {k: deserialize(v) for k, v in upgraded.items() if k != versions.attribute}
    try:
        result = fn(data)
    except Exception as error:
        raise MigrationError(
            f"{model.__name__} item {_key_text(model, item)}: the backfill "
            f"{getattr(fn, '__qualname__', fn)!r} raised {type(error).__name__}: {error}"
        ) from error
    if result is None:
        return None
    if not isinstance(result, Mapping) or not all(isinstance(k, str) for k in result):
        raise MigrationError(
            f"{model.__name__} item {_key_text(model, item)}: the backfill returned "
            f"{type(result).__name__}, not an item (a dict of attribute names to values)"
        )
    try:
        new = {
            k: serialize(v)
            for k, v in result.items()
            if k != versions.attribute
            and v is not None
            and not (isinstance(v, set | frozenset) and not v)
        }
    except (TypeError, ValueError) as error:
        raise MigrationError(
            f"{model.__name__} item {_key_text(model, item)}: the backfill returned a value "
            f"DynamoDB cannot store ({error}; numbers are Decimal or int, never float)"
        ) from error
    for column in meta_of(model).keys:
        name = column.dynamo_name
        if not same_wire(item.get(name), new.get(name)):
            raise MigrationError(
                f"{model.__name__} item {_key_text(model, item)}: the backfill changed the "
                f"key column {column.name!r}"
            )
    if versions.writes:
        new[versions.attribute] = versions.current_wire
    elif versions.attribute in item:
        new[versions.attribute] = item[versions.attribute]
    return new


def unchanged_condition(r: Renderer, model: type[BaseModel], item: Mapping[str, Wire]) -> str:
    """A ``ConditionExpression`` true only while the stored item is exactly ``item``: each of
    its attributes as read, each column (and the schema version attribute) it lacks absent.

    When that passes :data:`EXPRESSION_LIMIT` and the model has a version column, the check
    is the version column and the schema version only (see the module docstring).
    """
    meta = meta_of(model)
    absent = {c.dynamo_name for c in meta.columns} | {schema_versions(model).attribute}
    absent -= set(item)
    trial = Renderer()
    parts = [_equals(trial, name, wire) for name, wire in item.items()]
    parts += [f"attribute_not_exists({trial.name(name)})" for name in sorted(absent)]
    text = " AND ".join(parts)
    if len(text) > EXPRESSION_LIMIT and meta.version is not None:
        names = [meta.version.dynamo_name, schema_versions(model).attribute]
        parts = [
            _equals(r, n, item[n]) if n in item else f"attribute_not_exists({r.name(n)})"
            for n in names
        ]
        return " AND ".join(parts)
    # Render for real into the request's renderer (the trial one only measured).
    parts = [_equals(r, name, wire) for name, wire in item.items()]
    parts += [f"attribute_not_exists({r.name(name)})" for name in sorted(absent)]
    return " AND ".join(parts)


def _equals(r: Renderer, name: str, wire: Wire) -> str:
    if "NULL" in wire:  # NULL is compared by type: ``= :null`` is not a test of NULL
        return f"attribute_type({r.name(name)}, {r.value({'S': 'NULL'})})"
    return f"{r.name(name)} = {r.value(wire)}"


def write_request(
    table: str, model: type[BaseModel], old: Mapping[str, Wire], new: Mapping[str, Wire]
) -> dict[str, Any] | None:
    """The ``UpdateItem`` turning the stored ``old`` into ``new`` under
    :func:`unchanged_condition`, or ``None`` when they hold the same values."""
    keys = [c.dynamo_name for c in meta_of(model).keys]
    r = Renderer()
    sets = [
        f"{r.name(n)} = {r.value(w)}"
        for n, w in new.items()
        if n not in keys and not same_wire(old.get(n), w)
    ]
    removes = [r.name(n) for n in old if n not in new and n not in keys]
    if not sets and not removes:
        return None
    clauses = []
    if sets:
        clauses.append("SET " + ", ".join(sets))
    if removes:
        clauses.append("REMOVE " + ", ".join(removes))
    condition = unchanged_condition(r, model, old)
    return {
        "TableName": table,
        "Key": {k: old[k] for k in keys},
        "UpdateExpression": " ".join(clauses),
        "ConditionExpression": condition,
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        **r.params(),
    }


def write_units(old: Mapping[str, Wire], new: Mapping[str, Wire]) -> int:
    """The write capacity units an UpdateItem from ``old`` to ``new`` consumes: one per KB of
    the larger of the two items, at least one."""
    return max(1, math.ceil(max(wire_size(old), wire_size(new)) / 1024))


class TokenBucket:
    """A token bucket: ``rate`` tokens a second, at most ``burst`` saved up (default: one
    second's worth). :meth:`reserve` takes tokens and says how long to wait first; the bucket
    may go into debt, so a cost above ``burst`` still passes at the average rate."""

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self.clock = clock
        self.tokens = self.burst
        self.stamp = clock()

    def reserve(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens; the seconds to wait before acting on them (0 when there)."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= cost
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclass
class MigrationResult:
    """What one run did (this process only), and whether the migration is complete."""

    name: str
    group: str
    scanned: int = 0  # items read and decided
    written: int = 0  # items rewritten
    current: int = 0  # items that needed nothing (already at the version, or fn -> None)
    deleted: int = 0  # items deleted between the read and the write: skipped
    conflicts: int = 0  # writes refused because the item changed; each re-read and retried
    dead_lettered: int = 0
    capacity: int = 0  # write capacity units used by the writes
    segments_done: int = 0
    segments: int = 0
    seconds: float = 0.0
    complete: bool = False  # every segment of the migration finished (by any process)

    @property
    def rate(self) -> float:
        return self.scanned / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        state = "complete" if self.complete else "NOT complete"
        return (
            f"migration {self.name}: {state}; {self.scanned} item(s) read in "
            f"{self.seconds:.1f}s ({self.rate:.0f}/s): {self.written} written, "
            f"{self.current} already current, {self.deleted} deleted meanwhile, "
            f"{self.dead_lettered} dead-lettered (streamodel dead-letters {self.group}), "
            f"{self.conflicts} conflict(s) retried, {self.capacity} WCU; segments "
            f"{self.segments_done}/{self.segments} done"
        )


def exit_status(result: MigrationResult) -> int:
    """0 when every item was migrated or dead-lettered (every segment finished), else 1."""
    return 0 if result.complete else 1


def choose_progress(mode: ProgressMode, *, tty: bool, tqdm_available: bool) -> str:
    """``"tqdm"``, ``"log"`` or ``"off"``: a bar on a terminal when tqdm is installed
    (``streamodel[cli]``), periodic log lines otherwise."""
    if mode == "auto":
        return "tqdm" if tty and tqdm_available else "log"
    if mode == "tqdm" and not tqdm_available:
        raise ValueError("progress='tqdm' needs tqdm: pip install 'streamodel[cli]'")
    return mode


def progress_line(name: str, done: int, total: int | None, elapsed: float, since: int) -> str:
    """One plain progress line: items done, rate of this run, and the ETA when known."""
    rate = (done - since) / elapsed if elapsed > 0 else 0.0
    line = f"migration {name}: {done}"
    if total:
        line += f"/{total} item(s) ({100 * min(done, total) / total:.0f}%)"
    else:
        line += " item(s)"
    line += f", {rate:.0f} items/s"
    if total and rate > 0:
        line += f", ETA {max(total - done, 0) / rate:.0f}s"
    return line


def _key_text(model: type[BaseModel], item: Mapping[str, Wire]) -> str:
    keys = {c.dynamo_name: item.get(c.dynamo_name) for c in meta_of(model).keys}
    return json.dumps(to_json_shape(keys), sort_keys=True)


# -- progress display ------------------------------------------------------------------------


class _Progress:
    """Progress of one run: a tqdm bar, or a log line every ``every`` seconds."""

    def __init__(
        self,
        mode: str,
        name: str,
        total: int | None,
        initial: int,
        *,
        every: float,
        out: TextIO | None,
    ) -> None:
        self.mode, self.name, self.total, self.every = mode, name, total, every
        self.done = self.since = initial
        self.start = self.last = time.monotonic()
        self.bar: Any = None
        if mode == "tqdm":
            # Imported by name: tqdm ships no type hints, and the bar is used through Any.
            tqdm: Any = importlib.import_module("tqdm").tqdm
            self.bar = tqdm(
                total=total,
                initial=initial,
                unit="item",
                desc=f"migrate {name}",
                file=out or sys.stderr,
                dynamic_ncols=True,
            )

    def advance(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
            return
        now = time.monotonic()
        if self.mode == "log" and now - self.last >= self.every:
            self.last = now
            logger.info(
                progress_line(self.name, self.done, self.total, now - self.start, self.since)
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _tqdm_available() -> bool:
    try:
        importlib.import_module("tqdm")
    except ImportError:
        return False
    return True


# -- the shell -------------------------------------------------------------------------------


@dataclass
class Migration:
    """Rewrite every stored item of ``model`` that needs it; resumable, shared, throttled.

    ``fn=None`` upgrades items below the model's schema version; a function makes it a
    backfill (see the module docstring). ``name`` identifies the migration's progress in the
    state table (default ``"<Model>@v<schema version>"``, or the backfill function's
    qualified name): a rerun with the same name resumes, or does nothing once complete.
    ``segments`` is fixed by the first run of a name. ``rate`` caps the writes' capacity
    (write units a second, :class:`TokenBucket`); ``None`` does not throttle. Progress and
    dead letters live in the state table under ``group`` (``streamodel dead-letters GROUP``).
    """

    engine: Engine
    model: type[BaseModel]
    fn: Backfill | None = None
    name: str | None = None
    segments: int = 8
    rate: float | None = None
    group: str = DEFAULT_GROUP
    state_table: str = DEFAULT_STATE_TABLE
    page_size: int | None = 100
    attempts: int = 5
    failover: float = 10.0
    progress: ProgressMode = "auto"
    progress_every: float = 10.0
    progress_out: TextIO | None = None
    worker_id: str = field(default_factory=default_worker_id)
    clock: Callable[[], float] = time.monotonic
    _stop: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.segments <= MAX_SEGMENTS:
            raise ValueError(f"Migration(segments=...) must be 1 to {MAX_SEGMENTS}")
        if self.attempts < 1:
            raise ValueError("Migration(attempts=...) must be at least 1")
        if self.name is None:
            if self.fn is None:
                self.name = f"{self.model.__name__}@v{schema_versions(self.model).version}"
            else:
                qualname = getattr(self.fn, "__qualname__", type(self.fn).__name__)
                self.name = f"{self.model.__name__}:{self.fn.__module__}.{qualname}"
        self.store = StateStore(self.engine, self.group, table=self.state_table)
        self.bucket = TokenBucket(self.rate, clock=self.clock) if self.rate else None

    def stop(self) -> None:
        """Ask a running :meth:`run` to checkpoint, release its segments and return."""
        self._stop.set()

    @property
    def table(self) -> str:
        return self.engine.table_name(self.model)

    @property
    def scope(self) -> str:
        assert self.name is not None
        return migration_scope(self.table, self.name)

    def run(self) -> MigrationResult:
        """Migrate until every segment is finished (by this or any process sharing the
        segments) or :meth:`stop`; the result says which."""
        assert self.name is not None
        started = time.monotonic()
        self.store.setup()
        marker = self._marker()
        total = int(marker.segments)
        result = MigrationResult(self.name, self.group, segments=total)
        leases = LeaseManager(
            self.store, self.scope, self.model.__name__, self.worker_id, failover=self.failover
        )
        scan = SegmentScan(self.engine, self.model, total, leases, self.page_size)
        if marker.checkpoint == PHASE_DONE:
            result.complete, result.segments_done = True, total
            result.seconds = time.monotonic() - started
            return result
        display: _Progress | None = None
        try:
            while not self._stop.is_set():
                try:
                    scan.maintain()
                    if display is None:
                        display = self._display(scan)
                    handled = self._drain(scan, result, display)
                except ResourceNotFoundError:
                    raise  # no table (or state table): retrying cannot help
                except TransportError as error:
                    logger.warning("migration %s: %s; continuing", self.name, error)
                    self._stop.wait(1.0)
                    continue
                self._checkpoint(scan)
                if scan.done():
                    self._finish()
                    result.complete = True
                    break
                if handled == 0:
                    # Peers hold the segments left (or a dead one's leases must expire).
                    self._stop.wait(min(1.0, leases.renew_interval))
        finally:
            try:
                self._checkpoint(scan)
            finally:
                leases.release_all()
                if display is not None:
                    display.close()
        checkpoints = scan.checkpoints()
        result.segments_done = sum(1 for v in checkpoints.values() if v == SEGMENT_END)
        result.seconds = time.monotonic() - started
        return result

    def _marker(self) -> Any:
        """The migration's marker (segments and phase), created by its first run."""
        marker = self.store.load(self.scope).get(MIGRATION_MARKER)
        if marker is not None:
            return marker
        marker = self.store.new_state(self.scope, MIGRATION_MARKER, self.model.__name__)
        marker.segments = self.segments
        marker.checkpoint = PHASE_SCANNING
        try:
            self.store.save(marker)
        except ConditionFailedError:  # a peer started it first: its segment count holds
            return self.store.load(self.scope)[MIGRATION_MARKER]
        return marker

    def _finish(self) -> None:
        marker = self.store.load(self.scope).get(MIGRATION_MARKER)
        if marker is not None and marker.checkpoint != PHASE_DONE:
            marker.checkpoint = PHASE_DONE
            with contextlib.suppress(ConditionFailedError):  # a peer marked it first
                self.store.save(marker)

    def _display(self, scan: SegmentScan) -> _Progress:
        done = sum(state.records or 0 for state in scan.states.values())
        try:
            described = self.engine.transport.call(
                "dynamodb", "DescribeTable", {"TableName": self.table}
            )
            total: int | None = int(described["Table"].get("ItemCount") or 0) or None
        except TransportError:
            total = None
        out = self.progress_out or sys.stderr
        mode = choose_progress(self.progress, tty=out.isatty(), tqdm_available=_tqdm_available())
        assert self.name is not None
        return _Progress(mode, self.name, total, done, every=self.progress_every, out=out)

    def _drain(self, scan: SegmentScan, result: MigrationResult, display: _Progress) -> int:
        """Migrate the items of up to one page; return how many."""
        handled = 0
        limit = self.page_size or 100
        while handled < limit and not self._stop.is_set():
            taken = scan.next_item()
            if taken is None:
                break
            sid, item = taken
            try:
                outcome = self.migrate_item(item, result, segment=sid)
            except BaseException:
                scan.rewind(sid)
                raise
            if outcome is None:  # stopped while throttled: read the item again later
                scan.rewind(sid)
                break
            keys = {c.dynamo_name: item[c.dynamo_name] for c in meta_of(self.model).keys}
            scan.mark_handled(sid, keys)
            result.scanned += 1
            handled += 1
            display.advance(1)
        return handled

    def migrate_item(
        self, item: Mapping[str, Wire], result: MigrationResult, *, segment: str = ""
    ) -> Outcome | None:
        """Migrate one stored item (``None``: stopped before its write)."""
        old: Mapping[str, Wire] = item
        for attempt in range(1, self.attempts + 1):
            try:
                new = transform(self.model, old, self.fn)
            except StreamodelError as error:
                self._dead_letter(old, error, attempt, segment)
                result.dead_lettered += 1
                return "dead"
            request = None if new is None else write_request(self.table, self.model, old, new)
            if request is None or new is None:
                result.current += 1
                return "current"
            units = write_units(old, new)
            if self.bucket is not None:
                delay = self.bucket.reserve(units)
                if delay > 0 and self._stop.wait(delay):
                    return None
            try:
                self.engine.transport.call("dynamodb", "UpdateItem", request)
            except ConditionFailedError as error:
                result.conflicts += 1
                stored = error.item if error.item is not None else self._read(old)
                if stored is None:
                    result.deleted += 1
                    return "deleted"
                old = stored
                continue
            result.written += 1
            result.capacity += units
            return "written"
        gave_up = MigrationError(
            f"{self.model.__name__} item {_key_text(self.model, old)}: changed by "
            f"concurrent writes during each of {self.attempts} attempts; left as it is"
        )
        self._dead_letter(old, gave_up, self.attempts, segment)
        result.dead_lettered += 1
        return "dead"

    def _read(self, item: Mapping[str, Wire]) -> dict[str, Wire] | None:
        keys = {c.dynamo_name: item[c.dynamo_name] for c in meta_of(self.model).keys}
        answer = self.engine.transport.call(
            "dynamodb", "GetItem", {"TableName": self.table, "Key": keys, "ConsistentRead": True}
        )
        stored: dict[str, Wire] | None = answer.get("Item")
        return stored

    def _dead_letter(
        self, item: Mapping[str, Wire], error: BaseException, attempts: int, segment: str
    ) -> None:
        keys = {c.dynamo_name: item[c.dynamo_name] for c in meta_of(self.model).keys}
        digest = hashlib.sha256(_key_text(self.model, item).encode("utf-8")).hexdigest()[:32]
        logger.warning("migration %s: dead letter: %s", self.name, error)
        self.store.add_dead_letter(
            model=self.model.__name__,
            shard_id=segment,
            sequence_number="",
            event_id=f"migrate:{digest}",
            error=error,
            attempts=attempts,
            record={
                "eventName": "MIGRATE",
                "eventSource": "streamodel:migrate",
                "migration": self.name,
                "dynamodb": {"Keys": keys, "OldImage": dict(item)},
            },
            worker=self.worker_id,
        )

    def _checkpoint(self, scan: SegmentScan) -> None:
        scan.save_due_checkpoints(self.store, f"migration {self.name}")
