"""Several models in one table: entities, the attribute that names them, and collections.

Models that share ``Meta.table_name`` are the *entities* of one table (single-table design).
Each has a name (``Meta.entity``, default the class name), and every item streamodel writes
for an entity of a shared table carries that name in ``Meta.entity_attribute`` (default
``"_entity"``), the way ``Meta.schema_version_attribute`` carries the item's version. Reads
use it both ways: a query or scan of one model asks DynamoDB for that entity's items only
(a filter on the attribute), and whatever reads items of several entities at once (a
:class:`Collection` query, a table's change stream, a snapshot scan) turns each item into
the model its attribute names: never into another one.

A table is *shared* when two or more entities of it are declared under one base (the
nearest ``new_base()``, or ``BaseModel`` itself), or when a model declares ``Meta.entity``
itself. The second rule is for processes that import only some entities of a table: a
model that declares its entity behaves the same whatever else is imported. A model alone in
its table, without ``Meta.entity``, writes and reads exactly as before entities existed.

This module is pure: it decides, from declarations and items, and sends nothing.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from streamodel.exceptions import InvalidModelError

if TYPE_CHECKING:
    from streamodel.models import BaseModel

__all__ = [
    "DEFAULT_ENTITY_ATTRIBUTE",
    "Collection",
    "entities_of",
    "is_entity_item",
    "register",
    "shared",
    "table_shape",
]

logger = logging.getLogger("streamodel.entities")

DEFAULT_ENTITY_ATTRIBUTE = "_entity"
"""Where an item's entity name is stored unless ``Meta.entity_attribute`` says otherwise."""

# Per base: table name -> entity name -> the model (weakly: models declared in a test's body
# go away with it, as they do from ``__subclasses__``).
Scope = dict[str, dict[str, "weakref.ref[type[BaseModel]]"]]
SCOPE_ATTRIBUTE = "_sm_entities"


def _scope(model: type[BaseModel]) -> Scope:
    for klass in model.__mro__:
        found = klass.__dict__.get(SCOPE_ATTRIBUTE)
        if found is not None:
            return found  # type: ignore[no-any-return]
    raise AssertionError(f"{model.__name__} has no entity scope")  # BaseModel has one


def register(model: type[BaseModel]) -> None:
    """Record a concrete model as an entity of its table (called when it is declared).

    A model declared again under the same entity name replaces the old one (a module
    reloaded, a test's model defined anew). When the table gains an entity, the compiled
    functions of its other entities are dropped: whether they write the entity attribute
    may have changed.
    """
    meta: Any = model.Meta
    table = _scope(model).setdefault(meta.table_name, {})
    before = set(_living(table))
    table[meta.entity] = weakref.ref(model)
    if meta.entity not in before:
        for other in _living(table).values():
            if "_sm_compiled" in other.__dict__:
                del other._sm_compiled  # type: ignore[attr-defined]


def _living(table: dict[str, weakref.ref[type[BaseModel]]]) -> dict[str, type[BaseModel]]:
    out = {}
    for name, ref in list(table.items()):
        model = ref()
        if model is None:
            del table[name]
        else:
            out[name] = model
    return out


def entities_of(model: type[BaseModel]) -> dict[str, type[BaseModel]]:
    """The entities of ``model``'s table declared under its base, by entity name."""
    meta: Any = model.Meta
    return _living(_scope(model).get(meta.table_name, {}))


def shared(model: type[BaseModel]) -> bool:
    """Whether ``model``'s items carry (and its reads filter on) the entity attribute."""
    meta: Any = model.Meta
    return bool(meta.entity_declared) or len(entities_of(model)) > 1


def is_entity_item(model: type[BaseModel], item: Mapping[str, Any]) -> bool:
    """Whether a stored item read by key is ``model``'s: in a shared table, only an item
    naming ``model``'s entity is (another entity may hold the same key)."""
    from streamodel._compiled import compiled

    wire = compiled(model).entity_wire
    return wire is None or item.get(model.Meta.entity_attribute) == wire  # type: ignore[attr-defined]


