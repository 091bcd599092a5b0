"""Both transports over real TLS: a loopback terminator (test CA) in front of DynamoDB Local.

Certificates are trusted the ways botocore trusts them (``verify=`` on the client,
``AWS_CA_BUNDLE``, a profile's ``ca_bundle``, ``verify=False``), refused fast when they cannot
be verified, and TLS connections are pooled: counted where they arrive, at the terminator.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.notes import TRANSPORTS, Base, Note, clients, lean_of, roundtrip

from streamodel import Engine
from streamodel.exceptions import ServerError, TransportError


@pytest.fixture(scope="module", autouse=True)
def _tables(local_endpoint: str, table_template: str) -> None:
    """The table, created once over plain HTTP."""
    Engine(endpoint_url=local_endpoint, table_name_template=table_template).bind(base=Base)


def engine_on(transport: str, table_template: str, **given: Any) -> Engine:
    return Engine(**given, transport=transport, table_name_template=table_template)


def check_lean_opened(engine: Engine, transport: str, terminator: Any) -> None:
    """On the lean path, the pool's own count matches what the terminator accepted (no
    control-plane call went through botocore in these tests)."""
    if transport == "lean":
        assert lean_of(engine).connections_opened == terminator.connections_accepted


# -- trusting the certificate -----------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ca_bundle_given_as_client_verify(
    transport: str, tls_terminator: Any, table_template: str
) -> None:
    """A client made with verify=<CA bundle path> reaches the TLS endpoint."""
    given = clients(tls_terminator.endpoint_url, verify=tls_terminator.ca_bundle_path)
    engine = engine_on(transport, table_template, **given)
    roundtrip(engine, count=5, text="note" * 100)
    assert tls_terminator.connections_accepted >= 1
    check_lean_opened(engine, transport, tls_terminator)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ca_bundle_from_aws_ca_bundle(
    transport: str, tls_terminator: Any, table_template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_CA_BUNDLE in the environment is honoured by Engine(endpoint_url=...)."""
    monkeypatch.setenv("AWS_CA_BUNDLE", tls_terminator.ca_bundle_path)
    engine = engine_on(transport, table_template, endpoint_url=tls_terminator.localhost_url)
    roundtrip(engine)
    assert tls_terminator.connections_accepted >= 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_ca_bundle_from_profile(
    transport: str,
    tls_terminator: Any,
    table_template: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ca_bundle set in the AWS config profile is honoured."""
    config = tmp_path / "config"
    config.write_text(
        f"[default]\nregion = us-east-1\nca_bundle = {tls_terminator.ca_bundle_path}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    engine = engine_on(transport, table_template, endpoint_url=tls_terminator.endpoint_url)
    roundtrip(engine)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_verify_false_client(transport: str, tls_terminator: Any, table_template: str) -> None:
    """A client made with verify=False talks to a certificate nobody trusts."""
    given = clients(tls_terminator.endpoint_url, verify=False)
    roundtrip(engine_on(transport, table_template, **given), count=5, text="note" * 100)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_client_certificate(
    transport: str, local_endpoint: str, table_template: str, tls_terminator: Any
) -> None:
    """A client certificate from Config(client_cert=(cert, key)) is presented when the
    server asks for one."""
    with tls_terminator.untrusted(require_client_cert=True) as strict:
        cert, key = strict.issue_client_cert()
        given = clients(strict.endpoint_url, verify=strict.ca_bundle_path, client_cert=(cert, key))
        roundtrip(engine_on(transport, table_template, **given))


# -- refusing it, at once ---------------------------------------------------------------


def _refused_once(engine: Engine, terminator: Any) -> TransportError:
    """A read (which retries would repeat) fails with one connection and no retry."""
    with pytest.raises(TransportError) as raised:
        engine.load(Note(owner="nobody", n=0))
    assert terminator.wait_open_at_most(0)
    assert terminator.connections_accepted == 1, "retried a certificate failure"
    assert terminator.handshakes_failed == 1
    error = raised.value
    assert not isinstance(error, ServerError), "a certificate failure is not retryable"
    message = str(error).lower()
    assert "certificate" in message and "verif" in message, message
    return error


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_untrusted_certificate_fails_fast(
    transport: str, tls_terminator: Any, table_template: str
) -> None:
    """With botocore's default trust store, the test CA's certificate is refused: one
    connection attempt, a TransportError saying the certificate could not be verified."""
    given = clients(tls_terminator.endpoint_url)
    _refused_once(engine_on(transport, table_template, **given), tls_terminator)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_certificate_from_another_ca_fails_fast(
    transport: str, tls_terminator: Any, table_template: str
) -> None:
    """Trusting one test CA does not trust a certificate from another."""
    with tls_terminator.untrusted() as other:
        given = clients(other.endpoint_url, verify=tls_terminator.ca_bundle_path)
        _refused_once(engine_on(transport, table_template, **given), other)
    assert tls_terminator.connections_accepted == 0


# -- pooling ----------------------------------------------------------------------------


def _threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(i)`` on ``count`` new threads started together; re-raise a failure."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            work(index)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_tls_connections_are_pooled(
    transport: str, tls_terminator: Any, table_template: str
) -> None:
    """Sequential calls, parallel scans and rounds of new threads share at most
    max_pool_connections (default 10) TLS connections, not one per call or thread."""
    given = clients(tls_terminator.endpoint_url, verify=tls_terminator.ca_bundle_path)
    engine = engine_on(transport, table_template, **given)
    owner = uuid.uuid4().hex
    engine.save(*(Note(owner=owner, n=i, text="x") for i in range(20)))
    opened = tls_terminator.connections_accepted
    for i in range(200):
        note = Note(owner=owner, n=i % 20)
        engine.load(note)
        assert note.text == "x"
    assert tls_terminator.connections_accepted - opened <= 1, "sequential calls reconnected"

    for _ in range(2):
        found = engine.scan(Note).filter(Note.owner == owner).parallel(8).all()
        assert len(found) == 20

    def loads(index: int) -> None:
        for i in range(50):
            note = Note(owner=owner, n=(index + i) % 20)
            engine.load(note)

    for _ in range(2):  # new threads each round: connections outlive the threads
        _threads(8, loads)
    assert tls_terminator.connections_accepted <= 10
    assert tls_terminator.handshakes_failed == 0
    check_lean_opened(engine, transport, tls_terminator)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_max_pool_connections_bounds_idle_connections(
    transport: str, tls_terminator: Any, table_template: str
) -> None:
    """Config(max_pool_connections=2): after 8 threads at once, at most 2 connections stay
    open, and later sequential calls reuse them."""
    given = clients(
        tls_terminator.endpoint_url, verify=tls_terminator.ca_bundle_path, max_pool_connections=2
    )
    engine = engine_on(transport, table_template, **given)
    owner = uuid.uuid4().hex
    engine.save(*(Note(owner=owner, n=i, text="x") for i in range(8)))

    def loads(index: int) -> None:
        for i in range(20):
            engine.load(Note(owner=owner, n=(index + i) % 8))

    _threads(8, loads)
    assert tls_terminator.wait_open_at_most(2), (
        f"{tls_terminator.connections_open} connections stay open with max_pool_connections=2"
    )
    opened = tls_terminator.connections_accepted
    for i in range(50):
        engine.load(Note(owner=owner, n=i % 8))
    assert tls_terminator.connections_accepted == opened, "sequential calls reconnected"
    check_lean_opened(engine, transport, tls_terminator)
