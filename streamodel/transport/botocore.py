"""The transport over boto3 clients: botocore serializes, signs, sends and parses."""

from __future__ import annotations

import os
import threading
import zlib
from typing import Any

import boto3
import boto3.session
import botocore.config
import botocore.exceptions
from botocore import xform_name

from streamodel.exceptions import ServerError, StreamodelError, TransportError
from streamodel.transport.base import Service
from streamodel.transport.errors import error_from_response

_CONNECTION_ERRORS = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.ResponseStreamingError,
)


class _CorruptResponse(Exception):
    """An answer whose body is shorter than promised or fails its CRC32: never parsed."""

    def __init__(self, text: str, code: str) -> None:
        super().__init__(text)
        self.code = code


def check_body(http_response: Any, **_: Any) -> None:
    """botocore ``after-call`` hook: refuse a cut-off or corrupted answer before it is used.

    botocore reads bodies with ``enforce_content_length=False``, its JSON parser turns an
    unreadable body into an empty result, and its "standard" retry mode skips DynamoDB's
    CRC32 check; so a truncated answer would otherwise come back as a wrong success (an
    empty ``GetItem``, a ``BatchGetItem`` missing what exists).
    """
    headers = http_response.headers
    body: bytes = http_response.content or b""
    length = headers.get("content-length")
    if length is not None and length.isdigit() and len(body) != int(length):
        raise _CorruptResponse(
            f"the response body has {len(body)} of {length} promised bytes", "InvalidResponse"
        )
    expected = headers.get("x-amz-crc32")
    if (
        expected is not None
        and expected.isdigit()
        and zlib.crc32(body) & 0xFFFFFFFF != int(expected)
    ):
        raise _CorruptResponse("the response's CRC32 does not match its body", "CRC32CheckFailed")


def _guard(client: Any) -> Any:
    """Register :func:`check_body` on ``client`` (once) and return it."""
    client.meta.events.register("after-call", check_body, unique_id="streamodel-check-body")
    return client


def client_config() -> botocore.config.Config:
    """Config for the clients streamodel creates: botocore retries off, tenacity retries on,
    and no client-side parameter validation.

    botocore's default "legacy" mode does not retry ``LimitExceededException``; rather than
    stacking its retries under ours, streamodel makes exactly one attempt per botocore call.
    streamodel builds every request from checked values and DynamoDB validates each one
    anyway (its ``ValidationException`` is a :class:`~streamodel.TransportError`, as
    botocore's ``ParamValidationError`` was), while botocore's walk of the request against
    its model costs about a fifth of the client's CPU per request.
    """
    return botocore.config.Config(
        retries={"mode": "standard", "total_max_attempts": 1}, parameter_validation=False
    )


def default_client(service: Service, endpoint_url: str | None = None) -> Any:
    """A boto3 client from the default session and environment (region, credentials, endpoint).

    With an explicit endpoint (DynamoDB Local, a proxy) and no region configured, the region
    defaults to us-east-1: such servers accept any, and "You must specify a region" would only
    get in the way.
    """
    session = boto3.session.Session()
    region = session.region_name
    if region is None and (endpoint_url or _endpoint_from_environment(service)):
        region = "us-east-1"
    return session.client(
        service, endpoint_url=endpoint_url, region_name=region, config=client_config()
    )


def _endpoint_from_environment(service: Service) -> str | None:
    name = "AWS_ENDPOINT_URL_" + service.upper()
    return os.environ.get(name) or os.environ.get("AWS_ENDPOINT_URL")


class BotocoreTransport:
    """Sends each call once through a boto3 client and translates its errors.

    Retries are added around it by :class:`streamodel.transport.retry.RetryingTransport`.
    """

    def __init__(
        self,
        dynamodb: Any = None,
        dynamodbstreams: Any = None,
        *,
        endpoint_url: str | None = None,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._clients: dict[Service, Any] = {}
        # boto3 clients are thread-safe once made; making two at once from one session is not.
        self._lock = threading.Lock()
        if dynamodb is not None:
            self._clients["dynamodb"] = _guard(dynamodb)
        if dynamodbstreams is not None:
            self._clients["dynamodbstreams"] = _guard(dynamodbstreams)

    def client(self, service: Service) -> Any:
        """The boto3 client for ``service``, created on first use."""
        client = self._clients.get(service)
        if client is None:
            with self._lock:
                client = self._clients.get(service)
                if client is None:
                    client = _guard(default_client(service, self._endpoint_url))
                    self._clients[service] = client
        return client

    def call(self, service: Service, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        method = getattr(self.client(service), xform_name(operation))
        try:
            response: dict[str, Any] = method(**params)
        except botocore.exceptions.ClientError as error:
            raise _translate(operation, error) from error
        except _CorruptResponse as error:
            raise ServerError(
                f"{operation}: unreadable response: {error}", operation=operation, code=error.code
            ) from error
        except _CONNECTION_ERRORS as error:
            raise ServerError(
                f"{operation}: connection failed: {error}", operation=operation, code="Connection"
            ) from error
        except botocore.exceptions.BotoCoreError as error:
            # No credentials, no region, a bad parameter: a streamodel error all the same.
            raise TransportError(
                f"{operation}: {error}", operation=operation, code=type(error).__name__
            ) from error
        response.pop("ResponseMetadata", None)
        return response


def _translate(operation: str, error: botocore.exceptions.ClientError) -> StreamodelError:
    response: dict[str, Any] = dict(error.response)
    details = response.get("Error", {})
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
    return error_from_response(
        operation, status, str(details.get("Code", "")), str(details.get("Message", "")), response
    )
