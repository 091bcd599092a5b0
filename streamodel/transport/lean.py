"""A lean transport: DynamoDB's JSON protocol signed with botocore's signer, without botocore's
generic machinery.

DynamoDB speaks JSON 1.0 over HTTPS with SigV4. :class:`LeanTransport` keeps what botocore
does well (its credential chain, refreshed credentials, region and endpoint resolution, the
SigV4 signer, fed a light request by :mod:`~streamodel.transport.signing`) and skips what is
generic and slow on the data path: the shape-walking serializer and parser, the event system,
``AWSRequest``, and ``http.client``'s header parsing (answers are read on kept-alive sockets
by :mod:`~streamodel.transport.http1`; behind a proxy, urllib3 carries them). Requests are
``json`` dumps of the wire dicts (``bytes`` become base64 text); responses are ``json`` loads
with binary attribute values and timestamps converted back exactly where DynamoDB puts them, so
a response is identical to what :class:`~streamodel.transport.BotocoreTransport` returns.

Only the data-plane and stream-reading operations take the lean path (:data:`LEAN_OPERATIONS`);
everything else (``CreateTable``, ``DescribeTable``, ``UpdateTable``, TTL, ...) is delegated to
a :class:`~streamodel.transport.BotocoreTransport` held inside, which keeps the lean path small
and the rarely called operations exactly as botocore does them.

There are no retries here (urllib3 runs with ``retries=False``): wrap the transport in
:class:`~streamodel.transport.RetryingTransport` (``Engine`` does) so tenacity is the only
retry layer. Each HTTP exchange can be observed with ``on_request`` (see :data:`OnRequest`);
:class:`ObservedTransport` gives the same hook around any transport.
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import select
import socket
import ssl
import sys
import threading
import time
import urllib.request
import uuid
import zlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import boto3
import botocore
import botocore.credentials
import botocore.exceptions
import botocore.httpsession
import urllib3
from botocore.utils import parse_timestamp

from streamodel.exceptions import ServerError
from streamodel.transport.base import Service, Transport
from streamodel.transport.botocore import BotocoreTransport, client_config, default_client
from streamodel.transport.errors import error_from_response
from streamodel.transport.http1 import read_response
from streamodel.transport.json_shape import restore_item, to_json_shape
from streamodel.transport.signing import Signer, host_of

__all__ = [
    "LEAN_OPERATIONS",
    "HTTPClientSender",
    "HTTPSender",
    "LeanTransport",
    "ObservedTransport",
    "OnRequest",
    "Urllib3Sender",
]

OnRequest = Callable[[str, "str | None", float, Any], None]
"""``on_request(operation, table, duration_seconds, consumed_capacity)``, called after every
request (also failed ones). ``table`` is the request's table name (the only table of a batch
or transaction, else ``None``); ``consumed_capacity`` is the response's ``ConsumedCapacity``
(present when the request asked for it with ``ReturnConsumedCapacity``), else ``None``.
The callback runs on the calling thread; an exception in it propagates to the caller."""

LEAN_OPERATIONS: dict[Service, frozenset[str]] = {
    "dynamodb": frozenset(
        {
            "GetItem",
            "PutItem",
            "UpdateItem",
            "DeleteItem",
            "BatchGetItem",
            "BatchWriteItem",
            "Query",
            "Scan",
            "TransactGetItems",
            "TransactWriteItems",
        }
    ),
    "dynamodbstreams": frozenset(
        {"DescribeStream", "GetShardIterator", "GetRecords", "ListStreams"}
    ),
}
"""The operations sent on the lean path; any other operation goes through botocore."""

_TARGET_PREFIX: dict[Service, str] = {
    "dynamodb": "DynamoDB_20120810.",
    "dynamodbstreams": "DynamoDBStreams_20120810.",
}
_CONTENT_TYPE = "application/x-amz-json-1.0"
_SIGNING_NAME = "dynamodb"  # botocore's signing name for both services


class HTTPSender(Protocol):
    """Sends one POST and returns ``(status, headers, body)``.

    ``headers`` of the answer must answer ``.get()`` with lower-case names (urllib3's are
    case-insensitive). Network failures raise ``OSError`` or ``urllib3`` errors.
    """

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]: ...


class Urllib3Sender:
    """POSTs over urllib3 keep-alive pools, one per endpoint, with no retries of its own.

    Proxies come from the environment (``HTTPS_PROXY``, ``NO_PROXY``, ...) and certificates
    from ``ca_bundle``, ``AWS_CA_BUNDLE`` or botocore's default bundle (a ``ca_bundle`` set
    in an AWS config profile is not read here: pass it explicitly).
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 60.0,
        read_timeout: float = 60.0,
        max_connections: int = 10,
        ca_bundle: str | None = None,
    ) -> None:
        self._pool_options: dict[str, Any] = {
            "maxsize": max_connections,
            "retries": False,
            "timeout": urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            "ca_certs": ca_bundle
            or os.environ.get("AWS_CA_BUNDLE")
            or botocore.httpsession.get_cert_path(True),
        }
        self._managers: dict[str | None, urllib3.PoolManager] = {}
        self._pools: dict[str, tuple[urllib3.connectionpool.HTTPConnectionPool, str]] = {}

    def _pool(self, url: str) -> tuple[urllib3.connectionpool.HTTPConnectionPool, str]:
        known = self._pools.get(url)
        if known is not None:
            return known
        parts = urlsplit(url)
        proxy = None
        if not urllib.request.proxy_bypass(parts.hostname or ""):
            proxy = urllib.request.getproxies().get(parts.scheme)
        manager = self._managers.get(proxy)
        if manager is None:
            manager = (
                urllib3.ProxyManager(proxy, **self._pool_options)
                if proxy
                else urllib3.PoolManager(**self._pool_options)
            )
            self._managers[proxy] = manager
        # Through a plain-HTTP proxy the request line carries the whole URL.
        target = url if proxy and parts.scheme == "http" else (parts.path or "/")
        known = self._pools[url] = (manager.connection_from_url(url), target)
        return known

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        pool, target = self._pool(url)
        response = pool.urlopen(
            "POST",
            target,
            body=body,
            headers=headers,
            retries=False,
            redirect=False,
            assert_same_host=False,
            preload_content=True,
        )
        return response.status, response.headers, response.data

    def close(self) -> None:
        """Close every pooled connection."""
        for manager in self._managers.values():
            manager.clear()


