"""AsyncWorker against DynamoDB Local: concurrent handlers in order per key, checkpoints, dead
letters, exact transactional projections, signals, SIGKILLs, and one group moving between
the async and the sync worker."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from streamodel import Column, Engine, Integer, MissingObjectsError, String, new_base
from streamodel.aio import AsyncEngine, AsyncWorker
from streamodel.stream import Change, DeadLetterInfo, Worker
from streamodel.stream.checkpoints import MARKER_PREFIX
from streamodel.testing.fake_streams import FakeStreams
from streamodel.testing.http import FakeStreamsServer
from streamodel.transactions import WriteTransaction

APPS = Path(__file__).parent / "apps"
sys.path.insert(0, str(APPS))
import aio_worker_app  # noqa: E402  (the subprocess app's models)
from test_worker_local import (  # noqa: E402  (the sync worker tests' subprocess helpers)
    _assert_children_used,
    _kill_once_it_handles,
    _start_worker,
    _worker_env,
    wait_for,
)
from written import complete_lines  # noqa: E402

T = TypeVar("T")

Base = new_base()


class AioOrder(Base):
    class Meta:
        table_name = "aio-w-order"

    id = Column(String, hash_key=True)
    n = Column(Integer)


class AioLetter(Base):
    class Meta:
        table_name = "aio-w-letter"

    id = Column(String, hash_key=True)
    n = Column(Integer)


class AioTotal(Base):
    class Meta:
        table_name = "aio-w-total"

    id = Column(String, hash_key=True)
    n = Column(Integer)


class AioCount(Base):
    class Meta:
        table_name = "aio-w-count"
        stream = None

    id = Column(String, hash_key=True)
    count = Column(Integer)
    version = Column(Integer, version=True)


class AioShared(Base):
    class Meta:
        table_name = "aio-w-shared"

    id = Column(String, hash_key=True)
    n = Column(Integer)


class AioSlow(Base):
    class Meta:
        table_name = "aio-w-slow"

    id = Column(String, hash_key=True)
    n = Column(Integer)


class AioSnap(Base):
    class Meta:
        table_name = "aio-w-snap"

    id = Column(String, hash_key=True)
    n = Column(Integer)


class AioTick(Base):
    class Meta:
        table_name = "aio-w-tick"

    id = Column(String, hash_key=True)
    n = Column(Integer)


@pytest.fixture(scope="module")
def sync_engine(local_endpoint: str, table_template: str) -> Engine:
    """A sync engine on the session's DynamoDB Local (the lean transport) with this module's
    tables and the subprocess app's bound."""
    engine = Engine(endpoint_url=local_endpoint, table_name_template=table_template)
    engine.bind(base=Base)
    engine.bind(base=aio_worker_app.Base)
    return engine


def run(body: Callable[[AsyncEngine], Awaitable[T]], template: str) -> T:
    """Run a test body on a fresh event loop with an AsyncEngine it closes at the end."""

    async def main() -> T:
        async with AsyncEngine(table_name_template=template) as engine:
            return await body(engine)

    return asyncio.run(main())


def group() -> str:
    return f"ag{uuid.uuid4().hex[:12]}"


async def yields(times: int) -> None:
    """Give the event loop to the other tasks ``times`` times (no time passes)."""
    for _ in range(times):
        await asyncio.sleep(0)


