"""Every error streamodel raises, under one root.

::

    StreamodelError
    ├── InvalidModelError           (also ValueError)  a model class is declared wrong
    ├── InvalidConditionError       (also ValueError)  a condition or update cannot be rendered
    ├── InvalidPositionError        (also ValueError)  a stream position or token is malformed
    ├── ValidationError             (also marshmallow.ValidationError)  bad values, per field
    ├── TableMismatchError          an existing table does not match its model
    ├── MissingObjectsError         load() did not find some objects (.objects)
    ├── BatchWriteError             a batch write left some objects unwritten (.objects)
    ├── UndecodableItemError        a stored item does not fit its model (.model, .column)
    │   └── SchemaVersionError      ... its schema version is newer, or an upgrade failed
    ├── UndecodableRecordError      a stream record does not fit its model (.record)
    ├── MigrationError              an item a migration could not rewrite (dead-lettered)
    ├── ConditionFailedError        a conditional write was refused (.obj, .item)
    │   └── StaleVersionError       ... because the stored version moved on
    ├── TransactionCanceledError    a transaction was cancelled (.reasons, one per item)
    └── TransportError              a call to AWS failed (.operation, .code)
        ├── ThrottledError          throttling; retried with backoff before it reaches you
        ├── ServerError             5xx or a broken connection; outcome may be unknown
        ├── ResourceNotFoundError   table, stream or shard does not exist
        ├── ExpiredIteratorError    a shard iterator is older than 15 minutes
        └── TrimmedDataError        stream records were trimmed before they were read
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streamodel._marshmallow import marshmallow

__all__ = [
    "BatchWriteError",
    "ConditionFailedError",
    "ExpiredIteratorError",
    "InvalidConditionError",
    "InvalidModelError",
    "InvalidPositionError",
    "MigrationError",
    "MissingObjectsError",
    "ResourceNotFoundError",
    "SchemaVersionError",
    "ServerError",
    "StaleVersionError",
    "StreamodelError",
    "TableMismatchError",
    "ThrottledError",
    "TransactionCanceledError",
    "TransportError",
    "TrimmedDataError",
    "UndecodableItemError",
    "UndecodableRecordError",
    "ValidationError",
]


class StreamodelError(Exception):
    """Root of every streamodel error."""


class InvalidModelError(StreamodelError, ValueError):
    """A model class, column, index or Meta option is declared wrong."""


class InvalidConditionError(StreamodelError, ValueError):
    """A condition, key condition or update action cannot be used where it was given."""


class InvalidPositionError(StreamodelError, ValueError):
    """A stream position or token is malformed or belongs to another stream."""


class ValidationError(StreamodelError, marshmallow.ValidationError):
    """One or more values failed validation; ``.messages`` maps field names to messages.

    Raised before anything is sent, so nothing was written.
    """


class TableMismatchError(StreamodelError):
    """An existing table's keys, indexes or billing do not match the model."""


class MissingObjectsError(StreamodelError):
    """Some objects passed to ``load`` were not found; they are in ``.objects``."""

    def __init__(self, message: str, *, objects: Iterable[Any]) -> None:
        super().__init__(message)
        self.objects = list(objects)


class BatchWriteError(StreamodelError):
    """Some objects of a batch write are not known to be written; they are in ``.objects``.

    Everything else was written (and its ``object_saved``/``object_deleted`` signal sent).
    ``.unknown`` lists those of ``.objects`` whose call failed with an unknown outcome (a 5xx
    or a broken connection: they may be stored); ``__cause__`` holds the transport error.
    """

    def __init__(
        self, message: str, *, objects: Iterable[Any], unknown: Iterable[Any] = ()
    ) -> None:
        super().__init__(message)
        self.objects = list(objects)
        self.unknown = list(unknown)


