"""The lean transport for asyncio: the same requests, answers and errors as
:class:`~streamodel.transport.LeanTransport`, awaited.

Both transports are shells around the same pure parts: :mod:`~streamodel.transport.exchange`
builds and signs each request and reads its answer (through
:mod:`~streamodel.transport.answers`), :mod:`~streamodel.transport.http1`'s
``ResponseParser`` frames the bytes, and :class:`~streamodel.transport.lean.LeanRoutes` works
out each service's endpoint, credentials and connection settings from its botocore client.
What differs is only how bytes move: here, :class:`~streamodel.transport.aio_pool.
AsyncConnectionPool` on the running event loop, bounded by the client's
``max_pool_connections``, direct or through the client's proxy.

Whatever may block runs in a thread (``asyncio.to_thread``) and never on the loop: making a
client on first use (botocore resolves credentials then), refreshing credentials that are due
(STS, the instance metadata service, a ``credential_process``), the operations outside
:data:`~streamodel.transport.exchange.LEAN_OPERATIONS` (control plane, through botocore) and
every request while a ``before-send`` handler could answer it instead of the network (moto's
``mock_aws``): those go the botocore way, as on the sync lean transport.

No retries here either: wrap it in :class:`~streamodel.transport.AsyncRetryingTransport`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping
from typing import Any, Protocol

import botocore.exceptions

from streamodel.transport.aio_pool import AsyncConnectionPool, Proxy
from streamodel.transport.base import Service
from streamodel.transport.exchange import LEAN_OPERATIONS, NETWORK_ERRORS, Exchange
from streamodel.transport.internals import ClientFacts, intercepted
from streamodel.transport.lean import LeanRoutes, Route
from streamodel.transport.observed import table_of

__all__ = ["AsyncHTTPSender", "AsyncLeanTransport"]


class AsyncHTTPSender(Protocol):
    """Sends one POST and returns ``(status, headers, body)``, awaited; as
    :class:`~streamodel.transport.lean.HTTPSender`."""

    def __call__(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> Awaitable[tuple[int, Mapping[str, str], bytes]]: ...


class AsyncLeanTransport(LeanRoutes[AsyncHTTPSender]):
    """Sends the data-plane and stream operations as signed JSON over a bounded asyncio pool.

    Made as :class:`~streamodel.transport.LeanTransport` is (``session``, ``dynamodb``,
    ``dynamodbstreams``, ``endpoint_url``, ``on_request``; ``sender`` replaces the HTTP
    layer), and configured by the same botocore clients: endpoint, region, credentials,
    ``verify`` / ``AWS_CA_BUNDLE`` / a profile's ``ca_bundle``, client certificates, proxies
    with their credentials and ``proxies_config``, ``connect_timeout``, ``read_timeout`` and
    ``max_pool_connections`` (at most that many requests at once per service; more wait).

    ``await transport.call(service, operation, params)`` returns what
    :meth:`LeanTransport.call <streamodel.transport.LeanTransport.call>` returns and raises
    the same errors. Cancelling it (``task.cancel()``, ``asyncio.timeout``) closes the
    connection it was using. ``await transport.aclose()`` closes the kept connections. A
    transport's connections belong to the event loop they were opened on; after that loop is
    closed, a new one may use the transport (it opens new connections).
    """

    async def call(
        self, service: Service, operation: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        if operation in LEAN_OPERATIONS[service]:
            routes = self._routes
            if service in routes:
                route = routes[service]
            else:
                # Making the client resolves credentials: it may block.
                route = await asyncio.to_thread(self._route, service)
            if route is not None and not intercepted(route.facts, operation):
                return await self._send(route, service, operation, params)
        return await asyncio.to_thread(self.botocore.call, service, operation, params)

    async def _send(
        self,
        route: Route[AsyncHTTPSender],
        service: Service,
        operation: str,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        exchange = Exchange(route.url, service, operation, params, self._user_agent)
        started = time.perf_counter()
        consumed = None
        try:
            signer = route.signer
            frozen = None
            if signer.may_refresh():
                try:
                    frozen = await asyncio.to_thread(signer.freeze)
                except botocore.exceptions.BotoCoreError as error:
                    raise exchange.unsigned(error) from error
            exchange.sign(signer, frozen)
            try:
                answer = await route.send(route.url, exchange.body, exchange.headers)
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

    async def aclose(self) -> None:
        """Close pooled connections, and those of the botocore clients made here (the
        transport stays usable; connections reopen on demand)."""
        for route in list(self._routes.values()):
            close = getattr(route.send if route is not None else None, "aclose", None)
            if close is not None:
                await close()
        self.botocore.close()

    def _sender_for(self, facts: ClientFacts, url: str) -> AsyncHTTPSender:
        """A pool with the client's connection settings (and its proxy for ``url``)."""
        settings = facts.http
        proxy = None
        proxy_url = settings.proxy_for(url)
        if proxy_url is not None:
            config = settings.proxies_config
            proxy = Proxy(
                url=proxy_url,
                headers=settings.proxy_headers_for(proxy_url),
                ca_bundle=config.get("proxy_ca_bundle"),
                client_cert=config.get("proxy_client_cert"),
                forward_https=bool(config.get("proxy_use_forwarding_for_https")),
            )
        return AsyncConnectionPool(
            verify=settings.verify is not False,
            ca_bundle=settings.ca_bundle(),
            cert_file=settings.cert_file,
            key_file=settings.key_file,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            max_connections=settings.max_connections,
            socket_options=settings.socket_options,
            proxy=proxy,
        )
