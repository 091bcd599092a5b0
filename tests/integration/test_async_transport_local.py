"""AsyncLeanTransport against DynamoDB Local: the same answers and errors as LeanTransport,
over plain HTTP, real TLS (tests/support/tls.py) and a real CONNECT proxy with Basic auth
(tests/support/connect_proxy.py); connections counted where they arrive."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

import pytest
from support.notes import clients

from streamodel import ConditionFailedError, TransactionCanceledError
from streamodel.exceptions import ServerError, TransportError
from streamodel.transport import (
    AsyncLeanTransport,
    AsyncRetryingTransport,
    BotocoreTransport,
    LeanTransport,
    RetryPolicy,
)

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@pytest.fixture(scope="module")
def table(local_endpoint: str, nonce: str) -> str:
    """A table with a string hash key, a binary range key and a stream, made once."""
    name = f"async-raw-{nonce}"
    BotocoreTransport(endpoint_url=local_endpoint).call(
        "dynamodb",
        "CreateTable",
        {
            "TableName": name,
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "B"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    return name


def item(pk: str, sk: bytes, n: int = 1) -> dict[str, Any]:
    return {
        "pk": {"S": pk},
        "sk": {"B": sk},
        "bin": {"B": bytes(range(256))},
        "bins": {"BS": [b"\x00", b"\xff\xfe"]},
        "map": {"M": {"b": {"B": b"\x01"}, "l": {"L": [{"N": "1.5"}, {"S": "é \u2603"}]}}},
        "n": {"N": str(n)},
    }


def typed(value: Any) -> Any:
    """``value`` with every leaf's type and repr spelled out, key order and set order ignored."""
    if isinstance(value, dict):
        return sorted((key, typed(member)) for key, member in value.items())
    if isinstance(value, list):
        return sorted((typed(member) for member in value), key=repr)
    return (type(value).__name__, repr(value))


def test_answers_equal_the_sync_lean_transports(local_endpoint: str, table: str) -> None:
    """PutItem, GetItem, UpdateItem, Query, Scan, TransactWriteItems, BatchGetItem: the async
    transport answers exactly as the sync one, binaries and capacities included."""
    sync = LeanTransport(endpoint_url=local_endpoint)
    pk = uuid.uuid4().hex
    cap = {"ReturnConsumedCapacity": "TOTAL"}
    key = {"pk": {"S": pk}, "sk": {"B": b"\x00k"}}
    query = {
        "TableName": table,
        "KeyConditionExpression": "pk = :p",
        "ExpressionAttributeValues": {":p": {"S": pk}},
        "ConsistentRead": True,
        **cap,
    }
    reads: list[tuple[str, dict[str, Any]]] = [
        ("GetItem", {"TableName": table, "Key": key, "ConsistentRead": True, **cap}),
        ("Query", query),
        ("Query", {**query, "Limit": 2}),
        (
            "BatchGetItem",
            {"RequestItems": {table: {"Keys": [key], "ConsistentRead": True}}, **cap},
        ),
    ]
    put = {"TableName": table, "Item": item(pk, b"\x00k"), "ReturnValues": "ALL_OLD", **cap}
    transact = {
        "TransactItems": [
            {"Put": {"TableName": table, "Item": item(pk, bytes([i]), i)}} for i in range(3)
        ],
        **cap,
    }
    update = {
        "TableName": table,
        "Key": key,
        "UpdateExpression": "SET #b = :b",
        "ExpressionAttributeNames": {"#b": "bin"},
        "ExpressionAttributeValues": {":b": {"B": b"\x10\x20"}},
        "ReturnValues": "ALL_NEW",
        **cap,
    }
    writes = [("PutItem", put), ("TransactWriteItems", transact), ("UpdateItem", update)]

    expected_writes = [sync.call("dynamodb", op, params) for op, params in writes]
    expected_reads = [sync.call("dynamodb", op, params) for op, params in reads]
    for sk in (b"\x00k", b"\x00", b"\x01", b"\x02"):  # back to where the writes began
        sync.call("dynamodb", "DeleteItem", {"TableName": table, "Key": {**key, "sk": {"B": sk}}})

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        transport = AsyncLeanTransport(endpoint_url=local_endpoint)
        got_writes = [await transport.call("dynamodb", op, params) for op, params in writes]
        got_reads = list(
            await asyncio.gather(*(transport.call("dynamodb", op, params) for op, params in reads))
        )
        await transport.aclose()
        return got_writes, got_reads

    got_writes, got_reads = run(scenario())
    assert got_reads == expected_reads
    assert typed(got_reads) == typed(expected_reads)
    assert isinstance(got_reads[0]["Item"]["bin"]["B"], bytes)
    assert got_reads[1]["Count"] == 4
    assert got_writes == expected_writes
    assert typed(got_writes) == typed(expected_writes)
    assert got_writes[2]["Attributes"]["bin"] == {"B": b"\x10\x20"}
    sync.close()


