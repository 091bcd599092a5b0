"""AsyncWorker's parts without DynamoDB: the Dispatcher's asyncio driver (the same decisions
as the sync one), the handled-prefix tracking that checkpoints follow, the options, and
`streamodel worker` running an AsyncWorker."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamodel import Column, Integer, String, new_base
from streamodel import cli as cli_module
from streamodel.aio import AsyncEngine, AsyncWorker
from streamodel.aio.worker import _Entry, _Taken, _Track
from streamodel.exceptions import InvalidModelError, InvalidPositionError
from streamodel.stream.dispatch import Dispatcher, DispatchResult
from streamodel.stream.records import Change, decode_record
from streamodel.testing.fake_streams import FakeStreams

Base = new_base()


class Ticket(Base):
    id = Column(String, hash_key=True)
    hits = Column(Integer)


def a_change() -> Change:
    record: dict[str, Any] = FakeStreams().put(
        {"id": {"S": "t1"}}, new_image={"id": {"S": "t1"}, "hits": {"N": "1"}}
    )
    return decode_record(Ticket, record, shard_id="shard-1", sequence_number="42")


class FakeTransaction:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    def commit(self) -> None:
        self.log.append("commit")


def failing(times: int, log: list[str], name: str) -> Callable[[Change], None]:
    def handler(change: Change) -> None:
        log.append(name)
        if log.count(name) <= times:
            raise RuntimeError(f"{name} failed")

    return handler


def async_failing(times: int, log: list[str], name: str) -> Callable[[Change], Any]:
    async def handler(change: Change) -> None:
        await asyncio.sleep(0)
        log.append(name)
        if log.count(name) <= times:
            raise RuntimeError(f"{name} failed")

    return handler


def test_arun_awaits_coroutine_handlers_and_calls_plain_ones() -> None:
    """A plan of an ``async def`` handler and a plain one: both run, in subscription order,
    the coroutine to its end."""
    log: list[str] = []
    dispatcher = Dispatcher(group="g")

    @dispatcher.subscribe(Ticket)
    async def first(change: Change) -> None:
        log.append("first started")
        await asyncio.sleep(0)
        log.append("first done")

    dispatcher.subscribe(Ticket)(lambda change: log.append("plain"))

    async def commit(tx: Any) -> None:
        raise AssertionError("no transactional handler: no commit")

    result = asyncio.run(
        dispatcher.arun(
            dispatcher.plan(a_change()), transaction=lambda: FakeTransaction(log), commit=commit
        )
    )
    assert result.delivered and result.retries == 0
    assert log == ["first started", "first done", "plain"]


@pytest.mark.parametrize(
    ("max_attempts", "fails", "on_failure"),
    [(3, 2, "dead_letter"), (3, 5, "dead_letter"), (2, 5, "stop"), (1, 1, "dead_letter")],
)
def test_arun_decides_as_run_does(max_attempts: int, fails: int, on_failure: Any) -> None:
    """The same plan (a handler failing ``fails`` times, then one that succeeds), run by the
    sync driver and awaited by the asyncio one: the same attempts, pauses and result."""

    def outcome(result: DispatchResult, log: list[str], pauses: list[float]) -> Any:
        failures = [(f.attempts, str(f.error)) for f in result.failures]
        return (result.delivered, result.stopped, result.retries, failures, log, len(pauses))

    sync_log: list[str] = []
    sync_pauses: list[float] = []
    sync = Dispatcher(group="g", max_attempts=max_attempts, on_failure=on_failure)
    sync.subscribe(Ticket)(failing(fails, sync_log, "h"))
    sync.subscribe(Ticket)(failing(0, sync_log, "next"))
    change = a_change()
    expected = sync.run(
        sync.plan(change), transaction=lambda: FakeTransaction(sync_log), pause=sync_pauses.append
    )

    async_log: list[str] = []
    async_pauses: list[float] = []
    aio = Dispatcher(group="g", max_attempts=max_attempts, on_failure=on_failure)
    aio.subscribe(Ticket)(async_failing(fails, async_log, "h"))
    aio.subscribe(Ticket)(async_failing(0, async_log, "next"))

    async def pause(seconds: float) -> None:
        async_pauses.append(seconds)

    async def commit(tx: Any) -> None:
        tx.commit()

    got = asyncio.run(
        aio.arun(
            aio.plan(change),
            transaction=lambda: FakeTransaction(async_log),
            commit=commit,
            pause=pause,
        )
    )
    assert outcome(got, async_log, async_pauses) == outcome(expected, sync_log, sync_pauses)


def test_arun_transactional_step_seals_then_awaits_the_commit_and_retries_whole() -> None:
    """Transactional async handlers share one transaction; the seal comes after them and the
    commit is awaited last; a failed commit retries the whole step with a new transaction."""
    log: list[str] = []
    made: list[FakeTransaction] = []
    dispatcher = Dispatcher(group="g", max_attempts=3)

    @dispatcher.subscribe(Ticket, transactional=True)
    async def one(change: Change, tx: FakeTransaction) -> None:
        await asyncio.sleep(0)
        log.append(f"one {made.index(tx)}")

    @dispatcher.subscribe(Ticket, transactional=True)
    def two(change: Change, tx: FakeTransaction) -> None:
        log.append(f"two {made.index(tx)}")

    def transaction() -> FakeTransaction:
        made.append(FakeTransaction(log))
        return made[-1]

    async def commit(tx: FakeTransaction) -> None:
        await asyncio.sleep(0)
        log.append(f"commit {made.index(tx)}")
        if len(made) == 1:
            raise RuntimeError("refused")

    async def no_pause(seconds: float) -> None:
        return None

    result = asyncio.run(
        dispatcher.arun(
            dispatcher.plan(a_change()),
            transaction=transaction,
            commit=commit,
            seal=lambda tx: log.append(f"seal {made.index(tx)}"),
            pause=no_pause,
        )
    )
    assert result.delivered and result.retries == 1
    assert log == ["one 0", "two 0", "seal 0", "commit 0", "one 1", "two 1", "seal 1", "commit 1"]


def test_arun_stops_retrying_when_asked() -> None:
    """A stop request after a failure ends the retries: neither delivered nor dead."""
    log: list[str] = []
    dispatcher = Dispatcher(group="g", max_attempts=5)
    dispatcher.subscribe(Ticket)(async_failing(99, log, "h"))

    async def commit(tx: Any) -> None:
        return None

    result = asyncio.run(
        dispatcher.arun(
            dispatcher.plan(a_change()),
            transaction=lambda: FakeTransaction(log),
            commit=commit,
            stopping=lambda: len(log) >= 2,
            pause=asyncio.sleep,
        )
    )
    assert result.stopped and not result.delivered and not result.failures
    assert log == ["h", "h"]


def entries(track: _Track, n: int) -> list[_Entry]:
    made = [_Entry(track, _Taken(track.shard_id, f"{i:040d}")) for i in range(n)]
    for entry in made:
        track.add(entry)
    return made


def test_the_checkpointed_prefix_never_passes_a_change_in_flight() -> None:
    """Changes handled out of order move the handled prefix (what the reader is told, so
    what is checkpointed) only over changes with none unhandled before them."""

    async def body() -> None:
        track = _Track("shard-1")
        first, second, third, fourth = entries(track, 4)
        assert first.head.is_set() and not second.head.is_set()
        track.complete(third)
        track.complete(second)
        assert track.marks == [] and not second.head.is_set()
        track.complete(first)
        assert track.marks == [first.item.position, second.item.position, third.item.position]
        assert fourth.head.is_set() and track.at_head(fourth)
        track.complete(fourth)
        assert len(track.marks) == 4 and not track.pending

    asyncio.run(body())


def test_a_closed_track_wakes_its_waiters_and_moves_no_more() -> None:
    """A lease lost (or a shard to be read again): waiting commits wake up, and what ends
    afterwards is not told to the reader."""

    async def body() -> None:
        track = _Track("shard-1")
        first, second = entries(track, 2)
        track.close(rewind=True)
        assert second.head.is_set() and track.closed and track.rewind
        track.complete(first)
        assert track.marks == [] and first.done  # remembered for a reading again, not told

    asyncio.run(body())


def worker(**options: Any) -> AsyncWorker:
    return AsyncWorker(AsyncEngine(endpoint_url="http://127.0.0.1:9"), group="g", **options)


def test_options_are_checked_as_the_sync_workers_are() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        worker(max_in_flight=0)
    with pytest.raises(InvalidPositionError, match="start"):
        worker(start="TRIM_HORIZON")
    with pytest.raises(ValueError, match="max_attempts"):
        worker(max_attempts=0)
    with pytest.raises(InvalidModelError, match="no subscriptions"):
        asyncio.run(worker().run())
    configured = worker(batch_size=7, failover=3.0, metrics_port=0, max_in_flight=5)
    assert (configured.batch_size, configured.failover, configured.metrics_port) == (7, 3.0, 0)
    assert configured.sync_worker.dispatcher is configured.dispatcher


def test_streamodel_worker_runs_an_async_worker_on_its_own_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`streamodel worker MODULE:ATTR` finds an AsyncWorker, applies --group, awaits its run
    on a new event loop and closes its engine after, on that loop; an object of another kind
    is refused naming both worker kinds."""
    (tmp_path / "aio_cli_app_xyz.py").write_text(
        textwrap.dedent(
            """
            import asyncio
            from streamodel.aio import AsyncEngine, AsyncWorker

            calls = []

            class Engine(AsyncEngine):
                async def close(self):
                    calls.append(("close", asyncio.get_running_loop()))

            class Recording(AsyncWorker):
                async def run(self, *, until_caught_up=False):
                    calls.append(("run", until_caught_up, self.group, self.metrics_port,
                                  asyncio.get_running_loop()))

            worker = Recording(Engine(endpoint_url="http://127.0.0.1:9"), group="app")
            not_a_worker = object()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    argv = ["worker", "aio_cli_app_xyz:worker", "--group", "other", "--until-caught-up"]
    assert cli_module.main([*argv, "--log-level", "ERROR"]) == 0
    import aio_cli_app_xyz  # type: ignore[import-not-found]

    (_, caught_up, group, port, loop), (what, closed_on) = aio_cli_app_xyz.calls
    assert (caught_up, group, port, what) == (True, "other", None, "close")
    assert closed_on is loop
    with pytest.raises(cli_module.CLIError, match="not a streamodel Worker or AsyncWorker"):
        cli_module.cmd_worker(
            cli_module.build_parser().parse_args(["worker", "aio_cli_app_xyz:not_a_worker"])
        )
