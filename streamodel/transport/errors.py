"""The one place where AWS errors become streamodel errors."""

from __future__ import annotations

from typing import Any

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
