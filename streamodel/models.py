"""Model classes: ``new_base()``, ``BaseModel`` and the checks run when a model is declared.

Declaring a subclass collects its columns and indexes (own, inherited and from mixins, each
copied so that every model owns its own), validates them, fills ``Model.Meta`` with the
introspection attributes and builds ``Model.Schema``. Nothing about a model changes when an
engine binds it: per-engine state lives on the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from streamodel import entities
from streamodel.columns import Column, Index, LocalSecondaryIndex
from streamodel.exceptions import InvalidModelError
from streamodel.schema import build_schema
from streamodel.templates import KeyTemplate
from streamodel.types import Integer, Number, Timestamp, Wire

__all__ = ["BaseModel", "new_base"]

STREAM_VIEW_TYPES = {
    "new_and_old": "NEW_AND_OLD_IMAGES",
    "new": "NEW_IMAGE",
    "old": "OLD_IMAGE",
    "keys": "KEYS_ONLY",
}
_META_OPTIONS = (
    "table_name",
    "read_units",
    "write_units",
    "stream",
    "ttl",
    "abstract",
    "schema_version",
    "upgrades",
    "schema_version_attribute",
    "entity",
    "entity_attribute",
)
# Where an item's schema version is stored unless Meta.schema_version_attribute says otherwise
# (see docs/schema.md): short, and out of the way of ordinary column names.
DEFAULT_SCHEMA_VERSION_ATTRIBUTE = "_schema"


class BaseModel:
    """Base of every model. Use :func:`new_base` to get a base for your own models."""

    class Meta:
        abstract = True

    Schema: ClassVar[Any]
    # The entities declared under this base, by table (see streamodel.entities).
    _sm_entities: ClassVar[entities.Scope] = {}

    # Per-instance state: current values, the snapshot of what is known to be stored
    # (``None`` for an object not known to be stored) and the columns set since then.
    _sm_values: dict[str, Any]
    _sm_snapshot: dict[str, Wire | None] | None
    _sm_touched: set[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _setup_model(cls)

    def __init__(self, **attrs: Any) -> None:
        _init_state(self)
        meta: Any = type(self).Meta
        columns = meta.columns_by_name
        unknown = sorted(set(attrs) - set(columns))
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got unknown column(s) {unknown}; "
                f"columns are {sorted(columns)}"
            )
        for column in meta.columns:
            if column.name in attrs:
                setattr(self, column.name, attrs[column.name])
            elif column.default is not None:
                setattr(self, column.name, column.default_value())

    def __repr__(self) -> str:
        meta: Any = type(self).Meta
        values = ", ".join(
            f"{c.name}={self._sm_values[c.name]!r}"
            for c in meta.columns
            if self._sm_values.get(c.name) is not None
        )
        return f"{type(self).__name__}({values})"


def _init_state(obj: BaseModel) -> None:
    obj._sm_values = {}
    obj._sm_snapshot = None
    obj._sm_touched = set()


def new_instance(model: type[BaseModel]) -> BaseModel:
    """An empty object of ``model``: no defaults applied, nothing touched (for loaded data)."""
    obj = model.__new__(model)
    _init_state(obj)
    return obj


def new_base() -> type[BaseModel]:
    """A fresh abstract base class; ``engine.bind(base=Base)`` binds all its concrete models."""
    meta = type("Meta", (), {"abstract": True})
    namespace = {"Meta": meta, "__module__": __name__, entities.SCOPE_ATTRIBUTE: {}}
    return type("Base", (BaseModel,), namespace)


def _declared_meta(cls: type) -> type:
    meta = cls.__dict__.get("Meta")
    if meta is None:
        meta = type("Meta", (), {})
        cls.Meta = meta  # type: ignore[attr-defined]
    unknown = sorted(
        k
        for k in vars(meta)
        if not k.startswith("_") and k not in _META_OPTIONS and not callable(vars(meta)[k])
    )
    if unknown:
        raise InvalidModelError(
            f"{cls.__name__}.Meta: unknown option(s) {unknown}; options are {list(_META_OPTIONS)}"
        )
    return meta


def _collect(cls: type[BaseModel], kind: type) -> dict[str, Any]:
    """Columns or indexes of ``cls`` by Python name: own ones as declared, inherited ones
    (from model bases and mixins) copied onto ``cls``, nearest definition winning."""
    found: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, kind):
                found[name] = value
            elif name in found:
                del found[name]  # a subclass replaced the attribute with something else
    out: dict[str, Any] = {}
    for name, value in found.items():
        if value.model is not cls and name not in cls.__dict__:
            value = value.copy_for(cls)
            setattr(cls, name, value)
        value.name = name
        value.model = cls
        out[name] = value
    return out


def _stream_view_type(cls: type, value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        include = value.get("include")
        if isinstance(include, list | tuple | set):
            key = "_and_".join(sorted(set(include), key=["new", "old", "keys"].index))
            value = key if key in STREAM_VIEW_TYPES else value
    if isinstance(value, str):
        if value in STREAM_VIEW_TYPES:
            return STREAM_VIEW_TYPES[value]
        if value in STREAM_VIEW_TYPES.values():
            return value
    raise InvalidModelError(
        f"{cls.__name__}.Meta.stream must be None, one of {sorted(STREAM_VIEW_TYPES)} "
        f"or a DynamoDB StreamViewType, got {value!r}"
    )


def _setup_model(cls: type[BaseModel]) -> None:
    name = cls.__name__
    meta: Any = _declared_meta(cls)
    abstract = bool(meta.__dict__.get("abstract", False))

    columns = _collect(cls, Column)
    indexes = _collect(cls, Index)
    ordered = list(columns.values())

    seen: dict[str, str] = {}
    for column in ordered:
        other = seen.setdefault(column.dynamo_name, column.name)
        if other != column.name:
            raise InvalidModelError(
                f"{name}: columns {other!r} and {column.name!r} share the DynamoDB name "
                f"{column.dynamo_name!r}"
            )

    hash_keys = [c for c in ordered if c.hash_key]
    range_keys = [c for c in ordered if c.range_key]
    versions = [c for c in ordered if c.version]
    if not abstract:
        if len(hash_keys) != 1:
            found = [c.name for c in hash_keys] or "none"
            raise InvalidModelError(f"{name} needs exactly one hash_key column, found {found}")
        if len(range_keys) > 1:
            raise InvalidModelError(
                f"{name} has more than one range_key column: {[c.name for c in range_keys]}"
            )
    if len(versions) > 1:
        raise InvalidModelError(
            f"{name} has more than one version column: {[c.name for c in versions]}"
        )
    for column in versions:
        if not isinstance(column.type, Integer):
            raise InvalidModelError(f"{name}.{column.name}: a version column must be Integer")
        if column.hash_key or column.range_key:
            raise InvalidModelError(f"{name}.{column.name}: a version column cannot be a key")
    for column in [*hash_keys, *range_keys]:
        if not column.type.key_able:
            raise InvalidModelError(
                f"{name}.{column.name}: a key column must be stored as a string, number or "
                f"bytes; {type(column.type).__name__} is stored as {column.type.backing_type}"
            )

    _resolve_templates(ordered, columns)

    hash_key = hash_keys[0] if hash_keys else None
    range_key = range_keys[0] if range_keys else None

    for index in indexes.values():
        _resolve_index(cls, index, columns, hash_key, range_key, abstract)

    ttl = meta.__dict__.get("ttl")
    ttl_column = None
    if ttl is not None:
        if not isinstance(ttl, dict) or not isinstance(ttl.get("column"), str):
            raise InvalidModelError(f'{name}.Meta.ttl must be {{"column": "<column name>"}}')
        ttl_column = columns.get(ttl["column"])
        if ttl_column is None:
            raise InvalidModelError(f"{name}.Meta.ttl names unknown column {ttl['column']!r}")
        if not isinstance(ttl_column.type, Timestamp | Integer | Number):
            raise InvalidModelError(
                f"{name}.{ttl_column.name}: the TTL column must be number-backed epoch seconds "
                f"(use Timestamp), not {type(ttl_column.type).__name__}"
            )

    for unit in ("read_units", "write_units"):
        value = meta.__dict__.get(unit)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise InvalidModelError(f"{name}.Meta.{unit} must be a positive int, got {value!r}")
    table_name = meta.__dict__.get("table_name", name)
    if not isinstance(table_name, str) or not table_name:
        raise InvalidModelError(f"{name}.Meta.table_name must be a non-empty string")
    schema_version, upgrades, schema_attribute = _schema_options(cls, meta, columns)
    entity, entity_attribute, entity_declared = _entity_options(cls, meta, columns)
    if entity_attribute == schema_attribute:
        raise InvalidModelError(
            f"{name}.Meta: entity_attribute and schema_version_attribute are both "
            f"{entity_attribute!r}; they must differ"
        )

    meta.abstract = abstract
    meta.model = cls
    meta.table_name = table_name
    meta.read_units = meta.__dict__.get("read_units")
    meta.write_units = meta.__dict__.get("write_units")
    meta.stream = meta.__dict__.get("stream", "new_and_old")
    meta.stream_view_type = _stream_view_type(cls, meta.stream)
    meta.ttl = {"column": ttl_column} if ttl_column is not None else None
    meta.columns = ordered
    meta.columns_by_name = dict(columns)
    meta.columns_by_dynamo_name = {c.dynamo_name: c for c in ordered}
    meta.hash_key = hash_key
    meta.range_key = range_key
    meta.keys = [c for c in (hash_key, range_key) if c is not None]
    meta.version = versions[0] if versions else None
    meta.indexes = list(indexes.values())
    meta.gsis = [i for i in meta.indexes if i.kind == "gsi"]
    meta.lsis = [i for i in meta.indexes if i.kind == "lsi"]
    meta.schema_version = schema_version
    meta.upgrades = upgrades
    meta.schema_version_attribute = schema_attribute
    meta.entity = entity
    meta.entity_attribute = entity_attribute
    meta.entity_declared = entity_declared
    cls.Schema = build_schema(cls, ordered)
    if not abstract:
        entities.register(cls)


def _resolve_templates(ordered: list[Column], columns: dict[str, Column]) -> None:
    """Parse each ``Column(template=...)`` and link it with the columns it is made of."""
    for column in ordered:
        column.key_template = None
        column.composes = []
        column.read_back_from = []
    for column in ordered:
        if column.template is not None:
            column.key_template = KeyTemplate(column, column.template, columns)
            for part in column.key_template.parts:
                part.composes.append(column)
                part.read_back_from.append(column)


def _schema_options(
    cls: type, meta: Any, columns: dict[str, Column]
) -> tuple[int, dict[int, Callable[[dict[str, Any]], dict[str, Any]]], str]:
    """``Meta.schema_version``, ``Meta.upgrades`` and ``Meta.schema_version_attribute``,
    checked: a version is an int >= 1, and ``upgrades`` holds exactly one callable for each
    version below it (``upgrades[k]`` turns an item of version k into one of version k + 1),
    so every stored item has a way up to the current version."""
    name = cls.__name__
    version = meta.__dict__.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidModelError(f"{name}.Meta.schema_version must be an int >= 1, got {version!r}")
    upgrades = meta.__dict__.get("upgrades", {})
    if upgrades is None:
        upgrades = {}
    if not isinstance(upgrades, Mapping):
        raise InvalidModelError(
            f"{name}.Meta.upgrades must be a dict from a version k to a function turning an "
            f"item of version k into one of version k + 1, got {type(upgrades).__name__}"
        )
    expected = list(range(1, version))
    keys = list(upgrades)
    if set(keys) != set(expected) or any(isinstance(k, bool) for k in keys):
        missing = [k for k in expected if k not in upgrades]
        extra = [k for k in keys if k not in expected or isinstance(k, bool)]
        raise InvalidModelError(
            f"{name}.Meta.upgrades must have exactly the keys {expected} for "
            f"Meta.schema_version = {version} (one upgrade from each older version to the "
            f"next); missing {missing}, unexpected {extra}"
        )
    for k in expected:
        if not callable(upgrades[k]):
            raise InvalidModelError(
                f"{name}.Meta.upgrades[{k}] must be a function item -> item, got {upgrades[k]!r}"
            )
    attribute = _reserved_attribute(
        cls,
        meta,
        columns,
        "schema_version_attribute",
        DEFAULT_SCHEMA_VERSION_ATTRIBUTE,
        "schema version",
    )
    return version, {k: upgrades[k] for k in expected}, attribute


def _entity_options(cls: type, meta: Any, columns: dict[str, Column]) -> tuple[str, str, bool]:
    """``Meta.entity`` and ``Meta.entity_attribute`` (see :mod:`streamodel.entities`),
    checked; and whether the entity was declared (rather than defaulted to the class name)."""
    name = cls.__name__
    declared = "entity" in meta.__dict__
    entity = meta.__dict__.get("entity", name)
    if not isinstance(entity, str) or not entity:
        raise InvalidModelError(f"{name}.Meta.entity must be a non-empty string, got {entity!r}")
    attribute = _reserved_attribute(
        cls, meta, columns, "entity_attribute", entities.DEFAULT_ENTITY_ATTRIBUTE, "entity name"
    )
    return entity, attribute, declared


def _reserved_attribute(
    cls: type, meta: Any, columns: dict[str, Column], option: str, default: str, holds: str
) -> str:
    """The attribute ``Meta.<option>`` names (``default`` when not set), which streamodel
    writes into every item and so no column may be stored as."""
    name = cls.__name__
    attribute = meta.__dict__.get(option, default)
    if not isinstance(attribute, str) or not attribute:
        raise InvalidModelError(
            f"{name}.Meta.{option} must be a non-empty string, got {attribute!r}"
        )
    for column in columns.values():
        if column.dynamo_name == attribute:
            raise InvalidModelError(
                f"{name}.Meta.{option}: column {column.name!r} is stored as {attribute!r}, "
                f"the attribute that holds each item's {holds}; rename the column "
                f"(Column(..., name=...)) or set Meta.{option}"
            )
    return attribute


def _resolve_index(
    cls: type,
    index: Index,
    columns: dict[str, Column],
    hash_key: Column | None,
    range_key: Column | None,
    abstract: bool,
) -> None:
    where = f"{cls.__name__}.{index.name}"

    def column(name: str | None, role: str) -> Column | None:
        if name is None:
            return None
        found = columns.get(name)
        if found is None:
            raise InvalidModelError(f"{where}: {role} {name!r} is not a column of {cls.__name__}")
        if not found.type.key_able:
            raise InvalidModelError(
                f"{where}: {role} {name!r} must be stored as a string, number or bytes"
            )
        return found

    if isinstance(index, LocalSecondaryIndex):
        if range_key is None and not abstract:
            raise InvalidModelError(
                f"{where}: a LocalSecondaryIndex needs the table to have a range_key"
            )
        index.hash_key = hash_key
    else:
        index.hash_key = column(index.hash_key_name, "hash_key")
    index.range_key = column(index.range_key_name, "range_key")
    index.included = []
    if not isinstance(index.projection, str):
        for name in index.projection:
            included = columns.get(name)
            if included is None:
                raise InvalidModelError(f"{where}: projection names unknown column {name!r}")
            index.included.append(included)
