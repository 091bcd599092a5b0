"""Columns and secondary indexes, as declared on model classes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from streamodel import signals
from streamodel.conditions import Path
from streamodel.exceptions import InvalidModelError
from streamodel.types import DynamoType, resolve_type

if TYPE_CHECKING:
    from streamodel.models import BaseModel

__all__ = ["Column", "GlobalSecondaryIndex", "Index", "LocalSecondaryIndex"]

Projection = Literal["all", "keys"] | Sequence[str]
# Column has a ``type`` property, which hides the builtin inside its class body.
ModelClass = type["BaseModel"]


class Column(Path):
    """One attribute of a model: ``Column(String, hash_key=True, name="pk")``.

    ``type`` is a streamodel type or any marshmallow field (class or instance); ``name`` is
    the attribute name in DynamoDB when it differs from the Python name; ``default`` is a
    value or a zero-argument callable, applied once to each new object.

    On a class, a column builds conditions (``Model.col == 3``); on an object, it reads and
    writes that object's value (``None`` when never set).
    """

    def __init__(
        self,
        type: Any,
        hash_key: bool = False,
        range_key: bool = False,
        version: bool = False,
        default: Any = None,
        name: str | None = None,
    ) -> None:
        super().__init__(self)
        try:
            self._type: DynamoType[Any] = resolve_type(type)
        except TypeError as error:
            raise InvalidModelError(str(error)) from None
        if hash_key and range_key:
            raise InvalidModelError("a column cannot be both hash_key and range_key")
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidModelError(f"Column name must be a non-empty string, got {name!r}")
        self.hash_key = hash_key
        self.range_key = range_key
        self.version = version
        self.default = default
        self._dynamo_name = name
        self.name: str = ""
        self.model: ModelClass | None = None

    @property
    def type(self) -> DynamoType[Any]:
        """The column's type (a marshmallow field that also knows the wire format)."""
        return self._type

    # -- declaration ------------------------------------------------------------------
    def __set_name__(self, owner: object, name: str) -> None:
        self.name = name

    @property
    def dynamo_name(self) -> str:
        """The attribute's name in DynamoDB."""
        return self._dynamo_name or self.name

    @property
    def model_name(self) -> str:
        return self.model.__name__ if self.model is not None else "?"

    def copy_for(self, model: ModelClass) -> Column:
        """The same column declared again on ``model`` (for inherited columns and mixins)."""
        column = Column(
            self.type,
            hash_key=self.hash_key,
            range_key=self.range_key,
            version=self.version,
            default=self.default,
            name=self._dynamo_name,
        )
        column.name = self.name
        column.model = model
        return column

    def default_value(self) -> Any:
        default = self.default
        return default() if callable(default) else default

    def __repr__(self) -> str:
        flags = [f for f in ("hash_key", "range_key", "version") if getattr(self, f)]
        extra = "".join(f", {f}=True" for f in flags)
        return f"<Column {self.model_name}.{self.name} {type(self.type).__name__}{extra}>"

    # -- descriptor -------------------------------------------------------------------
    def __get__(self, obj: Any, owner: object = None) -> Any:
        if obj is None:
            return self
        return obj._sm_values.get(self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        obj._sm_values[self.name] = value
        obj._sm_touched.add(self.name)
        signals.object_modified.send(type(obj), obj=obj, column=self, value=value)

    def __delete__(self, obj: Any) -> None:
        self.__set__(obj, None)

    __hash__ = object.__hash__


class Index:
    """A secondary index; its keys are column names resolved when the model is created."""

    kind = ""

    def __init__(self, *, projection: Projection = "all", name: str | None = None) -> None:
        if isinstance(projection, str):
            if projection not in ("all", "keys"):
                raise InvalidModelError(
                    f"index projection must be 'all', 'keys' or a list of column names, "
                    f"got {projection!r}"
                )
        elif not all(isinstance(p, str) for p in projection):
            raise InvalidModelError("index projection list must hold column names (str)")
        self.projection: Projection = (
            projection if isinstance(projection, str) else list(projection)
        )
        self._dynamo_name = name
        self.name = ""
        self.model: type[BaseModel] | None = None
        self.hash_key: Column | None = None
        self.range_key: Column | None = None
        self.hash_key_name: str | None = None
        self.range_key_name: str | None = None
        self.included: list[Column] = []

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @property
    def dynamo_name(self) -> str:
        return self._dynamo_name or self.name

    def copy_for(self, model: type[BaseModel]) -> Index:
        raise NotImplementedError

    @property
    def projected_columns(self) -> list[Column]:
        """The columns a query on this index returns."""
        assert self.model is not None
        meta: Any = self.model.Meta
        if self.projection == "all":
            return list(meta.columns)
        keys = {c.name: c for c in [*meta.keys, self.hash_key, self.range_key] if c is not None}
        return [*keys.values(), *(c for c in self.included if c.name not in keys)]

    def __repr__(self) -> str:
        model = self.model.__name__ if self.model else "?"
        return f"<{type(self).__name__} {model}.{self.name}>"


class GlobalSecondaryIndex(Index):
    """``GlobalSecondaryIndex(hash_key="email", range_key=None, projection="all")``."""

    kind = "gsi"

    def __init__(
        self,
        hash_key: str,
        range_key: str | None = None,
        projection: Projection = "all",
        read_units: int | None = None,
        write_units: int | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(projection=projection, name=name)
        if not isinstance(hash_key, str):
            raise InvalidModelError("GlobalSecondaryIndex(hash_key=...) takes a column name")
        self.hash_key_name = hash_key
        self.range_key_name = range_key
        self.read_units = read_units
        self.write_units = write_units

    def copy_for(self, model: type[BaseModel]) -> Index:
        index = GlobalSecondaryIndex(
            self.hash_key_name or "",
            self.range_key_name,
            self.projection,
            self.read_units,
            self.write_units,
            self._dynamo_name,
        )
        index.name = self.name
        return index


class LocalSecondaryIndex(Index):
    """``LocalSecondaryIndex(range_key="created")``: another sort order, same hash key."""

    kind = "lsi"

    def __init__(
        self, range_key: str, projection: Projection = "all", name: str | None = None
    ) -> None:
        super().__init__(projection=projection, name=name)
        if not isinstance(range_key, str):
            raise InvalidModelError("LocalSecondaryIndex(range_key=...) takes a column name")
        self.range_key_name = range_key

    def copy_for(self, model: type[BaseModel]) -> Index:
        index = LocalSecondaryIndex(self.range_key_name or "", self.projection, self._dynamo_name)
        index.name = self.name
        return index
