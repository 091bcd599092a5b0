"""``AsyncEngine.stream(Model, position)``: a change stream read from asyncio.

The stream reader (shard lineage, iterators, expiry recovery, ordering) is the sync
:class:`~streamodel.stream.Stream`; each ``await anext(stream)`` runs one of its steps on a
worker thread (``asyncio.to_thread``), so the event loop never blocks on GetRecords. It reads
through a sync engine on the same endpoint and table names
(:meth:`AsyncEngine.sync_engine <streamodel.aio.AsyncEngine.sync_engine>`). Changes,
positions and tokens are exactly the sync reader's; ``change_received`` is sent from the
reading thread.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from streamodel.entities import Collection
from streamodel.models import BaseModel
from streamodel.stream.reader import Stream
from streamodel.stream.records import Change

if TYPE_CHECKING:
    from .engine import AsyncEngine

__all__ = ["AsyncStream"]


class AsyncStream:
    """``await anext(stream)``: the next :class:`Change`, or ``None`` when caught up."""

    def __init__(
        self, engine: AsyncEngine, source: type[BaseModel] | Collection, position: Any
    ) -> None:
        self.engine = engine
        self._source = source
        self._position = position
        self._stream: Stream | None = None
        # One step at a time: the reader is not made for concurrent use.
        self._lock = asyncio.Lock()

    async def _reader(self) -> Stream:
        if self._stream is None:
            sync = self.engine.sync_engine()
            self._stream = await asyncio.to_thread(Stream, sync, self._source, self._position)
        return self._stream

    def __aiter__(self) -> AsyncStream:
        return self

    async def __anext__(self) -> Change | None:
        async with self._lock:
            reader = await self._reader()
            return await asyncio.to_thread(next, reader)

    @property
    def token(self) -> dict[str, Any]:
        """The position right after the last change handed out (JSON-safe)."""
        if self._stream is None:
            raise RuntimeError("the stream has not been read yet: await anext(stream) first")
        return self._stream.token

    @property
    def skipped(self) -> int:
        return self._stream.skipped if self._stream is not None else 0

    async def move_to(self, position: Any) -> None:
        """Continue from ``position`` (as :meth:`Stream.move_to`)."""
        async with self._lock:
            reader = await self._reader()
            await asyncio.to_thread(reader.move_to, position)
