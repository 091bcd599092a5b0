"""Queries and scans of an :class:`~streamodel.aio.AsyncEngine`: the same builders, awaited.

:class:`AsyncSearch` is :class:`~streamodel.search.Search` (every builder method, every
check, the same requests) whose results are read with ``async for`` or awaited
(``first``, ``one``, ``all``, ``count``). Pages are fetched with ``await`` and decoded by
the same :meth:`Results.page_objects <streamodel.search.Results.page_objects>` as the sync
engine's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from streamodel import signals
from streamodel.exceptions import InvalidConditionError, StreamodelError
from streamodel.search import Results, Search, Token, next_page
from streamodel.steps import Emit

__all__ = ["AsyncResults", "AsyncSearch"]


class AsyncSearch(Search):
    """``engine.query(...)`` / ``engine.scan(...)`` of an ``AsyncEngine``."""

    def __iter__(self) -> Results:
        raise TypeError(
            "an AsyncEngine's query or scan is read with `async for obj in search` or "
            "`await search.all()`"
        )

    def __aiter__(self) -> AsyncResults:
        if self._projection == "count":
            raise InvalidConditionError("a 'count' projection has no items; use await .count()")
        if self._parallel is not None:
            raise InvalidConditionError(
                "parallel() reads segments on threads; with an AsyncEngine, read "
                ".segment(i, n) searches concurrently (asyncio.gather)"
            )
        return AsyncResults(self)

    async def apages(self, *, count: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Every response page, following ``LastEvaluatedKey``; one page in memory at once."""
        request: dict[str, Any] | None = self.request(count=count)
        engine: Any = self.engine  # an AsyncEngine
        while request is not None:
            response: dict[str, Any] = await engine.transport.call(
                "dynamodb", self.operation, request
            )
            yield response
            request = next_page(request, response)

    async def first(self) -> Any:
        """The first matching object, or ``None``."""
        async for obj in self:
            return obj
        return None

    async def one(self) -> Any:
        """The only matching object; :class:`StreamodelError` unless exactly one matches."""
        found = []
        async for obj in self:
            found.append(obj)
            if len(found) == 2:
                break
        if len(found) != 1:
            what = "no" if not found else "more than one"
            raise StreamodelError(f"{self.mode} on {self._where()} matched {what} item")
        return found[0]

    async def all(self) -> list[Any]:  # type: ignore[override]
        """Every matching object, as a list."""
        return [obj async for obj in self]

    async def count(self) -> int:  # type: ignore[override]
        """How many items match, counted by DynamoDB without returning them."""
        if self._parallel is not None:
            raise InvalidConditionError("parallel() is not for an AsyncEngine; see __aiter__")
        return sum([int(page.get("Count", 0)) async for page in self.apages(count=True)])


class AsyncResults:
    """The objects of one run of an :class:`AsyncSearch`, fetched page by page as they are
    consumed; ``.token`` and ``.skipped`` as on :class:`~streamodel.search.Results`."""

    def __init__(self, search: AsyncSearch) -> None:
        self.results = Results(search, iter(()), resumable=True)
        self.results.send_loaded = False  # sent here, awaited
        self.search = search
        self._pages = search.apages()
        self._objects: Iterator[Any] = iter(())

    def __aiter__(self) -> AsyncResults:
        return self

    async def __anext__(self) -> Any:
        results = self.results
        while True:
            obj = next(self._objects, None)
            if obj is not None:
                if signals.object_loaded.receivers:
                    emit = {"engine": self.search.engine, "obj": obj}
                    await Emit(signals.object_loaded, type(obj), emit).send_async()
                return obj
            if results._stopped or (results._remaining is not None and results._remaining <= 0):
                raise StopAsyncIteration
            try:
                page = await anext(self._pages)
            except StopAsyncIteration:
                results._done = True
                raise
            self._objects = results.page_objects(page)

    @property
    def token(self) -> Token | None:
        return self.results.token

    @property
    def skipped(self) -> int:
        return self.results.skipped
