"""``AsyncEngine``: the engine for asyncio programs, on the same models, conditions,
actions and signals as :class:`~streamodel.Engine`.

Every operation is the one the sync engine runs, written once as a generator of
:mod:`streamodel.steps` (:mod:`streamodel.operations`, :mod:`streamodel.reads`,
:mod:`streamodel.transactions`, :mod:`streamodel.tables`): ``Engine`` drives it with
``steps.run``, this engine with ``await steps.arun`` on an asyncio transport
(:class:`~streamodel.transport.AsyncLeanTransport` in :class:`~streamodel.transport.
AsyncRetryingTransport`, by default). Signal receivers that are coroutine functions are
awaited; plain ones are called.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from streamodel import steps
from streamodel.columns import Index
from streamodel.conditions import Condition, Path
from streamodel.engine import TableNames, models_to_bind
from streamodel.entities import Collection
from streamodel.exceptions import ConditionFailedError, StaleVersionError
from streamodel.models import BaseModel
from streamodel.operations import (
    delete_steps,
    model_objects,
    save_steps,
    update_conflict,
    update_retrying,
)
from streamodel.reads import load_steps
from streamodel.transport import AsyncLeanTransport, AsyncRetryingTransport, RetryPolicy
from streamodel.transport.base import AsyncTransport

from .search import AsyncSearch

if TYPE_CHECKING:
    from streamodel.engine import Engine
    from streamodel.transactions import ReadTransaction, WriteTransaction

    from .stream import AsyncStream

__all__ = ["AsyncEngine"]

M = TypeVar("M", bound=BaseModel)


class AsyncEngine(TableNames):
    """Reads and writes model objects with ``await``.

    ``AsyncEngine()`` finds DynamoDB as ``Engine()`` does (boto3's default session and
    environment, ``AWS_ENDPOINT_URL_DYNAMODB``...); ``endpoint_url`` overrides it;
    ``dynamodb`` / ``dynamodbstreams`` take ready botocore/boto3 clients whose settings
    (endpoint, credentials, TLS, proxies, pool size) the asyncio lean transport follows;
    ``transport`` takes any :class:`~streamodel.transport.AsyncTransport` instead. Either
    is wrapped with ``retry``. ``async with AsyncEngine() as engine`` closes its
    connections at the end (or ``await engine.close()``).
    """

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        table_name_template: str | Callable[[type[BaseModel]], str] = "{table_name}",
        dynamodb: Any = None,
        dynamodbstreams: Any = None,
        transport: AsyncTransport | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(table_name_template)
        self.endpoint_url = endpoint_url
        inner = transport or AsyncLeanTransport(
            dynamodb=dynamodb, dynamodbstreams=dynamodbstreams, endpoint_url=endpoint_url
        )
        self.retry = retry or RetryPolicy()
        self.transport: AsyncTransport = AsyncRetryingTransport(inner, self.retry)
        self._sync: Engine | None = None

    async def close(self) -> None:
        """Close the connections the transport keeps (the engine stays usable)."""
        transport: Any = self.transport
        while transport is not None:
            close = getattr(transport, "aclose", None)
            if callable(close):
                await close()
                break
            transport = getattr(transport, "inner", None)
        if self._sync is not None:
            self._sync.close()

    async def __aenter__(self) -> AsyncEngine:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # -- tables -----------------------------------------------------------------------
    async def bind(
        self, model: type[BaseModel] | None = None, *, base: type[BaseModel] | None = None
    ) -> None:
        """Create missing tables and check existing ones, as :meth:`Engine.bind`."""
        for m in models_to_bind(model, base):
            await steps.arun(self.transport, self.bind_steps(m))

    # -- writes -----------------------------------------------------------------------
    async def save(
        self,
        *objs: BaseModel,
        condition: Condition | None = None,
        atomic: bool = False,
        version_check: bool = True,
        sync: bool = False,
        actions: Mapping[Path, Any] | None = None,
        replace: bool = False,
    ) -> None:
        """Save each object, as :meth:`Engine.save`."""
        await steps.arun(
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

    async def delete(
        self,
        *objs: BaseModel,
        condition: Condition | None = None,
        atomic: bool = False,
        version_check: bool = True,
    ) -> None:
        """Delete each object's item, as :meth:`Engine.delete`."""
        await steps.arun(
            self.transport,
            delete_steps(
                self, objs, condition=condition, atomic=atomic, version_check=version_check
            ),
        )

    async def update(
        self,
        obj: M,
        fn: Callable[[M], object] | Callable[[M], Awaitable[object]],
        *,
        retries: int = 10,
        condition: Condition | None = None,
        backoff: float = 0.01,
        max_backoff: float = 1.0,
    ) -> M:
        """Read, modify and save ``obj`` until no other writer got in between, as
        :meth:`Engine.update`; ``fn`` may be a coroutine function."""
        (target,) = model_objects([obj])
        versioned = target.Meta.version is not None  # type: ignore[attr-defined]
        import tenacity  # here: only updates need it, not a cold start

        retrying = tenacity.AsyncRetrying(**update_retrying(retries, backoff, max_backoff))
        async for attempt in retrying:
            with attempt:
                await self.load(target, consistent=True)
                result = fn(obj)
                if asyncio.iscoroutine(result):
                    await result
                try:
                    await self.save(target, condition=condition, atomic=not versioned)
                except StaleVersionError:
                    raise
                except ConditionFailedError as error:
                    raise update_conflict(target, versioned, error) from None
        return obj

    # -- reads ------------------------------------------------------------------------
    async def load(self, *objs: BaseModel, consistent: bool = False) -> None:
        """Fill each object from its stored item, as :meth:`Engine.load`."""
        await steps.arun(
            self.transport,
            load_steps(
                self,
                model_objects(objs),
                consistent=consistent,
                table_name=self.table_name,
                retry=self.retry,
            ),
        )

    def query(
        self, model_or_index: type[BaseModel] | Index | Collection, **options: Any
    ) -> AsyncSearch:
        """A query, as :meth:`Engine.query`: ``async for obj in engine.query(...)...``."""
        return AsyncSearch(self, model_or_index, "query", **options)  # type: ignore[arg-type]

    def scan(
        self, model_or_index: type[BaseModel] | Index | Collection, **options: Any
    ) -> AsyncSearch:
        """A scan, as :meth:`Engine.scan`."""
        return AsyncSearch(self, model_or_index, "scan", **options)  # type: ignore[arg-type]

    # -- transactions and streams -------------------------------------------------------
    @asynccontextmanager
    async def transaction(
        self, mode: Literal["w", "r"] = "w"
    ) -> AsyncIterator[WriteTransaction | ReadTransaction]:
        """``async with engine.transaction() as tx``: ``tx.save`` / ``tx.delete`` /
        ``tx.check`` queue (``tx.load`` with ``mode="r"``); the commit is awaited when the
        block exits cleanly."""
        from streamodel.transactions import ReadTransaction, WriteTransaction

        if mode not in ("w", "r"):
            raise ValueError(f"transaction mode must be 'w' or 'r', got {mode!r}")
        tx: WriteTransaction | ReadTransaction = (
            WriteTransaction(self)  # type: ignore[arg-type]
            if mode == "w"
            else ReadTransaction(self)  # type: ignore[arg-type]
        )
        yield tx
        await steps.arun(self.transport, tx.commit_steps())

    def stream(self, model: type[BaseModel] | Collection, position: Any) -> AsyncStream:
        """A reader of ``model``'s change stream: ``await anext(stream)`` gives a
        :class:`~streamodel.stream.Change` or ``None`` when caught up."""
        from .stream import AsyncStream

        return AsyncStream(self, model, position)

    def sync_engine(self) -> Engine:
        """A sync :class:`~streamodel.Engine` on the same endpoint and table names (the
        stream reader's, see :class:`~streamodel.aio.stream.AsyncStream`)."""
        if self._sync is None:
            from streamodel.engine import Engine

            self._sync = Engine(
                endpoint_url=self.endpoint_url, table_name_template=self.table_name_template
            )
        return self._sync
