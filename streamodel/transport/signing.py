"""SigV4 for the lean transport: botocore's signer, fed a light request.

botocore's :class:`~botocore.auth.SigV4Auth` is written for its ``AWSRequest``, whose headers
are an ``email.message`` object and whose ``body`` property prepares the whole request each
time it is read; on DynamoDB's small requests that generic machinery, not the signature, is
most of the client's CPU. :class:`Signer` keeps botocore's canonical request, string to sign
and final HMAC (so the signature is botocore's by construction) and replaces only:

- the request: :class:`_Request` holds the headers in a plain ``dict``. botocore tests and
  sets headers by the exact spellings it writes itself (``X-Amz-Date``, ``Authorization``,
  ``X-Amz-Security-Token``, ...), which the lean transport never writes differently;
- ``headers_to_sign``: a lower-cased mapping instead of an ``email.message``, with the host
  worked out once per endpoint by botocore's own rule;
- the signing key: derived with botocore's HMAC once per secret key and day (a :class:`Signer`
  has one region and service) instead of four HMACs per request. The key is looked up with
  the secret of the credentials frozen for this request, so refreshed credentials get a new
  key; only the latest key is kept, so no retired secret stays in memory because of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import botocore.auth
import botocore.credentials
import botocore.exceptions

from streamodel.transport.internals import host_of

__all__ = ["Signer"]

# Headers botocore leaves out of the signature (User-Agent, Expect, ...).
_UNSIGNED = frozenset(botocore.auth.SIGNED_HEADERS_BLACKLIST)


class _Request:
    """The parts of an ``AWSRequest`` that ``SigV4Auth.add_auth`` reads and writes."""

    __slots__ = ("body", "context", "data", "headers", "method", "params", "url")

    def __init__(self, url: str, headers: dict[str, str], body: bytes) -> None:
        self.method = "POST"
        self.url = url
        self.headers = headers
        self.body = body
        self.data = body
        self.params: dict[str, str] = {}
        self.context: dict[str, Any] = {}


class _HeadersToSign:
    """Lower-case header name to values: what ``canonical_headers`` and ``signed_headers``
    read of botocore's ``HTTPHeaders`` (iteration over names, and ``get_all``)."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def get_all(self, name: str) -> list[str]:
        return self._values[name]


class _SigV4(botocore.auth.SigV4Auth):
    """botocore's SigV4 with a cheap ``headers_to_sign`` and a cached signing key."""

    # Set or defined by botocore's SigV4Auth but missing from its stubs. _sign is its HMAC
    # helper: (key, message, hex) -> digest, or hex text when hex is true.
    _sign: Callable[[bytes, str, bool], Any]
    _region_name: str
    _service_name: str

    def __init__(
        self,
        credentials: botocore.credentials.ReadOnlyCredentials,
        service: str,
        region: str,
        host: str,
        signer: Signer,
    ) -> None:
        super().__init__(credentials, service, region)
        self._host = host
        self._signer = signer

    def headers_to_sign(self, request: Any) -> Any:
        values: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            lower = name.lower()
            if lower not in _UNSIGNED:
                # HTTPHeaders keeps every value of a repeated name; so does this.
                values.setdefault(lower, []).append(value)
        if "host" not in values:
            values["host"] = [self._host]
        return _HeadersToSign(values)

    def signature(self, string_to_sign: str, request: Any) -> str:
        secret = self.credentials.secret_key
        day = request.context["timestamp"][0:8]
        last = self._signer.last_key  # one read: other threads may replace it
        if last is not None and last[0] == secret and last[1] == day:
            key = last[2]
        else:
            # The derivation of botocore's SigV4Auth.signature, kept for the next request.
            key = self._sign(f"AWS4{secret}".encode(), day, False)
            for part in (self._region_name, self._service_name, "aws4_request"):
                key = self._sign(key, part, False)
            self._signer.last_key = (secret, day, key)
        signed: str = self._sign(key, string_to_sign, True)
        return signed


class Signer:
    """Signs a POST to an endpoint with credentials frozen per request.

    ``credentials`` is botocore's credentials object (refreshable or not): it is frozen before
    each signature, as botocore's request signer does. Without credentials, signing raises
    botocore's ``NoCredentialsError``, as a botocore client does when it sends.
    """

    def __init__(
        self, credentials: botocore.credentials.Credentials | None, service: str, region: str
    ) -> None:
        self.credentials = credentials
        self.service = service
        self.region = region
        # (secret key, day, signing key) of the latest signature. Shared by threads: a lost
        # race only derives a key once more.
        self.last_key: tuple[str | None, str, bytes] | None = None

    def may_refresh(self) -> bool:
        """Whether freezing the credentials now may refresh them first, which can mean a
        blocking call (STS, the instance metadata service, a ``credential_process``): an
        asyncio shell freezes them in a thread then (:meth:`freeze`)."""
        refresh_needed = getattr(self.credentials, "refresh_needed", None)
        return refresh_needed is not None and bool(refresh_needed())

    def freeze(self) -> botocore.credentials.ReadOnlyCredentials:
        """The credentials to sign one request with (refreshed first if they are due),
        as botocore's request signer freezes them; ``NoCredentialsError`` without any."""
        if self.credentials is None:
            raise botocore.exceptions.NoCredentialsError()
        return self.credentials.get_frozen_credentials()

    def sign(
        self,
        url: str,
        headers: dict[str, str],
        body: bytes,
        frozen: botocore.credentials.ReadOnlyCredentials | None = None,
    ) -> dict[str, str]:
        """``headers`` plus ``X-Amz-Date``, ``X-Amz-Security-Token`` (with a session token)
        and ``Authorization``, exactly as botocore's ``SigV4Auth.add_auth`` adds them, with
        ``frozen`` credentials (by default :meth:`freeze`'s). ``headers`` is changed in place
        and returned."""
        if frozen is None:
            if self.credentials is None:
                raise botocore.exceptions.NoCredentialsError()
            frozen = self.credentials.get_frozen_credentials()
        request = _Request(url, headers, body)
        _SigV4(frozen, self.service, self.region, host_of(url), self).add_auth(
            request  # type: ignore[arg-type]  # duck-typed: the parts add_auth uses
        )
        return headers
