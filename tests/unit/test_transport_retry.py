"""Retries and failures at the transport boundary."""

from __future__ import annotations

import pytest

from streamodel.exceptions import ServerError, ThrottledError, TransportError
from streamodel.transport.botocore import BotocoreTransport, default_session, make_client
from streamodel.transport.retry import RetryPolicy


class Flaky:
    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


FAST = RetryPolicy(attempts=4, base=0.0, max_wait=0.0)


def test_success_is_one_call() -> None:
    """A call that succeeds is made once."""
    fn = Flaky()
    assert FAST.run("PutItem", fn) == "ok" and fn.calls == 1


def test_server_errors_on_idempotent_calls_are_retried_within_the_bound() -> None:
    """Reads are retried after 5xx until they succeed, at most ``attempts`` times in all."""
    fn = Flaky(ServerError("a"), ServerError("b"))
    assert FAST.run("GetItem", fn) == "ok" and fn.calls == 3
    always = Flaky(*[ServerError(str(i)) for i in range(10)])
    with pytest.raises(ServerError):
        FAST.run("Query", always)
    assert always.calls == 4


def test_unknown_outcome_of_a_write_is_not_retried() -> None:
    """An UpdateItem that failed with a 5xx may have landed: it is raised, not repeated."""
    fn = Flaky(ServerError("maybe applied"))
    with pytest.raises(ServerError):
        FAST.run("UpdateItem", fn)
    assert fn.calls == 1


def test_throttling_is_retried_for_every_operation() -> None:
    """A throttled call was not applied, so even a write is retried."""
    fn = Flaky(ThrottledError("slow down"))
    assert FAST.run("UpdateItem", fn) == "ok" and fn.calls == 2


def test_region_defaults_when_an_endpoint_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """With an explicit endpoint and no region configured, clients still work (us-east-1)."""
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    client = make_client("dynamodb", default_session(), "http://127.0.0.1:1")
    assert client.meta.region_name == "us-east-1"


def test_botocore_errors_become_streamodel_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """A botocore failure that is not an AWS answer (no credentials) is a TransportError."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    transport = BotocoreTransport(endpoint_url="http://127.0.0.1:1")
    with pytest.raises(TransportError, match="credentials"):
        transport.call("dynamodb", "PutItem", {"TableName": "t", "Item": {}})