class HTTPClientSender:
    """POSTs over kept-alive sockets, one per endpoint and thread, reading the answers with
    :func:`~streamodel.transport.http1.read_response`.

    Faster than a urllib3 pool for DynamoDB's small requests: the request line, headers and
    body leave in one ``sendall`` (urllib3 and ``http.client`` send headers and body apart),
    no pool machinery runs per request, and the answer's headers are split directly rather
    than through ``http.client``'s ``email.parser``. A kept connection is checked before
    reuse, as urllib3 does, so a connection the server closed while idle is replaced rather
    than failing a request whose outcome would then be unknown. A malformed or cut-off answer
    raises ``ConnectionError`` and drops the connection. Endpoints behind a proxy from the
    environment go through :class:`Urllib3Sender`.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 60.0,
        read_timeout: float = 60.0,
        max_connections: int = 10,
        ca_bundle: str | None = None,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._ca_bundle = (
            ca_bundle or os.environ.get("AWS_CA_BUNDLE") or botocore.httpsession.get_cert_path(True)
        )
        self._local = threading.local()
        self._proxied = Urllib3Sender(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
            ca_bundle=ca_bundle,
        )
        self._direct: dict[str, bool] = {}
        self._ssl_context: ssl.SSLContext | None = None

    def _socket(self, url: str) -> tuple[socket.socket, bytes]:
        """This thread's open socket to ``url`` and the request line prefix for it."""
        sockets: dict[str, tuple[socket.socket, bytes]] = (
            getattr(self._local, "sockets", None) or {}
        )
        self._local.sockets = sockets
        known = sockets.get(url)
        if known is not None:
            if not _dropped(known[0]):
                return known
            known[0].close()
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        sock = socket.create_connection((host, port), timeout=self._connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if parts.scheme == "https":
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context(cafile=self._ca_bundle)
            sock = self._ssl_context.wrap_socket(sock, server_hostname=host)
        sock.settimeout(self._read_timeout)
        # The Host the signature covers: an IPv6 literal in brackets, no default port.
        prefix = f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {host_of(url)}\r\n".encode()
        sockets[url] = (sock, prefix)
        return sockets[url]

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        direct = self._direct.get(url)
        if direct is None:
            parts = urlsplit(url)
            proxy = urllib.request.getproxies().get(parts.scheme)
            direct = self._direct[url] = not proxy or bool(
                urllib.request.proxy_bypass(parts.hostname or "")
            )
        if not direct:
            return self._proxied(url, body, headers)
        sock, prefix = self._socket(url)
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        request = prefix + f"{lines}Content-Length: {len(body)}\r\n\r\n".encode() + body
        try:
            sock.sendall(request)
            # A malformed or cut-off answer is a ConnectionError: lost, like a reset.
            response = read_response(sock)
        except OSError:
            self._forget(url)
            raise
        if not response.keep_alive:
            self._forget(url)
        return response.status, response.headers, response.body

    def _forget(self, url: str) -> None:
        known = self._local.sockets.pop(url, None)
        if known is not None:
            known[0].close()

    def close(self) -> None:
        """Close this thread's connections (other threads' close with them)."""
        for sock, _ in getattr(self._local, "sockets", {}).values():
            sock.close()
        self._local.sockets = {}
        self._proxied.close()


def _dropped(sock: socket.socket) -> bool:
    """Whether the peer closed a kept connection (readable with nothing to read = EOF)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class LeanTransport:
    """Sends the data-plane and stream operations as signed JSON over a keep-alive pool.

    ``session`` is a boto3 or botocore session (default: boto3's default session, as
    ``boto3.client`` uses); credentials come from its chain and are frozen per request, so
    refreshed credentials are respected. ``dynamodb`` / ``dynamodbstreams`` are optional ready
    boto3 clients: their endpoint, region and credentials are used, and they serve the
    operations delegated to botocore. ``endpoint_url`` overrides the endpoint of both services
    (else ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS`` /
    ``AWS_ENDPOINT_URL`` or the regional AWS endpoint, resolved by botocore once).

    Operations outside :data:`LEAN_OPERATIONS` (control plane: ``CreateTable``,
    ``DescribeTable``, ``UpdateTable``, ``DescribeTimeToLive``, ...) are delegated to a
    :class:`~streamodel.transport.BotocoreTransport` held inside. No retries happen here.

    ``on_request(operation, table, duration_seconds, consumed_capacity)`` is called after each
    lean request, successful or not (see :data:`OnRequest`). ``sender`` replaces the HTTP layer
    (tests use a fake one).
    """

    def __init__(
        self,
        session: Any = None,
        *,
        dynamodb: Any = None,
        dynamodbstreams: Any = None,
        endpoint_url: str | None = None,
        on_request: OnRequest | None = None,
        connect_timeout: float = 60.0,
        read_timeout: float = 60.0,
        max_connections: int = 10,
        sender: HTTPSender | None = None,
    ) -> None:
        clients: dict[Service, Any] = {}
        given_clients: tuple[tuple[Service, Any], ...] = (
            ("dynamodb", dynamodb),
            ("dynamodbstreams", dynamodbstreams),
        )
        for service, given in given_clients:
            if given is not None:
                clients[service] = given
            elif session is not None:
                clients[service] = session.client(
                    service, endpoint_url=endpoint_url, config=client_config()
                )
            else:
                clients[service] = default_client(service, endpoint_url)
        self.botocore = BotocoreTransport(
            clients["dynamodb"], clients["dynamodbstreams"], endpoint_url=endpoint_url
        )
        self.endpoints: dict[Service, str] = {
            service: str(client.meta.endpoint_url).rstrip("/") + "/"
            for service, client in clients.items()
        }
        self.region: str = str(clients["dynamodb"].meta.region_name)
        self._credentials = _credentials(session, clients["dynamodb"])
        self._signer = Signer(self._credentials, _SIGNING_NAME, self.region)
        self.on_request = on_request
        self.sender: HTTPSender = sender or HTTPClientSender(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_connections=max_connections,
        )
        self._user_agent = (
            f"streamodel-lean botocore/{botocore.__version__} "
            f"Python/{'.'.join(map(str, sys.version_info[:3]))}"
        )

    def call(self, service: Service, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation not in LEAN_OPERATIONS[service]:
            return self.botocore.call(service, operation, params)
        if operation == "TransactWriteItems" and "ClientRequestToken" not in params:
            # botocore fills this idempotency token when it is missing; so do we.
            params = {**params, "ClientRequestToken": str(uuid.uuid4())}
        body = _ENCODER.encode(params).encode()
        headers = self._sign(service, operation, body)
        started = time.perf_counter()
        consumed = None
        try:
            try:
                status, response_headers, raw = self.sender(self.endpoints[service], body, headers)
            except (OSError, urllib3.exceptions.HTTPError) as error:
                raise ServerError(
                    f"{operation}: connection failed: {error}",
                    operation=operation,
                    code="Connection",
                ) from error
            if status >= 300:
                raise _error(operation, status, response_headers, raw)
            _check_crc32(operation, response_headers, raw)
            try:
                result: dict[str, Any] = json.loads(raw) if raw else {}
                _restore(operation, result, raw)
            except (ValueError, TypeError, AttributeError) as error:
                # A body that is not DynamoDB's JSON (a proxy's page, a cut-off answer).
                raise ServerError(
                    f"{operation}: unreadable response: {error}",
                    operation=operation,
                    code="InvalidResponse",
                ) from error
            consumed = result.get("ConsumedCapacity")
            return result
        finally:
            if self.on_request is not None:
                self.on_request(
                    operation, _table_of(params), time.perf_counter() - started, consumed
                )

    def _sign(self, service: Service, operation: str, body: bytes) -> dict[str, str]:
        headers = {
            "Content-Type": _CONTENT_TYPE,
            "X-Amz-Target": _TARGET_PREFIX[service] + operation,
            "User-Agent": self._user_agent,
        }
        return self._signer.sign(self.endpoints[service], headers, body)

    def close(self) -> None:
        """Close pooled connections (the transport stays usable; pools reopen on demand)."""
        close = getattr(self.sender, "close", None)
        if close is not None:
            close()


class ObservedTransport:
    """Wraps any transport and calls ``on_request`` after each call (see :data:`OnRequest`).

    Wrap the transport inside the retries (``Engine(transport=ObservedTransport(t, hook))``)
    to see every attempt.
    """

    def __init__(self, inner: Transport, on_request: OnRequest) -> None:
        self.inner = inner
        self.on_request = on_request

    def call(self, service: Service, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        consumed = None
        try:
            result = self.inner.call(service, operation, params)
            consumed = result.get("ConsumedCapacity")
            return result
        finally:
            self.on_request(operation, _table_of(params), time.perf_counter() - started, consumed)


# -- credentials ------------------------------------------------------------------------


def _credentials(session: Any, client: Any) -> botocore.credentials.Credentials:
    """The credentials object (refreshable or not) to freeze before each request."""
    found = None
    if session is not None:
        found = session.get_credentials()
    else:
        # A given or default client signs with its session's credentials; use the same.
        signer = getattr(client, "_request_signer", None)
        found = getattr(signer, "_credentials", None)
        if found is None:
            if boto3.DEFAULT_SESSION is None:
                boto3.setup_default_session()
            assert boto3.DEFAULT_SESSION is not None
            found = boto3.DEFAULT_SESSION.get_credentials()
    if found is None:
        raise botocore.exceptions.NoCredentialsError()
    credentials: botocore.credentials.Credentials = found
    return credentials


# -- requests -----------------------------------------------------------------------------


def _default(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return str(to_json_shape(value))
    raise TypeError(f"cannot send {type(value).__name__} to DynamoDB: {value!r}")


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_default)


def _table_of(params: Mapping[str, Any]) -> str | None:
    name = params.get("TableName")
    if name is not None:
        return str(name)
    tables: set[str] = set()
    if "RequestItems" in params:
        tables.update(params["RequestItems"])
    for item in params.get("TransactItems", ()):
        for action in item.values():
            tables.add(action.get("TableName"))
    if "StreamArn" in params:
        # arn:aws:dynamodb:region:account:table/NAME/stream/LABEL
        parts = str(params["StreamArn"]).split("/")
        if len(parts) >= 2:
            tables.add(parts[1])
    return tables.pop() if len(tables) == 1 else None


# -- responses ----------------------------------------------------------------------------


def _check_crc32(operation: str, headers: Mapping[str, str], raw: bytes) -> None:
    """DynamoDB sends a CRC32 of the body; a mismatch means a corrupted answer (retryable)."""
    expected = headers.get("x-amz-crc32")
    if expected is not None and zlib.crc32(raw) & 0xFFFFFFFF != int(expected):
        raise ServerError(
            f"{operation}: the response's CRC32 does not match its body",
            operation=operation,
            code="CRC32CheckFailed",
        )


def _error(operation: str, status: int, headers: Mapping[str, str], raw: bytes) -> Exception:
    """The streamodel error for an error answer, parsed as botocore's JSON parser does."""
    stripped = raw.strip()
    if status >= 500 and (not stripped or stripped.startswith(b"<html>")):
        return error_from_response(
            operation, status, str(status), http.client.responses.get(status, ""), {}
        )
    try:
        body = json.loads(raw) if stripped else {}
        if not isinstance(body, dict):
            body = {"message": raw.decode("utf-8", "replace")}
    except ValueError:
        body = {"message": raw.decode("utf-8", "replace")}
    message = str(body.get("message", body.get("Message", "")))
    code = str(body.get("__type") or headers.get("x-amzn-errortype") or status)
    if ":" in code:
        code = code.split(":", 1)[0]
    if "#" in code:
        code = code.rsplit("#", 1)[1]
    if "Item" in body:
        restore_item(body["Item"])
    for reason in body.get("CancellationReasons") or ():
        if reason.get("Item"):
            restore_item(reason["Item"])
    return error_from_response(operation, status, code, message, body)


def _items(items: list[dict[str, Any]]) -> None:
    for item in items:
        restore_item(item)


def _collection_metrics(metrics: Any) -> None:
    # ItemCollectionMetrics: one dict, or a dict of table name to a list of them.
    if isinstance(metrics, dict) and "ItemCollectionKey" in metrics:
        restore_item(metrics["ItemCollectionKey"])
    elif isinstance(metrics, dict):
        for entries in metrics.values():
            for entry in entries:
                restore_item(entry.get("ItemCollectionKey") or {})


def _restore_binary(operation: str, result: dict[str, Any]) -> None:
    """Every place of a response that holds attribute values, per the service model."""
    if operation in ("Query", "Scan"):
        _items(result.get("Items") or [])
        restore_item(result.get("LastEvaluatedKey") or {})
    elif operation == "GetItem":
        restore_item(result.get("Item") or {})
    elif operation in ("PutItem", "UpdateItem", "DeleteItem"):
        restore_item(result.get("Attributes") or {})
        _collection_metrics(result.get("ItemCollectionMetrics"))
    elif operation == "BatchGetItem":
        for items in (result.get("Responses") or {}).values():
            _items(items)
        for request in (result.get("UnprocessedKeys") or {}).values():
            _items(request.get("Keys") or [])
    elif operation == "BatchWriteItem":
        for requests in (result.get("UnprocessedItems") or {}).values():
            for request in requests:
                if "PutRequest" in request:
                    restore_item(request["PutRequest"].get("Item") or {})
                if "DeleteRequest" in request:
                    restore_item(request["DeleteRequest"].get("Key") or {})
        _collection_metrics(result.get("ItemCollectionMetrics"))
    elif operation == "TransactGetItems":
        for response in result.get("Responses") or ():
            restore_item(response.get("Item") or {})
    elif operation == "TransactWriteItems":
        _collection_metrics(result.get("ItemCollectionMetrics"))
    elif operation == "GetRecords":
        for record in result.get("Records") or ():
            data = record.get("dynamodb") or {}
            for image in ("Keys", "NewImage", "OldImage"):
                if image in data:
                    restore_item(data[image])


# The zone botocore's timestamp parser gives epoch values (dateutil's tzlocal).
_TZLOCAL = parse_timestamp("0").tzinfo


def _timestamp(value: Any) -> datetime.datetime:
    """An epoch number as the aware datetime botocore's parser makes of it (local zone)."""
    if isinstance(value, int | float):
        try:
            return datetime.datetime.fromtimestamp(value, _TZLOCAL)
        except (OSError, OverflowError):
            pass
    parsed: datetime.datetime = parse_timestamp(value)
    return parsed


def _restore(operation: str, result: dict[str, Any], raw: bytes) -> None:
    """Turn base64 text back into ``bytes`` and epoch numbers into datetimes, in place."""
    # Binary attribute values are written {"B":"..."} / {"BS":[...]}: without those keys in
    # the body (escaped quotes inside strings cannot fake them) there is nothing to decode.
    if b'"B"' in raw or b'"BS"' in raw:
        _restore_binary(operation, result)
    if operation == "GetRecords":
        for record in result.get("Records") or ():
            data = record.get("dynamodb")
            if data and "ApproximateCreationDateTime" in data:
                data["ApproximateCreationDateTime"] = _timestamp(
                    data["ApproximateCreationDateTime"]
                )
    elif operation == "DescribeStream":
        description = result.get("StreamDescription") or {}
        if "CreationRequestDateTime" in description:
            description["CreationRequestDateTime"] = _timestamp(
                description["CreationRequestDateTime"]
            )
