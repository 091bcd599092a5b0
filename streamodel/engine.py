"""The Engine: binds models to tables and saves, loads, deletes, queries and scans them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from streamodel import requests, signals, steps, writes
from streamodel._diff import fill, key_of, meta_of
from streamodel.columns import Index
from streamodel.conditions import Condition, Path
from streamodel.entities import Collection, is_entity_item, table_shape
from streamodel.exceptions import (
    ConditionFailedError,
    InvalidConditionError,
    InvalidModelError,
    MissingObjectsError,
    StaleVersionError,
    ThrottledError,
)
from streamodel.models import BaseModel
from streamodel.search import Search
from streamodel.tables import bind_steps
from streamodel.transport import (
    BotocoreTransport,
    LeanTransport,
    RetryingTransport,
    RetryPolicy,
    Transport,
)
from streamodel.transport.retry import AttemptsExhausted
from streamodel.types import Wire

if TYPE_CHECKING:
    from streamodel.stream import Stream
    from streamodel.transactions import ReadTransaction, WriteTransaction

__all__ = ["Engine"]

M = TypeVar("M", bound=BaseModel)

BATCH_GET_LIMIT = 100


class Engine:
    """Reads and writes model objects.

    ``Engine()`` uses boto3's default session and environment (``AWS_ENDPOINT_URL_DYNAMODB``
    and ``AWS_ENDPOINT_URL_DYNAMODB_STREAMS`` point it at a local server); ``dynamodb`` and
    ``dynamodbstreams`` take ready boto3 clients; ``transport`` is ``"botocore"`` (boto3
    clients), ``"lean"`` (:class:`~streamodel.transport.LeanTransport`: signed JSON without
    botocore's generic parser, same results) or any :class:`~streamodel.transport.Transport`;
    it defaults to ``"botocore"`` when boto3 clients are given, else to ``$STREAMODEL_TRANSPORT``
    or ``"lean"``, and is wrapped with ``retry``.
    ``table_name_template`` is a format string with ``{table_name}``, or a callable taking
    the model and returning the name, so that one code base can serve several stages.
    """

    def __init__(
        self,
        dynamodb: Any = None,
        dynamodbstreams: Any = None,
        *,
        endpoint_url: str | None = None,
        table_name_template: str | Callable[[type[BaseModel]], str] = "{table_name}",
        transport: Transport | Literal["botocore", "lean"] | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if isinstance(table_name_template, str) and "{table_name}" not in table_name_template:
            raise ValueError("Engine(table_name_template=...) must contain '{table_name}'")
        # Lean by default; given boto3 clients are used as they are (their event hooks and
        # botocore's Stubber keep working), so they select the botocore transport, and the
        # environment's choice never overrides clients the program passed in.
        given = dynamodb is not None or dynamodbstreams is not None
        chosen: Transport | str
        if transport is not None:
            chosen = transport
        elif given:
            chosen = "botocore"
        else:
            chosen = os.environ.get("STREAMODEL_TRANSPORT") or "lean"
        inner: Transport
        if chosen == "botocore":
            inner = BotocoreTransport(dynamodb, dynamodbstreams, endpoint_url=endpoint_url)
        elif chosen == "lean":
            inner = LeanTransport(
                dynamodb=dynamodb, dynamodbstreams=dynamodbstreams, endpoint_url=endpoint_url
            )
        elif isinstance(chosen, str):
            source = "Engine(transport=...)" if transport is not None else "STREAMODEL_TRANSPORT"
            raise ValueError(f"{source} is 'botocore', 'lean' or a Transport, got {chosen!r}")
        else:
            inner = chosen
        self.retry = retry or RetryPolicy()
        """How often one operation is tried (a batch's resends of unprocessed items
        included)."""
        self.transport: Transport = RetryingTransport(inner, self.retry)
        # A CLIENT span per operation when the OpenTelemetry API is installed (looked up once
        # per process); without it, the transport stays as it is (streamodel.instrument).
        from streamodel.instrument import instrumented

        self.transport = instrumented(self.transport, self.retry)
        self.table_name_template = table_name_template
        # Per-engine facts about bound tables (names, stream ARNs); models stay untouched.
        self._tables: dict[type[BaseModel], dict[str, Any]] = {}
        # Names from a str template (fixed per template and model), computed once.
        self._names: dict[tuple[str, type[BaseModel]], str] = {}

    def close(self) -> None:
        """Close the connections the transport keeps (clients passed in stay open). The engine
        stays usable: connections reopen on demand."""
        transport: Any = self.transport
        while transport is not None:
            close = getattr(transport, "close", None)
            if callable(close):
                close()
                return
            transport = getattr(transport, "inner", None)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- tables -----------------------------------------------------------------------
    def table_name(self, model: type[BaseModel]) -> str:
        """The table name this engine uses for ``model``."""
        template = self.table_name_template
        if callable(template):
            return template(model)
        name = self._names.get((template, model))
        if name is None:
            name = template.format(table_name=meta_of(model).table_name)
            self._names[(template, model)] = name
        return name

    def bind(
        self, model: type[BaseModel] | None = None, *, base: type[BaseModel] | None = None
    ) -> None:
        """Create missing tables, wait until ACTIVE, and check existing ones against the models.

        ``bind(Model)`` binds one model; ``bind(base=Base)`` every concrete subclass of
        ``Base``. A missing stream or TTL setting is enabled; a real difference in keys or
        indexes raises :class:`TableMismatchError`. The table of several entities is made
        for all of them: their keys must agree (:class:`InvalidModelError` otherwise), and
        it gets the indexes of every one (same-named indexes must agree: one index serving
        several entities).
        """
        if (model is None) == (base is None):
            raise ValueError("bind() takes a model or base=, not both or neither")
        root = model if model is not None else base
        assert root is not None
        if not (isinstance(root, type) and issubclass(root, BaseModel)):
            raise InvalidModelError(f"bind() takes model classes, got {root!r}")
        models = [m for m in _subclasses(root) if not meta_of(m).abstract]
        if model is not None and meta_of(model).abstract:
            raise InvalidModelError(f"{model.__name__} is abstract and has no table")
        for m in models:
            self._bind_one(m)

    def _bind_one(self, model: type[BaseModel]) -> None:
        name = self.table_name(model)
        table = steps.run(self.transport, bind_steps(table_shape(model), name))
        self._tables[model] = {"name": name, "stream_arn": table.get("LatestStreamArn")}
        signals.model_bound.send(model, engine=self, model=model)

    def stream_arn(self, model: type[BaseModel]) -> str:
        """The table's latest stream ARN (described again when not known)."""
        known = self._tables.get(model, {}).get("stream_arn")
        if known:
            return str(known)
        name = self.table_name(model)
        table = self.transport.call("dynamodb", "DescribeTable", {"TableName": name})["Table"]
        arn = table.get("LatestStreamArn")
        if not arn:
            raise InvalidModelError(f"table {name!r} of {model.__name__} has no stream")
        self._tables.setdefault(model, {"name": name})["stream_arn"] = arn
        return str(arn)

    # -- writes -----------------------------------------------------------------------
    def save(
        self,
        *objs: BaseModel,
        condition: Condition | None = None,
        atomic: bool = False,
        version_check: bool = True,
        sync: bool = False,
        actions: Mapping[Path, Any] | None = None,
        replace: bool = False,
    ) -> None:
        """Save each object with one conditional ``UpdateItem`` of only what changed.

        Every object is validated before anything is sent. ``condition`` must hold on the
        stored item; ``atomic=True`` also requires the stored item to be exactly what this
        object last loaded or saved. A version column adds an optimistic version check;
        ``version_check=False`` skips it and lets DynamoDB add 1 to the stored version.
        ``actions`` maps column paths (``Model.col``, ``Model.doc["k"][0]``) to values or
        update actions (:mod:`streamodel.actions`), applied to every object. Values DynamoDB
        computes are read back into the object; ``sync=True`` reads the whole stored item.
        ``replace=True`` writes each object as a whole item instead, replacing what is
        stored (``BatchWriteItem``, 25 per call; no conditions, versions or actions).
        """
        if replace:
            from streamodel.batch import BatchWriter

            if condition is not None or atomic or actions or sync:
                raise InvalidConditionError(
                    "save(replace=True) writes whole items with BatchWriteItem, which takes "
                    "no condition, atomic, actions or sync"
                )
            BatchWriter(self).put([_model_object(obj) for obj in objs])
            return
        planned = [
            writes.save(
                self.table_name(type(obj)),
                obj,
                condition=condition,
                atomic=atomic,
                version_check=version_check,
                actions=actions,
                sync=sync,
            )
            for obj in map(_model_object, objs)
        ]
        for write in planned:
            if sync or write.needed:
                self._send(write, "UpdateItem")

    def _send(self, write: writes.Write, operation: str) -> None:
        """One object's write on its own: announced, sent, marked and signalled."""
        write.announce(self)
        try:
            response = self.transport.call("dynamodb", operation, write.request)
        except ConditionFailedError as error:
            raise write.refused(error) from None
        write.applied(self, response.get("Attributes"))

    def delete(
        self,
        *objs: BaseModel,
        condition: Condition | None = None,
        atomic: bool = False,
        version_check: bool = True,
    ) -> None:
        """Delete each object's item, under ``condition``, its version, and ``atomic``.

        Several deletes without any condition go in ``BatchWriteItem`` calls (25 per call):
        a batch delete is exactly an unconditional ``DeleteItem``.
        """
        planned = [
            writes.delete(
                self.table_name(type(obj)),
                obj,
                condition=condition,
                atomic=atomic,
                version_check=version_check,
            )
            for obj in map(_model_object, objs)
        ]
        plain = [w for w in planned if "ConditionExpression" not in w.request]
        if len(plain) > 1:
            from streamodel.batch import BatchWriter

            BatchWriter(self).write(plain)
            planned = [w for w in planned if "ConditionExpression" in w.request]
        for write in planned:
            self._send(write, "DeleteItem")

    def update(
        self,
        obj: M,
        fn: Callable[[M], object],
        *,
        retries: int = 10,
        condition: Condition | None = None,
        backoff: float = 0.01,
        max_backoff: float = 1.0,
    ) -> M:
        """Read, modify and save ``obj`` until no other writer got in between.

        Each attempt loads the stored item into ``obj`` (a consistent read), calls
        ``fn(obj)`` to change it (values or update actions), and saves it under
        ``condition``. The save is checked by the version column, or, for a model without
        one, by ``atomic=True``; when another writer changed the item meanwhile
        (:class:`StaleVersionError`) it waits a random time below an exponentially
        growing bound (full jitter) and tries again, at most ``retries`` more times, then
        raises the last error. Returns ``obj``, saved. A missing item raises
        :class:`MissingObjectsError`.
        """
        target = _model_object(obj)
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"update(retries=...) must be an int >= 0, got {retries!r}")
        versioned = meta_of(target).version is not None
        import tenacity  # here: only updates and batch reads need it, not a cold start

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(StaleVersionError),
            stop=tenacity.stop_after_attempt(retries + 1),
            wait=tenacity.wait_random_exponential(multiplier=backoff, max=max_backoff),
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                self.load(target, consistent=True)
                fn(obj)
                try:
                    self.save(target, condition=condition, atomic=not versioned)
                except StaleVersionError:
                    raise
                except ConditionFailedError as error:
                    if versioned or not _changed_since_load(target, error.item):
                        raise  # the caller's own condition failed: retrying cannot help
                    raise StaleVersionError(
                        f"{type(target).__name__}: the stored item changed since it was loaded",
                        obj=target,
                        item=error.item,
                    ) from None
        return obj

    # -- reads ------------------------------------------------------------------------
    def load(self, *objs: BaseModel, consistent: bool = False) -> None:
        """Fill each object from its stored item (one ``GetItem`` for a single key, else
        ``BatchGetItem``, 100 keys per call).

        Every object found is filled; then :class:`MissingObjectsError` lists the others.
        """
        wanted: dict[tuple[str, Any], list[BaseModel]] = {}
        by_table: dict[str, list[dict[str, Wire]]] = {}
        key_names: dict[str, list[str]] = {}  # per table, its key attributes
        for obj in objs:
            obj = _model_object(obj)
            model = type(obj)
            table = self.table_name(model)
            key = key_of(obj)
            ident = (table, _key_ident(key))
            if ident not in wanted:
                by_table.setdefault(table, []).append(key)
            wanted.setdefault(ident, []).append(obj)
            if table not in key_names:
                key_names[table] = [c.dynamo_name for c in meta_of(model).keys]
        found: set[int] = set()
        loaded = signals.object_loaded
        for table, item in self._fetch(by_table, consistent):
            ident = (table, _key_ident({name: item[name] for name in key_names[table]}))
            for obj in wanted.get(ident, []):
                if not is_entity_item(type(obj), item):
                    continue  # another entity's item under this key: not this object's
                fill(obj, item)
                if loaded.receivers:  # no receivers: no call, no keyword arguments
                    loaded.send(type(obj), engine=self, obj=obj)
                found.add(id(obj))
        missing = [obj for group in wanted.values() for obj in group if id(obj) not in found]
        if missing:
            raise MissingObjectsError(f"{len(missing)} object(s) not found", objects=missing)

    def _fetch(
        self, by_table: dict[str, list[dict[str, Wire]]], consistent: bool
    ) -> Iterator[tuple[str, dict[str, Wire]]]:
        if sum(len(keys) for keys in by_table.values()) != 1:
            return self._batch_get(by_table, consistent)
        # One key: GetItem is the cheaper call (no batch envelope, nothing unprocessed).
        ((table, (key,)),) = by_table.items()
        request = requests.get_item(table, key, consistent=consistent)
        item = self.transport.call("dynamodb", "GetItem", request).get("Item")
        return iter([(table, item)] if item is not None else [])

    def _batch_get(
        self, by_table: dict[str, list[dict[str, Wire]]], consistent: bool
    ) -> Iterator[tuple[str, dict[str, Wire]]]:
        pending = [(table, key) for table, keys in by_table.items() for key in keys]
        for start in range(0, len(pending), BATCH_GET_LIMIT):
            chunk = pending[start : start + BATCH_GET_LIMIT]
            request = requests.batch_get_item(chunk, consistent=consistent)
            yield from self._batch_get_chunk(request["RequestItems"])

    def _batch_get_chunk(self, request: dict[str, Any]) -> Iterator[tuple[str, dict[str, Wire]]]:
        """One BatchGetItem, its ``UnprocessedKeys`` sent again until none are left: the
        resends and the retries of each request share the engine's attempts."""
        attempts = self.retry.operation()
        remaining = request
        while remaining:
            try:
                with attempts.active():
                    response = self.transport.call(
                        "dynamodb", "BatchGetItem", {"RequestItems": remaining}
                    )
            except AttemptsExhausted:
                # What DynamoDB keeps leaving unprocessed is throttling by another name.
                count = sum(len(keys["Keys"]) for keys in remaining.values())
                raise ThrottledError(
                    f"BatchGetItem left {count} key(s) unprocessed after {attempts.taken} attempts",
                    operation="BatchGetItem",
                    code="UnprocessedKeys",
                ) from None
            for table, items in response.get("Responses", {}).items():
                for item in items:
                    yield table, item
            remaining = response.get("UnprocessedKeys") or {}

    def query(self, model_or_index: type[BaseModel] | Index | Collection, **options: Any) -> Search:
        """A query on a table or index: ``engine.query(Model.index).key(Model.col == x)``;
        ``engine.query(Collection(A, B)).key(A.pk == x)`` reads several entities at once."""
        return Search(self, model_or_index, "query", **options)

    def scan(self, model_or_index: type[BaseModel] | Index | Collection, **options: Any) -> Search:
        """A scan of a table or index, optionally filtered: ``engine.scan(Model).filter(...)``."""
        return Search(self, model_or_index, "scan", **options)

    # -- transactions and streams -------------------------------------------------------
    @contextmanager
    def transaction(
        self, mode: Literal["w", "r"] = "w"
    ) -> Iterator[WriteTransaction | ReadTransaction]:
        """A write (``"w"``) or read (``"r"``) transaction, committed when the block exits."""
        from streamodel.transactions import ReadTransaction, WriteTransaction

        if mode not in ("w", "r"):
            raise ValueError(f"transaction mode must be 'w' or 'r', got {mode!r}")
        tx: WriteTransaction | ReadTransaction = (
            WriteTransaction(self) if mode == "w" else ReadTransaction(self)
        )
        yield tx
        tx.commit()

    def stream(self, model: type[BaseModel] | Collection, position: Any) -> Stream:
        """A reader of ``model``'s change stream from ``position`` (:mod:`streamodel.stream`);
        of a :class:`~streamodel.Collection`, the changes of all its entities."""
        from streamodel.stream import Stream

        return Stream(self, model, position)


def _changed_since_load(obj: BaseModel, item: Mapping[str, Wire] | None) -> bool:
    """Whether the stored ``item`` differs from what ``obj`` last loaded."""
    if item is None:
        return True
    snapshot = obj._sm_snapshot or {}
    return any(item.get(name) != wire for name, wire in snapshot.items())


def _model_object(obj: Any) -> BaseModel:
    if not isinstance(obj, BaseModel):
        raise TypeError(f"expected a model object, got {obj!r}")
    if meta_of(obj).abstract:
        raise InvalidModelError(f"{type(obj).__name__} is abstract and has no table")
    return obj


def _key_ident(key: dict[str, Wire]) -> Any:
    # Key values are S, N or B: one (tag, str or bytes) pair each, hashable as they are.
    # Both keys compared are built in the model's key order (hash key first): no sorting.
    try:
        return tuple([(name, *wire.items()) for name, wire in key.items()])
    except TypeError:  # an unexpected shape: compare its text
        return repr([(name, sorted(wire.items())) for name, wire in key.items()])


def _subclasses(root: type[BaseModel]) -> Iterable[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    stack = [root]
    while stack:
        cls = stack.pop(0)
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return seen
