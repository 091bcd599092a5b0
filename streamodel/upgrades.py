"""Schema versions: bringing a stored item up to its model's ``Meta.schema_version``.

A model at version N > 1 declares ``Meta.upgrades = {1: up1, ..., N-1: upN_1}``, where
``upgrades[k](item)`` turns an item of version k into one of version k + 1. Items carry their
version in the attribute ``Meta.schema_version_attribute`` (an item without it is version 1).

:meth:`SchemaVersions.upgrade` is pure: a raw item in, the raw item at the model's version
out (the very same mapping when it already is). Every read of a whole item goes through it
(:func:`streamodel._diff.fill` and :func:`~streamodel._diff.load_new`, which load, queries,
scans, transactions, stream records and Lambda events all use), and a migration writes back
what it returns.

An upgrade sees the item as plain values, the way ``boto3.dynamodb.types.TypeDeserializer``
gives them (``Decimal`` numbers, ``set``\\ s, ``Binary`` for bytes, dicts and lists), without
the version attribute; what it returns is turned back into wire values with
``TypeSerializer``. A ``None`` value or an empty set means the attribute is absent (streamodel
never stores NULL, and DynamoDB stores no empty set).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from streamodel._wire import same_wire
from streamodel.exceptions import SchemaVersionError
from streamodel.types import Wire

__all__ = ["SchemaVersions", "as_current", "schema_versions"]

Upgrade = Callable[[dict[str, Any]], Any]

_converters: tuple[Callable[[Any], Any], Callable[[Any], Any]] | None = None


def _convert() -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """boto3's ``TypeDeserializer().deserialize`` and ``TypeSerializer().serialize``, imported
    when an upgrade first runs: importing boto3 costs an engine's cold start ~100 ms, and
    streamodel's requests never need it."""
    global _converters  # a lazily imported pair of functions, set once
    if _converters is None:
        from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

        _converters = (TypeDeserializer().deserialize, TypeSerializer().serialize)
    return _converters