class UndecodableItemError(StreamodelError):
    """An item read from DynamoDB does not fit its model (written by another program or an
    older schema): ``.model``, ``.column`` (the Python name) and ``.item`` (the raw item)."""

    def __init__(self, message: str, *, model: Any, column: str, item: Mapping[str, Any]) -> None:
        super().__init__(message)
        self.model = model
        self.column = column
        self.item = dict(item)


class SchemaVersionError(UndecodableItemError):
    """A stored item cannot be brought to its model's schema version: it was written by a
    newer version of the model, its version attribute is malformed, or an upgrade raised
    (the upgrade's exception is ``__cause__``) or returned something that is not an item.

    ``.key`` is the item's key (column names to Python values, or the raw key when it does not
    decode), ``.stored_version`` the item's version, ``.model_version`` the model's
    ``Meta.schema_version``; ``.column`` is the version attribute's name. On a stream, the
    record is undecodable like any other (:class:`UndecodableRecordError`, dead-lettered by
    a worker).
    """

    def __init__(
        self,
        message: str,
        *,
        model: Any,
        column: str,
        item: Mapping[str, Any],
        key: Mapping[str, Any],
        stored_version: Any,
        model_version: int,
    ) -> None:
        super().__init__(message, model=model, column=column, item=item)
        self.key = dict(key)
        self.stored_version = stored_version
        self.model_version = model_version


class UndecodableRecordError(StreamodelError):
    """A stream record could not be turned into the model (another writer, another schema).

    ``.record`` is the raw record, ``.shard_id`` and ``.sequence_number`` where it is,
    ``.model`` the model it was read as. The reader's position is already past it, so
    reading can go on; the worker hands such records to its dead-letter destination.
    """

    def __init__(
        self,
        message: str,
        *,
        record: Mapping[str, Any],
        shard_id: str,
        sequence_number: str,
        model: type | None = None,
    ) -> None:
        super().__init__(message)
        self.record = dict(record)
        self.shard_id = shard_id
        self.sequence_number = sequence_number
        self.model = model


class MigrationError(StreamodelError):
    """An item could not be migrated, and went to the dead letters with this error: a
    backfill that raised, returned something that is not an item or changed the key, or an
    item that kept changing under every attempt. A migration run continues past it."""


class ConditionFailedError(StreamodelError):
    """A conditional write was refused by DynamoDB; nothing was written.

    ``.obj`` is the object whose write failed, ``.item`` the item as stored now (a raw
    DynamoDB item, or ``None`` when it does not exist or was not returned).
    """

    def __init__(
        self, message: str, *, obj: Any = None, item: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.obj = obj
        self.item = dict(item) if item is not None else None


class StaleVersionError(ConditionFailedError):
    """The object's version column no longer matches the stored item: reload, merge, retry."""


class TransactionCanceledError(StreamodelError):
    """DynamoDB cancelled a transaction; ``.reasons`` has one entry per item, in order.

    Each reason is a dict with ``code`` (``"None"`` for items that were fine), ``message``
    and ``obj`` (the object of that item, when there is one).
    """

    def __init__(self, message: str, *, reasons: Sequence[Mapping[str, Any]] = ()) -> None:
        super().__init__(message)
        self.reasons = [dict(r) for r in reasons]


class TransportError(StreamodelError):
    """A call to DynamoDB or DynamoDB Streams failed."""

    def __init__(self, message: str, *, operation: str = "", code: str = "") -> None:
        super().__init__(message)
        self.operation = operation
        self.code = code


class ThrottledError(TransportError):
    """DynamoDB throttled the call (throughput, request or stream read limits)."""


class ServerError(TransportError):
    """A 5xx answer or a broken connection: the call's outcome may be unknown."""


class ResourceNotFoundError(TransportError):
    """The table, index, stream or shard named in the call does not exist."""


class ExpiredIteratorError(TransportError):
    """A shard iterator expired (they live 15 minutes); get a new one from the last position."""


class TrimmedDataError(TransportError):
    """The requested stream records are older than the stream's 24 hour retention."""
