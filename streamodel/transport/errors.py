"""The one place where AWS errors become streamodel errors."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from streamodel.exceptions import (
    ConditionFailedError,
    ExpiredIteratorError,
    ResourceNotFoundError,
    ServerError,
    StreamodelError,
    ThrottledError,
    TransactionCanceledError,
    TransportError,
    TrimmedDataError,
)

THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
        "Throttling",
        "TooManyRequestsException",
    }
)

_BY_CODE: dict[str, type[TransportError]] = {
    "ResourceNotFoundException": ResourceNotFoundError,
    "ExpiredIteratorException": ExpiredIteratorError,
    "TrimmedDataAccessException": TrimmedDataError,
    "InternalServerError": ServerError,
    "ServiceUnavailable": ServerError,
    "ServiceUnavailableException": ServerError,
    **dict.fromkeys(THROTTLING_CODES, ThrottledError),
}


def error_from_response(
    operation: str, status: int, code: str, message: str, body: dict[str, Any]
) -> StreamodelError:
    """Turn one AWS error answer into the streamodel error that stands for it.

    ``code`` is the bare error code (``"ConditionalCheckFailedException"``), ``body`` the
    parsed error document (it carries ``Item`` and ``CancellationReasons`` when present).
    """
    text = f"{operation}: {code}: {message}" if message else f"{operation}: {code}"
    if code == "ConditionalCheckFailedException":
        return ConditionFailedError(text, item=body.get("Item"))
    if code == "TransactionCanceledException":
        reasons = [
            {"code": r.get("Code", "None"), "message": r.get("Message", ""), "item": r.get("Item")}
            for r in body.get("CancellationReasons", [])
        ]
        return TransactionCanceledError(text, reasons=reasons)
    cls = _BY_CODE.get(code)
    if cls is None:
        cls = ServerError if status >= 500 else TransportError
    return cls(text, operation=operation, code=code)


def connection_error(operation: str, url: str, error: BaseException) -> StreamodelError:
    """The streamodel error for a request that got no answer from ``url``.

    Most such failures pass (a reset, a timeout): a :class:`ServerError`, retried where that is
    safe. Two never pass by retrying, so they fail at once with a :class:`TransportError` that
    says what to fix: a server certificate that cannot be verified, and a proxy that refuses
    its credentials (407).
    """
    host = urlsplit(url).netloc
    for cause in _causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError) or (
            "CERTIFICATE_VERIFY_FAILED" in str(cause)
        ):
            return TransportError(
                f"{operation}: the TLS certificate of {host} could not be verified ({cause}); "
                "give the CA bundle that signed it (the client's verify=, AWS_CA_BUNDLE or the "
                "profile's ca_bundle)",
                operation=operation,
                code="CertificateVerifyFailed",
            )
        # http.client's words when a CONNECT is refused (urllib3 and botocore wrap them).
        if "Tunnel connection failed: 407" in str(cause):
            return proxy_refused(operation, url)
    return ServerError(
        f"{operation}: connection failed: {error}", operation=operation, code="Connection"
    )


def proxy_refused(operation: str, url: str) -> TransportError:
    """A proxy answered 407: its credentials are missing or wrong, and retrying cannot help."""
    return TransportError(
        f"{operation}: the proxy refused its credentials on the way to {urlsplit(url).netloc} "
        "(407 Proxy Authentication Required): check the user and password in "
        "HTTPS_PROXY / HTTP_PROXY or Config(proxies=...)",
        operation=operation,
        code="ProxyAuthenticationRequired",
    )


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps: chained exceptions, and botocore's ``error=`` keyword."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        cause = pending.pop()
        if id(cause) in seen:
            continue
        seen.add(id(cause))
        yield cause
        wrapped = getattr(cause, "kwargs", None)
        if isinstance(wrapped, dict) and isinstance(wrapped.get("error"), BaseException):
            pending.append(wrapped["error"])
        pending.extend(arg for arg in cause.args if isinstance(arg, BaseException))
        for link in (cause.__cause__, cause.__context__):
            if link is not None:
                pending.append(link)
