"""AsyncEngine without a network: the shared operations driven by ``steps.arun`` on fake
asyncio transports (the DynamoDB Local tests are in tests/integration/test_aio_local.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from streamodel import Column, Integer, String, ThrottledError, new_base
from streamodel.aio import AsyncEngine
from streamodel.transport import RetryPolicy

Base = new_base()


class Thing(Base):
    id = Column(String, hash_key=True)
    n = Column(Integer)


class Unprocessed:
    """Answers every BatchGetItem with all its keys left unprocessed."""

    def __init__(self) -> None:
        self.calls = 0

    async def call(self, service: Any, operation: str, params: dict[str, Any]) -> Any:
        assert operation == "BatchGetItem"
        self.calls += 1
        return {"Responses": {}, "UnprocessedKeys": params["RequestItems"]}


def test_resends_of_unprocessed_keys_share_one_operations_attempts() -> None:
    """The batch read's resends count against the engine's attempts when run by arun too
    (the attempts are active in the task while the call is awaited)."""
    fake = Unprocessed()
    engine = AsyncEngine(transport=fake, retry=RetryPolicy(attempts=3, base=0.0, max_wait=0.0))
    with pytest.raises(ThrottledError, match="unprocessed after 3 attempts"):
        asyncio.run(engine.load(Thing(id="a"), Thing(id="b")))
    assert fake.calls == 3


def test_an_async_query_cannot_be_iterated_synchronously() -> None:
    engine = AsyncEngine(transport=Unprocessed())
    with pytest.raises(TypeError, match="async for"):
        iter(engine.query(Thing).key(Thing.id == "a"))
