"""A lean transport: DynamoDB's JSON protocol signed with botocore's signer, without botocore's
generic machinery.

DynamoDB speaks JSON 1.0 over HTTPS with SigV4. :class:`LeanTransport` keeps what botocore
does well (its credential chain, refreshed credentials, region and endpoint resolution, the
SigV4 signer, fed a light request by :mod:`~streamodel.transport.signing`) and skips what is
generic and slow on the data path: the shape-walking serializer and parser, the event system,
``AWSRequest``, and ``http.client``'s header parsing (answers are read on kept-alive sockets
of :mod:`~streamodel.transport.pool` by :mod:`~streamodel.transport.http1`; behind a proxy,
botocore's own HTTP session carries them). Requests are
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
import logging
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

import botocore
import botocore.awsrequest
import botocore.exceptions
from botocore.utils import parse_timestamp

from streamodel.exceptions import ServerError, TransportError
from streamodel.transport.base import Service, Transport
from streamodel.transport.botocore import BotocoreTransport
from streamodel.transport.errors import connection_error, error_from_response, proxy_refused
from streamodel.transport.http1 import MAX_BODY
from streamodel.transport.internals import ClientFacts, InternalsChanged, client_facts, intercepted
from streamodel.transport.json_shape import restore_item, to_json_shape
from streamodel.transport.pool import ConnectionPool
from streamodel.transport.signing import Signer

__all__ = [
    "LEAN_OPERATIONS",
    "HTTPSender",
    "LeanTransport",
    "ObservedTransport",
    "OnRequest",
]

_log = logging.getLogger("streamodel.transport")

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

    ``headers`` of the answer must answer ``.get()`` with lower-case names. Network failures
    raise ``OSError`` or botocore's connection errors.
    """

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]: ...


class BotocoreHTTPSender:
    """Sends through a botocore client's own HTTP session (urllib3), so an endpoint behind a
    proxy is reached exactly as botocore reaches it: proxies from the environment or
    ``Config(proxies=...)``, proxy credentials, ``proxies_config``, in botocore's bounded pool."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        # HeadersDict, as AWSRequest.prepare() makes (the stubs say HTTPHeaders): urllib3 copies
        # the headers of a request forwarded through a plain-HTTP proxy.
        headers_dict = botocore.awsrequest.HeadersDict(headers)
        request = botocore.awsrequest.AWSPreparedRequest(
            "POST",
            url,
            headers_dict,  # type: ignore[arg-type]
            body,
            False,
        )
        response = self.session.send(request)
        return response.status_code, response.headers, response.content


class _Route(NamedTuple):
    """How one service's lean requests go out."""

    url: str
    facts: ClientFacts
    signer: Signer
    send: HTTPSender


