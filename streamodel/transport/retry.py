"""Retries for AWS calls: one bound per operation, full-jitter exponential backoff.

botocore's own retries are switched off for the clients streamodel creates (see
:func:`streamodel.transport.botocore.client_config`), and a batch's resends of unprocessed
items draw on the same attempts as the retries of its requests
(:meth:`RetryPolicy.operation`), so no two layers multiply. The loop is a few lines of its
own rather than tenacity's: tenacity bounds one loop, and here nested loops share one bound.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from streamodel.exceptions import ServerError, ThrottledError
from streamodel.transport.base import Service, Transport

T = TypeVar("T")

# Reads, and calls whose repetition has no effect, may be retried after a 5xx or a broken
# connection. A write whose outcome is unknown is not retried blindly: the ServerError
# reaches the caller, who knows whether repeating it is safe.
IDEMPOTENT_OPERATIONS = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "TransactGetItems",
        "DescribeTable",
        "DescribeTimeToLive",
        "ListTables",
        "DescribeStream",
        "GetShardIterator",
        "GetRecords",
        "ListStreams",
        # TransactWriteItems carries a ClientRequestToken: a repeat within 10 minutes is a
        # no-op that returns the first answer.
        "TransactWriteItems",
        # Unconditional puts and deletes: repeating one leaves the same item.
        "BatchWriteItem",
    }
)


class RetryPolicy:
    """How often and how long one operation is tried.

    ``attempts`` bounds the requests of one operation, ``deadline`` the seconds spent on it;
    waits grow exponentially from ``base`` and are drawn uniformly below that bound (full
    jitter), never above ``max_wait``. An operation is one call, or, inside
    :meth:`operation`, everything sent for it: a batch's resends of unprocessed items and the
    retries of each of its requests share one bound, so layers never multiply attempts.
    """

    def __init__(
        self,
        *,
        attempts: int = 8,
        deadline: float = 30.0,
        base: float = 0.025,
        max_wait: float = 2.0,
        on_retry: Callable[[str, BaseException], None] | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("RetryPolicy: attempts must be at least 1")
        self.attempts = attempts
        self.deadline = deadline
        self.base = base
        self.max_wait = max_wait
        self.on_retry = on_retry
        """``on_retry(operation, error)``, called on the calling thread before each retry
        (after its wait) with the failure that caused it; for metrics and traces
        (:mod:`streamodel.instrument`). An exception in it propagates to the caller."""

    def operation(self) -> Attempts:
        """The attempts of one operation made of several requests: send each of them inside
        ``with attempts.active():`` so their retries draw on the same bound."""
        return Attempts(self)

    def run(self, operation: str, fn: Callable[[], T]) -> T:
        """Call ``fn`` until it succeeds, fails for good, or the operation's attempts are
        used up (then :class:`AttemptsExhausted` if nothing failed meanwhile)."""
        retryable = retryable_errors(operation)
        attempts = _CURRENT.get()
        if attempts is None:
            try:
                # Most calls succeed at once: only a failure pays for the retry bookkeeping.
                return fn()
            except retryable as error:
                if self.attempts == 1:
                    raise
                attempts = Attempts(self, taken=1)
                last: BaseException | None = error
        else:
            last = None
        while True:
            if not attempts.next():
                if last is not None:
                    raise last
                raise AttemptsExhausted(f"{operation}: {attempts.taken} attempt(s) used up")
            if last is not None and self.on_retry is not None:
                self.on_retry(operation, last)
            try:
                return fn()
            except retryable as error:
                last = error


class Attempts:
    """The requests one operation has made, and whether another is allowed."""

    def __init__(self, policy: RetryPolicy, taken: int = 0) -> None:
        self.policy = policy
        self.taken = taken
        self.started = time.monotonic()

    @contextmanager
    def active(self) -> Iterator[Attempts]:
        """Requests sent in the block (on this thread or task) count against these attempts.
        Only around the sending: code a caller runs between requests must not draw on them."""
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    def next(self) -> bool:
        """Count another request if the policy allows one, after a full-jitter wait when one
        was made before; False when the attempts or the deadline are used up."""
        wait = self.wait()
        if wait is None:
            return False
        if wait:
            time.sleep(wait)
        return True

    def wait(self) -> float | None:
        """Count another request if the policy allows one and return the seconds to wait
        before sending it (full jitter; 0 for the first), or ``None`` when the attempts or the
        deadline are used up. The decision of :meth:`next`, for shells that sleep their own
        way (``asyncio.sleep``)."""
        policy = self.policy
        if self.taken >= policy.attempts:
            return None
        wait = 0.0
        if self.taken:
            if time.monotonic() - self.started >= policy.deadline:
                return None
            bound = min(policy.max_wait, policy.base * 2 ** (self.taken - 1))
            wait = random.uniform(0, bound)
        self.taken += 1
        return wait


def retryable_errors(operation: str) -> tuple[type[BaseException], ...]:
    """The failures of ``operation`` worth another attempt: throttling always; a server error
    or a lost connection (whose write may have happened) only for :data:`IDEMPOTENT_OPERATIONS`."""
    return _IDEMPOTENT_RETRYABLE if operation in IDEMPOTENT_OPERATIONS else _RETRYABLE


_RETRYABLE: tuple[type[BaseException], ...] = (ThrottledError,)
_IDEMPOTENT_RETRYABLE: tuple[type[BaseException], ...] = (ThrottledError, ServerError)


def current_attempts() -> Attempts | None:
    """The attempts of the operation begun on this thread or asyncio task (inside
    :meth:`Attempts.active`), if any."""
    return _CURRENT.get()


class AttemptsExhausted(Exception):
    """An operation's attempts were used up without a failure to raise (a batch that DynamoDB
    kept leaving unprocessed): the code that began the operation says what that means."""


# The attempts of the operation running on this thread (or asyncio task), if one was begun.
_CURRENT: ContextVar[Attempts | None] = ContextVar("streamodel_attempts", default=None)


class RetryingTransport:
    """Wraps any transport (botocore, lean, a fake) so every call runs under ``policy``."""

    def __init__(self, inner: Transport, policy: RetryPolicy | None = None) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()

    def call(self, service: Service, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.policy.run(operation, lambda: self.inner.call(service, operation, params))
