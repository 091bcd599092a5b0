"""The transport protocols: one method, wire dicts in and out (blocking, or awaited)."""

from __future__ import annotations

from typing import Any, Literal, Protocol

Service = Literal["dynamodb", "dynamodbstreams"]


class Transport(Protocol):
    """Sends one DynamoDB or DynamoDB Streams operation.

    ``operation`` is the API name (``"UpdateItem"``, ``"GetRecords"``); ``params`` and the
    result are the JSON documents of the AWS API reference, with attribute values in their
    low-level form (``{"S": "x"}``) and binary values as ``bytes``. Failures raise
    :class:`streamodel.exceptions.TransportError` subclasses or the specific errors
    (``ConditionFailedError``, ``TransactionCanceledError``) with the raw details attached.
    """

    def call(self, service: Service, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        """Send ``operation`` to ``service`` and return the parsed response."""
        ...


class AsyncTransport(Protocol):
    """:class:`Transport`'s contract for asyncio: the same operations, parameters, results
    and errors, awaited."""

    async def call(
        self, service: Service, operation: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """Send ``operation`` to ``service`` and return the parsed response."""
        ...
