"""The dispatcher: which handlers a change goes to, and what happens when one keeps failing.

One :class:`Dispatcher` serves every shell that delivers changes (:class:`~streamodel.stream.
Worker`, the Lambda handler and :class:`~streamodel.aio.AsyncWorker`), so they route, retry
and dead-letter alike. Its decisions are pure, with no I/O:

- :meth:`Dispatcher.plan`: the steps for one change. Every plain handler ``fn(change)`` is a
  step of its own; the transactional handlers ``fn(change, tx)`` share one last step, whose
  transaction a *seal* completes (with the checkpoint, or Lambda's tracking item) before it
  commits, so their writes and the seal land together or not at all.
- :meth:`Dispatcher.verdict`: after ``n`` failed attempts, ``"retry"``, ``"dead_letter"`` or
  ``"stop"`` (strict order, ``on_failure="stop"``); :meth:`Dispatcher.backoff`: how long to wait
  before the next attempt (exponential, full jitter).
- :meth:`Dispatcher.exhausted` and :meth:`Dispatcher.undecodable`: the
  :class:`DeadLetterInfo` for a change that failed every attempt, or for a record that does not
  fit its model.

:meth:`Dispatcher.delivery` is the delivery of one plan as a generator of decisions (try this
step, back off this long), written once; :meth:`Dispatcher.run` drives it calling handlers
synchronously, :meth:`Dispatcher.arun` awaiting them (coroutine handlers are awaited, plain
ones called; the transaction's commit is awaited). Both return a :class:`DispatchResult` and
never write a dead letter: what to do with the failures (store them, count invocations,
stop) is the calling shell's business.
"""

from __future__ import annotations

import inspect
import logging
import random
import time
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from streamodel.exceptions import InvalidModelError, UndecodableRecordError
from streamodel.models import BaseModel
from streamodel.stream.records import EVENTS, Change, Event

__all__ = [
    "Attempt",
    "Backoff",
    "DeadLetterInfo",
    "DispatchResult",
    "Dispatcher",
    "Plan",
    "Step",
    "Subscription",
    "Verdict",
]

logger = logging.getLogger("streamodel.worker")

Handler = Callable[..., Any]
# Completes a transactional delivery: adds the item that records the change as applied.
Seal = Callable[[Any], None]
Verdict = Literal["retry", "dead_letter", "stop"]
OnFailure = Literal["dead_letter", "stop"]


class Transaction(Protocol):
    """What the transactional step needs of a write transaction."""

    def commit(self) -> Any: ...


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


@dataclass(frozen=True)
class Subscription:
    """One ``subscribe`` call: a handler for some events of one model."""

    model: type[BaseModel]
    events: frozenset[str]
    handler: Handler
    # fn(change, tx): what it writes through tx commits with the seal, all or nothing.
    transactional: bool = False

    def matches(self, change: Change) -> bool:
        return self.model is change.model and change.event in self.events


@dataclass(frozen=True)
class Step:
    """Handlers tried (and retried) together: one plain handler, or every transactional one."""

    name: str
    subscriptions: tuple[Subscription, ...]
    transactional: bool = False


@dataclass(frozen=True)
class Plan:
    """The steps that deliver one change, in order (the transaction step last)."""

    change: Change
    steps: tuple[Step, ...]


@dataclass(frozen=True)
class Attempt:
    """A decision of :meth:`Dispatcher.delivery`: try ``step`` once; the driver sends back
    ``None`` when it succeeded, else the error it raised."""

    step: Step


@dataclass(frozen=True)
class Backoff:
    """A decision of :meth:`Dispatcher.delivery`: wait ``seconds`` (a stop request may cut
    it short) before the next attempt."""

    seconds: float


@dataclass
class DispatchResult:
    """What :meth:`Dispatcher.run` did with one change.

    ``delivered``: every step succeeded. ``failures``: one :class:`DeadLetterInfo` per step that
    failed every attempt (in strict order, the run ends at the first). ``stopped``: a stop
    request cut the retries short, so the change is neither delivered nor to be dead-lettered
    (it comes again after a restart). ``retries``: attempts beyond the first, over all steps.
    """

    delivered: bool = True
    failures: list[DeadLetterInfo] = field(default_factory=list)
    stopped: bool = False
    retries: int = 0


def _name(handler: Handler) -> str:
    return str(getattr(handler, "__qualname__", handler))


def _never() -> bool:
    return False