def test_changes_run_concurrently_in_order_per_key_and_checkpoints_hold(
    sync_engine: Engine, table_template: str
) -> None:
    """Changes of different keys are handled concurrently, those of one key one after the
    other in stream order (an earlier change yields longer, so without the order per key the
    later one would end first); a rerun of the group redelivers nothing, and a later change
    only is delivered to the next run."""
    keys = [f"o{uuid.uuid4().hex[:8]}" for _ in range(12)]
    versions = 5

    async def body(engine: AsyncEngine) -> None:
        for n in range(versions):
            await asyncio.gather(*(engine.save(AioOrder(id=k, n=n)) for k in keys))
        name = group()
        worker = AsyncWorker(engine, group=name, failover=2)
        got: dict[str, list[int]] = defaultdict(list)
        active: set[str] = set()
        overlaps: list[str] = []
        peak = 0

        @worker.subscribe(AioOrder)
        async def handle(change: Change) -> None:
            nonlocal peak
            key = change.key["id"]
            if key in active:
                overlaps.append(key)
            active.add(key)
            peak = max(peak, len(active))
            await yields(versions - change.new.n)
            got[key].append(change.new.n)
            active.discard(key)

        await worker.run(until_caught_up=True)
        assert overlaps == []
        assert {k: got[k] for k in keys} == {k: list(range(versions)) for k in keys}
        assert peak > 1, "no two changes were ever handled at once"

        again = AsyncWorker(engine, group=name, failover=2)
        redelivered: list[Change] = []
        again.subscribe(AioOrder)(redelivered.append)  # a plain handler: called on the loop
        await again.run(until_caught_up=True)
        assert redelivered == []
        await engine.save(AioOrder(id=keys[0], n=99))
        await again.run(until_caught_up=True)
        assert [(c.key["id"], c.new.n) for c in redelivered] == [(keys[0], 99)]
        # Every lease was given up when the run ended.
        states = await asyncio.to_thread(
            again.store.load, again.sync_worker.engine.stream_arn(AioOrder)
        )
        leases = [s for sid, s in states.items() if not sid.startswith(MARKER_PREFIX)]
        assert leases and all(s.owner is None for s in leases)

    run(body, table_template)


def test_a_checkpoint_never_passes_a_change_still_in_flight(
    sync_engine: Engine, table_template: str
) -> None:
    """While the first change of a shard is still in its handler, the later ones are handled
    and the worker goes round (checkpointing) several times: the stored checkpoint stays
    before the first change. Once it is handled, a stop checkpoints past all of them."""
    slow = f"w{uuid.uuid4().hex[:8]}"
    quick = [f"q{uuid.uuid4().hex[:8]}" for _ in range(5)]

    async def body(engine: AsyncEngine) -> None:
        for key in [slow, *quick]:
            await engine.save(AioSlow(id=key, n=1))
        name = group()
        worker = AsyncWorker(engine, group=name, failover=2)
        release = asyncio.Event()
        done: list[str] = []
        sequences: dict[str, str] = {}

        @worker.subscribe(AioSlow)
        async def handle(change: Change) -> None:
            sequences[change.key["id"]] = str(change.sequence_number)
            if change.key["id"] == slow:
                await release.wait()
            done.append(change.key["id"])

        async def until(what: str, predicate: Callable[[], bool]) -> None:
            while not predicate():
                assert not task.done(), f"the worker ended before {what}"
                await asyncio.sleep(0.01)  # polling the condition

        task = asyncio.create_task(worker.run())
        await until("the quick changes were handled", lambda: sorted(done) == sorted(quick))
        beat = worker.sync_worker._heartbeat  # its last_beat moves every round
        rounds: set[float | None] = set()

        def went_round() -> bool:
            rounds.add(beat.last_beat)
            return len(rounds) > 3

        await until("three more rounds", went_round)
        arn = worker.sync_worker.engine.stream_arn(AioSlow)
        (state,) = [
            s
            for sid, s in (await asyncio.to_thread(worker.store.load, arn)).items()
            if not sid.startswith(MARKER_PREFIX)
        ]
        assert state.checkpoint is None or int(state.checkpoint) < int(sequences[slow])
        release.set()
        await until("the slow change was handled", lambda: len(done) == 6)
        worker.stop()
        await task
        rerun = AsyncWorker(engine, group=name, failover=2)
        again: list[Change] = []
        rerun.subscribe(AioSlow)(again.append)
        await rerun.run(until_caught_up=True)
        assert again == []

    run(body, table_template)


