"""The request builder: the parameters of every data-plane request the engine, transactions
and batches send, built from plans, keys and conditions.

Pure functions from what to do to the request dict (DynamoDB's JSON shape, attribute values in
wire form); expression text and placeholders come from :mod:`streamodel._render`. Nothing here
sends anything: the shells (``Engine``, transactions, batches, searches) hand these dicts to
the transport. The control plane's requests are built by :mod:`streamodel.tables`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from streamodel._render import Renderer, plain_update, render_plain, render_updates
from streamodel.types import Wire

if TYPE_CHECKING:
    from streamodel._diff import SavePlan
    from streamodel.conditions import Condition

__all__ = [
    "batch_get_item",
    "batch_write_item",
    "condition_check",
    "delete_item",
    "describe_stream",
    "get_item",
    "get_records",
    "get_shard_iterator",
    "search",
    "transact_get_items",
    "transact_write_items",
    "update_item",
]

Key = dict[str, Wire]


def update_item(table: str, plan: SavePlan, *, read_back: bool = True) -> dict[str, Any]:
    """The ``UpdateItem`` of a save plan, with ``ReturnValues`` when the plan reads values
    back and ``read_back`` allows it (a transaction's ``Update`` cannot)."""
    request: dict[str, Any] = {"TableName": table, "Key": plan.key}
    if not plan.updates and plan.condition is plan.version_condition:
        # The usual save: whole columns, under the version check if any.
        version = None if plan.condition is None else plan.version
        request.update(
            plain_update(
                plan.set_columns, plan.set_wires, plan.removes, version, plan.expected_version
            )
        )
    else:
        r = Renderer()
        if plan.updates:
            expression = render_updates(r, plan.all_updates())
        else:
            expression = render_plain(r, plan.set_columns, plan.set_wires, plan.removes)
        if expression is not None:
            request["UpdateExpression"] = expression
        if plan.condition is not None:
            request["ConditionExpression"] = r.condition(plan.condition)
        request.update(r.params())
    if plan.condition is not None:
        request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    if read_back and plan.returns is not None:
        request["ReturnValues"] = plan.returns
    return request


def delete_item(table: str, key: Key, condition: Condition | None) -> dict[str, Any]:
    """A ``DeleteItem`` of ``key`` under ``condition`` (the stored item comes back when the
    condition fails)."""
    request: dict[str, Any] = {"TableName": table, "Key": key}
    if condition is not None:
        r = Renderer()
        request["ConditionExpression"] = r.condition(condition)
        request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        request.update(r.params())
    return request


def condition_check(table: str, key: Key, condition: Condition) -> dict[str, Any]:
    """A transaction's ``ConditionCheck`` of ``key``."""
    r = Renderer()
    request: dict[str, Any] = {
        "TableName": table,
        "Key": key,
        "ConditionExpression": r.condition(condition),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    request.update(r.params())
    return request


def get_item(table: str, key: Key, *, consistent: bool) -> dict[str, Any]:
    return {"TableName": table, "Key": key, "ConsistentRead": consistent}


def batch_get_item(keys: Sequence[tuple[str, Key]], *, consistent: bool) -> dict[str, Any]:
    """A ``BatchGetItem`` of ``(table, key)`` pairs (at most 100: the caller chunks)."""
    items: dict[str, Any] = {}
    for table, key in keys:
        items.setdefault(table, {"Keys": [], "ConsistentRead": consistent})["Keys"].append(key)
    return {"RequestItems": items}


def batch_write_item(requests: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """A ``BatchWriteItem`` of ``(table, PutRequest or DeleteRequest)`` pairs (at most 25)."""
    items: dict[str, list[dict[str, Any]]] = {}
    for table, request in requests:
        items.setdefault(table, []).append(request)
    return {"RequestItems": items}


def transact_write_items(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A ``TransactWriteItems``, with a fresh idempotency token: a retry of the same request
    within 10 minutes is applied once."""
    return {"TransactItems": list(items), "ClientRequestToken": uuid.uuid4().hex}


def transact_get_items(keys: Sequence[tuple[str, Key]]) -> dict[str, Any]:
    return {"TransactItems": [{"Get": {"TableName": table, "Key": key}} for table, key in keys]}


def search(
    table: str,
    *,
    index: str | None,
    key: Condition | None,
    filter: Condition | None,
    count: bool,
    projection: Sequence[str] | None,
    consistent: bool,
    forward: bool,
    page_size: int | None,
    segments: tuple[int, int] | None,
    start: Key | None,
) -> dict[str, Any]:
    """The first page's ``Query`` (with a ``key`` condition) or ``Scan`` parameters.

    ``count`` asks for the count only, ``projection`` names the attributes to read (all when
    ``None``), ``forward=False`` reads a query's range in descending order, ``segments`` is
    ``(segment, total)`` of a parallel scan, ``start`` the key to resume after.
    """
    r = Renderer()
    request: dict[str, Any] = {"TableName": table}
    if index is not None:
        request["IndexName"] = index
    if key is not None:
        request["KeyConditionExpression"] = r.condition(key)
    if filter is not None:
        request["FilterExpression"] = r.condition(filter)
    if count:
        request["Select"] = "COUNT"
    elif projection is not None:
        request["ProjectionExpression"] = r.projection(projection)
    if consistent:
        request["ConsistentRead"] = True
    if not forward:
        request["ScanIndexForward"] = False
    if page_size is not None:
        request["Limit"] = page_size
    if segments is not None:
        request["Segment"], request["TotalSegments"] = segments
    if start is not None:
        request["ExclusiveStartKey"] = start
    request.update(r.params())
    return request


def describe_stream(stream_arn: str, after_shard: str | None = None) -> dict[str, Any]:
    """A page of the stream's shards, after ``after_shard`` (the previous page's last)."""
    request: dict[str, Any] = {"StreamArn": stream_arn}
    if after_shard is not None:
        request["ExclusiveStartShardId"] = after_shard
    return request


def get_shard_iterator(
    stream_arn: str, shard_id: str, *, after: str | None = None, latest: bool = False
) -> dict[str, Any]:
    """An iterator right after sequence number ``after`` (as the API spells it), else at the
    shard's newest record (``latest``), else at its oldest (TRIM_HORIZON)."""
    request: dict[str, Any] = {"StreamArn": stream_arn, "ShardId": shard_id}
    if after is not None:
        request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER"
        request["SequenceNumber"] = after
    elif latest:
        request["ShardIteratorType"] = "LATEST"
    else:
        request["ShardIteratorType"] = "TRIM_HORIZON"
    return request


def get_records(iterator: str, limit: int) -> dict[str, Any]:
    return {"ShardIterator": iterator, "Limit": limit}
