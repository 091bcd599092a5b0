"""streamodel for asyncio: :class:`AsyncEngine` on the same models, conditions, actions and
signals as :class:`~streamodel.Engine`, running the same operations (see
:mod:`streamodel.aio.engine`), and :class:`AsyncWorker`, the stream worker whose handlers are
awaited (see :mod:`streamodel.aio.worker`)."""

from streamodel.aio.engine import AsyncEngine
from streamodel.aio.search import AsyncResults, AsyncSearch
from streamodel.aio.stream import AsyncStream
from streamodel.aio.worker import AsyncWorker

__all__ = ["AsyncEngine", "AsyncResults", "AsyncSearch", "AsyncStream", "AsyncWorker"]
