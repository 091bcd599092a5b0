"""Retries for awaited calls, under the same :class:`~streamodel.transport.RetryPolicy`.

Every decision is :mod:`~streamodel.transport.retry`'s: which failures of an operation are
worth another attempt (:func:`~streamodel.transport.retry.retryable_errors`), whether another
attempt is allowed and how long to wait before it
(:meth:`Attempts.wait <streamodel.transport.retry.Attempts.wait>`), and the attempts an
operation of several requests shares (:meth:`Attempts.active
<streamodel.transport.retry.Attempts.active>`, per asyncio task). This module only waits with
``asyncio.sleep`` instead of ``time.sleep``: the loop below is
:meth:`RetryPolicy.run <streamodel.transport.RetryPolicy.run>`'s, awaited.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from streamodel.transport.base import AsyncTransport, Service
from streamodel.transport.retry import (
    Attempts,
    AttemptsExhausted,
    RetryPolicy,
    current_attempts,
    retryable_errors,
)

__all__ = ["AsyncRetryingTransport", "run_async"]

T = TypeVar("T")


async def run_async(policy: RetryPolicy, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
    """Await ``fn()`` until it succeeds, fails for good, or the operation's attempts are used
    up (then :class:`~streamodel.transport.retry.AttemptsExhausted` if nothing failed
    meanwhile): :meth:`RetryPolicy.run <streamodel.transport.RetryPolicy.run>` for
    coroutines."""
    retryable = retryable_errors(operation)
    attempts = current_attempts()
    last: BaseException | None = None
    if attempts is None:
        try:
            # Most calls succeed at once: only a failure pays for the retry bookkeeping.
            return await fn()
        except retryable as error:
            if policy.attempts == 1:
                raise
            attempts = Attempts(policy, taken=1)
            last = error
    while True:
        wait = attempts.wait()
        if wait is None:
            if last is not None:
                raise last
            raise AttemptsExhausted(f"{operation}: {attempts.taken} attempt(s) used up")
        if wait:
            await asyncio.sleep(wait)
        if last is not None and policy.on_retry is not None:
            policy.on_retry(operation, last)
        try:
            return await fn()
        except retryable as error:
            last = error


class AsyncRetryingTransport:
    """Wraps any async transport so every call runs under ``policy``
    (:class:`~streamodel.transport.RetryingTransport`, awaited)."""

    def __init__(self, inner: AsyncTransport, policy: RetryPolicy | None = None) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()

    async def call(
        self, service: Service, operation: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        return await run_async(
            self.policy, operation, lambda: self.inner.call(service, operation, params)
        )

    async def aclose(self) -> None:
        """Close what the inner transport keeps open."""
        close = getattr(self.inner, "aclose", None)
        if close is not None:
            await close()
