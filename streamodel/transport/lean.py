"""A lean transport: DynamoDB's JSON protocol signed with botocore's signer, without botocore's
generic machinery.

DynamoDB speaks JSON 1.0 over HTTPS with SigV4. :class:`LeanTransport` keeps what botocore
does well (its credential chain, refreshed credentials, region and endpoint resolution, the
SigV4 signer, fed a light request by :mod:`~streamodel.transport.signing`) and skips what is
generic and slow on the data path: the shape-walking serializer and parser, the event system,
``AWSRequest``, and ``http.client``'s header parsing (answers are read on kept-alive sockets
of :mod:`~streamodel.transport.pool` by :mod:`~streamodel.transport.http1`; behind a proxy,
botocore's own HTTP session carries them). Requests are ``json`` dumps of the wire dicts
(``bytes`` become base64 text); answers are read by :mod:`~streamodel.transport.answers`, so
a response is identical to what :class:`~streamodel.transport.BotocoreTransport` returns.

Only the data-plane and stream-reading operations take the lean path (:data:`LEAN_OPERATIONS`);
everything else (``CreateTable``, ``DescribeTable``, ``UpdateTable``, TTL, ...) is delegated to
a :class:`~streamodel.transport.BotocoreTransport` held inside, which keeps the lean path small
and the rarely called operations exactly as botocore does them.

:class:`LeanTransport` is the threads' shell around parts it shares with the asyncio one
(:class:`~streamodel.transport.AsyncLeanTransport`): :mod:`~streamodel.transport.exchange`
builds, signs and reads each request, :mod:`~streamodel.transport.http1`'s ``ResponseParser``
frames answers, and :class:`LeanRoutes` works out each service's route from its client.

There are no retries here: wrap the transport in
:class:`~streamodel.transport.RetryingTransport` (``Engine`` does) so its policy is the only
retry layer. Each HTTP exchange can be observed with ``on_request`` (see
:data:`~streamodel.transport.observed.OnRequest`);
:class:`~streamodel.transport.ObservedTransport` gives the same hook around any transport.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

import botocore.awsrequest

from streamodel.transport.base import Service
from streamodel.transport.botocore import BotocoreTransport
from streamodel.transport.exchange import ENCODER as _ENCODER  # noqa: F401  # the tests' name
from streamodel.transport.exchange import (
    LEAN_OPERATIONS,
    NETWORK_ERRORS,
    SIGNING_NAME,
    Exchange,
    user_agent,
)
from streamodel.transport.internals import ClientFacts, InternalsChanged, client_facts, intercepted
from streamodel.transport.observed import OnRequest, table_of
from streamodel.transport.pool import ConnectionPool
from streamodel.transport.signing import Signer

__all__ = [
    "LEAN_OPERATIONS",
    "HTTPSender",
    "LeanRoutes",
    "LeanTransport",
    "Route",
]

_log = logging.getLogger("streamodel.transport")

SenderT = TypeVar("SenderT")


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


class Route(Generic[SenderT]):
    """How one service's lean requests go out: where, signed how, sent by what."""

    __slots__ = ("facts", "send", "signer", "url")

    def __init__(self, url: str, facts: ClientFacts, signer: Signer, send: SenderT) -> None:
        self.url = url
        self.facts = facts
        self.signer = signer
        self.send = send


class LeanRoutes(Generic[SenderT]):
    """What both lean transports share: the botocore transport held inside (control plane,
    mocks, fallback) and each service's :class:`Route`, worked out from its client on first
    use. A subclass says how requests are sent (:meth:`_sender_for`)."""

    def __init__(
        self,
        session: Any = None,
        *,
        dynamodb: Any = None,
        dynamodbstreams: Any = None,
        endpoint_url: str | None = None,
        on_request: OnRequest | None = None,
        sender: SenderT | None = None,
    ) -> None:
        self.botocore = BotocoreTransport(
            dynamodb, dynamodbstreams, endpoint_url=endpoint_url, session=session
        )
        self.on_request = on_request
        self._sender = sender
        self._routes: dict[Service, Route[SenderT] | None] = {}
        self._lock = threading.Lock()
        self._user_agent = user_agent()

    @property
    def connections_opened(self) -> int:
        """New connections opened by the direct pools (what goes through a proxy is botocore's
        and not counted); steady state opens none."""
        return sum(
            int(getattr(route.send, "opened", 0))
            for route in self._routes.values()
            if route is not None
        )

    def endpoint(self, service: Service) -> str | None:
        """The URL ``service``'s lean requests go to (``None`` if they go through botocore)."""
        route = self._routes[service] if service in self._routes else self._route(service)
        return route.url if route is not None else None

    def _sender_for(self, facts: ClientFacts, url: str) -> SenderT:
        raise NotImplementedError

    def _route(self, service: Service) -> Route[SenderT] | None:
        """``service``'s route, worked out from its client on first use (which may make the
        client: blocking); ``None`` when the lean path cannot be taken (botocore's internals
        changed)."""
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
            send = self._sender if self._sender is not None else self._sender_for(facts, url)
            route = Route(url, facts, Signer(facts.credentials, SIGNING_NAME, facts.region), send)
            self._routes[service] = route
            return route


class LeanTransport(LeanRoutes[HTTPSender]):
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

    def call(self, service: Service, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if operation not in LEAN_OPERATIONS[service]:
            return self.botocore.call(service, operation, params)
        route = self._routes[service] if service in self._routes else self._route(service)
        if route is None or intercepted(route.facts, operation):
            return self.botocore.call(service, operation, params)
        exchange = Exchange(route.url, service, operation, params, self._user_agent)
        started = time.perf_counter()
        consumed = None
        try:
            exchange.sign(route.signer)
            try:
                answer = route.send(route.url, exchange.body, exchange.headers)
            except NETWORK_ERRORS as error:
                raise exchange.lost(error) from error
            result = exchange.answered(*answer)
            consumed = result.get("ConsumedCapacity")
            return result
        finally:
            if self.on_request is not None:
                self.on_request(
                    operation, table_of(params), time.perf_counter() - started, consumed
                )

    def close(self) -> None:
        """Close pooled connections, and those of the botocore clients made here (the
        transport stays usable; connections reopen on demand)."""
        for route in list(self._routes.values()):
            close = getattr(route.send if route is not None else None, "close", None)
            if close is not None:
                close()
        self.botocore.close()

    def _sender_for(self, facts: ClientFacts, url: str) -> HTTPSender:
        """A direct pool with the client's connection settings, or botocore's own HTTP
        session when the client reaches ``url`` through a proxy."""
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
