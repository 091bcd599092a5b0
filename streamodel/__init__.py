"""streamodel: DynamoDB models with marshmallow types, versioned diff-based saves, signals
and change streams."""

from streamodel import signals
from streamodel.columns import Column, GlobalSecondaryIndex, LocalSecondaryIndex
from streamodel.engine import Engine
from streamodel.exceptions import (
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

__all__ = [
    "JSON",
    "UUID",
    "BaseModel",
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
    "ValidationError",
    "new_base",
    "signals",
]
