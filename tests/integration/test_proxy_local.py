"""Both transports through a real HTTP proxy with Basic auth (tests/support/connect_proxy.py):
CONNECT tunnels to the TLS terminator for https endpoints, absolute-URI forwarding for http
ones; the proxy comes from the environment or from Config(proxies=...)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from support.notes import TRANSPORTS, Base, Note, clients, roundtrip

from streamodel import Engine
from streamodel.exceptions import ServerError, TransportError


@pytest.fixture(scope="module", autouse=True)
def _tables(local_endpoint: str, table_template: str) -> None:
    """The table, created once, directly."""
    Engine(endpoint_url=local_endpoint, table_name_template=table_template).bind(base=Base)


def localhost(url: str) -> str:
    return url.replace("127.0.0.1", "localhost")


def assert_tunnelled(proxy: Any, terminator: Any) -> None:
    """Every connection the terminator accepted came through an authorized tunnel."""
    seen = proxy.requests
    assert seen, "the proxy saw nothing"
    assert all(r.method == "CONNECT" and r.authorized for r in seen), seen
    assert {r.target for r in seen} == {urlsplit(terminator.localhost_url).netloc}
    assert proxy.tunnels_opened == terminator.connections_accepted >= 1


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_https_proxy_from_environment(
    transport: str,
    tls_terminator: Any,
    connect_proxy: Any,
    table_template: str,
    no_proxy_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTPS_PROXY=http://user:pass@127.0.0.1:PORT: requests to an https endpoint go through
    an authenticated CONNECT tunnel."""
    monkeypatch.setenv("HTTPS_PROXY", connect_proxy.url())
    monkeypatch.setenv("AWS_CA_BUNDLE", tls_terminator.ca_bundle_path)
    engine = Engine(
        endpoint_url=tls_terminator.localhost_url,
        transport=transport,
        table_name_template=table_template,
    )
    roundtrip(engine)
    assert_tunnelled(connect_proxy, tls_terminator)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_https_proxy_from_client_config(
    transport: str,
    tls_terminator: Any,
    connect_proxy: Any,
    table_template: str,
    no_proxy_env: None,
) -> None:
    """Config(proxies={"https": ...}) on the given clients is honoured, credentials included."""
    given = clients(
        tls_terminator.localhost_url,
        verify=tls_terminator.ca_bundle_path,
        proxies={"https": connect_proxy.url()},
    )
    roundtrip(Engine(**given, transport=transport, table_name_template=table_template))
    assert_tunnelled(connect_proxy, tls_terminator)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("source", ["environment", "config"])
def test_wrong_proxy_credentials_fail_fast(
    transport: str,
    source: str,
    tls_terminator: Any,
    connect_proxy: Any,
    table_template: str,
    no_proxy_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A 407 from the proxy fails a read (which retries would repeat) at once: one request
    to the proxy, nothing reaches the server, and the TransportError names proxy
    authentication."""
    wrong = connect_proxy.url(password="wrong")
    if source == "environment":
        monkeypatch.setenv("HTTPS_PROXY", wrong)
        given = clients(tls_terminator.localhost_url, verify=tls_terminator.ca_bundle_path)
    else:
        given = clients(
            tls_terminator.localhost_url,
            verify=tls_terminator.ca_bundle_path,
            proxies={"https": wrong},
        )
    engine = Engine(**given, transport=transport, table_name_template=table_template)
    with pytest.raises(TransportError) as raised:
        engine.load(Note(owner="nobody", n=0))
    assert not isinstance(raised.value, ServerError), "a refused proxy login is not retryable"
    assert "proxy authentication" in str(raised.value).lower(), str(raised.value)
    assert [(r.method, r.authorized) for r in connect_proxy.requests] == [("CONNECT", False)]
    assert connect_proxy.requests[0].credentials == f"{connect_proxy.user}:wrong"
    assert tls_terminator.connections_accepted == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_http_endpoint_through_proxy(
    transport: str,
    local_endpoint: str,
    connect_proxy: Any,
    table_template: str,
    no_proxy_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY with credentials: requests to an http endpoint are sent to the proxy in
    absolute form and forwarded."""
    monkeypatch.setenv("HTTP_PROXY", connect_proxy.url())
    endpoint = localhost(local_endpoint)
    roundtrip(
        Engine(endpoint_url=endpoint, transport=transport, table_name_template=table_template)
    )
    seen = connect_proxy.requests
    assert len(seen) >= 5  # 3 saves, load, query, scan (some may be batched)
    assert all(r.method == "POST" and r.authorized for r in seen), seen
    assert {r.target.rstrip("/") for r in seen} == {endpoint.rstrip("/")}
    assert connect_proxy.tunnels_opened == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_no_proxy_bypasses_the_proxy(
    transport: str,
    tls_terminator: Any,
    connect_proxy: Any,
    table_template: str,
    no_proxy_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """NO_PROXY naming the endpoint's host wins over HTTPS_PROXY: the proxy sees nothing."""
    monkeypatch.setenv("HTTPS_PROXY", connect_proxy.url())
    monkeypatch.setenv("NO_PROXY", "localhost")
    monkeypatch.setenv("AWS_CA_BUNDLE", tls_terminator.ca_bundle_path)
    engine = Engine(
        endpoint_url=tls_terminator.localhost_url,
        transport=transport,
        table_name_template=table_template,
    )
    roundtrip(engine)
    assert connect_proxy.requests == []
    assert tls_terminator.connections_accepted >= 1