class Collection:
    """Entities of one table read together: ``engine.query(Collection(Account, Order))``.

    A query of a collection is one Query whose items come back in key order, each as an
    object of the entity its item names; the same for ``engine.stream(Collection(...))``.
    An item naming no member entity is skipped (see :meth:`route`).
    """

    def __init__(self, *models: type[BaseModel]) -> None:
        from streamodel.models import BaseModel

        if not models:
            raise InvalidModelError("Collection() needs at least one model")
        for model in models:
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise InvalidModelError(f"Collection() takes model classes, got {model!r}")
            if model.Meta.abstract:
                raise InvalidModelError(f"Collection(): {model.__name__} is abstract")
        metas: list[Any] = [m.Meta for m in models]
        tables = sorted({meta.table_name for meta in metas})
        if len(tables) > 1:
            raise InvalidModelError(
                "Collection() takes entities of one table; got tables "
                + ", ".join(
                    f"{m.__name__}: {meta.table_name!r}"
                    for m, meta in zip(models, metas, strict=True)
                )
            )
        _check_keys_agree(list(models))
        by_entity: dict[str, type[BaseModel]] = {}
        for model, meta in zip(models, metas, strict=True):
            other = by_entity.setdefault(meta.entity, model)
            if other is not model:
                raise InvalidModelError(
                    f"Collection(): {other.__name__} and {model.__name__} are both entity "
                    f"{meta.entity!r}; set Meta.entity on one of them"
                )
        self.models: tuple[type[BaseModel], ...] = tuple(dict.fromkeys(models))
        self.table_name: str = tables[0]
        self.attribute: str = metas[0].entity_attribute
        self.by_entity = by_entity
        # Several models read together can only tell their items apart by the attribute.
        self.shared = len(self.models) > 1 or shared(self.models[0])
        if self.shared:
            views = {m.Meta.stream_view_type for m in self.models}  # type: ignore[attr-defined]
            _check_routable_view(self.table_name, views - {None})
        self._warned: set[str | None] = set()

    @classmethod
    def of(cls, source: type[BaseModel] | Collection) -> Collection:
        """``source`` as a collection (a model is a collection of one)."""
        return source if isinstance(source, Collection) else cls(source)

    @property
    def label(self) -> str:
        """The member models' names (one model: its name), for logs, leases and metrics."""
        return "+".join(m.__name__ for m in self.models)

    def __iter__(self) -> Iterator[type[BaseModel]]:
        return iter(self.models)

    def __repr__(self) -> str:
        return f"Collection({', '.join(m.__name__ for m in self.models)})"

    def entity_of(self, item: Mapping[str, Any] | None) -> str | None:
        """The entity name ``item`` (a wire item) carries, or ``None``."""
        wire = item.get(self.attribute) if item is not None else None
        name = wire.get("S") if isinstance(wire, Mapping) else None
        return name if isinstance(name, str) else None

    def route(self, item: Mapping[str, Any] | None) -> type[BaseModel] | None:
        """The member model ``item`` belongs to, or ``None`` when it belongs to none.

        The only model of a table nobody shares takes every item (its items need no entity
        attribute); otherwise the item's entity attribute decides.
        """
        if not self.shared:
            return self.models[0]
        return self.by_entity.get(self.entity_of(item))  # type: ignore[arg-type]

    def unknown(self, item: Mapping[str, Any] | None, where: str) -> bool:
        """Whether a skipped ``item`` names no entity of the table at all (no attribute, or
        a name no model declares), logged once per name; items of the table's other known
        entities are not unknown, just not this collection's."""
        name = self.entity_of(item)
        known = set()
        for model in self.models:
            known |= set(entities_of(model))
        if name is not None and name in known:
            return False
        if name not in self._warned:
            self._warned.add(name)
            logger.warning(
                "streamodel: %s: skipped an item of %s in table %r (entities: %s); it is "
                "counted, not read into any model",
                where,
                f"unknown entity {name!r}" if name is not None else "no entity",
                self.table_name,
                ", ".join(sorted(known)),
            )
        return True


def _keys(model: type[BaseModel]) -> list[tuple[str, str, str]]:
    """``(role, attribute, type)`` of a model's table keys."""
    meta: Any = model.Meta
    return [
        (role, c.dynamo_name, c.type.backing_type)
        for role, c in (("hash", meta.hash_key), ("range", meta.range_key))
        if c is not None
    ]


def _check_keys_agree(models: list[type[BaseModel]]) -> None:
    """Models of one table must name and type its keys alike."""
    first = models[0]
    for model in models[1:]:
        if _keys(model) != _keys(first):
            raise InvalidModelError(
                f"{first.__name__} and {model.__name__} share table "
                f"{first.Meta.table_name!r} but not its keys: "  # type: ignore[attr-defined]
                f"{_keys(first)} vs {_keys(model)} (role, attribute, type)"
            )
        a: Any = first.Meta
        b: Any = model.Meta
        if a.entity_attribute != b.entity_attribute:
            raise InvalidModelError(
                f"{first.__name__} and {model.__name__} share table {a.table_name!r} but "
                f"store the entity in different attributes ({a.entity_attribute!r}, "
                f"{b.entity_attribute!r})"
            )