def test_dead_letters_after_max_attempts_and_the_key_goes_on_in_order(
    sync_engine: Engine, table_template: str
) -> None:
    """A change whose async handler fails max_attempts times is dead-lettered (stored in the
    state table with its error), the next change of the same key comes after it, every
    other change is handled, and the checkpoint moves past it. A coroutine dead_letter
    destination is awaited."""
    poison = f"p{uuid.uuid4().hex[:8]}"
    others = [f"l{uuid.uuid4().hex[:8]}" for _ in range(4)]

    async def body(engine: AsyncEngine) -> None:
        await engine.save(AioLetter(id=poison, n=0))
        await asyncio.gather(*(engine.save(AioLetter(id=k, n=0)) for k in others))
        await engine.save(AioLetter(id=poison, n=1))
        name = group()
        worker = AsyncWorker(
            engine, group=name, max_attempts=3, retry_wait=0.001, retry_wait_max=0.01
        )
        tries: Counter[int] = Counter()
        handled: list[tuple[str, int]] = []

        @worker.subscribe(AioLetter)
        async def handle(change: Change) -> None:
            key, n = change.key["id"], change.new.n
            if key == poison and n == 0:
                tries[n] += 1
                await asyncio.sleep(0)
                raise RuntimeError("cannot handle this one")
            handled.append((key, n))

        await worker.run(until_caught_up=True)
        assert tries[0] == 3
        assert sorted(handled) == sorted([(k, 0) for k in others] + [(poison, 1)])
        (letter,) = await asyncio.to_thread(lambda: list(worker.store.dead_letters()))
        assert letter.record["dynamodb"]["Keys"]["id"] == {"S": poison}
        assert "cannot handle this one" in letter.error and letter.attempts == 3

        rerun = AsyncWorker(engine, group=name)
        again: list[Change] = []
        rerun.subscribe(AioLetter)(again.append)
        await rerun.run(until_caught_up=True)
        assert again == []

        # A coroutine destination gets the whole change (another group, one attempt).
        got: list[DeadLetterInfo] = []

        async def destination(info: DeadLetterInfo) -> None:
            await asyncio.sleep(0)
            got.append(info)

        strict = AsyncWorker(engine, group=group(), max_attempts=1, dead_letter=destination)
        strict.subscribe(AioLetter)(handle)
        await strict.run(until_caught_up=True)
        assert [(i.change.key["id"], i.change.new.n) for i in got if i.change] == [(poison, 0)]

    run(body, table_template)


def test_a_dead_letter_that_cannot_be_stored_is_read_again_before_the_next_change(
    sync_engine: Engine, table_template: str
) -> None:
    """When storing a dead letter fails with a server error, the worker goes on, reads the
    shard again from what was handled, and dead-letters that change; the next change of the
    same item is handled only after it, and the changes of other items handled meanwhile
    are not handed to their handlers again: each change is handled once."""
    from streamodel.exceptions import ServerError

    poison = f"d{uuid.uuid4().hex[:8]}"
    others = [f"e{uuid.uuid4().hex[:8]}" for _ in range(3)]

    async def body(engine: AsyncEngine) -> None:
        await engine.save(AioLetter(id=poison, n=10))
        await asyncio.gather(*(engine.save(AioLetter(id=k, n=10)) for k in others))
        await engine.save(AioLetter(id=poison, n=11))
        events: list[str] = []
        stores = 0

        async def flaky(info: DeadLetterInfo) -> None:
            nonlocal stores
            stores += 1
            if stores == 1:
                raise ServerError("dead-letter store unavailable", code="InternalServerError")
            assert info.change is not None
            events.append(f"dead {info.change.key['id']} {info.change.new.n}")

        worker = AsyncWorker(
            engine,
            group=group(),
            max_attempts=1,
            retry_wait_max=0.01,
            dead_letter=flaky,
            failover=2,
        )

        @worker.subscribe(AioLetter)
        async def handle(change: Change) -> None:
            await asyncio.sleep(0)
            if change.key["id"] == poison and change.new.n == 10:
                raise RuntimeError("poison")
            if change.new.n >= 10:
                events.append(f"handled {change.key['id']} {change.new.n}")

        await worker.run(until_caught_up=True)
        assert stores == 2
        mine = [e for e in events if poison in e]
        assert mine == [f"dead {poison} 10", f"handled {poison} 11"]
        assert sorted(e for e in events if poison not in e) == sorted(
            f"handled {k} 10" for k in others
        )

    run(body, table_template)