def test_errors_equal_the_sync_lean_transports(local_endpoint: str, table: str) -> None:
    """A failed condition (with the stored item), a cancelled transaction (with reasons) and
    a missing table raise the same errors through both transports."""
    sync = LeanTransport(endpoint_url=local_endpoint)
    pk = uuid.uuid4().hex
    stored = item(pk, b"\xff")
    sync.call("dynamodb", "PutItem", {"TableName": table, "Item": stored})
    conditional = {
        "TableName": table,
        "Item": stored,
        "ConditionExpression": "attribute_not_exists(pk)",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    transact = {
        "TransactItems": [
            {"Put": {"TableName": table, "Item": item(pk, b"new")}},
            {"Put": conditional},
        ]
    }
    calls = [
        ("PutItem", conditional),
        ("TransactWriteItems", transact),
        ("GetItem", {"TableName": "no-such-table", "Key": {}}),
    ]
    expected = []
    for operation, params in calls:
        with pytest.raises(Exception) as caught:
            sync.call("dynamodb", operation, params)
        expected.append(caught.value)

    async def scenario() -> list[BaseException]:
        transport = AsyncLeanTransport(endpoint_url=local_endpoint)
        raised = []
        for operation, params in calls:
            with pytest.raises(Exception) as caught:
                await transport.call("dynamodb", operation, params)
            raised.append(caught.value)
        await transport.aclose()
        return raised

    raised = run(scenario())
    assert [type(e) for e in raised] == [type(e) for e in expected]
    assert [str(e) for e in raised] == [str(e) for e in expected]
    assert isinstance(raised[0], ConditionFailedError)
    assert typed(raised[0].item) == typed(expected[0].item) == typed(stored)  # type: ignore[attr-defined]
    assert isinstance(raised[1], TransactionCanceledError)
    assert typed(raised[1].reasons) == typed(expected[1].reasons)  # type: ignore[attr-defined]
    assert raised[1].reasons[1]["code"] == "ConditionalCheckFailed"
    sync.close()


def test_many_tasks_share_a_bounded_pool(
    local_endpoint: str, table: str, recording_forwarder: Any
) -> None:
    """200 reads from 50 tasks with max_pool_connections=4: at most 4 connections reach the
    server, and they are kept for later calls."""
    pk = uuid.uuid4().hex
    LeanTransport(endpoint_url=local_endpoint).call(
        "dynamodb", "PutItem", {"TableName": table, "Item": item(pk, b"p")}
    )
    key = {"pk": {"S": pk}, "sk": {"B": b"p"}}

    async def scenario() -> int:
        transport = AsyncLeanTransport(
            **clients(recording_forwarder.endpoint_url, max_pool_connections=4)
        )

        async def reads() -> None:
            for _ in range(4):
                got = await transport.call("dynamodb", "GetItem", {"TableName": table, "Key": key})
                assert got["Item"]["sk"] == {"B": b"p"}

        await asyncio.gather(*(reads() for _ in range(50)))
        opened = transport.connections_opened
        for _ in range(20):
            await transport.call("dynamodb", "GetItem", {"TableName": table, "Key": key})
        assert transport.connections_opened == opened
        await transport.aclose()
        return opened

    opened = run(scenario())
    assert 1 <= opened == recording_forwarder.connections_accepted <= 4
    assert len(recording_forwarder.recorded()) == 220


# -- TLS ------------------------------------------------------------------------------------


def roundtrip(transport: AsyncLeanTransport, table: str) -> None:
    """Writes, a read, a query and a transaction go through and agree."""
    pk = uuid.uuid4().hex

    async def scenario() -> None:
        await asyncio.gather(
            *(
                transport.call(
                    "dynamodb", "PutItem", {"TableName": table, "Item": item(pk, bytes([i]))}
                )
                for i in range(3)
            )
        )
        key = {"pk": {"S": pk}, "sk": {"B": b"\x02"}}
        got = await transport.call("dynamodb", "GetItem", {"TableName": table, "Key": key})
        assert got["Item"]["bin"] == {"B": bytes(range(256))}
        found = await transport.call(
            "dynamodb",
            "Query",
            {
                "TableName": table,
                "KeyConditionExpression": "pk = :p",
                "ExpressionAttributeValues": {":p": {"S": pk}},
            },
        )
        assert found["Count"] == 3
        await transport.call(
            "dynamodb",
            "TransactWriteItems",
            {"TransactItems": [{"Delete": {"TableName": table, "Key": key}}]},
        )
        await transport.aclose()

    run(scenario())


@pytest.mark.parametrize("trust", ["ca-bundle", "verify-false", "client-cert"])
def test_tls(trust: str, tls_terminator: Any, table: str) -> None:
    """The client's verify= (a CA bundle, or False) and Config(client_cert=...) are honoured
    over real TLS, on pooled connections (counted at the terminator)."""
    if trust == "client-cert":
        with tls_terminator.untrusted(require_client_cert=True) as strict:
            cert, key = strict.issue_client_cert()
            given = clients(
                strict.endpoint_url, verify=strict.ca_bundle_path, client_cert=(cert, key)
            )
            roundtrip(AsyncLeanTransport(**given), table)
        return
    verify = tls_terminator.ca_bundle_path if trust == "ca-bundle" else False
    transport = AsyncLeanTransport(**clients(tls_terminator.endpoint_url, verify=verify))
    roundtrip(transport, table)
    assert transport.connections_opened == tls_terminator.connections_accepted <= 3
    assert tls_terminator.handshakes_failed == 0


def test_aws_ca_bundle_from_the_environment(
    tls_terminator: Any, table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS_CA_BUNDLE is honoured by a transport made from the environment alone."""
    monkeypatch.setenv("AWS_CA_BUNDLE", tls_terminator.ca_bundle_path)
    roundtrip(AsyncLeanTransport(endpoint_url=tls_terminator.localhost_url), table)
    assert tls_terminator.connections_accepted >= 1


def test_an_untrusted_certificate_fails_after_one_attempt(tls_terminator: Any) -> None:
    """With botocore's default trust store the test CA's certificate is refused: one
    connection, one failed handshake, a TransportError naming the certificate, no retry even
    for a read."""

    async def scenario() -> TransportError:
        transport = AsyncRetryingTransport(
            AsyncLeanTransport(**clients(tls_terminator.endpoint_url)), RetryPolicy(base=0.0001)
        )
        with pytest.raises(TransportError) as raised:
            await transport.call("dynamodb", "GetItem", {"TableName": "t", "Key": {}})
        await transport.aclose()
        return raised.value

    error = run(scenario())
    assert not isinstance(error, ServerError)
    assert error.code == "CertificateVerifyFailed"
    assert "could not be verified" in str(error)
    assert tls_terminator.wait_open_at_most(0)
    assert tls_terminator.connections_accepted == 1
    assert tls_terminator.handshakes_failed == 1


# -- proxies --------------------------------------------------------------------------------


def assert_tunnelled(proxy: Any, terminator: Any) -> None:
    seen = proxy.requests
    assert seen, "the proxy saw nothing"
    assert all(r.method == "CONNECT" and r.authorized for r in seen), seen
    assert {r.target for r in seen} == {urlsplit(terminator.localhost_url).netloc}
    assert proxy.tunnels_opened == terminator.connections_accepted >= 1


@pytest.mark.parametrize("source", ["environment", "config"])
def test_connect_tunnel_with_proxy_credentials(
    source: str,
    tls_terminator: Any,
    connect_proxy: Any,
    table: str,
    no_proxy_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An https endpoint behind HTTPS_PROXY or Config(proxies=...): an authorized CONNECT
    tunnel per pooled connection, TLS to the endpoint inside it."""
    if source == "environment":
        monkeypatch.setenv("HTTPS_PROXY", connect_proxy.url())
        given = clients(tls_terminator.localhost_url, verify=tls_terminator.ca_bundle_path)
    else:
        given = clients(
            tls_terminator.localhost_url,
            verify=tls_terminator.ca_bundle_path,
            proxies={"https": connect_proxy.url()},
        )
    roundtrip(AsyncLeanTransport(**given), table)
    assert_tunnelled(connect_proxy, tls_terminator)


def test_wrong_proxy_credentials_fail_after_one_attempt(
    tls_terminator: Any, connect_proxy: Any, no_proxy_env: None
) -> None:
    """A 407 to CONNECT fails a read at once: one request to the proxy, nothing reaches the
    server, a TransportError naming proxy authentication."""
    given = clients(
        tls_terminator.localhost_url,
        verify=tls_terminator.ca_bundle_path,
        proxies={"https": connect_proxy.url(password="wrong")},
    )

    async def scenario() -> TransportError:
        transport = AsyncRetryingTransport(AsyncLeanTransport(**given), RetryPolicy(base=0.0001))
        with pytest.raises(TransportError) as raised:
            await transport.call("dynamodb", "GetItem", {"TableName": "t", "Key": {}})
        await transport.aclose()
        return raised.value

    error = run(scenario())
    assert not isinstance(error, ServerError)
    assert error.code == "ProxyAuthenticationRequired"
    assert [(r.method, r.authorized) for r in connect_proxy.requests] == [("CONNECT", False)]
    assert connect_proxy.requests[0].credentials == f"{connect_proxy.user}:wrong"
    assert tls_terminator.connections_accepted == 0


def test_http_endpoint_through_the_proxy(
    local_endpoint: str,
    connect_proxy: Any,
    table: str,
    no_proxy_env: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY with credentials: requests to an http endpoint go to the proxy in absolute
    form, authorized, and are forwarded; no tunnel."""
    monkeypatch.setenv("HTTP_PROXY", connect_proxy.url())
    endpoint = local_endpoint.replace("127.0.0.1", "localhost")
    roundtrip(AsyncLeanTransport(endpoint_url=endpoint), table)
    seen = connect_proxy.requests
    assert len(seen) == 6
    assert all(r.method == "POST" and r.authorized for r in seen), seen
    assert {r.target.rstrip("/") for r in seen} == {endpoint.rstrip("/")}
    assert connect_proxy.tunnels_opened == 0


def test_https_proxy_tunnels_tls_in_tls_as_botocore_does(
    local_endpoint: str,
    tls_terminator: Any,
    connect_proxy: Any,
    table: str,
    no_proxy_env: None,
) -> None:
    """An https:// proxy (TLS to the proxy, checked against proxy_ca_bundle) tunnelling to an
    https endpoint: the async transport and botocore (the sync lean path's sender behind a
    proxy) both get through, both with authorized CONNECTs."""
    from support import TLSTerminator

    with TLSTerminator(f"http://127.0.0.1:{connect_proxy.port}") as proxy_front:
        given = clients(
            tls_terminator.localhost_url,
            verify=tls_terminator.ca_bundle_path,
            proxies={
                "https": connect_proxy.url()
                .replace("http://", "https://")
                .replace(f"127.0.0.1:{connect_proxy.port}", f"localhost:{proxy_front.port}")
            },
            proxies_config={"proxy_ca_bundle": proxy_front.ca_bundle_path},
        )
        roundtrip(AsyncLeanTransport(**given), table)
        asynchronous = len(connect_proxy.requests)
        sync = LeanTransport(**given)
        key = {"pk": {"S": "none"}, "sk": {"B": b"x"}}
        assert sync.call("dynamodb", "GetItem", {"TableName": table, "Key": key}) == {}
        sync.close()
    assert asynchronous >= 1 and len(connect_proxy.requests) > asynchronous
    assert_tunnelled(connect_proxy, tls_terminator)
    assert proxy_front.connections_accepted == connect_proxy.tunnels_opened
