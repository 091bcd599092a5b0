"""Every private detail of botocore the lean transport relies on, read and checked here only.

The lean path honours whatever a botocore client is configured with (endpoint, region,
credentials, ``verify``, client certificate, proxies, timeouts, pool size), and those live in
places botocore does not publish: the client's request signer and its endpoint's HTTP session.
Reading them here, once per client, keeps the coupling in one module. When botocore no longer
looks as expected, :func:`client_facts` raises :class:`InternalsChanged` and the engine falls back
to the botocore transport with one warning, so an upgrade of botocore can slow streamodel down
but never break a request.

botocore versions whose internals were checked: see the ``boto3``/``botocore`` bounds in
pyproject.toml; ``make test`` runs the unit tests on the lowest of them too.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import botocore.auth
import botocore.credentials
import botocore.httpsession

__all__ = [
    "ClientFacts",
    "HTTPSettings",
    "InternalsChanged",
    "client_facts",
    "host_of",
    "intercepted",
]


class InternalsChanged(Exception):
    """botocore's private parts are not what the lean transport reads; the message says which."""


@dataclass(frozen=True)
class HTTPSettings:
    """How a botocore client connects: what the lean path must do the same way."""

    verify: bool | str
    """``False``, ``True`` (botocore's default bundle) or a CA bundle path."""
    cert_file: str | None
    key_file: str | None
    connect_timeout: float | None
    read_timeout: float | None
    max_connections: int
    socket_options: tuple[tuple[int, int, int], ...]
    session: Any
    """botocore's ``URLLib3Session``: sends what goes through a proxy, exactly as botocore."""

    def proxy_for(self, url: str) -> str | None:
        """The proxy botocore would use for ``url`` (environment or ``Config(proxies=...)``,
        ``NO_PROXY`` already applied when the client was made), or ``None``."""
        proxy: str | None = self.session._proxy_config.proxy_url_for(url)
        return proxy

    def proxy_headers_for(self, proxy_url: str) -> dict[str, str]:
        """The headers botocore sends to ``proxy_url``: ``Proxy-Authorization`` (Basic) from
        the credentials in the proxy URL, if any."""
        headers: dict[str, str] = dict(self.session._proxy_config.proxy_headers_for(proxy_url))
        return headers

    @property
    def proxies_config(self) -> dict[str, Any]:
        """``Config(proxies_config=...)``: ``proxy_ca_bundle``, ``proxy_client_cert``,
        ``proxy_use_forwarding_for_https``."""
        settings: dict[str, Any] = dict(self.session._proxy_config.settings or {})
        return settings

    def ca_bundle(self) -> str | None:
        """The CA file certificates are checked against, or ``None`` when ``verify=False``."""
        if self.verify is False:
            return None
        path: str | None = botocore.httpsession.get_cert_path(self.verify)  # type: ignore[arg-type]
        return path


@dataclass(frozen=True)
class ClientFacts:
    """What the lean path takes from one botocore client."""

    endpoint_url: str
    region: str
    credentials: botocore.credentials.Credentials | None
    http: HTTPSettings
    events: Any
    """The client's ``HierarchicalEmitter``, asked by :func:`intercepted`."""
    event_service: str
    """The service's name in event names (``dynamodb``, ``dynamodb-streams``)."""


def client_facts(client: Any) -> ClientFacts:
    """Read ``client``'s configuration; :class:`InternalsChanged` when it cannot be read."""
    try:
        meta = client.meta
        signer = client._request_signer
        credentials = signer._credentials
        session = client._endpoint.http_session
        events = meta.events._emitter
        events._handlers.prefix_search  # noqa: B018  # checked here, called per request
        session._proxy_config.proxy_url_for  # noqa: B018
        session._proxy_config.proxy_headers_for  # noqa: B018
        session._proxy_config.settings  # noqa: B018
        facts = ClientFacts(
            endpoint_url=str(meta.endpoint_url),
            region=str(meta.region_name),
            credentials=credentials,
            http=HTTPSettings(
                verify=_verify(session._verify),
                cert_file=session._cert_file,
                key_file=session._key_file,
                connect_timeout=_seconds(session._timeout, "connect"),
                read_timeout=_seconds(session._timeout, "read"),
                max_connections=int(session._max_pool_connections),
                socket_options=tuple(tuple(option) for option in session._socket_options),
                session=session,
            ),
            events=events,
            event_service=meta.service_model.service_id.hyphenize(),
        )
    except (AttributeError, TypeError, ValueError) as error:
        raise InternalsChanged(f"botocore {botocore.__version__}: {error}") from error
    _check_signer()
    return facts


def _verify(value: Any) -> bool | str:
    if isinstance(value, bool | str):
        return value
    # botocore passes verify through unchecked: None means its default, like True.
    if value is None:
        return True
    raise TypeError(f"unexpected verify value {value!r}")


def _seconds(timeout: Any, which: str) -> float | None:
    """``which`` part of botocore's timeout: one number for both, or a urllib3 ``Timeout``."""
    if isinstance(timeout, int | float):
        return float(timeout)
    value = getattr(timeout, f"{which}_timeout")
    return float(value) if isinstance(value, int | float) else None


def _check_signer() -> None:
    """The parts of ``SigV4Auth`` that :mod:`~streamodel.transport.signing` overrides or calls."""
    for name in ("add_auth", "canonical_request", "string_to_sign", "signature", "_sign"):
        if not callable(getattr(botocore.auth.SigV4Auth, name, None)):
            raise InternalsChanged(f"botocore {botocore.__version__}: SigV4Auth.{name} is missing")
    if not callable(getattr(botocore.auth, "_host_from_url", None)):
        raise InternalsChanged(f"botocore {botocore.__version__}: auth._host_from_url is missing")


@lru_cache(maxsize=64)
def host_of(url: str) -> str:
    """The ``Host`` header botocore signs for ``url`` (lower-case, default port dropped, IPv6
    literals in brackets), by botocore's own private rule; the lean path sends the same."""
    host: str = botocore.auth._host_from_url(url)  # type: ignore[attr-defined]
    return host


def intercepted(facts: ClientFacts, operation: str) -> bool:
    """Whether a ``before-send`` handler of the client may answer ``operation`` instead of the
    network: moto's ``mock_aws`` does, and so may any handler a test suite registers.

    Such a request must go the botocore way, or it would escape the mock. moto registers its
    handler in every session made after it was imported and switches it on and off with an
    ``enabled`` flag; a handler that says ``enabled = False`` is known not to answer.
    """
    handlers = facts.events._handlers.prefix_search(
        f"before-send.{facts.event_service}.{operation}"
    )
    return any(getattr(handler, "enabled", True) is not False for handler in handlers)