class SchemaVersions:
    """A model's schema version, the attribute that stores it and its chain of upgrades."""

    __slots__ = (
        "attribute",
        "current_wire",
        "fixed",
        "keys",
        "model",
        "steps",
        "version",
        "writes",
    )

    def __init__(self, model: type[Any]) -> None:
        meta: Any = model.Meta
        self.model = model
        self.version: int = meta.schema_version
        self.attribute: str = meta.schema_version_attribute
        self.steps: dict[int, Upgrade] = dict(meta.upgrades)
        self.current_wire: Wire = {"N": str(self.version)}
        # Version-1 models do not write the attribute (an item without it is version 1):
        # their items and requests stay exactly as they were before versions existed.
        self.writes = self.version > 1
        self.keys = list(meta.keys)
        # Columns an upgrade must leave alone: the key names the item, the version column
        # is what the next save's condition compares with the stored item.
        self.fixed = [*meta.keys, *([meta.version] if meta.version is not None else [])]

    def stored_version(self, item: Mapping[str, Wire]) -> int:
        """The item's schema version (1 when it has none); ``SchemaVersionError`` when the
        attribute holds something other than a positive whole number."""
        wire = item.get(self.attribute)
        if wire is None:
            return 1
        text = wire.get("N") if isinstance(wire, Mapping) and len(wire) == 1 else None
        try:
            number = int(text) if isinstance(text, str) and text.isdigit() else 0
        except ValueError:
            number = 0
        if number < 1:
            raise self._error(
                item,
                wire,
                f"its {self.attribute!r} attribute holds {wire!r}, not a schema version",
            )
        return number

    def upgrade(self, item: Mapping[str, Wire]) -> Mapping[str, Wire]:
        """``item`` at the model's version: ``item`` itself when it is there already, else a
        new item (with the version attribute set when the model writes one).

        Raises :class:`SchemaVersionError` for an item of a newer version, a malformed
        version, or an upgrade that raises or returns something that is not an item.
        """
        wire = item.get(self.attribute)
        if wire is None:
            if self.version == 1:
                return item
            stored = 1
        elif wire == self.current_wire:
            return item
        else:
            stored = self.stored_version(item)
            if stored == self.version:
                return item
            if stored > self.version:
                raise self._error(
                    item,
                    stored,
                    f"it was written by a newer version of the model ({stored}); this "
                    f"code knows versions up to {self.version}: deploy the newer model "
                    "before reading its items",
                )
        return self._run(item, stored)

    def _run(self, item: Mapping[str, Wire], stored: int) -> Mapping[str, Wire]:
        attribute = self.attribute
        _deserialize, _serialize = _convert()
        try:
            data: Any = {k: _deserialize(v) for k, v in item.items() if k != attribute}
        except (TypeError, ValueError, KeyError, AttributeError) as error:
            raise self._error(
                item, stored, f"it holds a value that is not DynamoDB's ({error})"
            ) from error
        for k in range(stored, self.version):
            step = self.steps[k]
            name = getattr(step, "__qualname__", repr(step))
            try:
                data = step(data)
            except Exception as error:
                raise self._error(
                    item,
                    stored,
                    f"upgrade {k} -> {k + 1} ({name}) raised {type(error).__name__}: {error}",
                ) from error
            if not isinstance(data, Mapping) or not all(isinstance(n, str) for n in data):
                raise self._error(
                    item,
                    stored,
                    f"upgrade {k} -> {k + 1} ({name}) returned {type(data).__name__}, not the "
                    "item (a dict of attribute names to values)",
                )
        upgraded: dict[str, Wire] = {}
        try:
            for name, value in data.items():
                if value is None or (isinstance(value, set | frozenset) and not value):
                    continue  # absent: streamodel stores neither NULL nor empty sets
                if name != attribute:
                    upgraded[name] = _serialize(value)
        except (TypeError, ValueError) as error:
            raise self._error(
                item,
                stored,
                f"an upgrade returned a value DynamoDB cannot store in {name!r} ({error}; "
                "numbers are Decimal or int, never float)",
            ) from error
        for column in self.fixed:
            before, after = item.get(column.dynamo_name), upgraded.get(column.dynamo_name)
            if before != after and not same_wire(before, after):
                raise self._error(
                    item,
                    stored,
                    f"an upgrade changed {column.name!r} from {before!r} to {after!r}; "
                    "upgrades cannot change key or version columns",
                )
        if self.writes:
            upgraded[attribute] = self.current_wire
        return upgraded

    def _error(self, item: Mapping[str, Wire], stored: Any, why: str) -> SchemaVersionError:
        key = self._key(item)
        name = self.model.__name__
        return SchemaVersionError(
            f"{name} item {key}: stored at schema version {stored}, the model is at "
            f"version {self.version}: {why}",
            model=self.model,
            column=self.attribute,
            item=item,
            key=key,
            stored_version=stored,
            model_version=self.version,
        )

    def _key(self, item: Mapping[str, Wire]) -> dict[str, Any]:
        """The item's key as Python values (column names), or as stored when it does not
        decode: the error names the item either way."""
        try:
            return {c.name: c.type.dynamo_load(item[c.dynamo_name]) for c in self.keys}
        except Exception:  # a broken key is named as stored
            return {c.dynamo_name: item.get(c.dynamo_name) for c in self.keys}


def schema_versions(model: type[Any]) -> SchemaVersions:
    """The schema versions of ``model`` (kept with its compiled functions)."""
    from streamodel._compiled import compiled

    return compiled(model).versions


def as_current(model: type[Any], item: Mapping[str, Wire] | None) -> Mapping[str, Wire] | None:
    """``item`` brought to ``model``'s schema version (``None`` stays ``None``)."""
    return None if item is None else schema_versions(model).upgrade(item)