def table_shape(model: type[BaseModel]) -> Any:
    """What ``model``'s table must be: its ``Meta`` for a table of its own; for a shared
    table, the union of its entities (the indexes of all of them, same-named indexes
    checked to agree: GSI overloading), in the shape :mod:`streamodel.tables` reads.

    An entity whose keys differ from ``model``'s is left out: the table itself tells which
    of them is wrong (binding it raises ``TableMismatchError`` naming the key)."""
    meta: Any = model.Meta
    if not shared(model):
        return meta
    others = entities_of(model).values()
    models = list(dict.fromkeys([model, *(m for m in others if _keys(m) == _keys(model))]))
    indexes: dict[str, Any] = {}
    owners: dict[str, type[BaseModel]] = {}
    views = {m: m.Meta.stream_view_type for m in models}  # type: ignore[attr-defined]
    ttls: dict[str, type[BaseModel]] = {}
    for m in models:
        m_meta: Any = m.Meta
        for index in m_meta.indexes:
            other = indexes.setdefault(index.dynamo_name, index)
            if other is not index and _index_spec(other) != _index_spec(index):
                raise InvalidModelError(
                    f"{owners[index.dynamo_name].__name__} and {m.__name__} declare index "
                    f"{index.dynamo_name!r} of table {meta.table_name!r} differently: "
                    f"{_index_spec(other)} vs {_index_spec(index)}"
                )
            owners.setdefault(index.dynamo_name, m)
        if m_meta.ttl is not None:
            ttls.setdefault(m_meta.ttl["column"].dynamo_name, m)
    wanted_views = {v for v in views.values() if v is not None}
    _check_routable_view(meta.table_name, wanted_views)
    if len(wanted_views) > 1 or len(ttls) > 1:
        what = (
            f"stream view types {sorted(wanted_views)}"
            if len(wanted_views) > 1
            else f"TTL attributes {sorted(ttls)}"
        )
        raise InvalidModelError(
            f"the entities of table {meta.table_name!r} ("
            + ", ".join(m.__name__ for m in models)
            + f") ask for different {what}; they must agree"
        )
    ttl_owner = next(iter(ttls.values()), None)
    units = [(m.Meta.read_units, m.Meta.write_units) for m in models]  # type: ignore[attr-defined]
    all_indexes = list(indexes.values())
    return SimpleNamespace(
        model=model,
        describe=f"entities {', '.join(m.__name__ for m in models)}",
        keys=meta.keys,
        hash_key=meta.hash_key,
        range_key=meta.range_key,
        indexes=all_indexes,
        gsis=[i for i in all_indexes if i.kind == "gsi"],
        lsis=[i for i in all_indexes if i.kind == "lsi"],
        read_units=max((r for r, _ in units if r is not None), default=None),
        write_units=max((w for _, w in units if w is not None), default=None),
        stream_view_type=next(iter(wanted_views), None),
        ttl=ttl_owner.Meta.ttl if ttl_owner is not None else None,  # type: ignore[attr-defined]
        entity_projection=meta.entity_attribute,
    )


def _check_routable_view(table: str, views: set[str]) -> None:
    """A shared table's records are routed by their item's entity attribute: every record
    must carry an image, the old one for removes and the new one for inserts."""
    if views - {"NEW_AND_OLD_IMAGES"}:
        raise InvalidModelError(
            f"table {table!r} holds several entities, so its stream must carry both images "
            f"(Meta.stream = 'new_and_old'): a record is routed by the entity its item names, "
            f"and a {sorted(views)[0]} record of a remove or an insert names none"
        )


def _index_spec(index: Any) -> tuple[Any, ...]:
    """What two same-named indexes must agree on: kind, key attributes and types,
    projection (by attribute names)."""

    def key(column: Any) -> tuple[str, str] | None:
        return None if column is None else (column.dynamo_name, column.type.backing_type)

    projection = (
        index.projection
        if isinstance(index.projection, str)
        else tuple(sorted(c.dynamo_name for c in index.included))
    )
    return (index.kind, key(index.hash_key), key(index.range_key), projection)
