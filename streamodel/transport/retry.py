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
    ) -> None:
        if attempts < 1:
            raise ValueError("RetryPolicy: attempts must be at least 1")
        self.attempts = attempts
        self.deadline = deadline
        self.base = base
        self.max_wait = max_wait

    def operation(self) -> Attempts:
        """The attempts of one operation made of several requests: send each of them inside
        ``with attempts.active():`` so their retries draw on the same bound."""
        return Attempts(self)

    def run(self, operation: str, fn: Callable[[], T]) -> T:
        """Call ``fn`` until it succeeds, fails for good, or the operation's attempts are
        used up (then :class:`AttemptsExhausted` if nothing failed meanwhile)."""
        retryable: tuple[type[BaseException], ...] = (
            (ThrottledError, ServerError)
            if operation in IDEMPOTENT_OPERATIONS
            else (ThrottledError,)
        )
        attempts = _CURRENT.get()
        if attempts is None:
            try:
                # Most calls succeed at once: only a failure pays for the retry bookkeeping.
                return fn()
            except retryable:
                if self.attempts == 1:
                    raise
                attempts = Attempts(self, taken=1)
                last: BaseException | None = None
        else:
            last = None
        while True:
            if not attempts.next():
                if last is not None:
                    raise last
                raise AttemptsExhausted(f"{operation}: {attempts.taken} attempt(s) used up")
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
        policy = self.policy
        if self.taken >= policy.attempts:
            return False
        if self.taken:
            if time.monotonic() - self.started >= policy.deadline:
                return False
            bound = min(policy.max_wait, policy.base * 2 ** (self.taken - 1))
            time.sleep(random.uniform(0, bound))
        self.taken += 1
        return True


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
