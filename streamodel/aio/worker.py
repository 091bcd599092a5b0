"""``AsyncWorker``: the worker for asyncio programs, on the same state table, leases,
checkpoints, dead letters and status as :class:`~streamodel.stream.Worker`, so one group can
move between the two (or run both kinds at once: they share its shards through the leases).

How it is built (docs/streams.md, "AsyncWorker"):

- **Reading is the sync worker's.** An ``AsyncWorker`` holds a sync
  :class:`~streamodel.stream.Worker` (:attr:`AsyncWorker.sync_worker`) on
  :meth:`AsyncEngine.sync_engine <streamodel.aio.AsyncEngine.sync_engine>`: its state store,
  its :class:`~streamodel.stream.leased.LeasedStream` per table (leases, lineage, iterators,
  checkpoints), its snapshot scans, its dead-letter store and its metrics. One reading task
  drives them, one step at a time, on a thread (``asyncio.to_thread``): a lease round, up to
  ``n`` ``next(stream)``, the checkpoint writes, releasing the leases. So the event loop never
  waits on DynamoDB Streams, the reader is never used by two threads at once, and nothing of
  the reader is written twice. (A native asyncio reader needs the coordinator and the lease
  rounds written as :mod:`streamodel.steps`, which they are not yet.)
- **Handlers run on the event loop**, through the same
  :class:`~streamodel.stream.dispatch.Dispatcher` (plan, retries, verdicts, dead letters)
  driven by :meth:`~streamodel.stream.dispatch.Dispatcher.arun`: ``async def`` handlers are
  awaited, plain ones called (on the loop: keep them short). What a handler awaits on the
  :class:`~streamodel.aio.AsyncEngine` (``await engine.save(...)``) goes through the
  engine's asyncio transport.
- **In flight, in order per key.** At most ``max_in_flight`` changes are taken from the
  stream and not yet over. The changes of one item (one table, one key) are handled one after
  another in stream order; changes of different items run concurrently.
- **Checkpoints never pass an unhandled change.** Per held shard (or snapshot segment), the
  changes taken since it was positioned are kept in stream order; only the contiguous handled
  prefix is told to the reader (``mark_handled``), so a checkpoint moves past a record only
  once every record up to it was handled (or dead-lettered). A change that could not be
  handled (a dead letter that could not be stored) makes the shard be read again from that
  prefix: the not-yet-started changes of it are left for that second reading, so the order
  per key holds, and those handled meanwhile are not handed out again. A lost lease drops
  what was taken of the shard and not yet started.
- **Transactional handlers** get a :class:`~streamodel.transactions.WriteTransaction` on the
  async engine (``tx.save`` / ``tx.delete`` / ``tx.check``, as in ``Worker``); its commit
  (``commit_steps()`` run with :func:`streamodel.steps.arun`) carries the shard's checkpoint
  at the change, as the sync worker's does. The commit waits until every earlier change of
  the shard is handled, and holds the shard's lock so no lease renewal or checkpoint of the
  reading task writes the same lease item meanwhile: exactly-once effects as in ``Worker``.
- **Shutdown.** :meth:`AsyncWorker.stop`, SIGTERM or SIGINT (``loop.add_signal_handler`` when
  run in the main thread) stop fetching; handlers already running finish (retries are cut
  short), changes not started are left for the next run; then the handled prefix is
  checkpointed and the leases are released.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from streamodel import steps
from streamodel.exceptions import InvalidModelError, TransportError, UndecodableRecordError
from streamodel.models import BaseModel
from streamodel.stream.checkpoints import DEFAULT_STATE_TABLE, StateStore
from streamodel.stream.dispatch import DeadLetterInfo, Dispatcher, Handler, OnFailure
from streamodel.stream.leased import LeasedStream
from streamodel.stream.monitoring import Heartbeat, ShardMetrics, serve_metrics
from streamodel.stream.records import EVENTS, Change, Event
from streamodel.stream.scan import SnapshotScan
from streamodel.stream.shutdown import stop_on_signals
from streamodel.stream.worker import Worker

if TYPE_CHECKING:
    from streamodel.transactions import WriteTransaction

    from .engine import AsyncEngine

__all__ = ["DEFAULT_MAX_IN_FLIGHT", "AsyncWorker"]

logger = logging.getLogger("streamodel.worker")

DEFAULT_MAX_IN_FLIGHT = 64


class AsyncWorker:
    """A long-running consumer of change streams for asyncio programs.

    The options are :class:`~streamodel.stream.Worker`'s, with the same meaning and defaults
    (``group``, ``start``, ``batch_size``, ``max_attempts``, ``dead_letter``, ``on_failure``,
    ``state_table``, ``retry_wait``, ``retry_wait_max``, ``idle_wait``, ``log_interval``,
    ``failover``, ``worker_id``, ``on_metrics``, ``heartbeat_file``, ``snapshot_segments``,
    ``metrics_port``); ``dead_letter`` may also be a coroutine function. ``max_in_flight``
    bounds the changes taken from the streams and not yet handled (default 64): changes of
    one item are handled one after another in stream order, those of different items
    concurrently.

    ``@worker.subscribe(Model, events=..., transactional=False)`` registers ``async def``
    (or plain) handlers; ``await worker.run(until_caught_up=False)``; ``worker.stop()``.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        group: str,
        start: Any = "trim_horizon",
        batch_size: int = 100,
        max_attempts: int = 5,
        dead_letter: Callable[[DeadLetterInfo], Any] | None = None,
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
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("AsyncWorker(max_in_flight=...) must be at least 1")
        self.engine = engine
        self.max_in_flight = max_in_flight
        # The reading side: leases, streams, snapshots, checkpoints, dead-letter store and
        # metrics, on a sync engine to the same endpoint and table names. Never run itself.
        self.sync_worker = Worker(
            engine.sync_engine(),
            group=group,
            start=start,
            batch_size=batch_size,
            max_attempts=max_attempts,
            on_failure=on_failure,
            state_table=state_table,
            retry_wait=retry_wait,
            retry_wait_max=retry_wait_max,
            idle_wait=idle_wait,
            log_interval=log_interval,
            failover=failover,
            worker_id=worker_id,
            on_metrics=on_metrics,
            heartbeat_file=heartbeat_file,
            snapshot_segments=snapshot_segments,
            metrics_port=metrics_port,
        )
        self._dead_letter = dead_letter
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._state = _RunState(max_in_flight)

    # -- configuration (the sync worker's and its dispatcher's) --------------------------
    @property
    def dispatcher(self) -> Dispatcher:
        """Subscriptions and delivery rules, shared with :attr:`sync_worker`."""
        return self.sync_worker.dispatcher

    @property
    def group(self) -> str:
        return self.sync_worker.group

    @group.setter
    def group(self, value: str) -> None:
        self.sync_worker.group = value

    @property
    def worker_id(self) -> str:
        return self.sync_worker.worker_id

    @property
    def metrics_port(self) -> int | None:
        """As ``Worker.metrics_port`` (0 binds a free port, written back once listening)."""
        return self.sync_worker.metrics_port

    @metrics_port.setter
    def metrics_port(self, value: int | None) -> None:
        self.sync_worker.metrics_port = value

    @property
    def on_failure(self) -> OnFailure:
        return self.sync_worker.on_failure

    @property
    def batch_size(self) -> int:
        return self.sync_worker.batch_size

    @property
    def failover(self) -> float:
        return self.sync_worker.failover

    @property
    def store(self) -> StateStore:
        """The group's checkpoints, leases and dead letters (the sync worker's store)."""
        return self.sync_worker.store

    @property
    def metrics(self) -> dict[tuple[str, str], ShardMetrics]:
        """Per-shard counters, by (table name, shard id)."""
        return self.sync_worker.metrics

    @property
    def ready(self) -> bool:
        return self.sync_worker.ready

    @property
    def running(self) -> bool:
        return self.sync_worker.running

    @property
    def skipped(self) -> int:
        return self.sync_worker.skipped

    @property
    def models(self) -> list[type[BaseModel]]:
        return self.dispatcher.models

    @property
    def stopping(self) -> bool:
        """Whether a stop was asked for (:meth:`stop`, SIGTERM, SIGINT, a strict failure)."""
        return self._stopping.is_set()

    def subscribe(
        self,
        model: type[BaseModel],
        events: Iterable[Event] = EVENTS,
        *,
        transactional: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Decorator: ``@worker.subscribe(Model, events=("insert",))`` registers
        ``async def fn(change)`` (or a plain ``fn(change)``).

        With ``transactional=True`` the handler is ``fn(change, tx)``: what it queues through
        ``tx`` commits in one ``TransactWriteItems`` together with the shard's checkpoint, as
        with :meth:`Worker.subscribe <streamodel.stream.Worker.subscribe>`.
        """
        return self.dispatcher.subscribe(model, events, transactional=transactional)

    # -- running --------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask a running worker to stop: no more fetching, running handlers finish, then it
        checkpoints and releases its leases (thread- and signal-safe)."""
        self._stopping.set()
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to wake
                loop.call_soon_threadsafe(self._state.wake_all)

    async def run(self, *, until_caught_up: bool = False) -> None:
        """Run until :meth:`stop`, SIGTERM or SIGINT (or until caught up, if asked).

        With ``until_caught_up=True`` it returns once every shard is read to its current
        end and every change up to there is handled and checkpointed. An error no retry
        covers (a dead letter that cannot be stored, except a transport error) stops the
        worker, after the checkpoints of what was handled, and is raised here.
        """
        if not self.dispatcher.subscriptions:
            raise InvalidModelError("AsyncWorker.run(): no subscriptions; use @worker.subscribe")
        sync = self.sync_worker
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self._failure = None
        self._state = _RunState(self.max_in_flight)
        try:
            with self._stop_on_signals(), serve_metrics(sync, stopping=self._stopping.is_set):
                await asyncio.to_thread(sync.store.setup)
                sync._heartbeat = Heartbeat(sync.heartbeat_file)
                sync.running = True
                try:
                    await self._phases(until_caught_up)
                finally:
                    sync.running = sync.ready = False
                    sync._metrics.log(self.group, sync.on_metrics)
        finally:
            self._loop = None
        if self._failure is not None:
            raise self._failure

    async def _phases(self, until_caught_up: bool) -> None:
        sync = self.sync_worker
        collections = sync.sources()
        begun = [await asyncio.to_thread(sync._begin, source) for source in collections]
        scans = [scan for scan in begun if scan is not None]
        sync.snapshots = scans
        if scans and not await self._snapshot(scans):
            return  # stopped before the snapshot was done
        readers = [await asyncio.to_thread(sync._open, source) for source in collections]
        sync._readers = readers
        sources = [_StreamSource(self, reader) for reader in readers]
        try:
            await self._stream(sources, until_caught_up)
        finally:
            sync.running = sync.ready = False
            await self._wind_down(sources)

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT call :meth:`stop` while inside (main thread only, as the sync
        worker's ``stop_on_signals``); the previous handlers come back on exit."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        previous: dict[signal.Signals, Any] = {}
        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                before = signal.getsignal(signum)
                loop.add_signal_handler(signum, self.stop)
                previous[signum] = before
        except NotImplementedError:  # a loop without signal support (Windows' proactor)
            for signum in previous:
                loop.remove_signal_handler(signum)
            with stop_on_signals(self.stop):
                yield
            return
        try:
            yield
        finally:
            for signum, handler in previous.items():
                loop.remove_signal_handler(signum)
                if handler is not None:  # None: a handler not set from Python, left as is
                    signal.signal(signum, handler)

    # -- the phases -------------------------------------------------------------------------
    async def _stream(self, sources: list[_StreamSource], until_caught_up: bool) -> None:
        sync = self.sync_worker
        last_log = time.monotonic()
        turn = 0
        while not self.stopping:
            taken = 0
            # Each table's stream first in turn: none keeps the others from the free places.
            turn += 1
            for source in sources[turn % len(sources) :] + sources[: turn % len(sources)]:
                taken += await self._round(source)
                if self.stopping:
                    return
            sync.ready = True
            sync._beat()
            for source in sources:
                # As the sync worker: every batch_size changes, and whenever reading pauses;
                # and at least as often as leases are renewed while handlers are slow.
                due = source.handled >= self.batch_size or taken == 0
                if due or time.monotonic() - source.checkpointed_at >= self.failover / 4:
                    await self._checkpoint(source)
            if time.monotonic() - last_log >= sync.log_interval:
                sync._metrics.log(self.group, sync.on_metrics)
                last_log = time.monotonic()
            if self._busy():
                await self._refill()
            elif taken == 0:
                settled = all(source.settled() for source in sources)
                if until_caught_up and settled and all(s.reader.caught_up() for s in sources):
                    return
                for source in sources:
                    await asyncio.to_thread(source.reader.stream.heartbeat)
                await self._sleep(sync.idle_wait)

    async def _snapshot(self, scans: list[SnapshotScan]) -> bool:
        """Deliver every scanned item; True once every snapshot is done (the stream comes
        next), False when stopped first. A segment is checkpointed only while none of its
        items is in flight (a finished segment's checkpoint is its end)."""
        sync = self.sync_worker
        sources = [_ScanSource(self, scan) for scan in scans]
        try:
            while not self.stopping:
                taken = 0
                for source in sources:
                    taken += await self._round(source)
                    await self._quiesce([source])
                    if self.stopping:
                        return False
                sync.ready = True
                sync._beat()
                for source in sources:
                    await self._checkpoint(source)
                if all(scan.done() for scan in scans):
                    for scan in scans:
                        await asyncio.to_thread(sync._finish_snapshot, scan)
                    return True
                if taken == 0:
                    await self._sleep(sync.idle_wait)
            return False
        finally:
            await self._wind_down(sources)

    async def _round(self, source: _Source) -> int:
        """A lease round when due, a fresh reading of shards that failed, then up to
        ``batch_size`` changes taken and their handling started; how many were taken."""
        try:
            await self._reader_step(source, source.reader.maintain)
            await self._repair(source)
            return await self._drain(source)
        except TransportError as error:
            # DynamoDB or the stream failed beyond the transport's retries: nothing was
            # checkpointed past what was handled; wait a little and go on.
            logger.warning(
                "worker %s: %s; continuing", self.group, error, extra={"group": self.group}
            )
            await self._sleep(self.sync_worker.retry_wait_max)
            return 0

    async def _drain(self, source: _Source) -> int:
        taken = 0
        while taken < self.batch_size and not self.stopping:
            room = self._state.free
            if room <= 0:
                break  # full: the handlers keep going; the loop waits for places
            want = min(room, self.batch_size - taken)
            if source.fetch_locked:
                items = await self._reader_step(source, source.fetch, want)
            else:
                items = await asyncio.to_thread(source.fetch, want)
            fetched = sum(1 for item in items if not item.skipped)
            self._admit(source, items)
            taken += fetched
            if fetched < want:
                break  # caught up for now
        return taken

    def _admit(self, source: _Source, items: list[_Taken]) -> None:
        """Put what was taken into its shard's order and start a task per change (each
        waits for the previous change of its item)."""
        state = self._state
        for item in items:
            track = source.tracks.get(item.shard_id)
            if track is None:
                continue  # not held (any more): the lease's owner delivers it
            entry = _Entry(track, item)
            track.add(entry)
            if item.skipped or item.ident in track.ahead:
                track.ahead.discard(item.ident)
                track.complete(entry)  # passed over, or handled in the reading before
                continue
            key = (source.table, item.key)
            previous = state.last.get(key)
            state.last[key] = entry
            state.free -= 1
            source.live += 1
            task = asyncio.create_task(self._handle(source, entry, key, previous))
            state.tasks.add(task)
            task.add_done_callback(state.tasks.discard)

    async def _handle(
        self, source: _Source, entry: _Entry, key: Hashable, previous: _Entry | None
    ) -> None:
        state = self._state
        track = entry.track
        try:
            if previous is not None:
                await previous.finished.wait()
            if self.stopping or track.closed:
                return  # not started: read again by whoever holds the shard next
            if await self._deliver(source, entry) and not entry.abandoned:
                track.complete(entry)
                source.handled += 1
                self.sync_worker._metrics.handled(source.table, track.shard_id, entry.record)
        except Exception as error:
            # The change was not handled (its dead letter could not be stored, say): read the
            # shard again from what was handled, so it is not skipped in this process either.
            track.close(rewind=True)
            if isinstance(error, TransportError):
                logger.warning(
                    "worker %s: %s %s: %s; reading it again",
                    self.group,
                    track.shard_id,
                    entry.item.position,
                    error,
                    extra={"group": self.group, "shard_id": track.shard_id},
                )
            else:
                if self._failure is None:
                    self._failure = error
                self.stop()
        finally:
            entry.finished.set()
            source.live -= 1
            state.free += 1
            state.ended.set()
            if state.last.get(key) is entry:
                del state.last[key]

    async def _deliver(self, source: _Source, entry: _Entry) -> bool:
        """Hand the change to its handlers (or dead-letter an undecodable record); False
        when the shard must not move past it."""
        item = entry.item
        sync = self.sync_worker
        if item.error is not None:
            await self._send_dead_letter(sync._undecodable(source.reader.collection, item.error))
            return True
        change = item.change
        assert change is not None
        dispatcher = self.dispatcher
        track = entry.track
        result = await dispatcher.arun(
            dispatcher.plan(change),
            transaction=self._transaction,
            commit=functools.partial(self._commit, source, entry),
            stopping=lambda: self.stopping or track.closed,
            pause=self._sleep,
        )
        metrics = sync._metrics.shard(source.table, change.shard_id)
        metrics.retries += result.retries
        if result.stopped or entry.abandoned:
            return False  # comes again (a stop, a lease lost): no dead letter now
        for info in result.failures:
            if self.on_failure == "stop":
                self.stop()  # strict order: never checkpoint past this change
                return False
            await self._send_dead_letter(info)
            metrics.dead_letters += 1
        return True

    def _transaction(self) -> WriteTransaction:
        from streamodel.transactions import WriteTransaction

        return WriteTransaction(self.engine)  # type: ignore[arg-type]

    async def _commit(self, source: _Source, entry: _Entry, tx: WriteTransaction) -> None:
        """Commit a transactional delivery with the shard's checkpoint at its change: once
        every earlier change of the shard is handled, under the shard's lock."""
        track = entry.track
        await entry.head.wait()
        async with source.lock(track.shard_id):
            if track.closed or not track.at_head(entry):
                # The lease moved, the shard is read again, or the worker stops before the
                # changes ahead were handled: this one comes again, its writes with it.
                entry.abandoned = True
                return
            assert entry.item.change is not None
            source.seal(entry.item.change, tx)
            await steps.arun(self.engine.transport, tx.commit_steps())
            # The checkpoint moved with the transaction: the handled prefix moves now, before
            # the lock is let go, so no checkpoint written after it goes back.
            track.complete(entry)

    async def _send_dead_letter(self, info: DeadLetterInfo) -> None:
        # A dead letter that cannot be stored must stop the shard, not vanish: the error
        # propagates and the shard is read again from what was handled.
        if self._dead_letter is not None:
            result = self._dead_letter(info)
            if inspect.isawaitable(result):
                await result
            return
        await asyncio.to_thread(self.sync_worker.send_dead_letter, info)

    # -- the reading task's steps -----------------------------------------------------------
    async def _reader_step(
        self,
        source: _Source,
        fn: Callable[..., Any] | None,
        *args: Any,
        prepare: Callable[[], Any] | None = None,
    ) -> Any:
        """Run ``fn(*args)`` on a thread with the locks of every held shard of ``source``
        (no transactional commit writes a lease item meanwhile), after telling the reader
        the handled prefixes; then follow the leases the step took or lost."""
        async with contextlib.AsyncExitStack() as stack:
            for sid in sorted(source.held()):
                await stack.enter_async_context(source.lock(sid))
            try:
                source.apply_marks()
                if prepare is not None:
                    prepare()
                return None if fn is None else await asyncio.to_thread(fn, *args)
            finally:
                source.sync_tracks()

    async def _repair(self, source: _Source) -> None:
        """Read again, from the handled prefix, the shards whose changes could not be
        handled."""
        broken = [t for t in source.tracks.values() if t.rewind]
        if not broken:
            return
        await self._reader_step(source, None, prepare=lambda: source.restart(broken))
        await self._sleep(self.sync_worker.retry_wait_max)

    async def _checkpoint(self, source: _Source) -> None:
        source.handled, source.checkpointed_at = 0, time.monotonic()
        await self._reader_step(
            source, source.checkpoint, self.sync_worker, prepare=source.before_checkpoint
        )

    async def _quiesce(self, sources: Sequence[_Source]) -> None:
        """Wait until no handler task of ``sources`` is left (they always end)."""
        state = self._state
        while any(source.live for source in sources):
            state.ended.clear()
            await state.ended.wait()

    async def _wind_down(self, sources: Sequence[_Source]) -> None:
        """Let the running handlers finish, checkpoint what was handled, release the leases."""
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            for handler in list(self._state.tasks):
                handler.cancel()
        try:
            await self._quiesce(sources)
            for source in sources:
                await self._checkpoint(source)
        finally:
            # Peers take over at once instead of waiting for the leases to expire.
            for source in sources:
                await asyncio.to_thread(source.reader.leases.release_all)

    def _busy(self) -> bool:
        """Fewer than half the places for changes in flight are free."""
        return self._state.free < max(1, self.max_in_flight // 2)

    async def _refill(self) -> None:
        """Wait until half the places are free again: changes are then taken (and the
        checkpoints written) a good number at a time, not one per handler that ends. Back
        to the lease round in time even while every handler is busy."""
        state = self._state
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.failover / 8
        while self._busy() and not self.stopping:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            state.ended.clear()
            await _first((state.ended, state.wake), remaining)

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if a stop is asked for."""
        if not self.stopping:
            await _first((self._state.wake,), seconds)


# -- what the reading task keeps per run, per source, per shard ---------------------------------


class _RunState:
    """One run's handler tasks and their bookkeeping (all touched on the event loop only)."""

    def __init__(self, max_in_flight: int) -> None:
        self.free = max_in_flight
        self.tasks: set[asyncio.Task[None]] = set()
        # The last change taken of each item (table, key): the next one waits for it.
        self.last: dict[Hashable, _Entry] = {}
        self.sources: list[_Source] = []
        self._ended: asyncio.Event | None = None
        self._wake: asyncio.Event | None = None

    @property
    def ended(self) -> asyncio.Event:
        """Set whenever a handler task ends."""
        if self._ended is None:
            self._ended = asyncio.Event()
        return self._ended

    @property
    def wake(self) -> asyncio.Event:
        """Set once a stop is asked for."""
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    def wake_all(self) -> None:
        """A stop: wake every wait, including transactional commits waiting for changes
        ahead of them that will not be handled now."""
        self.wake.set()
        for source in self.sources:
            for track in source.tracks.values():
                for entry in track.pending:
                    entry.head.set()


@dataclass
class _Taken:
    """One thing the reader took from a shard (or segment): a change, an undecodable record,
    or a record passed over (of an entity nobody here reads), which counts as handled."""

    shard_id: str
    # What the reader's mark_handled takes: a sequence number, a snapshot item's key
    # attributes, or (passed-over snapshot items) the segment checkpoint itself.
    position: Any
    skipped: bool = False
    key: Hashable = None
    change: Change | None = None
    error: UndecodableRecordError | None = None

    @property
    def ident(self) -> Hashable:
        """What tells this record from the others of its shard (or segment): its sequence
        number, or a snapshot item's key."""
        return self.position if isinstance(self.position, str) else self.key


@dataclass(eq=False)
class _Entry:
    track: _Track
    item: _Taken
    done: bool = False
    abandoned: bool = False  # a transactional commit that gave way: not handled
    head: asyncio.Event = field(default_factory=asyncio.Event)  # every change ahead is done
    finished: asyncio.Event = field(default_factory=asyncio.Event)  # its task is over

    @property
    def record(self) -> dict[str, Any]:
        if self.item.change is not None:
            return self.item.change.record
        return self.item.error.record if self.item.error is not None else {}


class _Track:
    """A held shard (or segment) since it was last positioned: the changes taken from it, in
    stream order, until they are handled without a gap (then they become marks)."""

    def __init__(self, shard_id: str) -> None:
        self.shard_id = shard_id
        self.pending: deque[_Entry] = deque()
        # Positions of the handled prefix not yet told to the reader, in order.
        self.marks: list[Any] = []
        self.closed = False
        self.rewind = False  # closed because a change could not be handled: read it again
        # Changes handled past one that could not be, in the reading before: not handed to
        # the handlers again when read again.
        self.ahead: set[Hashable] = set()

    def add(self, entry: _Entry) -> None:
        self.pending.append(entry)
        if len(self.pending) == 1:
            entry.head.set()

    def at_head(self, entry: _Entry) -> bool:
        return bool(self.pending) and self.pending[0] is entry

    def complete(self, entry: _Entry) -> None:
        """``entry`` is handled: the prefix moves over every handled change at its front
        (a closed track's moves no more)."""
        if entry.done:
            return
        entry.done = True
        if self.closed:
            return
        pending = self.pending
        while pending and pending[0].done:
            self.marks.append(pending.popleft().item.position)
        if pending:
            pending[0].head.set()

    def close(self, *, rewind: bool = False) -> None:
        """Not to be followed any more (lease lost, or read again): changes not started are
        dropped, waiting commits give way."""
        self.closed = True
        self.rewind = self.rewind or rewind
        for entry in self.pending:
            entry.head.set()


def _item_key(keys: Mapping[str, Any]) -> Hashable:
    """An item's key attributes (low-level values) as something hashable."""
    return tuple(sorted((name, tuple(sorted(value.items()))) for name, value in keys.items()))


def _sequence(record: Mapping[str, Any]) -> str:
    return str(record.get("dynamodb", {}).get("SequenceNumber", ""))


class _Source:
    """A reader (one table's stream, or one table's snapshot scan) as the async worker sees
    it: its per-shard tracks, per-shard locks and live handler tasks."""

    # Whether taking changes touches lease state (so it runs under the shard locks).
    fetch_locked = False

    def __init__(self, worker: AsyncWorker, reader: Any) -> None:
        self.reader = reader
        self.table = worker.sync_worker._table(reader.collection)
        self.tracks: dict[str, _Track] = {}
        self.locks: dict[str, asyncio.Lock] = {}
        self.live = 0
        # Changes handled since the last checkpoint step, and when that was (monotonic).
        self.handled = 0
        self.checkpointed_at = time.monotonic()
        worker._state.sources.append(self)

    def held(self) -> set[str]:
        return set(self.reader.leases.held)

    def lock(self, shard_id: str) -> asyncio.Lock:
        lock = self.locks.get(shard_id)
        if lock is None:
            lock = self.locks[shard_id] = asyncio.Lock()
        return lock

    def sync_tracks(self) -> None:
        """Follow the leases: a shard no longer held is dropped, a newly held one starts a
        track (the reader placed it at its checkpoint)."""
        held = self.held()
        for sid in [sid for sid in self.tracks if sid not in held]:
            self.tracks.pop(sid).close()
        for sid in held:
            if sid not in self.tracks:
                self.tracks[sid] = _Track(sid)

    def apply_marks(self) -> None:
        """Tell the reader the handled prefix of every track (under the shard locks)."""
        for sid, track in self.tracks.items():
            if track.marks:
                self.mark(sid, track.marks)
                track.marks = []

    def restart(self, tracks: list[_Track]) -> None:
        """Read these shards again from their handled prefix (marks applied first)."""
        for track in tracks:
            if self.tracks.get(track.shard_id) is track:
                self.rewind_shard(track.shard_id)
                fresh = self.tracks[track.shard_id] = _Track(track.shard_id)
                done = {e.item.ident for e in track.pending if e.done and not e.item.skipped}
                fresh.ahead = track.ahead | done

    def settled(self) -> bool:
        """No handler running, every handled change told to the reader, and no shard
        waiting to be read again."""
        tracks = self.tracks.values()
        return self.live == 0 and not any(t.marks or t.rewind for t in tracks)

    def before_checkpoint(self) -> None:
        """Under the locks, after the marks, right before the checkpoint is written."""

    # -- the reader's own operations (run on the reading thread unless said) --------------
    def fetch(self, n: int) -> list[_Taken]:
        raise NotImplementedError

    def mark(self, shard_id: str, positions: list[Any]) -> None:
        raise NotImplementedError

    def rewind_shard(self, shard_id: str) -> None:
        raise NotImplementedError

    def seal(self, change: Change, tx: WriteTransaction) -> None:
        raise NotImplementedError

    def checkpoint(self, sync: Worker) -> None:
        raise NotImplementedError


class _StreamSource(_Source):
    """One table's stream under this process's leases (a :class:`LeasedStream`)."""

    reader: LeasedStream

    def __init__(self, worker: AsyncWorker, reader: LeasedStream) -> None:
        super().__init__(worker, reader)
        self._sync = worker.sync_worker
        # Records passed over are handled in their turn, as part of the shard's order (the
        # LeasedStream's own hook would mark them handled at once, past changes in flight).
        self._skipped: list[_Taken] = []
        reader.stream.on_skip = lambda raw: self._skipped.append(
            _Taken(raw.shard_id, raw.sequence_number, skipped=True)
        )
        self.sync_tracks()

    def fetch(self, n: int) -> list[_Taken]:
        taken = self._skipped = []
        stream = self.reader.stream
        count = 0
        while count < n:
            try:
                change = next(stream)
            except UndecodableRecordError as error:
                record = error.record
                taken.append(
                    _Taken(
                        error.shard_id,
                        _sequence(record),
                        key=_item_key(record.get("dynamodb", {}).get("Keys", {})),
                        error=error,
                    )
                )
                count += 1
                continue
            except Exception:
                if taken:
                    break  # what was taken goes to its handlers; the error comes again
                raise
            if change is None:
                break
            taken.append(
                _Taken(
                    change.shard_id,
                    change.sequence_number,
                    key=_item_key(change.record["dynamodb"]["Keys"]),
                    change=change,
                )
            )
            count += 1
        return taken

    def mark(self, shard_id: str, positions: list[Any]) -> None:
        self.reader.mark_handled(shard_id, positions[-1])

    def rewind_shard(self, shard_id: str) -> None:
        self.reader.rewind(shard_id)

    def seal(self, change: Change, tx: WriteTransaction) -> None:
        self._sync._seal(self.reader, change, tx)

    def checkpoint(self, sync: Worker) -> None:
        sync._checkpoint([self.reader])


class _ScanSource(_Source):
    """One table's snapshot scan under this process's segment leases."""

    reader: SnapshotScan
    # Taking items reads and may write segment state (a passed-over item's count).
    fetch_locked = True

    def __init__(self, worker: AsyncWorker, reader: SnapshotScan) -> None:
        super().__init__(worker, reader)
        self._sync = worker.sync_worker
        self.sync_tracks()

    def fetch(self, n: int) -> list[_Taken]:
        scan = self.reader
        taken: list[_Taken] = []
        count = 0
        while count < n:
            before = dict(scan.handled)
            try:
                change = scan.next_change()
            except UndecodableRecordError as error:
                self._passed_over(before, taken)
                keys = error.record["dynamodb"]["Keys"]
                taken.append(_Taken(error.shard_id, keys, key=_item_key(keys), error=error))
                count += 1
                continue
            except Exception:
                self._passed_over(before, taken)
                if taken:
                    break  # what was taken goes to its handlers; the error comes again
                raise
            self._passed_over(before, taken)
            if change is None:
                break
            keys = change.record["dynamodb"]["Keys"]
            taken.append(_Taken(change.shard_id, keys, key=_item_key(keys), change=change))
            count += 1
        return taken

    def _passed_over(self, before: dict[str, str], taken: list[_Taken]) -> None:
        """Items of entities nobody here reads were marked handled by the scan at once: take
        that back, and let them count as handled in their turn."""
        handled = self.reader.handled
        for sid, value in list(handled.items()):
            if before.get(sid) != value:
                taken.append(_Taken(sid, value, skipped=True))
                if sid in before:
                    handled[sid] = before[sid]
                else:
                    del handled[sid]

    def mark(self, shard_id: str, positions: list[Any]) -> None:
        scan = self.reader
        for position in positions:
            if isinstance(position, str):  # a passed-over item: its checkpoint, counted
                scan.handled[shard_id] = position
            else:
                scan.mark_handled(shard_id, position)

    def rewind_shard(self, shard_id: str) -> None:
        self.reader.rewind(shard_id)

    def before_checkpoint(self) -> None:
        # Only called with no handler running: a segment with changes taken and not handled
        # (left at a stop) is read again from its handled prefix, so its scan does not look
        # finished and its checkpoint never becomes the segment's end past them.
        self.restart([t for t in self.tracks.values() if t.pending])

    def seal(self, change: Change, tx: WriteTransaction) -> None:
        self._sync._seal_segment(self.reader, change, tx)

    def checkpoint(self, sync: Worker) -> None:
        sync._checkpoint_segments([self.reader])


async def _first(events: Iterable[asyncio.Event], timeout: float | None) -> None:
    """Wait until one of ``events`` is set, or ``timeout`` seconds."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
