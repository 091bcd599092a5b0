"""Stream records become :class:`Change` objects holding real model objects.

The one decoder here serves every source of records: GetRecords through botocore (binary
values are ``bytes``, ``ApproximateCreationDateTime`` a datetime) and Lambda's JSON events
(binary values are base64 text, the time is epoch seconds); the types' ``dynamo_load`` reads
both, so a change is identical, type for type, whichever way it arrived.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from streamodel._compiled import compiled
from streamodel._diff import load_new, meta_of
from streamodel.exceptions import UndecodableItemError, UndecodableRecordError
from streamodel.models import BaseModel
from streamodel.transport.json_shape import datetime_from_json
from streamodel.types import Wire
from streamodel.upgrades import as_current

__all__ = [
    "EVENTS",
    "Change",
    "UndecodableRecordError",
    "decode_record",
    "is_ttl_delete",
    "record_image",
]

Event = Literal["insert", "modify", "remove"]
EVENTS: tuple[Event, ...] = ("insert", "modify", "remove")
_EVENT_NAMES: dict[str, Event] = {"INSERT": "insert", "MODIFY": "modify", "REMOVE": "remove"}
TTL_PRINCIPAL = "dynamodb.amazonaws.com"


@dataclass(frozen=True, eq=False)
class Change:
    """One change of one item, as model objects.

    ``old`` and ``new`` are model objects (``None`` for an insert's old, a remove's new, or
    when the stream's view type does not carry that image); ``key`` maps key column names to
    Python values; ``changed`` names the columns whose value differs between old and new.
    ``event_id`` and ``sequence_number`` identify the change for idempotent handlers
    (delivery is at-least-once). ``expired`` is true for deletes made by DynamoDB's TTL.
    ``snapshot`` is true for an item delivered by a ``start="snapshot"`` worker's scan
    (then ``event`` is ``"insert"``, ``old`` and ``sequence_number`` are ``None``; see
    :mod:`streamodel.stream.snapshot`), false for stream records.
    """

    event: Event
    model: type[BaseModel]
    old: Any
    new: Any
    key: dict[str, Any]
    sequence_number: str | None
    shard_id: str
    event_id: str
    created_at: datetime.datetime
    expired: bool
    changed: tuple[str, ...]
    record: dict[str, Any] = field(repr=False)
    snapshot: bool = False

    def __repr__(self) -> str:
        return (
            f"<Change {self.event} {self.model.__name__} {self.key} "
            f"seq={self.sequence_number} changed={list(self.changed)}>"
        )


def is_ttl_delete(record: Mapping[str, Any]) -> bool:
    """Whether a record is a delete made by TTL (``userIdentity`` of the DynamoDB service)."""
    identity = record.get("userIdentity") or {}
    # GetRecords through botocore spells the keys Type/PrincipalId, Lambda's events
    # type/principalId.
    kind = identity.get("Type", identity.get("type"))
    principal = identity.get("PrincipalId", identity.get("principalId"))
    return bool(kind == "Service" and principal == TTL_PRINCIPAL)


def record_image(record: Mapping[str, Any]) -> Mapping[str, Wire] | None:
    """The image that tells a record's entity: the new one, else the old one (a remove)."""
    data = record.get("dynamodb") or {}
    image: Mapping[str, Wire] | None = data.get("NewImage") or data.get("OldImage")
    return image


def _image(model: type[BaseModel], image: Mapping[str, Wire] | None) -> Any:
    if image is None:
        return None
    return load_new(model, image)  # the model's compiled load


def decode_record(
    model: type[BaseModel], record: Mapping[str, Any], *, shard_id: str, sequence_number: str
) -> Change:
    """The :class:`Change` for one raw stream record of ``model``'s table.

    Raises :class:`UndecodableRecordError` (with the raw record) when the record does not
    fit the model.
    """
    try:
        data = record["dynamodb"]
        event = _EVENT_NAMES[record["eventName"]]
        meta = meta_of(model)
        keys: Mapping[str, Wire] = data["Keys"]
        loads = compiled(model).load
        key = {c.name: loads[c.name](keys[c.dynamo_name]) for c in meta.keys}
        old_image, new_image = data.get("OldImage"), data.get("NewImage")
        old, new = _image(model, old_image), _image(model, new_image)
        if compiled(model).versions.writes:  # ``changed`` as the model sees the images
            old_image, new_image = as_current(model, old_image), as_current(model, new_image)
        if old_image is not None and new_image is not None:
            changed = tuple(
                c.name
                for c in meta.columns
                if old_image.get(c.dynamo_name) != new_image.get(c.dynamo_name)
            )
        else:
            # With one image (insert, remove, or a one-image view type), its columns changed.
            present = old_image if old_image is not None else new_image or {}
            changed = tuple(c.name for c in meta.columns if c.dynamo_name in present)
        return Change(
            event=event,
            model=model,
            old=old,
            new=new,
            key=key,
            sequence_number=sequence_number,
            shard_id=shard_id,
            event_id=str(record.get("eventID", "")),
            created_at=datetime_from_json(data.get("ApproximateCreationDateTime")),
            expired=event == "remove" and is_ttl_delete(record),
            changed=changed,
            record=dict(record),
        )
    except (
        KeyError,
        TypeError,
        ValueError,
        ArithmeticError,
        AttributeError,
        UndecodableItemError,
    ) as error:
        raise UndecodableRecordError(
            f"stream record {sequence_number} of shard {shard_id} does not fit "
            f"{model.__name__}: {type(error).__name__}: {error}",
            record=record,
            shard_id=shard_id,
            sequence_number=sequence_number,
            model=model,
        ) from error
