"""A model's table: what to create, how to compare an existing one, and binding it.

:func:`bind_steps` is everything ``engine.bind`` does for one table, as steps
(:mod:`streamodel.steps`): describe it, create it when missing, wait until it is ACTIVE,
check it against the model, enable a missing stream, set TTL. The engine runs the steps.
"""

from __future__ import annotations

import time
from typing import Any

from streamodel import steps
from streamodel.columns import Column, Index
from streamodel.exceptions import (
    ResourceNotFoundError,
    StreamodelError,
    TableMismatchError,
    TransportError,
)
from streamodel.steps import Call, Pause, Steps
from streamodel.transport.base import Transport

__all__ = [
    "active_steps",
    "bind_steps",
    "create_table_request",
    "mismatches",
    "wait_for_active",
]

_PROJECTION_TYPES = {"all": "ALL", "keys": "KEYS_ONLY"}


def _key_schema(hash_key: Column | None, range_key: Column | None) -> list[dict[str, str]]:
    schema = []
    if hash_key is not None:
        schema.append({"AttributeName": hash_key.dynamo_name, "KeyType": "HASH"})
    if range_key is not None:
        schema.append({"AttributeName": range_key.dynamo_name, "KeyType": "RANGE"})
    return schema


def _projection(index: Index, meta: Any) -> dict[str, Any]:
    # A shared table's indexes carry the entity attribute, which reads filter on.
    entity = getattr(meta, "entity_projection", None)
    if index.projection == "all" or (index.projection == "keys" and entity is None):
        return {"ProjectionType": _PROJECTION_TYPES[index.projection]}
    keys = {c.dynamo_name for c in [*meta.keys, index.hash_key, index.range_key] if c}
    included = [] if isinstance(index.projection, str) else index.included
    extra = [c.dynamo_name for c in included if c.dynamo_name not in keys]
    if entity is not None:
        extra.append(entity)
    if not extra:
        return {"ProjectionType": "KEYS_ONLY"}
    return {"ProjectionType": "INCLUDE", "NonKeyAttributes": extra}


def _throughput(read: int | None, write: int | None) -> dict[str, int]:
    return {"ReadCapacityUnits": read or 1, "WriteCapacityUnits": write or 1}


def create_table_request(meta: Any, table_name: str) -> dict[str, Any]:
    """The ``CreateTable`` parameters for a model (keys, indexes, billing, stream)."""
    provisioned = meta.read_units is not None or meta.write_units is not None
    key_columns: dict[str, Column] = {}
    for column in meta.keys:
        key_columns[column.dynamo_name] = column
    for index in meta.indexes:
        for column in (index.hash_key, index.range_key):
            if column is not None:
                key_columns[column.dynamo_name] = column
    request: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": _key_schema(meta.hash_key, meta.range_key),
        "AttributeDefinitions": [
            {"AttributeName": name, "AttributeType": column.type.backing_type}
            for name, column in key_columns.items()
        ],
    }
    if provisioned:
        request["BillingMode"] = "PROVISIONED"
        request["ProvisionedThroughput"] = _throughput(meta.read_units, meta.write_units)
    else:
        request["BillingMode"] = "PAY_PER_REQUEST"
    gsis = []
    for index in meta.gsis:
        gsi: dict[str, Any] = {
            "IndexName": index.dynamo_name,
            "KeySchema": _key_schema(index.hash_key, index.range_key),
            "Projection": _projection(index, meta),
        }
        if provisioned:
            gsi["ProvisionedThroughput"] = _throughput(
                index.read_units or meta.read_units, index.write_units or meta.write_units
            )
        gsis.append(gsi)
    if gsis:
        request["GlobalSecondaryIndexes"] = gsis
    lsis = [
        {
            "IndexName": index.dynamo_name,
            "KeySchema": _key_schema(meta.hash_key, index.range_key),
            "Projection": _projection(index, meta),
        }
        for index in meta.lsis
    ]
    if lsis:
        request["LocalSecondaryIndexes"] = lsis
    if meta.stream_view_type is not None:
        request["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": meta.stream_view_type,
        }
    return request


