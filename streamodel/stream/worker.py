"""The worker: runs subscribers over the change streams of several models.

One loop reads every subscribed model's stream (parents before children, in order per
item), hands each change to the handlers subscribed to its model and event, and writes a
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
"""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import tenacity

from streamodel.exceptions import ConditionFailedError, InvalidModelError, TransportError
from streamodel.models import BaseModel
from streamodel.stream.checkpoints import DEFAULT_STATE_TABLE, SHARD_END, START_MARKER, StateStore
from streamodel.stream.leases import LeaseManager, default_worker_id
from streamodel.stream.reader import Stream
from streamodel.stream.records import EVENTS, Change, Event, UndecodableRecordError
from streamodel.stream.shards import pad_sequence, parse_sequence

if TYPE_CHECKING:
    from streamodel.engine import Engine
    from streamodel.stream.aws_lambda import LambdaHandler
    from streamodel.transactions import WriteTransaction

__all__ = ["DeadLetterInfo", "ShardMetrics", "Worker"]

logger = logging.getLogger("streamodel.worker")

Handler = Callable[..., Any]
# Completes a transactional delivery: adds the item that records the change as applied.
Seal = Callable[[Any], None]
DeadLetterFn = Callable[["DeadLetterInfo"], Any]
# An open shard counts as read to its current end after this many empty pages in a row
# (DynamoDB can need a few calls to cross a sparse part of a shard).
CAUGHT_UP_EMPTY_POLLS = 2


def _name(handler: Callable[..., Any]) -> str:
    return str(getattr(handler, "__qualname__", handler))


@dataclass
class DeadLetterInfo:
    """What a dead-letter destination receives: the change (or undecodable record) and why."""

    group: str
    model: type[BaseModel]
    shard_id: str
    sequence_number: str
    event_id: str
    error: BaseException
    attempts: int
    record: dict[str, Any]
    change: Change | None = None


@dataclass
class ShardMetrics:
    """Per-shard counters a worker keeps (also logged as structured fields)."""

    model: str
    shard_id: str
    records: int = 0
    retries: int = 0
    dead_letters: int = 0
    last_sequence: str | None = None
    last_created_at: datetime | None = None
    # Records per second over the last window (between two checkpoints of the shard).
    rate: float = 0.0
    _window: tuple[float, int] = (0.0, 0)

    def measure_rate(self, now: float) -> float:
        """Update and return the rate since the previous call."""
        started, records = self._window
        if started and now > started:
            self.rate = (self.records - records) / (now - started)
        self._window = (now, self.records)
        return self.rate

    @property
    def lag_seconds(self) -> float | None:
        """now - ApproximateCreationDateTime of the last record handled."""
        if self.last_created_at is None:
            return None
        return (datetime.now(UTC) - self.last_created_at).total_seconds()


@dataclass
class _Subscription:
    model: type[BaseModel]
    events: frozenset[str]
    handler: Callable[..., Any]
    # fn(change, tx): what it writes through tx commits with the checkpoint, all or nothing.
    transactional: bool = False


@dataclass
class _ModelReader:
    """One subscribed model's stream, its leases and what was handled since the checkpoint."""

    model: type[BaseModel]
    stream_arn: str
    stream: Stream
    leases: LeaseManager
    # The last handled sequence number per held shard (40 digits): the only thing
    # checkpointed, so a change that was read but not handled is never checkpointed past.
    handled: dict[str, str] = field(default_factory=dict)
    # How many of each shard's handled records were already added to its lease item.
    published: dict[str, int] = field(default_factory=dict)

    @property
    def states(self) -> dict[str, Any]:
        return self.leases.states