class Dispatcher:
    """Subscriptions, and the rules for delivering a change to them; see the module doc.

    ``max_attempts`` bounds the tries per step (a shell may pass another bound to
    :meth:`run`, as Lambda does per invocation); ``on_failure`` is ``"dead_letter"`` (move on
    past a change that failed every attempt) or ``"stop"`` (strict order); ``retry_wait`` and
    ``retry_wait_max`` shape the backoff between attempts. ``group`` names the consumer in
    dead letters.
    """

    def __init__(
        self,
        *,
        group: str,
        max_attempts: int = 5,
        on_failure: OnFailure = "dead_letter",
        retry_wait: float = 0.1,
        retry_wait_max: float = 5.0,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("Worker(max_attempts=...) must be at least 1")
        if on_failure not in ("dead_letter", "stop"):
            raise ValueError("Worker(on_failure=...) must be 'dead_letter' or 'stop'")
        self.group = group
        self.max_attempts = max_attempts
        self.on_failure: OnFailure = on_failure
        self.retry_wait = retry_wait
        self.retry_wait_max = retry_wait_max
        self.subscriptions: list[Subscription] = []
        # Moves on every subscribe(): what is derived from the subscriptions and kept (the
        # Lambda handler's routes) is derived again when it changed.
        self.version = 0

    # -- subscriptions ----------------------------------------------------------------------
    def subscribe(
        self,
        model: type[BaseModel],
        events: Iterable[Event] = EVENTS,
        *,
        transactional: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Decorator registering a handler; checks the model and events at once."""
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
            self.subscriptions.append(Subscription(model, chosen, handler, transactional))
            self.version += 1
            return handler

        return register

    @property
    def models(self) -> list[type[BaseModel]]:
        """The subscribed models, in subscription order."""
        return list(dict.fromkeys(s.model for s in self.subscriptions))

    def has_transactional(self, change: Change) -> bool:
        """Whether a transactional handler is subscribed to this change's model and event."""
        return any(s.transactional and s.matches(change) for s in self.subscriptions)

    # -- decisions (pure) -------------------------------------------------------------------
    def plan(self, change: Change, *, transactional: bool = True) -> Plan:
        """The steps delivering ``change``: each plain handler, then one transaction step.

        ``transactional=False`` leaves the transactional handlers out (a change known to be
        applied already).
        """
        matching = [s for s in self.subscriptions if s.matches(change)]
        steps = [Step(_name(s.handler), (s,)) for s in matching if not s.transactional]
        together = tuple(s for s in matching if s.transactional)
        if together and transactional:
            names = ", ".join(_name(s.handler) for s in together)
            steps.append(Step(names, together, transactional=True))
        return Plan(change, tuple(steps))

    def verdict(self, attempts: int, *, limit: int | None = None) -> Verdict:
        """What to do after ``attempts`` failed tries of a step (``limit``: the bound, by
        default ``max_attempts``): try again, or give up and dead-letter it or stop there."""
        if attempts < (limit or self.max_attempts):
            return "retry"
        return "stop" if self.on_failure == "stop" else "dead_letter"

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after ``attempts`` failed tries: exponential, full jitter."""
        ceiling = min(self.retry_wait_max, self.retry_wait * 2 ** max(attempts - 1, 0))
        return random.uniform(0, ceiling)  # jitter, not cryptography

    def exhausted(self, change: Change, error: BaseException, attempts: int) -> DeadLetterInfo:
        """The dead letter of a change whose handler failed ``attempts`` times."""
        return DeadLetterInfo(
            self.group,
            change.model,
            change.shard_id,
            change.sequence_number or "",  # a snapshot's item has none
            change.event_id,
            error,
            attempts,
            change.record,
            change,
        )

    def undecodable(self, model: type[BaseModel], error: UndecodableRecordError) -> DeadLetterInfo:
        """The dead letter of a record that does not fit ``model`` (no handler ever ran)."""
        return DeadLetterInfo(
            self.group,
            model,
            error.shard_id,
            error.sequence_number,
            str(error.record.get("eventID", "")),
            error,
            0,
            dict(error.record),
        )

    # -- one delivery, as decisions (pure) ---------------------------------------------------
    def delivery(
        self,
        plan: Plan,
        *,
        attempts: int | None = None,
        stopping: Callable[[], bool] = _never,
    ) -> Generator[Attempt | Backoff, BaseException | None, DispatchResult]:
        """Deliver ``plan``: yields :class:`Attempt` (the driver tries the step and sends back
        ``None`` or the error) and :class:`Backoff` (the driver waits); returns the
        :class:`DispatchResult`. Every step is tried up to ``attempts`` (``max_attempts``)
        times; ``stopping()`` true after a failure, or after the backoff, ends the retries
        (the result is ``stopped``). Written once for :meth:`run` and :meth:`arun`."""
        limit = attempts or self.max_attempts
        result = DispatchResult()
        for step in plan.steps:
            tries = 0
            while True:
                tries += 1
                if tries > 1:
                    result.retries += 1
                error = yield Attempt(step)
                if error is None:
                    break
                verdict = self.verdict(tries, limit=limit)
                if verdict == "retry" and not stopping():
                    yield Backoff(self.backoff(tries))
                    if not stopping():
                        continue
                if verdict == "retry":  # a stop request: neither delivered nor dead
                    result.delivered, result.stopped = False, True
                    return result
                self._log_exhausted(plan.change, step, tries, error)
                result.delivered = False
                result.failures.append(self.exhausted(plan.change, error, tries))
                if verdict == "stop":
                    return result
                break
        return result

    # -- the synchronous run ----------------------------------------------------------------
    def run(
        self,
        plan: Plan,
        *,
        transaction: Callable[[], Transaction],
        seal: Seal | None = None,
        attempts: int | None = None,
        stopping: Callable[[], bool] = _never,
        pause: Callable[[float], Any] = time.sleep,
    ) -> DispatchResult:
        """Run every step of ``plan``, each retried up to ``attempts`` (``max_attempts``) times.

        ``transaction()`` makes the transaction of the transactional step, ``seal(tx)``
        completes it after its handlers and before the commit. ``stopping()`` true after a
        failure (or after the backoff, which ``pause`` may cut short) ends the retries: the
        result is ``stopped``. Nothing here writes a dead letter.
        """
        decisions = self.delivery(plan, attempts=attempts, stopping=stopping)
        outcome: BaseException | None = None
        while True:
            try:
                decision = decisions.send(outcome)
            except StopIteration as done:
                result: DispatchResult = done.value
                return result
            outcome = None
            if isinstance(decision, Backoff):
                pause(decision.seconds)
                continue
            try:
                self._call(plan.change, decision.step, transaction, seal)
            except Exception as error:  # the decisions say what comes next
                outcome = error

    @staticmethod
    def _call(
        change: Change,
        step: Step,
        transaction: Callable[[], Transaction],
        seal: Seal | None,
    ) -> None:
        if not step.transactional:
            step.subscriptions[0].handler(change)
            return
        tx = transaction()
        for subscription in step.subscriptions:
            subscription.handler(change, tx)
        if seal is not None:
            seal(tx)
        tx.commit()

    # -- the asyncio run ----------------------------------------------------------------------
    async def arun(
        self,
        plan: Plan,
        *,
        transaction: Callable[[], Any],
        commit: Callable[[Any], Awaitable[Any]],
        seal: Seal | None = None,
        attempts: int | None = None,
        stopping: Callable[[], bool] = _never,
        pause: Callable[[float], Awaitable[Any]] | None = None,
    ) -> DispatchResult:
        """:meth:`run` for asyncio: the same decisions, awaited. A handler's result is
        awaited when it is awaitable (``async def`` handlers), so plain handlers and
        coroutine ones mix. The transactional step awaits ``commit(tx)`` (after ``seal(tx)``
        when given) where :meth:`run` calls ``tx.commit()``; ``pause`` is awaited between
        attempts (default ``asyncio.sleep``)."""
        if pause is None:
            import asyncio  # here: the sync shells never pay for importing asyncio

            pause = asyncio.sleep
        decisions = self.delivery(plan, attempts=attempts, stopping=stopping)
        outcome: BaseException | None = None
        while True:
            try:
                decision = decisions.send(outcome)
            except StopIteration as done:
                result: DispatchResult = done.value
                return result
            outcome = None
            if isinstance(decision, Backoff):
                await pause(decision.seconds)
                continue
            try:
                await self._acall(plan.change, decision.step, transaction, seal, commit)
            except Exception as error:  # the decisions say what comes next
                outcome = error

    @staticmethod
    async def _acall(
        change: Change,
        step: Step,
        transaction: Callable[[], Any],
        seal: Seal | None,
        commit: Callable[[Any], Awaitable[Any]],
    ) -> None:
        if not step.transactional:
            await _settled(step.subscriptions[0].handler(change))
            return
        tx = transaction()
        for subscription in step.subscriptions:
            await _settled(subscription.handler(change, tx))
        if seal is not None:
            seal(tx)
        await commit(tx)

    def _log_exhausted(self, change: Change, step: Step, tries: int, error: BaseException) -> None:
        logger.error(
            "worker %s: handler %s failed %d times on %s %s",
            self.group,
            step.name,
            tries,
            change.shard_id,
            change.sequence_number,
            exc_info=error,
            extra={
                "group": self.group,
                "model": change.model.__name__,
                "shard_id": change.shard_id,
                "sequence_number": change.sequence_number,
                "attempts": tries,
            },
        )


async def _settled(result: Any) -> None:
    """Await what a handler returned when it is awaitable (an ``async def`` handler's
    coroutine); a plain handler's result is left as it is."""
    if inspect.isawaitable(result):
        await result
