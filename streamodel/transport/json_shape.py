"""DynamoDB's JSON shapes and botocore's, converted in one place.

On the wire (and in Lambda's events, and in JSON kept in a table) binary attribute values are
base64 text and times are epoch seconds; botocore hands ``bytes`` and aware datetimes. The
lean transport, the Lambda handler, the stream decoder, the dead-letter store and the HTTP
fake all convert between the two with these functions.
"""

from __future__ import annotations

import binascii
import datetime
import decimal
from collections.abc import Mapping
from typing import Any

__all__ = [
    "datetime_from_json",
    "item_from_json",
    "restore_item",
    "restore_value",
    "to_json_shape",
]

_b64decode = binascii.a2b_base64
_UTC = datetime.UTC


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


def datetime_from_json(value: Any) -> datetime.datetime:
    """A time as an aware UTC datetime, whichever shape it came in: epoch seconds (Lambda's
    ``ApproximateCreationDateTime``, JSON: int, float, Decimal or numeric text) or a datetime
    (botocore's; a naive one is taken as UTC). Anything else raises ``ValueError``.

    The one converter of stream record times: the Lambda handler, the stream decoder and the
    reader's ``since`` filter all use it.
    """
    if isinstance(value, datetime.datetime):
        zone = value.tzinfo
        if zone is _UTC:
            return value
        return value.replace(tzinfo=_UTC) if zone is None else value.astimezone(_UTC)
    if isinstance(value, bool) or not isinstance(value, int | float | decimal.Decimal | str):
        raise ValueError(f"not a time (epoch seconds or a datetime): {value!r}")
    try:
        return datetime.datetime.fromtimestamp(float(value), _UTC)
    except (OverflowError, OSError) as error:
        raise ValueError(f"not a time (epoch seconds or a datetime): {value!r}") from error


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


def _restored_value(value: Mapping[str, Any]) -> Any:
    """:func:`restore_value` without touching ``value``: ``value`` itself when nothing in it
    is binary text, else a new value sharing every part that is not."""
    if "S" in value or "N" in value:  # the common case, first
        return value
    if "M" in value:
        members = value["M"]
        restored = item_from_json(members)
        return value if restored is members else {**value, "M": restored}
    if "L" in value:
        members = value["L"]
        changed: list[Any] | None = None
        for index, member in enumerate(members):
            new = _restored_value(member)
            if new is not member:
                if changed is None:
                    changed = list(members)
                changed[index] = new
        return value if changed is None else {**value, "L": changed}
    if "B" in value:
        binary = value["B"]
        if isinstance(binary, bytes):
            return value
        return {**value, "B": _b64decode(binary)}  # TypeError for what is not base64 text
    if "BS" in value:
        members = value["BS"]
        if all(isinstance(m, bytes) for m in members):
            return value
        return {**value, "BS": [m if isinstance(m, bytes) else _b64decode(m) for m in members]}
    return value


def item_from_json(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item from JSON (an event, a request) with binary values as ``bytes``.

    ``item`` is never modified, and nothing that needs no conversion is copied: the result
    is ``item`` itself when it is a dict without binary text, else a new dict sharing every
    value without binary text with ``item`` (a binary value is rebuilt together with the
    maps and lists holding it). Converting an item costs a look at each value, not a copy.
    """
    result: dict[str, Any] | None = None
    for name, value in item.items():
        restored = _restored_value(value)
        if restored is not value:
            if result is None:
                result = dict(item)
            result[name] = restored
    if result is not None:
        return result
    return item if isinstance(item, dict) else dict(item)
