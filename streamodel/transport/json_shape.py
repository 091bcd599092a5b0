"""DynamoDB's JSON shapes and botocore's, converted in one place.

On the wire (and in Lambda's events, and in JSON kept in a table) binary attribute values are
base64 text and times are epoch seconds; botocore hands ``bytes`` and aware datetimes. The
lean transport, the Lambda handler, the dead-letter store and the HTTP fake all convert
between the two with these functions.
"""

from __future__ import annotations

import binascii
import copy
import datetime
from collections.abc import Mapping
from typing import Any

__all__ = ["item_from_json", "restore_item", "restore_value", "to_json_shape"]

_b64decode = binascii.a2b_base64


def to_json_shape(value: Any) -> Any:
    """A botocore-shaped structure as JSON carries it: base64 binaries, epoch-second times."""
    if isinstance(value, bytes | bytearray | memoryview):
        return binascii.b2a_base64(value, newline=False).decode("ascii")
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    if isinstance(value, Mapping):
        return {k: to_json_shape(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_json_shape(v) for v in value]
    return value


def restore_value(value: dict[str, Any]) -> None:
    """Binary values of one attribute value (through maps and lists) back to ``bytes``, in
    place; values already ``bytes`` are left as they are."""
    if "M" in value:
        restore_item(value["M"])
    elif "L" in value:
        for member in value["L"]:
            restore_value(member)
    elif "B" in value:
        if not isinstance(value["B"], bytes):
            value["B"] = _b64decode(value["B"])  # TypeError for what is not base64 text
    elif "BS" in value:
        value["BS"] = [m if isinstance(m, bytes) else _b64decode(m) for m in value["BS"]]


def restore_item(item: dict[str, Any]) -> None:
    """:func:`restore_value` for every attribute of an item, in place."""
    for value in item.values():
        restore_value(value)


def item_from_json(item: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of an item from JSON (an event, a request) with binary values as ``bytes``."""
    result: dict[str, Any] = copy.deepcopy(dict(item))
    restore_item(result)
    return result