class LeanTransport:
    """Sends the data-plane and stream operations as signed JSON over a keep-alive pool.

    Everything about where and how to connect comes from the botocore clients it works with,
    so the lean path behaves as botocore configured the same way: endpoint, region and
    credentials (refreshed credentials included, frozen per request), ``verify`` (``False`` or
    a CA bundle; ``AWS_CA_BUNDLE`` and a profile's ``ca_bundle`` through botocore), client
    certificates, proxies (environment or ``Config(proxies=..., proxies_config=...)``, with
    their credentials), ``connect_timeout``, ``read_timeout`` and ``max_pool_connections``.

    ``dynamodb`` / ``dynamodbstreams`` are ready boto3 or botocore clients; without them,
    clients are made from ``session`` (a boto3 or botocore session; default: a new botocore
    session, which reads the environment and files as ``boto3.session.Session()`` does) when a
    service is first used. ``endpoint_url`` overrides both services' endpoint
    (else ``AWS_ENDPOINT_URL_DYNAMODB`` / ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS`` /
    ``AWS_ENDPOINT_URL`` or the regional AWS endpoint, resolved by botocore).

    Requests go the botocore way instead when botocore would not put them on the network
    (moto's ``mock_aws`` or another ``before-send`` handler that answers), and for operations
    outside :data:`LEAN_OPERATIONS` (control plane: ``CreateTable``, ``DescribeTable``, ...).
    If botocore's private parts are not what the lean path reads (see
    :mod:`~streamodel.transport.internals`), every request goes the botocore way, after one
    WARNING. No retries happen here.

    Direct endpoints are reached over :class:`~streamodel.transport.pool.ConnectionPool`, one
    per service, shared by threads; an endpoint behind a proxy through botocore's own HTTP
    session (:class:`BotocoreHTTPSender`). ``on_request(operation, table, duration_seconds,
    consumed_capacity)`` is called after each lean request, successful or not (see
    :data:`OnRequest`). ``sender`` replaces the HTTP layer (tests use a fake one).
    """

    def __init__(
        self,
        session: Any = None,
        *,
        dynamodb: Any = None,
        dynamodbstreams: Any = None,
        endpoint_url: str | None = None,
        on_request: OnRequest | None = None,
        sender: HTTPSender | None = None,
    ) -> None:
        self.botocore = BotocoreTransport(
            dynamodb, dynamodbstreams, endpoint_url=endpoint_url, session=session
        )
        self.on_request = on_request
        self._sender = sender
        self._routes: dict[Service, _Route | None] = {}
        self._lock = threading.Lock()
        self._user_agent = (
            f"streamodel-lean botocore/{botocore.__version__} "
            f"Python/{'.'.join(map(str, sys.version_info[:3]))}"
        )

    @property
    def connections_opened(self) -> int:
        """New connections opened by the direct pools (what goes through a proxy is botocore's
        and not counted); steady state opens none."""
        return sum(
            route.send.opened
            for route in self._routes.values()
            if route is not None and isinstance(route.send, ConnectionPool)
        )

    def endpoint(self, service: Service) -> str | None:
        """The URL ``service``'s lean requests go to (``None`` if they go through botocore)."""
        route = self._routes[service] if service in self._routes else self._route(service)
        return route.url if route is not None else None

    def _route(self, service: Service) -> _Route | None:
        """``service``'s route, worked out from its client on first use; ``None`` when the
        lean path cannot be taken (botocore's internals changed)."""
        with self._lock:
            if service in self._routes:
                return self._routes[service]
            try:
                facts = client_facts(self.botocore.client(service))
            except InternalsChanged as error:
                _log.warning(
                    "streamodel: the lean transport cannot read this botocore's internals "
                    "(%s); every request goes through botocore instead",
                    error,
                )
                # One warning: the other service goes the botocore way too from now on.
                self._routes = {"dynamodb": None, "dynamodbstreams": None}
                return None
            url = facts.endpoint_url.rstrip("/") + "/"
            send = self._sender or _sender_for(facts, url)
            route = _Route(url, facts, Signer(facts.credentials, _SIGNING_NAME, facts.region), send)
            self._routes[service] = route
            return route

    def call(self, service: Service, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation not in LEAN_OPERATIONS[service]:
            return self.botocore.call(service, operation, params)
        route = self._routes.get(service) if service in self._routes else self._route(service)
        if route is None or intercepted(route.facts, operation):
            return self.botocore.call(service, operation, params)
        if operation == "TransactWriteItems" and "ClientRequestToken" not in params:
            # botocore fills this idempotency token when it is missing; so do we.
            params = {**params, "ClientRequestToken": str(uuid.uuid4())}
        body = _ENCODER.encode(params).encode()
        headers = {
            "Content-Type": _CONTENT_TYPE,
            "X-Amz-Target": _TARGET_PREFIX[service] + operation,
            "Accept-Encoding": "identity",
            "User-Agent": self._user_agent,
        }
        started = time.perf_counter()
        consumed = None
        try:
            try:
                route.signer.sign(route.url, headers, body)
            except botocore.exceptions.BotoCoreError as error:
                # No credentials: as the botocore path reports it.
                raise TransportError(
                    f"{operation}: {error}", operation=operation, code=type(error).__name__
                ) from error
            try:
                status, response_headers, raw = route.send(route.url, body, headers)
            except (
                OSError,
                botocore.exceptions.HTTPClientError,
                botocore.exceptions.ConnectionError,
            ) as error:
                raise connection_error(operation, route.url, error) from error
            _check_crc32(operation, response_headers, raw)
            raw = _decoded(operation, response_headers, raw)
            if status == 407:  # from a proxy forwarding plain HTTP
                raise proxy_refused(operation, route.url)
            if status >= 300:
                raise _error(operation, status, response_headers, raw)
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

    def close(self) -> None:
        """Close pooled connections, and those of the botocore clients made here (the
        transport stays usable; connections reopen on demand)."""
        for route in list(self._routes.values()):
            close = getattr(route.send if route is not None else None, "close", None)
            if close is not None:
                close()
        self.botocore.close()


def _sender_for(facts: ClientFacts, url: str) -> HTTPSender:
    """A direct pool with the client's connection settings, or botocore's own HTTP session
    when the client reaches ``url`` through a proxy."""
    settings = facts.http
    if settings.proxy_for(url) is not None:
        return BotocoreHTTPSender(settings.session)
    return ConnectionPool(
        verify=settings.verify is not False,
        ca_bundle=settings.ca_bundle(),
        cert_file=settings.cert_file,
        key_file=settings.key_file,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_connections=settings.max_connections,
        socket_options=settings.socket_options,
    )


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
    """DynamoDB sends a CRC32 of the body as sent (compressed or not); a mismatch means a
    corrupted answer (retryable)."""
    expected = headers.get("x-amz-crc32")
    if expected is not None and zlib.crc32(raw) & 0xFFFFFFFF != int(expected):
        raise ServerError(
            f"{operation}: the response's CRC32 does not match its body",
            operation=operation,
            code="CRC32CheckFailed",
        )


def _decoded(operation: str, headers: Mapping[str, str], raw: bytes) -> bytes:
    """The body without its content coding. Requests ask for ``identity``; a server that
    compresses anyway is understood for gzip and deflate, and refused clearly otherwise."""
    coding = (headers.get("content-encoding") or "identity").strip().lower()
    if coding == "identity":
        return raw
    if coding in ("gzip", "x-gzip", "deflate"):
        # gzip's header, or zlib's (deflate as RFC 9110 means it); never more than MAX_BODY.
        wbits = zlib.MAX_WBITS | (16 if coding != "deflate" else 0)
        try:
            decompressor = zlib.decompressobj(wbits)
            body = decompressor.decompress(raw, MAX_BODY + 1)
        except zlib.error as error:
            raise ServerError(
                f"{operation}: unreadable {coding} response: {error}",
                operation=operation,
                code="InvalidResponse",
            ) from error
        if len(body) > MAX_BODY or not decompressor.eof:
            raise ServerError(
                f"{operation}: the {coding} response is cut off or over {MAX_BODY} bytes",
                operation=operation,
                code="InvalidResponse",
            )
        return body
    raise TransportError(
        f"{operation}: the answer came with Content-Encoding {coding!r}, which streamodel "
        "does not decode (it asks for identity); a proxy on the way may be compressing",
        operation=operation,
        code="UnsupportedContentEncoding",
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
