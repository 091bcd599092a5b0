"""Fixtures for tests against DynamoDB Local: an engine and a recorder of sent requests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from streamodel import Engine
from streamodel.transport import BotocoreTransport


class RecordingTransport:
    """A real transport that also keeps every (service, operation, params) it sent."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    def call(self, service: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((service, operation, params))
        result: dict[str, Any] = self.inner.call(service, operation, params)
        return result

    def sent(self, operation: str) -> list[dict[str, Any]]:
        return [params for _, op, params in self.calls if op == operation]


@pytest.fixture(scope="session")
def table_template(nonce: str) -> str:
    """Table names carry the session's nonce, so tables are created once per session."""
    return f"it-{nonce}-{{table_name}}"


@pytest.fixture(scope="session", params=["lean", "botocore"])
def engine(request: pytest.FixtureRequest, local_endpoint: str, table_template: str) -> Engine:
    """An engine on the session's DynamoDB Local; every test that takes it runs on both
    transports (the lean one is the default, the boto3 clients the switch)."""
    return Engine(
        endpoint_url=local_endpoint, table_name_template=table_template, transport=request.param
    )


@pytest.fixture
def recorder(
    local_endpoint: str, table_template: str
) -> Iterator[tuple[Engine, RecordingTransport]]:
    """An engine whose requests to DynamoDB Local are recorded."""
    transport = RecordingTransport(BotocoreTransport(endpoint_url=local_endpoint))
    yield Engine(transport=transport, table_name_template=table_template), transport


# -- loopback TLS, proxy and recording servers (tests/support) ----------------------------


def _support() -> Any:
    """``tests/support`` as the ``support`` package (``tests/`` on ``sys.path``)."""
    import sys
    from pathlib import Path

    tests = str(Path(__file__).resolve().parents[1])
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import support

    return support


@pytest.fixture
def tls_terminator(local_endpoint: str) -> Iterator[Any]:
    """A started loopback TLS terminator in front of DynamoDB Local (its own test CA)."""
    with _support().TLSTerminator(local_endpoint) as terminator:
        yield terminator


@pytest.fixture
def connect_proxy() -> Iterator[Any]:
    """A started loopback HTTP proxy (CONNECT and absolute-URI) requiring Basic auth."""
    with _support().ConnectProxy() as proxy:
        yield proxy


@pytest.fixture
def recording_forwarder(local_endpoint: str) -> Iterator[Any]:
    """A plain-HTTP forwarder to DynamoDB Local that records every request's headers."""
    with _support().TLSTerminator(local_endpoint, tls=False, record=True) as forwarder:
        yield forwarder


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy settings from the environment (the suite's NO_PROXY lists loopback)."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
