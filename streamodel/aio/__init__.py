"""streamodel for asyncio: :class:`AsyncEngine` on the same models, conditions, actions and
signals as :class:`~streamodel.Engine`, running the same operations (see
:mod:`streamodel.aio.engine`)."""

from streamodel.aio.engine import AsyncEngine
from streamodel.aio.search import AsyncResults, AsyncSearch
from streamodel.aio.stream import AsyncStream

__all__ = ["AsyncEngine", "AsyncResults", "AsyncSearch", "AsyncStream"]
