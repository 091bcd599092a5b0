"""One lean request, without I/O: what both lean transports send, and what an answer means.

:class:`~streamodel.transport.LeanTransport` (threads, blocking sockets) and
:class:`~streamodel.transport.AsyncLeanTransport` (asyncio) are two shells around this module:
each makes an :class:`Exchange` of ``(service, operation, params)``, signs it, sends its
``body`` and ``headers`` to its ``url`` in its own way, and then tells it what happened:
:meth:`Exchange.answered` with the status, headers and body of the answer (the result, or
the streamodel error the answer stands for), or :meth:`Exchange.lost` with the exception that
ended the exchange without an answer (the streamodel error to raise). Nothing here sends,
reads or sleeps, so both shells behave the same by construction.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Mapping
from typing import Any

import botocore
import botocore.credentials
import botocore.exceptions

from streamodel.exceptions import StreamodelError, TransportError
from streamodel.transport.answers import read_answer
from streamodel.transport.base import Service
from streamodel.transport.errors import connection_error, proxy_refused
from streamodel.transport.json_shape import to_json_shape
from streamodel.transport.signing import Signer

__all__ = [
    "ENCODER",
    "LEAN_OPERATIONS",
    "NETWORK_ERRORS",
    "Exchange",
    "user_agent",
]

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

NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.ConnectionError,
)
"""What a sender raises when an exchange got no answer (``ConnectionError`` and timeouts are
``OSError``\\ s; botocore's HTTP session raises its own)."""

_TARGET_PREFIX: dict[Service, str] = {
    "dynamodb": "DynamoDB_20120810.",
    "dynamodbstreams": "DynamoDBStreams_20120810.",
}
_CONTENT_TYPE = "application/x-amz-json-1.0"
SIGNING_NAME = "dynamodb"
"""botocore's signing name for both services."""


def _default(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return str(to_json_shape(value))
    raise TypeError(f"cannot send {type(value).__name__} to DynamoDB: {value!r}")


ENCODER = json.JSONEncoder(separators=(",", ":"), default=_default)
"""Request bodies: compact JSON, ``bytes`` as base64 text."""


def user_agent() -> str:
    """The ``User-Agent`` of lean requests."""
    return (
        f"streamodel-lean botocore/{botocore.__version__} "
        f"Python/{'.'.join(map(str, sys.version_info[:3]))}"
    )


class Exchange:
    """One request of a lean operation to ``url``: its body and headers, and the meaning of
    what comes back. The shell signs it (:meth:`sign`), sends it, and calls :meth:`answered`
    or :meth:`lost`."""

    __slots__ = ("body", "headers", "operation", "url")

    def __init__(
        self, url: str, service: Service, operation: str, params: dict[str, Any], agent: str
    ) -> None:
        if operation == "TransactWriteItems" and "ClientRequestToken" not in params:
            # botocore fills this idempotency token when it is missing; so do we.
            params = {**params, "ClientRequestToken": str(uuid.uuid4())}
        self.url = url
        self.operation = operation
        self.body: bytes = ENCODER.encode(params).encode()
        self.headers: dict[str, str] = {
            "Content-Type": _CONTENT_TYPE,
            "X-Amz-Target": _TARGET_PREFIX[service] + operation,
            "Accept-Encoding": "identity",
            "User-Agent": agent,
        }

    def sign(
        self, signer: Signer, frozen: botocore.credentials.ReadOnlyCredentials | None = None
    ) -> None:
        """Add botocore's SigV4 headers (with ``frozen`` credentials when the shell froze
        them itself); a failure to sign (no credentials) is a :class:`TransportError`, as on
        the botocore path."""
        try:
            signer.sign(self.url, self.headers, self.body, frozen)
        except botocore.exceptions.BotoCoreError as error:
            raise self.unsigned(error) from error

    def unsigned(self, error: botocore.exceptions.BotoCoreError) -> TransportError:
        """The error to raise when the credentials could not be had (none, or a refresh
        that failed)."""
        return TransportError(
            f"{self.operation}: {error}", operation=self.operation, code=type(error).__name__
        )

    def answered(self, status: int, headers: Mapping[str, str], raw: bytes) -> dict[str, Any]:
        """The result of the answer, or raise the error it stands for."""
        if status == 407:  # from a proxy forwarding plain HTTP
            raise proxy_refused(self.operation, self.url)
        return read_answer(self.operation, status, headers, raw)

    def lost(self, error: BaseException) -> StreamodelError:
        """The error to raise for an exchange that ``error`` ended without an answer (after
        the request may have been sent: the retry policy decides whether that is safe to
        repeat)."""
        return connection_error(self.operation, self.url, error)
