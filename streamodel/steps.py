"""Operations of several requests, written once for every shell.

An operation that needs more than one request and decides between them from the answers
(binding a table: describe, create, wait, enable the stream, set TTL) is written as a
generator of *steps*, the way h11 leaves the I/O to its caller: it yields a :class:`Call`
and is sent the answer (or has the call's error thrown into it), yields a :class:`Pause` and
is resumed when the time has passed, and returns its result. It sends nothing and sleeps
nowhere, so the sync engine runs it with :func:`run` and an asyncio engine with an ``await``
loop of the same few lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from streamodel.transport.base import Service, Transport

__all__ = ["Call", "Pause", "Steps", "run"]

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


Steps = Generator[Call | Pause, Any, T]


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
        if isinstance(step, Pause):
            sleep(step.seconds)
            continue
        try:
            answer = transport.call(step.service, step.operation, step.params)
        except Exception as failure:  # thrown into the steps, which decide
            error = failure
