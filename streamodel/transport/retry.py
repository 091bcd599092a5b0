"""Retries for AWS calls: tenacity with full-jitter exponential backoff.

botocore's own retries are switched off for the clients streamodel creates (see
:func:`streamodel.transport.botocore.client_config`), so these are the only retries and
the two layers never multiply.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
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
    """How often and how long one call is retried.

    ``attempts`` bounds the number of tries, ``deadline`` the seconds spent on one call;
    waits grow exponentially from ``base`` and are drawn uniformly below that bound
    (full jitter), never above ``max_wait``.
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

    def run(self, operation: str, fn: Callable[[], T]) -> T:
        """Call ``fn`` until it succeeds, fails for good, or the policy is exhausted."""
        retryable: tuple[type[BaseException], ...] = (
            (ThrottledError, ServerError)
            if operation in IDEMPOTENT_OPERATIONS
            else (ThrottledError,)
        )
        started = time.monotonic()
        try:
            # Most calls succeed at once: only a failure pays for building the retry machinery.
            return fn()
        except retryable:
            if self.attempts == 1:
                raise
        # The first retry waits like tenacity's first full-jitter wait; the rest is tenacity's,
        # imported only now: a process whose calls all succeed never loads it.
        import tenacity

        time.sleep(random.uniform(0, min(self.base, self.max_wait)))
        remaining = max(self.deadline - (time.monotonic() - started), 0.0)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(retryable),
            stop=tenacity.stop_after_attempt(self.attempts - 1)
            | tenacity.stop_after_delay(remaining),
            wait=tenacity.wait_random_exponential(multiplier=self.base * 2, max=self.max_wait),
            reraise=True,
        )
        return retrying(fn)


NO_RETRIES = RetryPolicy(attempts=1)


class RetryingTransport:
    """Wraps any transport (botocore, lean, a fake) so every call runs under ``policy``."""

    def __init__(self, inner: Transport, policy: RetryPolicy | None = None) -> None:
        self.inner = inner
        self.policy = policy or RetryPolicy()

    def call(self, service: Service, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        return self.policy.run(operation, lambda: self.inner.call(service, operation, params))
