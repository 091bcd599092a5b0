"""Columns and secondary indexes, as declared on model classes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from streamodel import signals
from streamodel.conditions import Path
from streamodel.exceptions import InvalidConditionError, InvalidModelError
from streamodel.types import DynamoType, resolve_type

if TYPE_CHECKING:
    from streamodel.models import BaseModel
    from streamodel.templates import KeyTemplate

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

    ``template="ORDER#{customer}#{id}"`` makes a string column (usually a key) composed from
    other columns (see :mod:`streamodel.templates`): setting its parts sets it, and a part
    that was not read is read back from it; ``Model.col.compose(**parts)`` gives the value
    (or, with parts missing at the end, the prefix) for key conditions.
    """

    def __init__(
        self,
        type: Any,
        hash_key: bool = False,
        range_key: bool = False,
        version: bool = False,
        default: Any = None,
        name: str | None = None,
        template: str | None = None,
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
        if template is not None and (not isinstance(template, str) or not template):
            raise InvalidModelError(f"Column template must be a non-empty string, got {template!r}")
        self.template = template
        # Set when the model is declared (streamodel.templates): this column's parsed
        # template, the templated columns built from this one, and those it can be read
        # back from.
        self.key_template: KeyTemplate | None = None
        self.composes: list[Column] = []
        self.read_back_from: list[Column] = []

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
            template=self.template,
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
        value = obj._sm_values.get(self.name)
        if value is None and self.read_back_from:
            for column in self.read_back_from:  # a part that was not read: from its key
                assert column.key_template is not None
                parts = column.key_template.parse(obj._sm_values.get(column.name))
                if parts is not None:
                    return parts[self.name]
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj._sm_values[self.name] = value
        obj._sm_touched.add(self.name)
        signals.object_modified.send(type(obj), obj=obj, column=self, value=value)
        for column in self.composes:
            # The other parts as the object knows them (read back from the key when they
            # were not read); a part set to None clears the column (a sparse index entry).
            template = column.key_template
            assert template is not None
            parts = {p.name: value if p is self else p.__get__(obj) for p in template.parts}
            composed = template.compose(parts)
            if composed != obj._sm_values.get(column.name):
                column.__set__(obj, composed)

    def compose(self, **parts: Any) -> str:
        """This templated column's value from ``parts`` (column name -> value); with the
        last parts left out, the text up to the first missing one, for ``begins_with``:
        ``Order.sk.begins_with(Order.sk.compose())``."""
        template = self.key_template
        if template is None:
            raise InvalidConditionError(f"{self.model_name}.{self.name} has no template")
        unknown = sorted(set(parts) - {p.name for p in template.parts})
        if unknown:
            raise InvalidConditionError(
                f"{self.model_name}.{self.name}.compose(): {unknown} not in its template "
                f"{template.text!r}"
            )
        names = [p.name for p in template.parts]
        given = [n in parts and parts[n] is not None for n in names]
        if any(given[i + 1] and not given[i] for i in range(len(given) - 1)):
            got = [n for n, g in zip(names, given, strict=True) if g]
            raise InvalidConditionError(
                f"{self.model_name}.{self.name}.compose(): give the parts of {template.text!r} "
                f"in order, from the first; got {got}"
            )
        text = template.compose(parts, prefix=True)
        assert text is not None
        return text

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
