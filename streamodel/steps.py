"""Operations, written once for every shell.

An operation (a save and its signals, a load of many keys, a transaction, binding a table:
describe, create, wait, enable the stream, set TTL) is written as a generator of *steps*,
the way h11 leaves the I/O to its caller: it yields a :class:`Call` and is sent the answer
(or has the call's error thrown into it), yields a :class:`Pause` and is resumed when the
time has passed, yields an :class:`Emit` to have a signal sent, and returns its result. It
sends nothing, sleeps nowhere and calls no receiver, so ``Engine`` runs it with :func:`run`
and ``AsyncEngine`` with :func:`arun`: the same loop, with ``await`` (coroutine receivers
of a signal are awaited there; plain ones are called).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from streamodel.transport.base import AsyncTransport, Service, Transport

__all__ = ["Call", "Emit", "Pause", "Steps", "arun", "run"]

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """Send ``operation`` to ``service`` with ``params``; the answer is sent back."""

    service: Service
    operation: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` before the next step."""

    seconds: float


@dataclass(frozen=True)
class Emit:
    """Send ``signal`` (a blinker signal) from ``sender`` with ``kwargs``; nothing comes back.
    A receiver that raises stops the operation (the error is thrown into the steps)."""

    signal: Any
    sender: Any
    kwargs: dict[str, Any] = field(default_factory=dict)

    def send(self) -> None:
        self.signal.send(self.sender, **self.kwargs)

    async def send_async(self) -> None:
        await self.signal.send_async(self.sender, _sync_wrapper=_awaitable, **self.kwargs)


def _awaitable(receiver: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """A plain receiver, called as it is, among coroutine ones (blinker's ``send_async``)."""

    async def call(*args: Any, **kwargs: Any) -> Any:
        return receiver(*args, **kwargs)

    return call


Steps = Generator[Call | Pause | Emit, Any, T]


def run(transport: Transport, steps: Steps[T], *, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``steps`` on ``transport``, synchronously; return what they return."""
    answer: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.send(answer) if error is None else steps.throw(error)
        except StopIteration as done:
            result: T = done.value
            return result
        answer, error = None, None
        try:
            if isinstance(step, Call):
                answer = transport.call(step.service, step.operation, step.params)
            elif isinstance(step, Emit):
                step.send()
            else:
                sleep(step.seconds)
        except Exception as failure:  # thrown into the steps, which decide
            error = failure


async def arun(
    transport: AsyncTransport,
    steps: Steps[T],
    *,
    sleep: Callable[[float], Awaitable[None]] | None = None,
) -> T:
    """Run ``steps`` on an asyncio ``transport``; return what they return. The loop of
    :func:`run`, awaiting calls, pauses and signals."""
    if sleep is None:
        import asyncio  # here: the sync shell never pays for importing asyncio

        sleep = asyncio.sleep
    answer: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.send(answer) if error is None else steps.throw(error)
        except StopIteration as done:
            result: T = done.value
            return result
        answer, error = None, None
        try:
            if isinstance(step, Call):
                answer = await transport.call(step.service, step.operation, step.params)
            elif isinstance(step, Emit):
                await step.send_async()
            else:
                await sleep(step.seconds)
        except Exception as failure:  # thrown into the steps, which decide
            error = failure