def test_transactional_async_projection_is_exact_across_a_stop_mid_work(
    sync_engine: Engine, table_template: str
) -> None:
    """An async transactional projection counting changes per key, run with many handlers
    at once, stopped in the middle (handlers whose transactions waited for earlier changes
    give way) and run again, counts every change exactly once."""
    keys = [f"t{uuid.uuid4().hex[:8]}" for _ in range(10)]
    versions = 4

    async def body(engine: AsyncEngine) -> None:
        for n in range(versions):
            await asyncio.gather(*(engine.save(AioTotal(id=k, n=n)) for k in keys))
        name = group()
        bodies = 0
        active = 0
        peak = 0

        def make(stop_after: int | None) -> AsyncWorker:
            worker = AsyncWorker(engine, group=name, failover=2)

            @worker.subscribe(AioTotal, transactional=True)
            async def count(change: Change, tx: WriteTransaction) -> None:
                nonlocal bodies, active, peak
                active += 1
                peak = max(peak, active)
                seen = AioCount(id=change.key["id"])
                try:
                    await engine.load(seen, consistent=True)
                except MissingObjectsError:
                    seen.count = 0
                seen.count += 1
                tx.save(seen)
                active -= 1
                bodies += 1
                if stop_after is not None and bodies == stop_after:
                    worker.stop()

            return worker

        await make(stop_after=15).run()
        stopped_at = bodies
        await make(stop_after=None).run(until_caught_up=True)
        assert stopped_at >= 15 and bodies > stopped_at
        for key in keys:
            seen = AioCount(id=key)
            await engine.load(seen, consistent=True)
            assert seen.count == versions, key
        assert peak > 1, "the transactional handlers never ran at once"

    run(body, table_template)


def test_sigterm_stops_checkpoints_and_releases(sync_engine: Engine, table_template: str) -> None:
    """SIGTERM (through the event loop's signal handler, in place of the one set before, which
    comes back after) stops the worker: running handlers finish, it checkpoints and releases;
    the next run delivers the rest, none of it again."""
    keys = [f"s{uuid.uuid4().hex[:8]}" for _ in range(30)]

    async def body(engine: AsyncEngine) -> None:
        await asyncio.gather(*(engine.save(AioShared(id=k, n=1)) for k in keys))
        name = group()
        first: list[str] = []
        worker = AsyncWorker(engine, group=name, max_in_flight=4, failover=2)

        @worker.subscribe(AioShared)
        async def handle(change: Change) -> None:
            first.append(change.key["id"])
            if len(first) == 5:
                os.kill(os.getpid(), signal.SIGTERM)
            await yields(3)

        outside_got: list[int] = []

        def outside(signum: int, frame: Any) -> None:
            outside_got.append(signum)  # not the worker's handler: fail, but do not hang
            worker.stop()

        previous = signal.signal(signal.SIGTERM, outside)
        try:
            await worker.run()  # returns on SIGTERM
            assert signal.getsignal(signal.SIGTERM) is outside  # given back
        finally:
            signal.signal(signal.SIGTERM, previous)
        assert outside_got == [], "SIGTERM went to the handler set before the worker's"
        assert 5 <= len(first) < len(keys)
        second: list[str] = []
        rest = AsyncWorker(engine, group=name, failover=2)
        rest.subscribe(AioShared)(lambda change: second.append(change.key["id"]))
        await rest.run(until_caught_up=True)
        assert sorted(first + second) == sorted(keys)

    run(body, table_template)


KILLS = 3


def test_sigkilled_async_worker_loses_nothing_and_its_projection_stays_exact(
    sync_engine: Engine, local_endpoint: str, table_template: str, tmp_path: Path
) -> None:
    """`streamodel worker` runs an AsyncWorker of two streams; SIGKILLed while it has work in
    hand, 3 times, and restarted, it hands every change of one table to its plain handler to
    the end at least once (handlers of different items end out of stream order), and its
    transactional projection of the other table counts every change exactly once."""
    out = tmp_path / "handled.txt"
    env = _worker_env(sync_engine, local_endpoint, table_template, group(), out)
    env["STREAMODEL_TEST_HANDLER_SECONDS"] = "0.01"
    app = "aio_worker_app:worker"
    rng = random.Random(4321)
    source, tally = aio_worker_app.AioSource, aio_worker_app.AioTally
    run_id = uuid.uuid4().hex[:6]
    keys = [f"{run_id}-{i}" for i in range(12)]
    sources = dict.fromkeys(keys, 0)
    tallies = dict.fromkeys(keys, 0)
    mid_work = mid_tally = 0
    for _ in range(KILLS):
        for _ in range(60):
            key = rng.choice(keys)
            sources[key] += 1
            sync_engine.save(source(id=key, value=sources[key]))
            if rng.random() < 0.5:
                key = rng.choice(keys)
                tallies[key] += 1
                sync_engine.save(tally(id=key, value=tallies[key]))
        added = _kill_once_it_handles(_start_worker(env, app=app), out, new=rng.randint(20, 40))
        lines = [line.split() for line in complete_lines(out)]
        handled = {line[0] for line in lines if len(line) == 3}
        counting = {line[0] for line in lines if len(line) == 4}
        if added > 0 and len(handled) < sum(sources.values()):
            mid_work += 1
        if len(counting) < sum(tallies.values()):
            mid_tally += 1
    assert mid_work == KILLS, f"only {mid_work} of {KILLS} kills came while the worker had work"
    assert mid_tally > 0, "no kill came while the projection had changes to count"
    final = _start_worker(env, "--until-caught-up", app=app)
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()

    expected = {
        change.sequence_number
        for change in all_changes(sync_engine, source)
        if change.key["id"] in sources
    }
    delivered = [line.split()[0] for line in complete_lines(out) if len(line.split()) == 3]
    assert len(expected) == sum(sources.values())
    assert expected <= set(delivered), f"missing {len(expected - set(delivered))} change(s)"
    for key, value in tallies.items():
        seen = aio_worker_app.AioSeen(id=key)
        if value:
            sync_engine.load(seen, consistent=True)
            assert seen.count == value, key
    _assert_children_used(sync_engine, out, processes=KILLS + 1)


