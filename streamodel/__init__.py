"""streamodel: DynamoDB models with marshmallow types, versioned diff-based saves, signals
and change streams."""

from streamodel import signals
from streamodel.actions import (
    add,
    add_to_set,
    append,
    delete_from_set,
    if_not_exists,
    prepend,
    remove,
)
from streamodel.columns import Column, GlobalSecondaryIndex, LocalSecondaryIndex
from streamodel.engine import Engine
from streamodel.exceptions import (
    BatchWriteError,
    ConditionFailedError,
    InvalidConditionError,
    InvalidModelError,
    InvalidPositionError,
    MissingObjectsError,
    StaleVersionError,
    StreamodelError,
    TableMismatchError,
    TransactionCanceledError,
    TransportError,
    UndecodableItemError,
    ValidationError,
)
from streamodel.models import BaseModel, new_base
from streamodel.types import (
    JSON,
    UUID,
    Binary,
    Boolean,
    DateTime,
    Enum,
    Float,
    Integer,
    List,
    Map,
    Number,
    Set,
    String,
    Timestamp,
)

__version__ = "0.1.0"

__all__ = [  # noqa: RUF022  # plain sorted() order, which tests/unit/test_exports.py checks
    "BaseModel",
    "BatchWriteError",
    "Binary",
    "Boolean",
    "Column",
    "ConditionFailedError",
    "DateTime",
    "Engine",
    "Enum",
    "Float",
    "GlobalSecondaryIndex",
    "Integer",
    "InvalidConditionError",
    "InvalidModelError",
    "InvalidPositionError",
    "JSON",
    "List",
    "LocalSecondaryIndex",
    "Map",
    "MissingObjectsError",
    "Number",
    "Set",
    "StaleVersionError",
    "StreamodelError",
    "String",
    "TableMismatchError",
    "Timestamp",
    "TransactionCanceledError",
    "TransportError",
    "UUID",
    "UndecodableItemError",
    "ValidationError",
    "add",
    "add_to_set",
    "append",
    "delete_from_set",
    "if_not_exists",
    "new_base",
    "prepend",
    "remove",
    "signals",
]