def _same_projection(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    if expected["ProjectionType"] != actual.get("ProjectionType"):
        return False
    wanted = set(expected.get("NonKeyAttributes", []))
    return wanted <= set(actual.get("NonKeyAttributes", []))


def mismatches(meta: Any, expected: dict[str, Any], table: dict[str, Any]) -> list[str]:
    """What differs between the table the model needs and the described ``table``.

    Extra indexes on the table are fine; billing and throughput are left to operators.
    A missing stream is not a mismatch (``bind`` enables it); a different view type is.
    """
    problems = []
    if table.get("KeySchema") != expected["KeySchema"]:
        problems.append(
            f"key schema is {table.get('KeySchema')}, model needs {expected['KeySchema']}"
        )
    defined = {
        a["AttributeName"]: a["AttributeType"] for a in table.get("AttributeDefinitions", [])
    }
    for attribute in expected["AttributeDefinitions"]:
        actual = defined.get(attribute["AttributeName"])
        if actual is not None and actual != attribute["AttributeType"]:
            problems.append(
                f"attribute {attribute['AttributeName']!r} is type {actual}, "
                f"model needs {attribute['AttributeType']}"
            )
    for kind, field in (("global", "GlobalSecondaryIndexes"), ("local", "LocalSecondaryIndexes")):
        existing = {i["IndexName"]: i for i in table.get(field, [])}
        for index in expected.get(field, []):
            actual_index = existing.get(index["IndexName"])
            if actual_index is None:
                problems.append(f"{kind} secondary index {index['IndexName']!r} is missing")
                continue
            if actual_index.get("KeySchema") != index["KeySchema"]:
                problems.append(
                    f"index {index['IndexName']!r} keys are {actual_index.get('KeySchema')}, "
                    f"model needs {index['KeySchema']}"
                )
            if not _same_projection(index["Projection"], actual_index.get("Projection", {})):
                problems.append(
                    f"index {index['IndexName']!r} projection is "
                    f"{actual_index.get('Projection')}, model needs {index['Projection']}"
                )
    stream = table.get("StreamSpecification") or {}
    wanted = meta.stream_view_type
    if (
        wanted is not None
        and stream.get("StreamEnabled")
        and stream.get("StreamViewType") != wanted
    ):
        problems.append(f"stream view type is {stream.get('StreamViewType')}, model needs {wanted}")
    return problems


def check_table(meta: Any, expected: dict[str, Any], table: dict[str, Any]) -> None:
    problems = mismatches(meta, expected, table)
    if problems:
        raise TableMismatchError(
            f"table {expected['TableName']!r} does not match "
            f"{getattr(meta, 'describe', None) or 'model ' + meta.model.__name__}: "
            + "; ".join(problems)
        )


def bind_steps(meta: Any, name: str) -> Steps[dict[str, Any]]:
    """Create ``meta``'s table ``name`` if missing, wait until it is ACTIVE, check it against
    the model (:class:`TableMismatchError` on a real difference), enable a missing stream and
    TTL; return the table's description."""
    expected = create_table_request(meta, name)
    try:
        yield Call("dynamodb", "DescribeTable", {"TableName": name})
    except ResourceNotFoundError:
        try:
            yield Call("dynamodb", "CreateTable", expected)
        except StreamodelError as error:
            # Another process may have created it meanwhile; anything else is real.
            if "ResourceInUse" not in getattr(error, "code", ""):
                raise
    table = yield from active_steps(name)
    check_table(meta, expected, table)
    stream = table.get("StreamSpecification") or {}
    if meta.stream_view_type is not None and not stream.get("StreamEnabled"):
        yield Call(
            "dynamodb",
            "UpdateTable",
            {"TableName": name, "StreamSpecification": expected["StreamSpecification"]},
        )
        table = yield from active_steps(name)
    if meta.ttl is not None:
        yield from _ttl_steps(name, meta.ttl["column"].dynamo_name)
    return table


def _ttl_steps(table_name: str, attribute: str) -> Steps[None]:
    """TTL on ``attribute``: enabled when off, refused when on for another attribute."""
    described = yield Call("dynamodb", "DescribeTimeToLive", {"TableName": table_name})
    ttl = described.get("TimeToLiveDescription", {})
    if ttl.get("TimeToLiveStatus", "DISABLED") in ("ENABLED", "ENABLING"):
        current = ttl.get("AttributeName")
        if current != attribute:
            raise TableMismatchError(
                f"table {table_name!r} has TTL on {current!r}, model needs {attribute!r}"
            )
        return
    yield Call(
        "dynamodb",
        "UpdateTimeToLive",
        {
            "TableName": table_name,
            "TimeToLiveSpecification": {"Enabled": True, "AttributeName": attribute},
        },
    )


def active_steps(table_name: str, *, timeout: float = 300.0) -> Steps[dict[str, Any]]:
    """Describe the table, pausing in between (50 ms, doubling up to 2 s), until it and its
    indexes are ACTIVE; return its description."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        answer = yield Call("dynamodb", "DescribeTable", {"TableName": table_name})
        table: dict[str, Any] = answer["Table"]
        indexes = table.get("GlobalSecondaryIndexes", [])
        if table.get("TableStatus") == "ACTIVE" and all(
            i.get("IndexStatus", "ACTIVE") == "ACTIVE" for i in indexes
        ):
            return table
        if time.monotonic() > deadline:
            raise TransportError(
                f"table {table_name!r} not ACTIVE after {timeout:.0f}s "
                f"(status {table.get('TableStatus')})",
                operation="DescribeTable",
            )
        yield Pause(delay)
        delay = min(delay * 2, 2.0)


def wait_for_active(
    transport: Transport, table_name: str, *, timeout: float = 300.0
) -> dict[str, Any]:
    """:func:`active_steps`, run on ``transport``."""
    return steps.run(transport, active_steps(table_name, timeout=timeout))
