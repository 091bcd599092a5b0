"""The transport over boto3 clients: botocore serializes, signs, sends and parses."""

from __future__ import annotations

import os
import threading
import zlib
from typing import Any

import botocore.config
import botocore.exceptions
import botocore.session
from botocore import xform_name

from streamodel.exceptions import ServerError, StreamodelError, TransportError
from streamodel.transport.base import Service
from streamodel.transport.errors import connection_error, error_from_response

# Every way botocore reports a request that got no answer (ResponseStreamingError and
# ConnectionClosedError are HTTPClientErrors; SSLError, ProxyConnectionError and the endpoint
# and connect-timeout errors are its ConnectionErrors).
_CONNECTION_ERRORS = (botocore.exceptions.HTTPClientError, botocore.exceptions.ConnectionError)


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


def default_session() -> Any:
    """A new botocore session: the environment and configuration files as they are now.

    It is what ``boto3.session.Session()`` wraps, without importing boto3 (and s3transfer with
    it) on every cold start. The sessions share one loader of botocore's data files (service
    models, endpoint rules), so the second engine of a process makes its clients in about 2 ms
    instead of 40: each session would otherwise parse the same JSON again.
    """
    session = botocore.session.Session()
    data_path = session.get_config_variable("data_path")
    with _LOADERS_LOCK:
        loader = _LOADERS.get(data_path)
        if loader is None:
            loader = _LOADERS[data_path] = session.get_component("data_loader")
    session.register_component("data_loader", loader)
    return session


# botocore's data loaders by data path (AWS_DATA_PATH can add directories): they only read
# files, and cache what they read.
_LOADERS: dict[str | None, Any] = {}
_LOADERS_LOCK = threading.Lock()


def make_client(service: Service, session: Any, endpoint_url: str | None = None) -> Any:
    """A client for ``service`` from a boto3 or botocore ``session``, configured as streamodel
    needs (:func:`client_config`).

    With an explicit endpoint (DynamoDB Local, a proxy) and no region configured, the region
    defaults to us-east-1: such servers accept any, and "You must specify a region" would only
    get in the way.
    """
    core = getattr(session, "_session", session)  # a boto3 session wraps a botocore one
    region = core.get_config_variable("region")
    if region is None and (endpoint_url or _endpoint_from_environment(service)):
        region = "us-east-1"
    create = session.client if core is not session else session.create_client
    return create(service, endpoint_url=endpoint_url, region_name=region, config=client_config())


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
        session: Any = None,
    ) -> None:
        self._endpoint_url = endpoint_url
        self._session = session
        self._clients: dict[Service, Any] = {}
        self._made: list[Any] = []  # the clients made here (given ones belong to the caller)
        # boto3 clients are thread-safe once made; making two at once from one session is not.
        self._lock = threading.Lock()
        if dynamodb is not None:
            self._clients["dynamodb"] = _guard(dynamodb)
        if dynamodbstreams is not None:
            self._clients["dynamodbstreams"] = _guard(dynamodbstreams)

    def client(self, service: Service) -> Any:
        """The client for ``service``, created on first use (from ``session``, else from
        :func:`default_session`; both services' clients share one session)."""
        client = self._clients.get(service)
        if client is None:
            with self._lock:
                client = self._clients.get(service)
                if client is None:
                    if self._session is None:
                        self._session = default_session()
                    client = make_client(service, self._session, self._endpoint_url)
                    self._clients[service] = client = _guard(client)
                    self._made.append(client)
        return client

    def close(self) -> None:
        """Close the connections of the clients made here (they reopen on demand)."""
        for client in self._made:
            client.close()

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
            url = str(getattr(self.client(service).meta, "endpoint_url", ""))
            raise connection_error(operation, url, error) from error
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
