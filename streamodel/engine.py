"""The Engine: binds models to tables and saves, loads, deletes, queries and scans them."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from streamodel import signals, steps
from streamodel._diff import meta_of
from streamodel.columns import Index
from streamodel.conditions import Condition, Path
from streamodel.entities import Collection, table_shape
from streamodel.exceptions import (
    ConditionFailedError,
    InvalidModelError,
    StaleVersionError,
)
from streamodel.models import BaseModel
from streamodel.operations import (
    delete_steps,
    model_objects,
    save_steps,
    update_conflict,
    update_retrying,
)
from streamodel.reads import load_steps
from streamodel.search import Search
from streamodel.steps import Emit, Steps
from streamodel.tables import bind_steps
from streamodel.transport import (
    BotocoreTransport,
    LeanTransport,
    RetryingTransport,
    RetryPolicy,
    Transport,
)

if TYPE_CHECKING:
    from streamodel.stream import Stream
    from streamodel.transactions import ReadTransaction, WriteTransaction

__all__ = ["Engine", "TableNames", "models_to_bind"]

M = TypeVar("M", bound=BaseModel)


class TableNames:
    """The table each model is stored in, for one engine (sync or asyncio), and what the
    engine learnt about bound tables."""

    def __init__(self, table_name_template: str | Callable[[type[BaseModel]], str]) -> None:
        if isinstance(table_name_template, str) and "{table_name}" not in table_name_template:
            raise ValueError(
                f"{type(self).__name__}(table_name_template=...) must contain '{{table_name}}'"
            )
        self.table_name_template = table_name_template
        # Per-engine facts about bound tables (names, stream ARNs); models stay untouched.
        self._tables: dict[type[BaseModel], dict[str, Any]] = {}
        # Names from a str template (fixed per template and model), computed once.
        self._names: dict[tuple[str, type[BaseModel]], str] = {}

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

    def bind_steps(self, model: type[BaseModel]) -> Steps[None]:
        """Binding one model, as steps (any shell runs them)."""
        name = self.table_name(model)
        table = yield from bind_steps(table_shape(model), name)
        self._tables[model] = {"name": name, "stream_arn": table.get("LatestStreamArn")}
        yield Emit(signals.model_bound, model, {"engine": self, "model": model})


class Engine(TableNames):
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
        super().__init__(table_name_template)
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
        for m in models_to_bind(model, base):
            steps.run(self.transport, self.bind_steps(m))

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
        steps.run(
            self.transport,
            save_steps(
                self,
                objs,
                condition=condition,
                atomic=atomic,
                version_check=version_check,
                sync=sync,
                actions=actions,
                replace=replace,
            ),
        )

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
        steps.run(
            self.transport,
            delete_steps(
                self, objs, condition=condition, atomic=atomic, version_check=version_check
            ),
        )

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
        versioned = meta_of(target).version is not None
        import tenacity  # here: only updates need it, not a cold start

        retrying = tenacity.Retrying(**update_retrying(retries, backoff, max_backoff))
        for attempt in retrying:
            with attempt:
                self.load(target, consistent=True)
                fn(obj)
                try:
                    self.save(target, condition=condition, atomic=not versioned)
                except StaleVersionError:
                    raise
                except ConditionFailedError as error:
                    raise update_conflict(target, versioned, error) from None
        return obj

    # -- reads ------------------------------------------------------------------------
    def load(self, *objs: BaseModel, consistent: bool = False) -> None:
        """Fill each object from its stored item (one ``GetItem`` for a single key, else
        ``BatchGetItem``, 100 keys per call).

        Every object found is filled; then :class:`MissingObjectsError` lists the others.
        """
        steps.run(
            self.transport,
            load_steps(
                self,
                model_objects(objs),
                consistent=consistent,
                table_name=self.table_name,
                retry=self.retry,
            ),
        )

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


def _model_object(obj: Any) -> BaseModel:
    (checked,) = model_objects([obj])
    return checked


def models_to_bind(
    model: type[BaseModel] | None, base: type[BaseModel] | None
) -> list[type[BaseModel]]:
    """``bind(Model)``: that model; ``bind(base=Base)``: every concrete subclass of it."""
    if (model is None) == (base is None):
        raise ValueError("bind() takes a model or base=, not both or neither")
    root = model if model is not None else base
    assert root is not None
    if not (isinstance(root, type) and issubclass(root, BaseModel)):
        raise InvalidModelError(f"bind() takes model classes, got {root!r}")
    if model is not None and meta_of(model).abstract:
        raise InvalidModelError(f"{model.__name__} is abstract and has no table")
    return [m for m in _subclasses(root) if not meta_of(m).abstract]


def _subclasses(root: type[BaseModel]) -> Iterable[type[BaseModel]]:
    seen: list[type[BaseModel]] = []
    stack = [root]
    while stack:
        cls = stack.pop(0)
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return seen
