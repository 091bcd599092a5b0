"""DynamoDB's answers on the lean path, read as botocore would read them.

The body is checked (CRC32), freed of any content coding, parsed as JSON, and then binary
attribute values (base64 text on the wire) and timestamps (epoch numbers) are turned back into
``bytes`` and the aware datetimes botocore gives, exactly where DynamoDB's service model puts
them; an error answer becomes its streamodel error. Pure functions of the answer's bytes.
"""

from __future__ import annotations

import datetime
import http.client
import json
import zlib
from collections.abc import Mapping
from typing import Any

from botocore.utils import parse_timestamp

from streamodel.exceptions import ServerError, TransportError
from streamodel.transport.errors import error_from_response
from streamodel.transport.http1 import MAX_BODY
from streamodel.transport.json_shape import restore_item

__all__ = ["read_answer"]


def read_answer(
    operation: str, status: int, headers: Mapping[str, str], raw: bytes
) -> dict[str, Any]:
    """The result of a 2xx answer, or raise the error an error answer stands for."""
    _check_crc32(operation, headers, raw)
    raw = _decoded(operation, headers, raw)
    if status >= 300:
        raise _error(operation, status, headers, raw)
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
    return result


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
