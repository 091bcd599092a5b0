"""streamodel: DynamoDB models with marshmallow types, versioned diff-based saves, signals
and change streams.

The names below are loaded on first use (PEP 562): ``import streamodel`` alone costs almost
nothing, which matters because pytest imports :mod:`streamodel.testing` (the plugin) in every
test run of a project that has streamodel installed, and that imports this package first.
``from streamodel import Engine`` loads what the engine needs, as an eager import would.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from streamodel.entities import Collection
    from streamodel.exceptions import (
        BatchWriteError,
        ConditionFailedError,
        ExpiredIteratorError,
        InvalidConditionError,
        InvalidModelError,
        InvalidPositionError,
        MigrationError,
        MissingObjectsError,
        ResourceNotFoundError,
        SchemaVersionError,
        ServerError,
        StaleVersionError,
        StreamodelError,
        TableMismatchError,
        ThrottledError,
        TransactionCanceledError,
        TransportError,
        TrimmedDataError,
        UndecodableItemError,
        UndecodableRecordError,
        ValidationError,
    )
    from streamodel.migrate import Migration, MigrationResult
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

# Each public name and the module that defines it.
_WHERE = {
    "signals": "streamodel.signals",
    **dict.fromkeys(
        [
            "add",
            "add_to_set",
            "append",
            "delete_from_set",
            "if_not_exists",
            "prepend",
            "remove",
        ],
        "streamodel.actions",
    ),
    **dict.fromkeys(
        ["Column", "GlobalSecondaryIndex", "LocalSecondaryIndex"], "streamodel.columns"
    ),
    "Engine": "streamodel.engine",
    "Collection": "streamodel.entities",
    **dict.fromkeys(
        [
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
        ],
        "streamodel.exceptions",
    ),
    **dict.fromkeys(["Migration", "MigrationResult"], "streamodel.migrate"),
    **dict.fromkeys(["BaseModel", "new_base"], "streamodel.models"),
    **dict.fromkeys(
        [
            "JSON",
            "UUID",
            "Binary",
            "Boolean",
            "DateTime",
            "Enum",
            "Float",
            "Integer",
            "List",
            "Map",
            "Number",
            "Set",
            "String",
            "Timestamp",
        ],
        "streamodel.types",
    ),
}

__all__ = [  # noqa: RUF022  # plain sorted() order, which tests/unit/test_exports.py checks
    "BaseModel",
    "BatchWriteError",
    "Binary",
    "Boolean",
    "Collection",
    "Column",
    "ConditionFailedError",
    "DateTime",
    "Engine",
    "Enum",
    "ExpiredIteratorError",
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
    "Migration",
    "MigrationError",
    "MigrationResult",
    "MissingObjectsError",
    "Number",
    "ResourceNotFoundError",
    "SchemaVersionError",
    "ServerError",
    "Set",
    "StaleVersionError",
    "StreamodelError",
    "String",
    "TableMismatchError",
    "ThrottledError",
    "Timestamp",
    "TransactionCanceledError",
    "TransportError",
    "TrimmedDataError",
    "UUID",
    "UndecodableItemError",
    "UndecodableRecordError",
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


if not TYPE_CHECKING:  # for type checkers the names above are imported: typos stay errors

    def __getattr__(name: str) -> Any:
        module = _WHERE.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        imported = importlib.import_module(module)
        value = imported if module == f"{__name__}.{name}" else getattr(imported, name)
        globals()[name] = value  # later reads skip this hook
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
