"""Queries and scans: immutable builders whose iteration pages lazily through DynamoDB."""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from streamodel import requests, signals
from streamodel._compiled import compiled
from streamodel._diff import fill, load_new, meta_of
from streamodel.columns import Column, Index
from streamodel.conditions import (
    And,
    BeginsWith,
    Between,
    Comparison,
    Condition,
    Path,
    Value,
    all_of,
)
from streamodel.entities import Collection
from streamodel.exceptions import InvalidConditionError, InvalidPositionError, StreamodelError
from streamodel.models import BaseModel, new_instance
from streamodel.types import Wire

if TYPE_CHECKING:
    from streamodel.engine import Engine

__all__ = ["Results", "Search", "Token", "decode_token", "encode_token", "next_page"]

Token = dict[str, Any]
TOKEN_VERSION = 1

Projection = Literal["all", "keys", "count"] | Sequence[str | Column]
_RANGE_OPERATORS = frozenset({"=", "<", "<=", ">", ">="})


class Search:
    """``engine.query(...)`` / ``engine.scan(...)``; each builder method returns a new search.

    Iterating yields model objects, fetching pages only as they are needed. Options:
    ``key``, ``filter``, ``projection`` (``"all"``, ``"keys"``, or column names),
    ``consistent``, ``forward``, ``limit`` (items in all), ``page_size`` (items per call),
    and for scans ``segment``/``total_segments``.

    In a table shared by several entities (see :mod:`streamodel.entities`) a search of a
    model reads only its entity's items; a search of a :class:`~streamodel.Collection`
    reads the items of all its entities, each as an object of its own model, and skips (and
    counts in ``results.skipped``) items of entities it does not hold.
    """

    def __init__(
        self,
        engine: Engine,
        model_or_index: type[BaseModel] | Index | Collection,
        mode: Literal["query", "scan"],
        *,
        key: Condition | None = None,
        filter: Condition | None = None,
        projection: Projection = "all",
        consistent: bool = False,
        forward: bool = True,
        limit: int | None = None,
        page_size: int | None = None,
        segment: int | None = None,
        total_segments: int | None = None,
        start: Token | None = None,
        parallel: int | None = None,
    ) -> None:
        self.collection: Collection | None = None
        self.model: type[BaseModel]
        self.index: Index | None
        if isinstance(model_or_index, Collection):
            self.collection = model_or_index
            self.model, self.index = model_or_index.models[0], None
        elif isinstance(model_or_index, Index):
            if model_or_index.model is None:
                raise InvalidConditionError(f"{model_or_index!r} is not declared on a model")
            self.model = model_or_index.model
            self.index = model_or_index
        elif isinstance(model_or_index, type) and issubclass(model_or_index, BaseModel):
            self.model, self.index = model_or_index, None
        else:
            raise TypeError(
                f"{mode}() takes a model class, an index or a Collection, got {model_or_index!r}"
            )
        self.engine = engine
        self.mode = mode
        self._key: Condition | None = None
        self._filter: Condition | None = None
        self._projection: Projection = "all"
        self._consistent = False
        self._forward = forward
        self._limit: int | None = None
        self._page_size: int | None = None
        self._segments: tuple[int, int] | None = None
        self._start: dict[str, Wire] | None = None
        self._parallel: int | None = None
        if key is not None:
            self._set_key(key)
        if filter is not None:
            self._set_filter(filter)
        self._set_projection(projection)
        self._set_consistent(consistent)
        self._set_limits(limit, page_size)
        if segment is not None or total_segments is not None:
            self._set_segments(segment, total_segments)
        if start is not None:
            self._set_start(start)
        if parallel is not None:
            self._set_parallel(parallel)

    # -- builder ----------------------------------------------------------------------
    def _copy(self) -> Search:
        return copy.copy(self)

    def key(self, condition: Condition) -> Search:
        """The key condition: ``hash == value``, optionally ``& range <op> value``."""
        new = self._copy()
        new._set_key(condition)
        return new

    def filter(self, condition: Condition) -> Search:
        """A filter applied by DynamoDB after reading (read capacity is still spent)."""
        new = self._copy()
        new._set_filter(condition)
        return new

    def project(self, projection: Projection) -> Search:
        new = self._copy()
        new._set_projection(projection)
        return new

    def consistent(self, consistent: bool = True) -> Search:
        new = self._copy()
        new._set_consistent(consistent)
        return new

    def forward(self, forward: bool = True) -> Search:
        new = self._copy()
        new._forward = forward
        return new

    def limit(self, limit: int | None) -> Search:
        new = self._copy()
        new._set_limits(limit, self._page_size)
        return new

    def page_size(self, page_size: int | None) -> Search:
        new = self._copy()
        new._set_limits(self._limit, page_size)
        return new

    def segment(self, segment: int, total_segments: int) -> Search:
        new = self._copy()
        new._set_segments(segment, total_segments)
        return new

    def move_to(self, token: Token | None) -> Search:
        """The same search, resuming after ``token`` (from ``.token`` of its results);
        ``None`` starts from the beginning."""
        new = self._copy()
        new._set_start(token)
        return new

    def _set_start(self, token: Token | None) -> None:
        position = None if token is None else decode_token(token)
        if position is not None:
            expected = sorted(c.dynamo_name for c in self._key_columns())
            if sorted(position) != expected:
                raise InvalidPositionError(
                    f"{self._where()}: the token names keys {sorted(position)}, this search "
                    f"needs {expected}; was it taken from another search?"
                )
        self._start = position

    def parallel(self, workers: int) -> Search:
        """A scan split into ``workers`` segments read at once on a thread pool.

        Items arrive as pages come in (so in no particular order); at most two pages per
        worker wait in memory. ``.count()`` counts the segments in parallel too.
        """
        new = self._copy()
        new._set_parallel(workers)
        return new

    # -- validation -------------------------------------------------------------------
    @property
    def _hash_key(self) -> Column:
        column = self.index.hash_key if self.index is not None else meta_of(self.model).hash_key
        assert column is not None, "every concrete model and index has a hash key"
        return column

    @property
    def _range_key(self) -> Column | None:
        return self.index.range_key if self.index is not None else meta_of(self.model).range_key

    def _where(self) -> str:
        if self.collection is not None:
            return repr(self.collection)
        return f"{self.model.__name__}.{self.index.name}" if self.index else self.model.__name__

    def _is_key(self, column: Column | None, key: Column | None) -> bool:
        """Whether ``column`` is the key ``key``: for a collection, any member's column
        stored under the key's name (``Collection(A, B)`` takes ``A.pk`` or ``B.pk``)."""
        if column is None or key is None:
            return False
        if column is key:
            return True
        return (
            self.collection is not None
            and column.model in self.collection.models
            and column.dynamo_name == key.dynamo_name
        )

    def _set_key(self, condition: Condition) -> None:
        if self.mode != "query":
            raise InvalidConditionError("scan() has no key condition; use filter()")
        if not isinstance(condition, Condition):
            raise InvalidConditionError(f"key() takes a condition, got {condition!r}")
        parts = condition.conditions if isinstance(condition, And) else [condition]
        hash_key, range_key = self._hash_key, self._range_key
        has_hash = False
        ranges = 0
        for part in parts:
            column = _key_column(part)
            if self._is_key(column, hash_key) and isinstance(part, Comparison) and part.op == "=":
                if has_hash:
                    raise InvalidConditionError(f"{self._where()}: hash key given twice")
                has_hash = True
            elif self._is_key(column, range_key) and _range_condition(part):
                ranges += 1
            elif self._is_key(column, hash_key):
                raise InvalidConditionError(
                    f"{self._where()}: the hash key {self._hash_key.name!r} only takes == in a key "
                    "condition"
                )
            else:
                allowed = [hash_key.name] + ([range_key.name] if range_key is not None else [])
                raise InvalidConditionError(
                    f"{self._where()}: a key condition may only use the key columns {allowed} "
                    "(hash == value, range with = < <= > >= between begins_with); "
                    "put other conditions in filter()"
                )
        if not has_hash:
            raise InvalidConditionError(
                f"{self._where()}: a key condition needs {hash_key.name} == value"
            )
        if ranges > 1:
            raise InvalidConditionError(f"{self._where()}: at most one range key condition")
        self._key = condition

    def _set_filter(self, condition: Condition) -> None:
        if not isinstance(condition, Condition):
            raise InvalidConditionError(f"filter() takes a condition, got {condition!r}")
        if self.mode == "query":
            keys = {c.name for c in (self._hash_key, self._range_key) if c is not None}
            used = sorted({p.column.name for p in condition.paths()} & keys)
            if used:
                raise InvalidConditionError(
                    f"{self._where()}: filter() on key column(s) {used}; use key() for keys"
                )
        self._filter = condition

    def _set_projection(self, projection: Projection) -> None:
        meta = meta_of(self.model)
        if self.collection is not None and projection not in ("all", "count"):
            raise InvalidConditionError(
                f"{self._where()}: a collection reads whole items ('all') or counts them "
                f"('count'); got projection {projection!r}"
            )
        if isinstance(projection, str):
            if projection not in ("all", "keys", "count"):
                raise InvalidConditionError(
                    f"projection must be 'all', 'keys', 'count' or column names, got {projection!r}"
                )
            self._projection = projection
            return
        columns = []
        for item in projection:
            column = meta.columns_by_name.get(item) if isinstance(item, str) else item
            if not isinstance(column, Column) or column.model is not self.model:
                raise InvalidConditionError(
                    f"{self._where()}: projection names unknown column {item!r}"
                )
            columns.append(column)
        if self.index is not None and self.index.kind == "gsi":
            available = {c.name for c in self.index.projected_columns}
            outside = [c.name for c in columns if c.name not in available]
            if outside:
                raise InvalidConditionError(
                    f"{self._where()}: columns {outside} are not projected into the index"
                )
        self._projection = [c.name for c in columns]

    def _set_consistent(self, consistent: bool) -> None:
        if consistent and self.index is not None and self.index.kind == "gsi":
            raise InvalidConditionError(
                f"{self._where()}: global secondary indexes do not support consistent reads"
            )
        self._consistent = consistent

    def _set_limits(self, limit: int | None, page_size: int | None) -> None:
        for name, value in (("limit", limit), ("page_size", page_size)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive int or None, got {value!r}")
        self._limit, self._page_size = limit, page_size

    def _set_parallel(self, workers: int) -> None:
        if self.mode != "scan":
            raise InvalidConditionError("parallel() applies to scans only")
        if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 1000:
            raise ValueError(f"parallel() takes 1 to 1000 workers, got {workers!r}")
        if self._segments is not None:
            raise InvalidConditionError("parallel() and segment() cannot be combined")
        self._parallel = workers

    def _set_segments(self, segment: int | None, total: int | None) -> None:
        if self.mode != "scan":
            raise InvalidConditionError("segments apply to scans only")
        if segment is None or total is None or not (0 <= segment < total <= 1_000_000):
            raise ValueError(
                f"need 0 <= segment < total_segments <= 1000000, got {segment}, {total}"
            )
        self._segments = (segment, total)

    # -- requests ---------------------------------------------------------------------
    def _key_columns(self) -> list[Column]:
        """Table and index keys: what identifies an item and a position in the results."""
        meta = meta_of(self.model)
        keys = [*meta.keys]
        if self.index is not None:
            keys += [c for c in (self.index.hash_key, self.index.range_key) if c]
        return list({c.name: c for c in keys}.values())

    def _columns(self) -> list[Column]:
        meta = meta_of(self.model)
        if self._projection == "keys":
            return self._key_columns()
        if self._projection in ("all", "count"):
            return self.index.projected_columns if self.index is not None else list(meta.columns)
        # Keys come along, so that the objects can be saved and the results resumed.
        columns = self._key_columns()
        names = {c.name for c in columns}
        return columns + [meta.columns_by_name[n] for n in self._projection if n not in names]

    def request(self, *, count: bool = False) -> dict[str, Any]:
        """The Query or Scan parameters for the first page."""
        if self.mode == "query" and self._key is None:
            raise InvalidConditionError(f"{self._where()}: query() needs key(...)")
        projection = None
        if not (count or self._projection in ("all", "count")):
            projection = [c.dynamo_name for c in self._columns()]
        return requests.search(
            self.engine.table_name(self.model),
            index=self.index.dynamo_name if self.index is not None else None,
            key=self._key,
            filter=all_of(self._filter, self._entity_filter()),
            count=count or self._projection == "count",
            projection=projection,
            consistent=self._consistent,
            forward=self._forward or self.mode != "query",
            page_size=self._page_size,
            segments=self._segments,
            start=self._start,
        )

    def _entity_filter(self) -> Condition | None:
        """In a shared table: only the items of this search's entities."""
        if self.collection is None:
            column = compiled(self.model).entity_column
            return None if column is None else column == meta_of(self.model).entity
        if not self.collection.shared:
            return None
        column = next(c for m in self.collection.models if (c := compiled(m).entity_column))
        names = list(self.collection.by_entity)
        return column == names[0] if len(names) == 1 else column.in_(*names)

    def pages(self, *, count: bool = False) -> Iterator[dict[str, Any]]:
        """Every response page, following ``LastEvaluatedKey``; one page in memory at once."""
        request: dict[str, Any] | None = self.request(count=count)
        while request is not None:
            response = self.engine.transport.call("dynamodb", self.operation, request)
            yield response
            request = next_page(request, response)

    @property
    def operation(self) -> str:
        return "Query" if self.mode == "query" else "Scan"

    def __iter__(self) -> Results:
        if self._projection == "count":
            raise InvalidConditionError("a 'count' projection has no items; use .count()")
        if self._parallel is not None:
            from streamodel.parallel import parallel_pages

            if self._start is not None:
                raise InvalidConditionError("a parallel scan cannot resume from a token")
            return Results(self, parallel_pages(self, self._parallel), resumable=False)
        return Results(self, self.pages(), resumable=True)

    def first(self) -> Any:
        """The first matching object, or ``None``."""
        return next(iter(self), None)

    def one(self) -> Any:
        """The only matching object; :class:`StreamodelError` unless exactly one matches."""
        found = list(_take(iter(self), 2))
        if len(found) != 1:
            what = "no" if not found else "more than one"
            raise StreamodelError(f"{self.mode} on {self._where()} matched {what} item")
        return found[0]

    def all(self) -> list[Any]:
        """Every matching object, as a list."""
        return list(self)

    def count(self) -> int:
        """How many items match, counted by DynamoDB without returning them."""
        if self._parallel is not None:
            from streamodel.parallel import parallel_pages

            pages = parallel_pages(self, self._parallel, count=True)
            return sum(int(page.get("Count", 0)) for page in pages)
        return sum(int(page.get("Count", 0)) for page in self.pages(count=True))


class Results(Iterator[Any]):
    """The objects of one run of a search, fetched page by page as they are consumed.

    ``.token`` is where the run stands: a JSON-safe dict to pass to
    ``search.move_to(token)`` (or ``start=``) later to continue after the last object
    returned, or ``None`` once everything was returned.
    """

    def __init__(self, search: Search, pages: Iterator[dict[str, Any]], *, resumable: bool):
        self.search = search
        self._items = self._objects(pages)
        self._resumable = resumable
        self._position: dict[str, Wire] | None = search._start
        self._last_item: Mapping[str, Wire] | None = None  # the position, when set
        self._done = False
        self.skipped = 0
        """Items of a collection's table that named no entity of the collection."""
        self.send_loaded = True  # an asyncio shell sends object_loaded itself (awaited)
        self._remaining = search._limit
        self._stopped = False  # the limit was reached
        projected = search._columns()
        every = meta_of(search.model).columns
        whole = len(projected) == len(every) and all(
            a is b for a, b in zip(projected, every, strict=True)
        )
        # Whole items go through the model's compiled load.
        self._projected: list[Column] | None = None if whole else projected

    def __iter__(self) -> Results:
        return self

    def __next__(self) -> Any:
        return next(self._items)

    @property
    def token(self) -> Token | None:
        if not self._resumable:
            raise InvalidConditionError("a parallel scan has no single position to resume")
        if self._done:
            return None
        if self._last_item is not None:  # read off the last item only when asked for
            item, key_names = self._last_item, [c.dynamo_name for c in self.search._key_columns()]
            self._position = {n: item[n] for n in key_names if n in item}
            self._last_item = None
        return encode_token(self._position)

    def _objects(self, pages: Iterator[dict[str, Any]]) -> Iterator[Any]:
        if self._remaining is not None and self._remaining <= 0:
            self._done = True
            return
        for page in pages:
            yield from self.page_objects(page)
            if self._stopped:
                return
        self._done = True

    def page_objects(self, page: Mapping[str, Any]) -> Iterator[Any]:
        """The objects of one response page, in order (a shell that fetches pages its own
        way, ``AsyncEngine``'s, feeds them here); stops early at the search's limit."""
        search = self.search
        collection = search.collection
        loaded = signals.object_loaded
        columns = self._projected
        items = page.get("Items", [])
        last = page.get("LastEvaluatedKey")
        for i, item in enumerate(items):
            if collection is not None:
                model = collection.route(item)
                if model is None:  # the filter keeps these out; an item written since
                    collection.unknown(item, f"query of {collection!r}")
                    self.skipped += 1
                    if i == len(items) - 1:
                        self._position, self._done, self._last_item = last, not last, None
                    continue
                obj = load_new(model, item)
            elif columns is None:
                obj = load_new(search.model, item)  # the model's compiled load
            else:
                obj = new_instance(search.model)
                fill(obj, item, columns)
            # The position moves before the object is handed out: a token read after
            # it resumes after it. After a page's last item, DynamoDB's own key is
            # further along (it skips what a filter dropped).
            if i == len(items) - 1:
                self._position, self._done, self._last_item = last, not last, None
            else:
                self._last_item = item
            if self.send_loaded and loaded.receivers:  # none: no call, no keyword arguments
                loaded.send(type(obj), engine=search.engine, obj=obj)
            if self._remaining is not None:
                self._remaining -= 1
                if self._remaining == 0:
                    self._stopped = True
                    yield obj
                    return
            yield obj
        if not items:
            self._position, self._done, self._last_item = last, not last, None


def next_page(request: dict[str, Any], response: Mapping[str, Any]) -> dict[str, Any] | None:
    """The request of the page after ``response`` (``None`` after the last page)."""
    last = response.get("LastEvaluatedKey")
    return {**request, "ExclusiveStartKey": last} if last else None


def _take(iterator: Iterator[Any], n: int) -> Iterator[Any]:
    for _ in range(n):
        try:
            yield next(iterator)
        except StopIteration:
            return


def _key_column(condition: Condition) -> Column | None:
    """The key column a key-condition part constrains, or None if it is not one."""
    operand: Any
    if isinstance(condition, Comparison):
        operand, values = condition.left, [condition.right]
    elif isinstance(condition, Between):
        operand, values = condition.operand, [condition.low, condition.high]
    elif isinstance(condition, BeginsWith):
        operand, values = condition.path, list(condition.args)
    else:
        return None
    plain = isinstance(operand, Path) and not operand.segments
    if plain and all(isinstance(v, Value) for v in values):
        return operand.column  # type: ignore[no-any-return]  # a plain Path's column
    return None


def _range_condition(condition: Condition) -> bool:
    if isinstance(condition, Comparison):
        return condition.op in _RANGE_OPERATORS
    return isinstance(condition, Between | BeginsWith)


def encode_token(position: dict[str, Wire] | None) -> Token:
    """A JSON-safe token for a position (``None``: the start); binary keys as base64."""
    after: dict[str, dict[str, str]] | None = None
    if position is not None:
        after = {}
        for name, wire in position.items():
            ((tag, raw),) = wire.items()
            if tag == "B":
                raw = base64.b64encode(bytes(raw)).decode("ascii")
            elif tag not in ("S", "N"):
                raise InvalidPositionError(f"key attribute {name!r} has non-key type {tag}")
            after[name] = {tag: raw}
    return {"v": TOKEN_VERSION, "after": after}


def decode_token(token: Token) -> dict[str, Wire] | None:
    """The position in a token from :func:`encode_token`; a clear error when malformed."""
    if not isinstance(token, dict) or token.get("v") != TOKEN_VERSION or "after" not in token:
        raise InvalidPositionError(f"not a search token: {token!r}")
    after = token["after"]
    if after is None:
        return None
    if not isinstance(after, dict) or not after:
        raise InvalidPositionError(f"malformed search token: {token!r}")
    position: dict[str, Wire] = {}
    for name, wire in after.items():
        if not isinstance(wire, dict) or len(wire) != 1:
            raise InvalidPositionError(f"malformed key {name!r} in search token")
        ((tag, raw),) = wire.items()
        if tag not in ("S", "N", "B") or not isinstance(raw, str):
            raise InvalidPositionError(f"malformed key {name!r} in search token")
        if tag == "B":
            try:
                position[name] = {"B": base64.b64decode(raw, validate=True)}
            except binascii.Error:
                raise InvalidPositionError(f"key {name!r} in search token is not base64") from None
        else:
            position[name] = {tag: raw}
    return position