def all_changes(engine: Engine, model: type[Any]) -> list[Change]:
    """Every change of ``model``'s stream (read until five empty answers in a row)."""
    stream = engine.stream(model, "trim_horizon")
    found: list[Change] = []
    idle = 0
    while idle < 5:
        change = next(stream)
        if change is None:
            idle += 1
            continue
        idle = 0
        found.append(change)
    return found


def test_snapshot_then_the_stream_with_async_handlers(
    sync_engine: Engine, table_template: str
) -> None:
    """start="snapshot": every stored item reaches the async handlers once, as a snapshot
    insert, several at once, over the segments; a transactional handler's writes commit with
    the segment checkpoints; then the changes made after come from the stream."""
    keys = [f"n{uuid.uuid4().hex[:8]}" for _ in range(40)]

    async def body(engine: AsyncEngine) -> None:
        await asyncio.gather(*(engine.save(AioSnap(id=k, n=1)) for k in keys))
        name = group()
        got: list[tuple[str, bool]] = []
        active = peak = 0

        def make() -> AsyncWorker:
            worker = AsyncWorker(
                engine, group=name, start="snapshot", snapshot_segments=3, batch_size=10
            )

            @worker.subscribe(AioSnap)
            async def handle(change: Change) -> None:
                nonlocal active, peak
                active += 1
                peak = max(peak, active)
                await yields(2)
                got.append((change.key["id"], change.snapshot))
                active -= 1

            @worker.subscribe(AioSnap, transactional=True)
            async def count(change: Change, tx: WriteTransaction) -> None:
                if change.key["id"] in keys:
                    tx.save(AioCount(id=f"snap-{change.key['id']}", count=1))

            return worker

        await make().run(until_caught_up=True)
        # Each item once, from the scan; none again from the stream (pinned after them).
        assert sorted(got) == sorted((k, True) for k in keys)
        assert peak > 1, "no two snapshot items were ever handled at once"
        for key in keys[:3]:
            copy = AioCount(id=f"snap-{key}")
            await engine.load(copy, consistent=True)
            assert copy.count == 1
        got.clear()
        await engine.save(AioSnap(id=keys[0], n=2))
        await make().run(until_caught_up=True)
        assert got == [(keys[0], False)]

    run(body, table_template)


def test_async_and_sync_workers_of_one_group_continue_from_each_others_checkpoints(
    sync_engine: Engine, table_template: str
) -> None:
    """One group run by an AsyncWorker, then a Worker, then an AsyncWorker again: each run
    gets exactly the changes made since the previous one (clean stops: no redelivery)."""
    name = group()
    batches = [[f"h{b}-{uuid.uuid4().hex[:6]}" for _ in range(8)] for b in range(3)]

    def save(batch: list[str]) -> None:
        for key in batch:
            sync_engine.save(AioTick(id=key, n=1))

    async def async_run(engine: AsyncEngine) -> list[str]:
        got: list[str] = []
        worker = AsyncWorker(engine, group=name, failover=2)

        @worker.subscribe(AioTick)
        async def handle(change: Change) -> None:
            got.append(change.key["id"])

        await worker.run(until_caught_up=True)
        return got

    save(batches[0])
    assert sorted(run(async_run, table_template)) == sorted(batches[0])
    save(batches[1])
    worker = Worker(sync_engine, group=name, failover=2)
    got: list[str] = []
    worker.subscribe(AioTick)(lambda change: got.append(change.key["id"]))
    worker.run(until_caught_up=True)
    assert sorted(got) == sorted(batches[1])
    save(batches[2])
    assert sorted(run(async_run, table_template)) == sorted(batches[2])


