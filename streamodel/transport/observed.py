"""Per-request observability around any transport: the equivalent of tracing botocore calls."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from streamodel.transport.base import Service, Transport

__all__ = ["ObservedTransport", "OnRequest", "table_of"]

OnRequest = Callable[[str, "str | None", float, Any], None]
"""``on_request(operation, table, duration_seconds, consumed_capacity)``, called after every
request (also failed ones). ``table`` is the request's table name (the only table of a batch
or transaction, else ``None``); ``consumed_capacity`` is the response's ``ConsumedCapacity``
(present when the request asked for it with ``ReturnConsumedCapacity``), else ``None``.
The callback runs on the calling thread; an exception in it propagates to the caller."""


class ObservedTransport:
    """Wraps any transport and calls ``on_request`` after each call (see :data:`OnRequest`).

    Wrap the transport inside the retries (``Engine(transport=ObservedTransport(t, hook))``)
    to see every attempt.
    """

    def __init__(self, inner: Transport, on_request: OnRequest) -> None:
        self.inner = inner
        self.on_request = on_request

    def call(self, service: Service, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        consumed = None
        try:
            result = self.inner.call(service, operation, params)
            consumed = result.get("ConsumedCapacity")
            return result
        finally:
            self.on_request(operation, table_of(params), time.perf_counter() - started, consumed)


def table_of(params: Mapping[str, Any]) -> str | None:
    name = params.get("TableName")
    if name is not None:
        return str(name)
    tables: set[str] = set()
    if "RequestItems" in params:
        tables.update(params["RequestItems"])
    for item in params.get("TransactItems", ()):
        for action in item.values():
            tables.add(action.get("TableName"))
    if "StreamArn" in params:
        # arn:aws:dynamodb:region:account:table/NAME/stream/LABEL
        parts = str(params["StreamArn"]).split("/")
        if len(parts) >= 2:
            tables.add(parts[1])
    return tables.pop() if len(tables) == 1 else None
