"""The worker: runs subscribers over the change streams of several models.

One loop reads the stream of every table a subscribed model lives in, once per table
however many of its entities are subscribed (parents before children, in order per item),
hands each change to the handlers subscribed to its model and event, and writes a
checkpoint per shard only after every handler for the records up to it succeeded. A
restarted worker of the same group resumes after its checkpoints, so delivery is
at-least-once: at most the changes since the last checkpoint are delivered again. Handlers
get ``change.event_id`` and ``change.sequence_number`` to make their effects idempotent.

A handler that keeps failing is retried ``max_attempts`` times with backoff; then the whole
change and the error go to the dead-letter destination and the shard moves on (or, with
``on_failure="stop"``, the worker stops before checkpointing past it). SIGTERM and SIGINT
stop fetching, let the change in hand finish, checkpoint, release the leases and return.

Several processes of one group share the shards through leases
(:mod:`streamodel.stream.leases`); transactional subscribers commit their writes with the
checkpoint, for exactly-once projections. See docs/streams.md.

This module is the loop and its I/O only. Who gets a change and what happens when a handler
keeps failing is the :class:`~streamodel.stream.dispatch.Dispatcher`'s (shared with the
Lambda handler); reading under leases is :class:`~streamodel.stream.leased.LeasedStream`'s;
metrics and the heartbeat file are in :mod:`streamodel.stream.monitoring`.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from streamodel.entities import Collection
from streamodel.exceptions import (
    ConditionFailedError,
    InvalidModelError,
    InvalidPositionError,
    TransportError,
)
from streamodel.models import BaseModel
from streamodel.stream.checkpoints import (
    DEFAULT_STATE_TABLE,
    MARKER_PREFIX,
    START_MARKER,
    StateStore,
)
from streamodel.stream.dispatch import DeadLetterInfo, Dispatcher, Handler, OnFailure, Seal
from streamodel.stream.leased import CAUGHT_UP_EMPTY_POLLS, LeasedStream
from streamodel.stream.leases import LeaseManager, default_worker_id
from streamodel.stream.monitoring import Heartbeat, Metrics, ShardMetrics, serve_metrics
from streamodel.stream.positions import check_worker_start
from streamodel.stream.reader import Stream
from streamodel.stream.records import EVENTS, Change, Event, UndecodableRecordError
from streamodel.stream.scan import SnapshotScan, key_checkpoint, pin_position
from streamodel.stream.shards import pad_sequence, parse_sequence
from streamodel.stream.shutdown import stop_on_signals
from streamodel.stream.snapshot import (
    MAX_SEGMENTS,
    PHASE_DONE,
    PHASE_SCANNING,
    SNAPSHOT_MARKER,
    plan_start,
    seed_checkpoints,
    snapshot_scope,
)
from streamodel.tracing import traced_dead_letter, traced_dispatch

if TYPE_CHECKING:
    from streamodel.engine import Engine
    from streamodel.stream.aws_lambda import LambdaHandler
    from streamodel.transactions import WriteTransaction

__all__ = ["CAUGHT_UP_EMPTY_POLLS", "DeadLetterInfo", "ShardMetrics", "Worker"]

logger = logging.getLogger("streamodel.worker")

DeadLetterFn = Callable[[DeadLetterInfo], Any]


class Worker:
    """A long-running consumer of the change streams of one or more models.

    ``group`` names the consumer: its checkpoints (in the ``state_table`` the worker
    creates) are shared by every run of the same group. ``start`` is where a group with no
    checkpoint begins: ``"trim_horizon"``, ``"latest"``, an aware datetime, a stream token
    (``stream.token``, for the model whose stream it names), or ``"snapshot"``: every item
    the table holds first (as ``insert`` changes with ``snapshot=True``, read by a parallel
    scan of ``snapshot_segments`` segments, checkpointed and shared like shards), then the
    stream from the position recorded before the scan (see
    :mod:`streamodel.stream.snapshot`). Anything else raises ``InvalidPositionError``.
    ``batch_size`` is how many changes are handled between checkpoints. ``max_attempts``
    bounds the tries per change; ``dead_letter`` is a callable receiving
    :class:`DeadLetterInfo` (default: stored in the state table, listed by
    ``streamodel dead-letters GROUP``). ``on_failure="stop"`` stops the worker instead of
    moving past a change that failed ``max_attempts`` times (strict order).

    ``failover`` is the seconds after which a lease whose counter stopped moving is taken
    over (leases are renewed every quarter of it); ``worker_id`` names this process in the
    leases (default host:pid:random). ``on_metrics(list[ShardMetrics])`` is called every
    ``log_interval`` seconds and at the end; ``heartbeat_file`` is rewritten every second
    with this process's liveness and readiness, for supervisors. ``metrics_port`` serves,
    while :meth:`run` runs, Prometheus metrics at ``/metrics`` and the probes ``/healthz`` and
    ``/readyz`` on that port (all interfaces; needs ``streamodel[metrics]``; see
    :mod:`streamodel.stream.prometheus`); 0 binds a free port, written back to
    ``metrics_port`` once listening.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        group: str,
        start: Any = "trim_horizon",
        batch_size: int = 100,
        max_attempts: int = 5,
        dead_letter: DeadLetterFn | None = None,
        on_failure: Literal["dead_letter", "stop"] = "dead_letter",
        state_table: str = DEFAULT_STATE_TABLE,
        retry_wait: float = 0.1,
        retry_wait_max: float = 5.0,
        idle_wait: float = 0.05,
        log_interval: float = 30.0,
        failover: float = 10.0,
        worker_id: str | None = None,
        on_metrics: Callable[[list[ShardMetrics]], Any] | None = None,
        heartbeat_file: str | None = None,
        snapshot_segments: int = 4,
        metrics_port: int | None = None,
    ) -> None:
        if not group or not isinstance(group, str) or "|" in group:
            raise ValueError("Worker(group=...) must be a non-empty string without '|'")
        if batch_size < 1:
            raise ValueError("Worker(batch_size=...) must be at least 1")
        if not 1 <= snapshot_segments <= MAX_SEGMENTS:
            raise ValueError(f"Worker(snapshot_segments=...) must be 1 to {MAX_SEGMENTS}")
        start = check_worker_start(start)
        # Subscriptions, attempts, dead letters and the seal of transactions: shared with the
        # Lambda handler (and checks max_attempts and on_failure).
        self.dispatcher = Dispatcher(
            group=group,
            max_attempts=max_attempts,
            on_failure=on_failure,
            retry_wait=retry_wait,
            retry_wait_max=retry_wait_max,
        )
        self.engine = engine
        self.start = start
        self.batch_size = batch_size
        self.state_table = state_table
        self.idle_wait = idle_wait
        self.log_interval = log_interval
        self.failover = failover
        self.worker_id = worker_id or default_worker_id()
        self.on_metrics = on_metrics
        self.heartbeat_file = heartbeat_file
        self.snapshot_segments = snapshot_segments
        self.metrics_port = metrics_port
        # The snapshots of the current run (for metrics and tests).
        self.snapshots: list[SnapshotScan] = []
        # Ready once the first lease round of every model ran (for supervisors).
        self.ready = False
        self.running = False
        self._readers: list[LeasedStream] = []
        self._dead_letter = dead_letter
        self._lambda_handler: LambdaHandler | None = None
        self._stop = threading.Event()
        self._store: StateStore | None = None
        self._metrics = Metrics()
        self._heartbeat = Heartbeat(None)

    # -- configuration (the dispatcher's, seen through the worker) ------------------------
    @property
    def group(self) -> str:
        return self.dispatcher.group

    @group.setter
    def group(self, value: str) -> None:
        self.dispatcher.group = value

    @property
    def max_attempts(self) -> int:
        return self.dispatcher.max_attempts

    @max_attempts.setter
    def max_attempts(self, value: int) -> None:
        self.dispatcher.max_attempts = value

    @property
    def on_failure(self) -> OnFailure:
        return self.dispatcher.on_failure

    @on_failure.setter
    def on_failure(self, value: OnFailure) -> None:
        self.dispatcher.on_failure = value

    @property
    def retry_wait(self) -> float:
        return self.dispatcher.retry_wait

    @retry_wait.setter
    def retry_wait(self, value: float) -> None:
        self.dispatcher.retry_wait = value

    @property
    def retry_wait_max(self) -> float:
        return self.dispatcher.retry_wait_max

    @retry_wait_max.setter
    def retry_wait_max(self, value: float) -> None:
        self.dispatcher.retry_wait_max = value

    @property
    def subscriptions_version(self) -> int:
        """Moves on every subscribe() (what is derived from the subscriptions is redone)."""
        return self.dispatcher.version

    @property
    def metrics(self) -> dict[tuple[str, str], ShardMetrics]:
        """Per-shard counters, by (table name, shard id)."""
        return self._metrics.shards

    def sources(self) -> list[Collection]:
        """The subscribed models grouped by table: one stream (and one set of leases and
        checkpoints) per table, in subscription order."""
        by_table: dict[str, list[type[BaseModel]]] = {}
        for model in self.models:
            by_table.setdefault(self.engine.table_name(model), []).append(model)
        return [Collection(*models) for models in by_table.values()]

    @property
    def skipped(self) -> int:
        """Records and snapshot items of no known entity passed over in this run."""
        return sum(r.stream.skipped for r in self._readers) + sum(s.skipped for s in self.snapshots)

    def subscribe(
        self,
        model: type[BaseModel],
        events: Iterable[Event] = EVENTS,
        *,
        transactional: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Decorator: ``@worker.subscribe(Model, events=("insert",))`` registers ``fn(change)``.

        With ``transactional=True`` the handler is ``fn(change, tx)``: what it saves, deletes
        or checks through ``tx`` commits in one ``TransactWriteItems`` together with the
        shard's checkpoint, so a change redelivered after a crash has no effect twice
        (exactly-once for state kept in DynamoDB; at most 99 items of the handler's own).
        """
        return self.dispatcher.subscribe(model, events, transactional=transactional)

    @property
    def models(self) -> list[type[BaseModel]]:
        """The subscribed models, in subscription order."""
        return self.dispatcher.models

    @property
    def lambda_handler(self) -> LambdaHandler:
        """The Lambda handler ``(event, context)`` running this worker's subscribers on AWS
        Lambda's DynamoDB Streams event source mapping (see :mod:`streamodel.stream.aws_lambda`).

        Built once per worker, on first access: every access returns the same handler, with
        its state-table models and its routes. Subscribing afterwards is allowed: the
        handler reads the worker's subscriptions, and derives its routes again on the next
        event, so a handler taken before the last ``subscribe`` still serves it.
        """
        if self._lambda_handler is None:
            from streamodel.stream.aws_lambda import LambdaHandler

            self._lambda_handler = LambdaHandler(self)
        return self._lambda_handler

    @property
    def store(self) -> StateStore:
        if self._store is None:
            self._store = StateStore(self.engine, self.group, table=self.state_table)
        return self._store

    # -- running ------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask a running worker to stop after the change in hand (thread- and signal-safe)."""
        self._stop.set()

    def run(self, *, until_caught_up: bool = False) -> None:
        """Run until :meth:`stop`, SIGTERM or SIGINT (or until caught up, if asked).

        With ``until_caught_up=True`` it returns once every shard is read to its current
        end and every change up to there is handled and checkpointed.
        """
        if not self.dispatcher.subscriptions:
            raise InvalidModelError("Worker.run(): no subscriptions; use @worker.subscribe")
        self._stop.clear()
        with stop_on_signals(self.stop), serve_metrics(self, stopping=self._stop.is_set):
            self.store.setup()
            self._heartbeat = Heartbeat(self.heartbeat_file)
            self.running = True
            try:
                sources = self.sources()
                scans = [s for s in (self._begin(source) for source in sources) if s]
                self.snapshots = scans
                if scans and not self._snapshot(scans):
                    return  # stopped before the snapshot was done
                readers = self._readers = [self._open(source) for source in sources]
                try:
                    self._loop(readers, until_caught_up)
                finally:
                    self.running = self.ready = False
                    try:
                        self._checkpoint(readers)
                    finally:
                        # Peers take over at once instead of waiting for the leases to expire.
                        for reader in readers:
                            reader.leases.release_all()
            finally:
                self.running = self.ready = False
                self._metrics.log(self.group, self.on_metrics)

    def _open(self, source: Collection) -> LeasedStream:
        arn = self.engine.stream_arn(source.models[0])
        states = self.store.load(arn)
        marker = states.pop(START_MARKER, None)
        since = marker.updated_at if marker is not None else None
        if since is None and not states:
            since = self._remember_start(arn, source)
        # Every shard starts unread; a lease taken later places it at its checkpoint. A group
        # start time (from "latest" or a datetime) skips older records until then.
        stream = Stream(self.engine, source, since or "trim_horizon")
        stream.read_only(set())
        leases = LeaseManager(self.store, arn, source.label, self.worker_id, failover=self.failover)
        logger.info(
            "worker %s (%s): reading %s",
            self.group,
            self.worker_id,
            source.label,
            extra={"group": self.group, "model": source.label, "worker_id": self.worker_id},
        )
        return LeasedStream(source, arn, stream, leases)

    def _remember_start(self, stream_arn: str, source: Collection) -> datetime | None:
        """Make a "latest" or datetime start durable before anything is checkpointed.

        Without it, a group that started at "latest" and stopped before handling a change
        would start at "latest" again and miss what came in between. The marker holds the
        start time; until a shard has a checkpoint, it is read from the oldest record,
        skipping records created before that time (a second early, to lose nothing).
        """
        if self.start in ("trim_horizon", "snapshot") or isinstance(self.start, Mapping):
            # A token or a snapshot seeded the checkpoints; a stream that had no shards then
            # has nothing older than its first shard to skip.
            return None
        if isinstance(self.start, datetime):
            since = self.start
        else:
            since = datetime.now(UTC) - timedelta(seconds=1)
        marker = self.store.new_state(stream_arn, START_MARKER, source.label)
        try:
            self.store.save(marker, at=since)
        except ConditionFailedError:
            # A peer of the group started first: its start time is the group's.
            marker = self.store.load(stream_arn)[START_MARKER]
            return marker.updated_at  # type: ignore[no-any-return]
        return since

    # -- snapshot, then the stream (start="snapshot"; see streamodel.stream.snapshot) --------
    def _begin(self, source: Collection) -> SnapshotScan | None:
        """Seed a token start, or set a snapshot up (pinning the stream first); the scan of
        a snapshot under way, else None."""
        arn = self.engine.stream_arn(source.models[0])
        scope = snapshot_scope(arn)
        marker = self.store.load(scope).get(SNAPSHOT_MARKER)
        has_checkpoints = any(not sid.startswith(MARKER_PREFIX) for sid in self.store.load(arn))
        plan = plan_start(
            self.start,
            has_checkpoints=has_checkpoints,
            marker_phase=marker.checkpoint if marker is not None else None,
        )
        if plan == "token":
            token = self.start
            if token.get("stream_arn") != arn:
                raise InvalidPositionError(
                    f"Worker(start=token): the token is of stream {token.get('stream_arn')!r}, "
                    f"not of {source.label}'s stream {arn!r}"
                )
            self._seed(arn, source, token)
            return None
        if plan != "snapshot":
            return None
        if marker is None:
            marker = self._pin(arn, scope, source)
        leases = LeaseManager(
            self.store, scope, source.label, self.worker_id, failover=self.failover
        )
        logger.info(
            "worker %s (%s): snapshot of %s (%d segments)",
            self.group,
            self.worker_id,
            source.label,
            marker.segments,
            extra={"group": self.group, "model": source.label, "worker_id": self.worker_id},
        )
        return SnapshotScan(
            self.engine,
            source,
            arn,
            dict(marker.position),
            int(marker.segments),
            leases,
            page_size=self.batch_size,
        )

    def _pin(self, stream_arn: str, scope: str, source: Collection) -> Any:
        """Record the stream's position before anything is scanned (create-only: of two
        processes pinning at once, the first pin is the group's)."""
        marker = self.store.new_state(scope, SNAPSHOT_MARKER, source.label)
        marker.position = pin_position(self.engine.transport, stream_arn)
        marker.segments = self.snapshot_segments
        marker.checkpoint = PHASE_SCANNING
        try:
            self.store.save(marker)
        except ConditionFailedError:
            return self.store.load(scope)[SNAPSHOT_MARKER]
        return marker

    def _seed(self, stream_arn: str, source: Collection, position: Mapping[str, Any]) -> None:
        """Make a stream token the group's shard checkpoints (create-only, so every process
        seeding the same token agrees, and a checkpoint already there stays)."""
        for shard_id, parent, checkpoint in seed_checkpoints(position):
            state = self.store.new_state(stream_arn, shard_id, source.label)
            state.parent = parent
            state.checkpoint = checkpoint
            try:
                self.store.save(state)
            except ConditionFailedError:
                continue

    def _snapshot(self, scans: list[SnapshotScan]) -> bool:
        """Deliver every scanned item; True once every snapshot is done (the stream comes
        next), False when stopped first."""
        try:
            while not self._stop.is_set():
                handled = 0
                for scan in scans:
                    try:
                        scan.maintain()
                        handled += self._drain_snapshot(scan)
                    except TransportError as error:
                        logger.warning(
                            "worker %s: snapshot of %s: %s; continuing",
                            self.group,
                            scan.collection.label,
                            error,
                            extra={"group": self.group},
                        )
                        self._stop.wait(self.retry_wait_max)
                    if self._stop.is_set():
                        return False
                self.ready = True
                self._beat()
                self._checkpoint_segments(scans)
                if all(scan.done() for scan in scans):
                    for scan in scans:
                        self._finish_snapshot(scan)
                    return True
                if handled == 0:
                    self._stop.wait(self.idle_wait)
            return False
        finally:
            try:
                self._checkpoint_segments(scans)
            finally:
                for scan in scans:
                    scan.leases.release_all()

    def _drain_snapshot(self, scan: SnapshotScan) -> int:
        """Handle up to ``batch_size`` scanned items; return how many."""
        handled = 0
        while handled < self.batch_size and not self._stop.is_set():
            try:
                change = scan.next_change()
            except UndecodableRecordError as error:
                try:
                    self.send_dead_letter(self._undecodable(scan.collection, error))
                except BaseException:
                    scan.rewind(error.shard_id)
                    raise
                scan.mark_handled(error.shard_id, error.record["dynamodb"]["Keys"])
                handled += 1
                continue
            if change is None:
                break
            try:
                dispatched = self.dispatch(
                    change, seal=functools.partial(self._seal_segment, scan, change)
                )
            except BaseException:
                scan.rewind(change.shard_id)
                raise
            if not dispatched:
                scan.rewind(change.shard_id)
                self._stop.set()  # on_failure="stop": never checkpoint past this item
                return handled
            scan.mark_handled(change.shard_id, change.record["dynamodb"]["Keys"])
            self._metrics.handled(self._table(scan.collection), change.shard_id, change.record)
            handled += 1
        return handled

    def _seal_segment(self, scan: SnapshotScan, change: Change, tx: WriteTransaction) -> None:
        """Put the segment's checkpoint after ``change`` into ``tx`` (exactly-once effects
        for transactional handlers, as for stream records)."""
        state = scan.states[change.shard_id]
        state.checkpoint = key_checkpoint(scan.collection, change.record["dynamodb"]["Keys"])
        state.updated_at = datetime.now(UTC)
        ShardState: Any = type(state)
        tx.save(state, condition=ShardState.owner == self.worker_id)

    def _checkpoint_segments(self, scans: list[SnapshotScan]) -> None:
        for scan in scans:
            scan.save_due_checkpoints(self.store, f"worker {self.group}")

    def _finish_snapshot(self, scan: SnapshotScan) -> None:
        """Every segment is finished: the pinned position becomes the group's shard
        checkpoints, then the marker says done (each step safe to repeat, by any process)."""
        self._seed(scan.stream_arn, scan.collection, scan.position)
        scope = snapshot_scope(scan.stream_arn)
        marker = self.store.load(scope).get(SNAPSHOT_MARKER)
        if marker is not None and marker.checkpoint != PHASE_DONE:
            marker.checkpoint = PHASE_DONE
            with contextlib.suppress(ConditionFailedError):  # a peer marked it first
                self.store.save(marker)
        logger.info(
            "worker %s: snapshot of %s done; reading the stream from the pinned position",
            self.group,
            scan.collection.label,
            extra={"group": self.group, "model": scan.collection.label},
        )

    def _loop(self, readers: list[LeasedStream], until_caught_up: bool) -> None:
        last_log = time.monotonic()
        while not self._stop.is_set():
            handled = 0
            for reader in readers:
                try:
                    reader.maintain()
                    handled += self._drain(reader)
                except TransportError as error:
                    # DynamoDB or the stream failed beyond the transport's retries: nothing
                    # was checkpointed past what was handled; wait a little and go on.
                    logger.warning(
                        "worker %s: %s; continuing", self.group, error, extra={"group": self.group}
                    )
                    self._stop.wait(self.retry_wait_max)
                if self._stop.is_set():
                    return
            self.ready = True
            self._beat()
            self._checkpoint(readers)
            if time.monotonic() - last_log >= self.log_interval:
                self._metrics.log(self.group, self.on_metrics)
                last_log = time.monotonic()
            if handled == 0:
                if until_caught_up and all(r.caught_up() for r in readers):
                    return
                for reader in readers:
                    reader.stream.heartbeat()
                self._stop.wait(self.idle_wait)

    def _drain(self, reader: LeasedStream) -> int:
        """Handle up to ``batch_size`` changes of one table's stream; return how many."""
        handled = 0
        while handled < self.batch_size and not self._stop.is_set():
            try:
                change = next(reader.stream)
            except UndecodableRecordError as error:
                with self._rewind_on_error(reader, error.shard_id):
                    self.send_dead_letter(self._undecodable(reader.collection, error))
                self._mark_handled(reader, error.shard_id, error.record)
                handled += 1
                continue
            if change is None:
                break
            with self._rewind_on_error(reader, change.shard_id):
                seal = functools.partial(self._seal, reader, change)
                dispatched = self.dispatch(change, seal=seal)
            if not dispatched:
                self._stop.set()  # on_failure="stop": never checkpoint past this change
                return handled
            self._mark_handled(reader, change.shard_id, change.record)
            handled += 1
        return handled

    @contextmanager
    def _rewind_on_error(self, reader: LeasedStream, shard_id: str) -> Iterator[None]:
        """If a change taken from the stream could not be handled (its dead letter could not
        be stored, say), read the shard again from the last handled change, so the change is
        not skipped in this process either."""
        try:
            yield
        except BaseException:
            reader.rewind(shard_id)
            raise

    def _mark_handled(self, reader: LeasedStream, shard_id: str, record: dict[str, Any]) -> None:
        sequence = str(record.get("dynamodb", {}).get("SequenceNumber", ""))
        reader.mark_handled(shard_id, sequence)
        self._metrics.handled(self._table(reader.collection), shard_id, record)

    def _undecodable(self, source: Collection, error: UndecodableRecordError) -> DeadLetterInfo:
        return self.dispatcher.undecodable(error.model or source.models[0], error)

    # -- dispatch -------------------------------------------------------------------------
    @traced_dispatch  # a CONSUMER span per change with OpenTelemetry; else no wrapper at all
    def dispatch(
        self,
        change: Change,
        *,
        seal: Seal | None = None,
        attempts: int | None = None,
        on_exhausted: Callable[[DeadLetterInfo], Any] | None = None,
        transactional: bool = True,
    ) -> bool:
        """Hand ``change`` to every handler subscribed to its model and event.

        Plain handlers run one after the other, each retried up to ``max_attempts`` times
        (or ``attempts``); transactional handlers share one transaction, which ``seal``
        completes (with the checkpoint, or Lambda's tracking item) before it commits, all
        retried together (``transactional=False`` leaves them out, e.g. for a change known to
        be applied). A step that keeps failing goes to ``on_exhausted`` when given, else to
        the dead letters (or, with ``on_failure="stop"``, stops). Returns False when the
        caller must not move past the change.
        """
        dispatcher = self.dispatcher
        result = dispatcher.run(
            dispatcher.plan(change, transactional=transactional),
            transaction=self._transaction,
            seal=seal,
            attempts=attempts,
            stopping=self._stop.is_set,
            pause=self._stop.wait,
        )
        metrics = self._metrics.shard(self.engine.table_name(change.model), change.shard_id)
        metrics.retries += result.retries
        if result.stopped:
            return False
        for info in result.failures:
            if on_exhausted is not None:
                on_exhausted(info)
            elif self.on_failure == "stop":
                return False
            else:
                self.send_dead_letter(info)
                metrics.dead_letters += 1
        return True

    def _table(self, source: Collection) -> str:
        """The name of the table whose stream ``source`` reads (metrics are per table)."""
        return self.engine.table_name(source.models[0])

    def has_transactional(self, change: Change) -> bool:
        """Whether a transactional handler is subscribed to this change's model and event."""
        return self.dispatcher.has_transactional(change)

    def _transaction(self) -> WriteTransaction:
        from streamodel.transactions import WriteTransaction

        return WriteTransaction(self.engine)

    def _seal(self, reader: LeasedStream, change: Change, tx: WriteTransaction) -> None:
        """Put the checkpoint of ``change`` into ``tx``, so both commit or neither does.

        The write is conditioned on the lease's counter (and owner): if another process
        took the shard meanwhile, the whole transaction is refused.
        """
        state = reader.states[change.shard_id]
        state.checkpoint = pad_sequence(parse_sequence(change.sequence_number))
        state.updated_at = datetime.now(UTC)
        ShardState: Any = type(state)
        tx.save(state, condition=ShardState.owner == self.worker_id)

    @traced_dead_letter  # marks the change's span; no wrapper without OpenTelemetry
    def send_dead_letter(self, info: DeadLetterInfo) -> None:
        # A dead letter that cannot be stored must stop the shard, not vanish: the error
        # propagates and the worker stops before checkpointing past the change.
        if self._dead_letter is not None:
            self._dead_letter(info)
            return
        self.store.add_dead_letter(
            model=info.model.__name__,
            shard_id=info.shard_id,
            sequence_number=info.sequence_number,
            event_id=info.event_id,
            error=info.error,
            attempts=info.attempts,
            record=info.record,
            worker=self.worker_id,
        )

    # -- checkpoints and liveness ---------------------------------------------------------
    def _checkpoint(self, readers: list[LeasedStream]) -> None:
        """Write the handled position of every held shard that moved or finished."""
        for reader in readers:
            table = self._table(reader.collection)
            for shard_id, value in reader.due_checkpoints():
                state = reader.states[shard_id]
                state.checkpoint = value
                # Copy the shard's counters onto its lease item, for `streamodel status`.
                published = reader.published.get(shard_id, 0)
                reader.published[shard_id] = self._metrics.publish(
                    state, table, shard_id, published
                )
                try:
                    self.store.save(state)
                except ConditionFailedError:
                    # The lease moved to another process: stop reading; it resumes from the
                    # last checkpoint that did land (at-least-once).
                    logger.warning(
                        "worker %s: lease on %s lost before its checkpoint", self.group, shard_id
                    )
                    reader.drop(shard_id)
                except TransportError as error:
                    # Outcome unknown: learn what is stored; the next round writes it again.
                    logger.warning("worker %s: checkpoint of %s: %s", self.group, shard_id, error)
                    reader.leases.refresh(shard_id)

    def _beat(self) -> None:
        """Liveness and readiness for supervisors: a small JSON file rewritten each second."""
        self._heartbeat.beat(
            worker_id=self.worker_id,
            group=self.group,
            ready=self.ready,
            leases=sum(len(r.leases.held) for r in self._readers),
        )