def test_async_and_sync_workers_share_and_hand_over_shards(
    sync_engine: Engine,
    local_endpoint: str,
    table_template: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An AsyncWorker and a Worker of one group, running at once on a 4-shard stream (a
    FakeStreams; leases and checkpoints in DynamoDB Local), both hold shards; when the sync
    one stops, the async one takes its shards over from their checkpoints, and when the
    async one stops, a sync one takes everything over. Every record is handled; one comes
    twice only from a lease stolen while both ran (at-least-once), never across a stop."""
    arn = sync_engine.stream_arn(AioTick)
    fake = FakeStreams(stream_arn=arn, shards=4)
    name = group()
    handled: list[tuple[str, str, str]] = []  # (who, shard, sequence number)
    lock = threading.Lock()

    def put(round_: int) -> None:
        for i in range(24):
            key = {"id": {"S": f"x{i}"}}
            fake.put(key, new_image={**key, "n": {"N": str(round_)}})

    def note(who: str, change: Change) -> None:
        with lock:
            handled.append((who, change.shard_id, change.sequence_number))

    def holders(who: str) -> set[str]:
        with lock:
            return {shard for w, shard, _ in handled if w == who}

    put(1)
    with FakeStreamsServer(fake) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", server.endpoint_url)
        streams = Engine(table_name_template=table_template)
        sync_worker = Worker(streams, group=name, failover=1, batch_size=5)
        sync_worker.subscribe(AioTick)(lambda change: note("sync", change))
        thread = threading.Thread(target=sync_worker.run, daemon=True)

        async def body(engine: AsyncEngine) -> None:
            worker = AsyncWorker(engine, group=name, failover=1, batch_size=5)

            @worker.subscribe(AioTick)
            async def handle(change: Change) -> None:
                await asyncio.sleep(0)
                note("async", change)

            task = asyncio.create_task(worker.run())
            thread.start()
            await asyncio.to_thread(
                wait_for,
                lambda: (bool(holders("sync")) and bool(holders("async"))) or task.done(),
                what="both workers handling records of their own shards",
            )
            assert not task.done(), task.exception() if task.done() else None
            sync_worker.stop()
            await asyncio.to_thread(thread.join, 30)
            put(2)
            await asyncio.to_thread(
                wait_for,
                lambda: {(s, q) for _, s, q in handled} >= all_records(fake) or task.done(),
                what="the async worker taking the stopped worker's shards over",
            )
            worker.stop()
            await task

        run(body, table_template)
        assert not thread.is_alive()
        put(3)
        last = Worker(streams, group=name, failover=1)
        last.subscribe(AioTick)(lambda change: note("last", change))
        last.run(until_caught_up=True)

    round_two = {(s, q) for s in fake.shard_ids() for q in sequences(fake, s, 2)}
    round_three = {(s, q) for s in fake.shard_ids() for q in sequences(fake, s, 3)}
    assert {(s, q) for w, s, q in handled if w == "async"} >= round_two
    assert {(s, q) for w, s, q in handled if w == "last"} >= round_three
    assert len(holders("last")) == 4
    times = Counter((s, q) for _, s, q in handled)
    assert set(times) == all_records(fake)
    # Hand-overs by a stop (a final checkpoint, then the leases released) redeliver nothing;
    # only leases stolen while both ran (round one's records) may bring changes again.
    assert {r: n for r, n in times.items() if n > 1 and r in round_two | round_three} == {}


def all_records(fake: FakeStreams) -> set[tuple[str, str]]:
    return {
        (sid, r["dynamodb"]["SequenceNumber"])
        for sid in fake.shard_ids()
        for r in fake.records(sid)
    }


def sequences(fake: FakeStreams, shard_id: str, n: int) -> list[str]:
    """The sequence numbers of the records of round ``n`` in one shard."""
    return [
        r["dynamodb"]["SequenceNumber"]
        for r in fake.records(shard_id)
        if r["dynamodb"]["NewImage"]["n"] == {"N": str(n)}
    ]
