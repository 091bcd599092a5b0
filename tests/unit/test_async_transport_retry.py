"""AsyncRetryingTransport decides exactly as RetryingTransport (one RetryPolicy, shared
attempts), waiting with asyncio.sleep; and the async lean transport signs every operation with
botocore's SigV4 signature, for every kind of credentials."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

import pytest
from test_signature_parity import (
    ENDPOINT,
    KINDS,
    OPERATIONS,
    PARAMS,
    botocore_signature,
    header,
    session_with,
)

from streamodel.exceptions import ServerError, ThrottledError, TransportError
from streamodel.transport import (
    AsyncLeanTransport,
    AsyncRetryingTransport,
    RetryingTransport,
    RetryPolicy,
)
from streamodel.transport.retry import AttemptsExhausted

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def throttled() -> ThrottledError:
    return ThrottledError("slow down", operation="x", code="ThrottlingException")


def lost() -> ServerError:
    return ServerError("connection failed", operation="x", code="Connection")


class Scripted:
    """A transport (sync and async) that fails as scripted, then answers ``{}``."""

    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = list(failures)
        self.calls = 0

    def call(self, service: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return {}


class AsyncScripted(Scripted):
    async def call(  # type: ignore[override]
        self, service: Any, operation: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        return Scripted.call(self, service, operation, params)


CASES = [
    ("GetItem", [], 3),
    ("GetItem", [throttled(), lost()], 3),
    ("GetItem", [lost(), lost(), lost(), lost()], 3),
    ("PutItem", [throttled(), throttled()], 3),
    ("PutItem", [lost()], 3),  # a write whose outcome is unknown is not repeated
    ("UpdateItem", [TransportError("bad", operation="x", code="ValidationException")], 3),
    ("GetItem", [throttled()], 1),
    ("TransactWriteItems", [lost(), throttled()], 3),
]


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except Exception as error:
        return type(error).__name__, getattr(error, "code", None)


@pytest.mark.parametrize(("operation", "failures", "attempts"), CASES)
def test_async_retries_decide_as_the_sync_ones(
    operation: str,
    failures: list[BaseException],
    attempts: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same failures give the same number of calls, the same on_retry reports and the
    same outcome through both retrying transports; the async one never calls time.sleep."""
    retried: list[tuple[str, BaseException]] = []
    policy = RetryPolicy(
        attempts=attempts,
        base=0.0001,
        max_wait=0.001,
        on_retry=lambda operation, error: retried.append((operation, error)),
    )
    sync_inner, async_inner = Scripted(failures), AsyncScripted(failures)
    sync = RetryingTransport(sync_inner, policy)
    expected = outcome(lambda: sync.call("dynamodb", operation, {}))
    sync_retried, retried[:] = list(retried), []

    def no_blocking_sleep(seconds: float) -> None:
        raise AssertionError("time.sleep on the event loop")

    monkeypatch.setattr(time, "sleep", no_blocking_sleep)
    retrying = AsyncRetryingTransport(async_inner, policy)
    assert outcome(lambda: run(retrying.call("dynamodb", operation, {}))) == expected
    assert async_inner.calls == sync_inner.calls
    assert retried == sync_retried
    assert len(retried) == sync_inner.calls - 1


def test_a_failure_past_the_deadline_is_raised_by_both() -> None:
    """When the deadline has passed by the first failure, that failure is raised (not
    AttemptsExhausted), by the sync and the async retries alike."""
    policy = RetryPolicy(attempts=5, deadline=0.0)
    sync_inner, async_inner = Scripted([lost()]), AsyncScripted([lost()])
    with pytest.raises(ServerError):
        RetryingTransport(sync_inner, policy).call("dynamodb", "GetItem", {})
    with pytest.raises(ServerError):
        run(AsyncRetryingTransport(async_inner, policy).call("dynamodb", "GetItem", {}))
    assert sync_inner.calls == async_inner.calls == 1


def test_waits_are_full_jitter_below_the_policy_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each wait before a retry is drawn below base * 2**(n-1), capped by max_wait, and
    awaited with asyncio.sleep."""
    waits: list[float] = []
    sleep = asyncio.sleep

    async def recorded(seconds: float) -> None:
        waits.append(seconds)
        await sleep(0)

    monkeypatch.setattr(asyncio, "sleep", recorded)
    inner = AsyncScripted([throttled()] * 5)
    policy = RetryPolicy(attempts=6, base=0.01, max_wait=0.03)
    assert run(AsyncRetryingTransport(inner, policy).call("dynamodb", "PutItem", {})) == {}
    assert inner.calls == 6
    assert len(waits) == 5
    for n, wait in enumerate(waits, start=1):
        assert 0 <= wait <= min(0.03, 0.01 * 2 ** (n - 1))


def test_an_operation_of_several_requests_shares_one_bound() -> None:
    """Requests sent inside attempts.active() in a task draw on that operation's attempts;
    another task's calls meanwhile have their own."""
    policy = RetryPolicy(attempts=3, base=0.0001, max_wait=0.001)
    inner = AsyncScripted([throttled(), throttled()])
    retrying = AsyncRetryingTransport(inner, policy)

    async def operation() -> None:
        attempts = policy.operation()
        with attempts.active():
            await retrying.call("dynamodb", "BatchWriteItem", {})  # 3 attempts: 2 failures
            assert attempts.taken == 3
            with pytest.raises(AttemptsExhausted):
                await retrying.call("dynamodb", "BatchWriteItem", {})

    async def other() -> dict[str, Any]:
        return await AsyncRetryingTransport(AsyncScripted([]), policy).call(
            "dynamodb", "GetItem", {}
        )

    async def both() -> None:
        assert (await asyncio.gather(operation(), other()))[1] == {}

    run(both())
    assert inner.calls == 3


# -- signatures -------------------------------------------------------------------------


class AsyncRecorder:
    """Records each POST and answers an empty JSON document."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        self.sent.append((url, body, dict(headers)))
        return 200, {}, b"{}"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_async_signature_is_botocores(
    kind: str, monkeypatch: pytest.MonkeyPatch, signing_clock: Any
) -> None:
    """Every lean operation sent by the async transport carries exactly the signature and
    token botocore's SigV4Auth computes for it (refreshed credentials: the newest keys)."""
    new_issuer, make = KINDS[kind]
    issuer = new_issuer()
    sender = AsyncRecorder()
    transport = AsyncLeanTransport(
        session=session_with(make(issuer)), endpoint_url=ENDPOINT, sender=sender
    )

    async def calls() -> None:
        for service, operation in OPERATIONS:
            await transport.call(service, operation, copy.deepcopy(PARAMS[operation]))

    run(calls())
    assert len(sender.sent) == len(OPERATIONS)
    keys = []
    for (_, operation), (url, body, headers) in zip(OPERATIONS, sender.sent, strict=True):
        expected, token = botocore_signature(url, body, headers, issuer, monkeypatch, signing_clock)
        assert header(headers, "Authorization") == expected, operation
        assert header(headers, "X-Amz-Security-Token") == token
        keys.append(expected.split("Credential=", 1)[1].split("/", 1)[0])
    if kind == "refreshable":
        assert len(set(keys)) == len(keys), "a request reused expiring credentials"