class Worker:
    """A long-running consumer of the change streams of one or more models.

    ``group`` names the consumer: its checkpoints (in the ``state_table`` the worker
    creates) are shared by every run of the same group. ``start`` is where a group with no
    checkpoint begins (``"trim_horizon"``, ``"latest"`` or an aware datetime).
    ``batch_size`` is how many changes are handled between checkpoints. ``max_attempts``
    bounds the tries per change; ``dead_letter`` is a callable receiving
    :class:`DeadLetterInfo` (default: stored in the state table, listed by
    ``streamodel dead-letters GROUP``). ``on_failure="stop"`` stops the worker instead of
    moving past a change that failed ``max_attempts`` times (strict order).

    ``failover`` is the seconds after which a lease whose counter stopped moving is taken
    over (leases are renewed every quarter of it); ``worker_id`` names this process in the
    leases (default host:pid:random). ``on_metrics(list[ShardMetrics])`` is called every
    ``log_interval`` seconds and at the end; ``heartbeat_file`` is rewritten every second
    with this process's liveness and readiness, for supervisors.
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
    ) -> None:
        if not group or not isinstance(group, str) or "|" in group:
            raise ValueError("Worker(group=...) must be a non-empty string without '|'")
        if batch_size < 1:
            raise ValueError("Worker(batch_size=...) must be at least 1")
        if max_attempts < 1:
            raise ValueError("Worker(max_attempts=...) must be at least 1")
        if on_failure not in ("dead_letter", "stop"):
            raise ValueError("Worker(on_failure=...) must be 'dead_letter' or 'stop'")
        self.engine = engine
        self.group = group
        self.start = start
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.on_failure = on_failure
        self.state_table = state_table
        self.retry_wait = retry_wait
        self.retry_wait_max = retry_wait_max
        self.idle_wait = idle_wait
        self.log_interval = log_interval
        self.failover = failover
        self.worker_id = worker_id or default_worker_id()
        self.on_metrics = on_metrics
        self.heartbeat_file = heartbeat_file
        # Ready once the first lease round of every model ran (for supervisors).
        self.ready = False
        self._readers: list[_ModelReader] = []
        self._last_beat = 0.0
        self._dead_letter = dead_letter
        self._subscriptions: list[_Subscription] = []
        # Moves on every subscribe(): what is derived from the subscriptions and kept (the
        # Lambda handler's routes) is derived again when it changed.
        self.subscriptions_version = 0
        self._lambda_handler: LambdaHandler | None = None
        self._stop = threading.Event()
        self._store: StateStore | None = None
        self.metrics: dict[tuple[str, str], ShardMetrics] = {}
        self.running = False

    # -- configuration ------------------------------------------------------------------
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
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise InvalidModelError(f"subscribe() takes a model class, got {model!r}")
        meta: Any = model.Meta
        if meta.abstract:
            raise InvalidModelError(f"{model.__name__} is abstract and has no stream")
        if meta.stream_view_type is None:
            raise InvalidModelError(f"{model.__name__} has Meta.stream = None: nothing to read")
        chosen = frozenset(events)
        unknown = sorted(chosen - set(EVENTS))
        if unknown or not chosen:
            raise ValueError(f"subscribe(events=...) takes some of {EVENTS}, got {sorted(chosen)}")

        def register(handler: Handler) -> Handler:
            if not callable(handler):
                raise TypeError("subscribe() decorates a callable fn(change)")
            self._subscriptions.append(_Subscription(model, chosen, handler, transactional))
            self.subscriptions_version += 1
            return handler

        return register

    @property
    def models(self) -> list[type[BaseModel]]:
        """The subscribed models, in subscription order."""
        return list(dict.fromkeys(s.model for s in self._subscriptions))

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
        if not self._subscriptions:
            raise InvalidModelError("Worker.run(): no subscriptions; use @worker.subscribe")
        self._stop.clear()
        with self._signals_stop_worker():
            self.store.setup()
            readers = self._readers = [self._open(model) for model in self.models]
            self.running = True
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
                    self._log_metrics()

    def _open(self, model: type[BaseModel]) -> _ModelReader:
        arn = self.engine.stream_arn(model)
        states = self.store.load(arn)
        marker = states.pop(START_MARKER, None)
        since = marker.updated_at if marker is not None else None
        if since is None and not states:
            since = self._remember_start(arn, model)
        # Every shard starts unread; a lease taken later places it at its checkpoint. A group
        # start time (from "latest" or a datetime) skips older records until then.
        stream = Stream(self.engine, model, since or "trim_horizon")
        stream.coordinator.restrict(set())
        leases = LeaseManager(
            self.store, arn, model.__name__, self.worker_id, failover=self.failover
        )
        logger.info(
            "worker %s (%s): reading %s",
            self.group,
            self.worker_id,
            model.__name__,
            extra={"group": self.group, "model": model.__name__, "worker_id": self.worker_id},
        )
        return _ModelReader(model, arn, stream, leases)

    def _maintain_leases(self, reader: _ModelReader) -> None:
        """One lease round when due; point the reader at the shards it may read now."""
        coordinator = reader.stream.coordinator
        if reader.leases.due():
            shards = [(sid, shard.parent_id) for sid, shard in coordinator.shards.items()]
            result = reader.leases.run_round(shards)
            for sid in result.lost:
                coordinator.release(sid)
                reader.handled.pop(sid, None)
            for sid in result.finished_elsewhere:
                coordinator.mark_done(sid)
            for sid, state in result.taken.items():
                checkpoint = state.checkpoint
                coordinator.assign(
                    sid,
                    after=None if checkpoint in (None, SHARD_END) else checkpoint,
                    done=checkpoint == SHARD_END,
                    parent=state.parent,
                )
                reader.handled.pop(sid, None)
        coordinator.restrict({sid for sid in reader.leases.held if reader.leases.ready(sid)})

    def _remember_start(self, stream_arn: str, model: type[BaseModel]) -> datetime | None:
        """Make a "latest" or datetime start durable before anything is checkpointed.

        Without it, a group that started at "latest" and stopped before handling a change
        would start at "latest" again and miss what came in between. The marker holds the
        start time; until a shard has a checkpoint, it is read from the oldest record,
        skipping records created before that time (a second early, to lose nothing).
        """
        if self.start == "trim_horizon":
            return None
        if isinstance(self.start, datetime):
            since = self.start
        else:
            since = datetime.now(UTC) - timedelta(seconds=1)
        marker = self.store.new_state(stream_arn, START_MARKER, model.__name__)
        try:
            self.store.save(marker, at=since)
        except ConditionFailedError:
            # A peer of the group started first: its start time is the group's.
            marker = self.store.load(stream_arn)[START_MARKER]
            return marker.updated_at  # type: ignore[no-any-return]
        return since

    def _loop(self, readers: list[_ModelReader], until_caught_up: bool) -> None:
        last_log = time.monotonic()
        while not self._stop.is_set():
            handled = 0
            for reader in readers:
                try:
                    self._maintain_leases(reader)
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
                self._log_metrics()
                last_log = time.monotonic()
            if handled == 0:
                if until_caught_up and all(self._caught_up(r) for r in readers):
                    return
                for reader in readers:
                    reader.stream.heartbeat()
                self._stop.wait(self.idle_wait)

    def _drain(self, reader: _ModelReader) -> int:
        """Handle up to ``batch_size`` changes of one model; return how many."""
        handled = 0
        while handled < self.batch_size and not self._stop.is_set():
            try:
                change = next(reader.stream)
            except UndecodableRecordError as error:
                info = DeadLetterInfo(
                    self.group,
                    reader.model,
                    error.shard_id,
                    error.sequence_number,
                    str(error.record.get("eventID", "")),
                    error,
                    0,
                    error.record,
                )
                with self._rewind_on_error(reader, error.shard_id):
                    self.send_dead_letter(info)
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
    def _rewind_on_error(self, reader: _ModelReader, shard_id: str) -> Iterator[None]:
        """If a change taken from the stream could not be handled (its dead letter could not
        be stored, say), read the shard again from the last handled change, so the change is
        not skipped in this process either."""
        try:
            yield
        except BaseException:
            state = reader.states.get(shard_id)
            after = reader.handled.get(shard_id)
            if after is None and state is not None and state.checkpoint != SHARD_END:
                after = state.checkpoint
            parent = state.parent if state is not None else None
            reader.stream.coordinator.assign(shard_id, after=after, done=False, parent=parent)
            raise

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
        matching = [
            s
            for s in self._subscriptions
            if s.model is change.model
            and change.event in s.events
            and (transactional or not s.transactional)
        ]
        steps: list[tuple[str, Callable[[], None]]] = [
            (_name(s.handler), lambda s=s: s.handler(change))  # type: ignore[misc]
            for s in matching
            if not s.transactional
        ]
        in_transaction = [s for s in matching if s.transactional]
        if in_transaction:
            names = ", ".join(_name(s.handler) for s in in_transaction)
            steps.append((names, lambda: self._run_transaction(change, in_transaction, seal)))
        limit = attempts or self.max_attempts
        return all(self._attempt(change, name, step, limit, on_exhausted) for name, step in steps)

    def has_transactional(self, change: Change) -> bool:
        """Whether a transactional handler is subscribed to this change's model and event."""
        return any(
            s.transactional and s.model is change.model and change.event in s.events
            for s in self._subscriptions
        )

    def _run_transaction(
        self, change: Change, subscriptions: list[_Subscription], seal: Seal | None
    ) -> None:
        from streamodel.transactions import WriteTransaction

        tx = WriteTransaction(self.engine)
        for subscription in subscriptions:
            subscription.handler(change, tx)
        if seal is not None:
            seal(tx)
        tx.commit()

    def _attempt(
        self,
        change: Change,
        name: str,
        step: Callable[[], None],
        limit: int,
        on_exhausted: Callable[[DeadLetterInfo], Any] | None,
    ) -> bool:
        """Run one step with retries; dead-letter it when it keeps failing."""
        metrics = self._metrics(change.model, change.shard_id)
        attempts = 0
        try:
            if limit == 1:
                # One try (Lambda's default): nothing to retry, so no retry loop to build.
                attempts = 1
                step()
            else:
                retrying = tenacity.Retrying(
                    # A stop request ends the retries (and cuts a backoff short): the change
                    # is then neither dead-lettered nor checkpointed, and comes again after a
                    # restart.
                    stop=tenacity.stop_after_attempt(limit)
                    | tenacity.stop_when_event_set(self._stop),
                    wait=tenacity.wait_random_exponential(
                        multiplier=self.retry_wait, max=self.retry_wait_max
                    ),
                    sleep=self._pause,
                    reraise=True,
                )
                for attempt in retrying:
                    with attempt:
                        attempts += 1
                        if attempts > 1:
                            metrics.retries += 1
                        step()
        except Exception as error:
            if self._stop.is_set() and attempts < limit:
                return False
            logger.error(
                "worker %s: handler %s failed %d times on %s %s",
                self.group,
                name,
                attempts,
                change.shard_id,
                change.sequence_number,
                exc_info=True,
                extra={
                    "group": self.group,
                    "model": change.model.__name__,
                    "shard_id": change.shard_id,
                    "sequence_number": change.sequence_number,
                    "attempts": attempts,
                },
            )
            info = DeadLetterInfo(
                self.group,
                change.model,
                change.shard_id,
                change.sequence_number,
                change.event_id,
                error,
                attempts,
                change.record,
                change,
            )
            if on_exhausted is not None:
                on_exhausted(info)
                return True
            if self.on_failure == "stop":
                return False
            self.send_dead_letter(info)
            metrics.dead_letters += 1
        return True

    def _seal(self, reader: _ModelReader, change: Change, tx: WriteTransaction) -> None:
        """Put the checkpoint of ``change`` into ``tx``, so both commit or neither does.

        The write is conditioned on the lease's counter (and owner): if another process
        took the shard meanwhile, the whole transaction is refused.
        """
        state = reader.states[change.shard_id]
        state.checkpoint = pad_sequence(parse_sequence(change.sequence_number))
        state.updated_at = datetime.now(UTC)
        ShardState: Any = type(state)
        tx.save(state, condition=ShardState.owner == self.worker_id)

    def _pause(self, seconds: float) -> None:
        self._stop.wait(seconds)

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

    def _mark_handled(self, reader: _ModelReader, shard_id: str, record: dict[str, Any]) -> None:
        data = record.get("dynamodb", {})
        sequence = str(data.get("SequenceNumber", ""))
        reader.handled[shard_id] = pad_sequence(parse_sequence(sequence))
        metrics = self._metrics(reader.model, shard_id)
        metrics.records += 1
        metrics.last_sequence = sequence
        created = data.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            metrics.last_created_at = created

    def _metrics(self, model: type[BaseModel], shard_id: str) -> ShardMetrics:
        key = (model.__name__, shard_id)
        metrics = self.metrics.get(key)
        if metrics is None:
            metrics = self.metrics[key] = ShardMetrics(model.__name__, shard_id)
        return metrics

    def _caught_up(self, reader: _ModelReader) -> bool:
        """Every held shard read to its current end and handled, and none left to take.

        Shards held by a peer seen alive are that peer's to finish; a lease whose owner was
        never seen renewing may belong to a dead process, so it is waited for until it
        expires and taken.
        """
        leases = reader.leases
        if leases.last_round == float("-inf") or leases.takeable() or leases.awaiting_expiry():
            return False
        shards = reader.stream.coordinator.shards
        for sid in reader.leases.held:
            shard = shards.get(sid)
            if shard is None or not reader.leases.ready(sid) or shard.buffer:
                return False
            if not shard.done and not shard.closed and shard.empty_streak < CAUGHT_UP_EMPTY_POLLS:
                return False
        return True

    # -- checkpoints ----------------------------------------------------------------------
    def _checkpoint(self, readers: list[_ModelReader]) -> None:
        """Write the handled position of every held shard that moved or finished."""
        for reader in readers:
            entries = reader.stream.token["shards"]
            for shard_id in sorted(reader.leases.held):
                entry = entries.get(shard_id)
                handled = reader.handled.get(shard_id)
                if entry is not None and entry["done"] and entry["after"] == handled:
                    value = SHARD_END  # read to its end and all of it handled
                elif handled is not None:
                    value = handled
                else:
                    continue
                state = reader.states[shard_id]
                if state.checkpoint == value:
                    continue
                previous = state.checkpoint
                state.checkpoint = value
                self._publish(reader, shard_id, state, previous)
                try:
                    self.store.save(state)
                except ConditionFailedError:
                    # The lease moved to another process: stop reading; it resumes from the
                    # last checkpoint that did land (at-least-once).
                    logger.warning(
                        "worker %s: lease on %s lost before its checkpoint", self.group, shard_id
                    )
                    reader.leases.held.discard(shard_id)
                    reader.stream.coordinator.release(shard_id)
                    reader.handled.pop(shard_id, None)
                except TransportError as error:
                    # Outcome unknown: learn what is stored; the next round writes it again.
                    logger.warning("worker %s: checkpoint of %s: %s", self.group, shard_id, error)
                    reader.leases.refresh(shard_id)

    def _publish(self, reader: _ModelReader, shard_id: str, state: Any, previous: Any) -> None:
        """Copy the shard's counters onto its lease item, for ``streamodel status``."""
        metrics = self._metrics(reader.model, shard_id)
        published = reader.published.get(shard_id, 0)
        state.records = (state.records or 0) + metrics.records - published
        reader.published[shard_id] = metrics.records
        state.rate = round(metrics.measure_rate(time.monotonic()), 3)
        if metrics.last_created_at is not None:
            state.last_created_at = metrics.last_created_at

    def _beat(self) -> None:
        """Liveness and readiness for supervisors: a small JSON file rewritten each second."""
        if self.heartbeat_file is None:
            return
        now = time.monotonic()
        if now - self._last_beat < 1.0:
            return
        self._last_beat = now
        held = sum(len(r.leases.held) for r in self._readers)
        body = json.dumps(
            {
                "worker_id": self.worker_id,
                "group": self.group,
                "ready": self.ready,
                "leases": held,
                "at": datetime.now(UTC).isoformat(),
            }
        )
        temporary = f"{self.heartbeat_file}.tmp"
        with open(temporary, "w") as handle:
            handle.write(body)
        os.replace(temporary, self.heartbeat_file)  # readers never see half a file

    def _log_metrics(self) -> None:
        if self.on_metrics is not None:
            self.on_metrics(list(self.metrics.values()))
        for metrics in self.metrics.values():
            lag = metrics.lag_seconds
            logger.info(
                "worker %s: %s %s handled %d (retries %d, dead letters %d, lag %s)",
                self.group,
                metrics.model,
                metrics.shard_id,
                metrics.records,
                metrics.retries,
                metrics.dead_letters,
                "n/a" if lag is None else f"{lag:.1f}s",
                extra={
                    "group": self.group,
                    "model": metrics.model,
                    "shard_id": metrics.shard_id,
                    "records": metrics.records,
                    "retries": metrics.retries,
                    "dead_letters": metrics.dead_letters,
                    "lag_seconds": lag,
                },
            )

    @contextmanager
    def _signals_stop_worker(self) -> Iterator[None]:
        """SIGTERM/SIGINT call :meth:`stop` while running (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: self.stop())
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
