"""The Dispatcher's decisions, with fake handlers and a fake transaction: no DynamoDB."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streamodel import Column, Integer, String, new_base
from streamodel.exceptions import UndecodableRecordError
from streamodel.stream.dispatch import Dispatcher
from streamodel.stream.records import Change, decode_record
from streamodel.testing.fake_streams import FakeStreams

Base = new_base()


class Ticket(Base):
    id = Column(String, hash_key=True)
    hits = Column(Integer)


def a_change(event: str = "insert") -> Change:
    fake = FakeStreams()
    old = {"id": {"S": "t1"}, "hits": {"N": "1"}} if event != "insert" else None
    new = {"id": {"S": "t1"}, "hits": {"N": "2"}} if event != "remove" else None
    record: dict[str, Any] = fake.put({"id": {"S": "t1"}}, old_image=old, new_image=new)
    return decode_record(Ticket, record, shard_id="shard-1", sequence_number="42")


class FakeTransaction:
    """Records the order of what happens to it."""

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def commit(self) -> None:
        self.log.append("commit")


def failing(times: int, log: list[str], name: str = "h") -> Callable[[Change], None]:
    """A handler that raises on its first ``times`` calls."""

    def handler(change: Change) -> None:
        log.append(name)
        if log.count(name) <= times:
            raise RuntimeError(f"{name} failed")

    return handler


def test_a_failing_handler_is_retried_until_it_succeeds() -> None:
    """A handler failing twice of max_attempts=3 is delivered on the third try, after two
    backoffs, and the retries are counted."""
    log: list[str] = []
    pauses: list[float] = []
    dispatcher = Dispatcher(group="g", max_attempts=3, retry_wait=0.01, retry_wait_max=1.0)
    dispatcher.subscribe(Ticket)(failing(2, log))
    change = a_change()
    result = dispatcher.run(
        dispatcher.plan(change), transaction=lambda: FakeTransaction(log), pause=pauses.append
    )
    assert result.delivered and not result.failures and not result.stopped
    assert log == ["h", "h", "h"] and result.retries == 2 and len(pauses) == 2


def test_exhausted_attempts_give_one_dead_letter_and_the_next_handler_still_runs() -> None:
    """A handler failing every one of max_attempts tries becomes one DeadLetterInfo (with the
    change, the last error and the count); another handler of the change still gets it."""
    log: list[str] = []
    dispatcher = Dispatcher(group="g", max_attempts=3)
    dispatcher.subscribe(Ticket)(failing(99, log, "bad"))
    dispatcher.subscribe(Ticket)(failing(0, log, "good"))
    change = a_change()
    result = dispatcher.run(
        dispatcher.plan(change), transaction=lambda: FakeTransaction(log), pause=lambda _: None
    )
    assert not result.delivered and not result.stopped
    (info,) = result.failures
    assert (info.group, info.model, info.attempts, info.change) == ("g", Ticket, 3, change)
    assert (info.shard_id, info.sequence_number) == ("shard-1", "42")
    assert isinstance(info.error, RuntimeError) and str(info.error) == "bad failed"
    assert log == ["bad", "bad", "bad", "good"]


def test_strict_order_ends_the_run_at_the_first_exhausted_handler() -> None:
    """With on_failure="stop", handlers after one that failed every attempt are not called."""
    log: list[str] = []
    dispatcher = Dispatcher(group="g", max_attempts=2, on_failure="stop")
    dispatcher.subscribe(Ticket)(failing(99, log, "bad"))
    dispatcher.subscribe(Ticket)(failing(0, log, "good"))
    result = dispatcher.run(
        dispatcher.plan(a_change()),
        transaction=lambda: FakeTransaction(log),
        pause=lambda _: None,
    )
    assert log == ["bad", "bad"] and len(result.failures) == 1 and not result.delivered


def test_a_stop_request_cuts_retries_short_without_a_dead_letter() -> None:
    """A stop requested during the backoff ends the retries: the change is reported stopped,
    neither delivered nor dead-lettered, and the handler is not tried again."""
    log: list[str] = []
    stop = {"now": False}
    dispatcher = Dispatcher(group="g", max_attempts=5)
    dispatcher.subscribe(Ticket)(failing(99, log))

    def pause(seconds: float) -> None:
        stop["now"] = True  # SIGTERM arrives while waiting to retry

    result = dispatcher.run(
        dispatcher.plan(a_change()),
        transaction=lambda: FakeTransaction(log),
        stopping=lambda: stop["now"],
        pause=pause,
    )
    assert result.stopped and not result.delivered and not result.failures
    assert log == ["h"]


def test_a_stop_on_the_last_attempt_still_dead_letters() -> None:
    """A change that used up every attempt is dead-lettered even if a stop was requested."""
    log: list[str] = []
    dispatcher = Dispatcher(group="g", max_attempts=1)
    dispatcher.subscribe(Ticket)(failing(99, log))
    result = dispatcher.run(
        dispatcher.plan(a_change()),
        transaction=lambda: FakeTransaction(log),
        stopping=lambda: True,
    )
    assert not result.stopped and len(result.failures) == 1


def test_the_seal_comes_after_the_handlers_and_before_the_commit() -> None:
    """Transactional handlers share one transaction, sealed after all of them and committed
    last; plain handlers run before it; a failing seal retries the whole transaction step and
    nothing is committed by the failed try."""
    log: list[str] = []
    dispatcher = Dispatcher(group="g", max_attempts=2)
    dispatcher.subscribe(Ticket, transactional=True)(lambda c, tx: log.append("tx1"))
    dispatcher.subscribe(Ticket)(lambda c: log.append("plain"))
    dispatcher.subscribe(Ticket, transactional=True)(lambda c, tx: log.append("tx2"))
    seals: list[Any] = []

    def seal(tx: Any) -> None:
        log.append("seal")
        seals.append(tx)
        if len(seals) == 1:
            raise RuntimeError("lease moved")

    plan = dispatcher.plan(a_change())
    assert [step.transactional for step in plan.steps] == [False, True]
    result = dispatcher.run(
        plan, transaction=lambda: FakeTransaction(log), seal=seal, pause=lambda _: None
    )
    assert result.delivered
    assert log == ["plain", "tx1", "tx2", "seal", "tx1", "tx2", "seal", "commit"]
    assert seals[0] is not seals[1]  # a fresh transaction per try


def test_plan_follows_model_events_and_leaves_out_applied_transactions() -> None:
    """Only handlers of the change's model and event are planned; transactional=False leaves
    the transaction step out (a change already applied)."""
    dispatcher = Dispatcher(group="g")
    dispatcher.subscribe(Ticket, events=("insert",))(lambda c: None)
    dispatcher.subscribe(Ticket, events=("remove",))(lambda c: None)
    dispatcher.subscribe(Ticket, transactional=True)(lambda c, tx: None)
    change = a_change("insert")
    assert [s.transactional for s in dispatcher.plan(change).steps] == [False, True]
    assert [s.transactional for s in dispatcher.plan(change, transactional=False).steps] == [False]
    assert dispatcher.has_transactional(change) and dispatcher.version == 3


@pytest.mark.parametrize(
    ("on_failure", "attempts", "limit", "verdict"),
    [
        ("dead_letter", 1, None, "retry"),
        ("dead_letter", 2, None, "retry"),
        ("dead_letter", 3, None, "dead_letter"),
        ("dead_letter", 4, None, "dead_letter"),
        ("stop", 2, None, "retry"),
        ("stop", 3, None, "stop"),
        ("dead_letter", 1, 1, "dead_letter"),  # Lambda: one try per invocation
    ],
)
def test_verdict_is_a_function_of_the_attempts(
    on_failure: Any, attempts: int, limit: int | None, verdict: str
) -> None:
    """Retry while attempts < max_attempts (or the given limit), then dead-letter or stop."""
    dispatcher = Dispatcher(group="g", max_attempts=3, on_failure=on_failure)
    assert dispatcher.verdict(attempts, limit=limit) == verdict


def test_backoff_grows_exponentially_up_to_the_maximum() -> None:
    """Waits are full jitter under retry_wait * 2**(n-1), never above retry_wait_max."""
    dispatcher = Dispatcher(group="g", retry_wait=0.1, retry_wait_max=0.3)
    for attempts, ceiling in [(1, 0.1), (2, 0.2), (3, 0.3), (10, 0.3)]:
        waits = [dispatcher.backoff(attempts) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2


def test_an_undecodable_record_becomes_a_dead_letter_without_attempts() -> None:
    """A record that does not fit its model gives a DeadLetterInfo with the raw record, its
    shard, sequence number and event id, no change, and zero attempts."""
    fake = FakeStreams()
    record: dict[str, Any] = fake.put({"id": {"S": "t1"}}, new_image={"hits": {"S": "x"}})
    record["eventID"] = "event-7"
    with pytest.raises(UndecodableRecordError) as caught:
        decode_record(Ticket, record, shard_id="shard-9", sequence_number="77")
    info = Dispatcher(group="g").undecodable(Ticket, caught.value)
    assert (info.group, info.model, info.shard_id, info.sequence_number) == (
        "g",
        Ticket,
        "shard-9",
        "77",
    )
    assert info.event_id == "event-7" and info.attempts == 0 and info.change is None
    assert info.record == record and info.error is caught.value
