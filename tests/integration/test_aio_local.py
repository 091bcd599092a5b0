"""AsyncEngine against DynamoDB Local: the quickstart with await, concurrent versioned
updates, cancellation, signals, transactions, collections and streams."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from streamodel import (
    Collection,
    Column,
    ConditionFailedError,
    Engine,
    Integer,
    MissingObjectsError,
    String,
    new_base,
    signals,
)
from streamodel.aio import AsyncEngine
from streamodel.stream import Change

T = TypeVar("T")

Base = new_base()


class User(Base):
    class Meta:
        table_name = "aio-users"

    id = Column(String, hash_key=True)
    name = Column(String)
    visits = Column(Integer, default=0)
    version = Column(Integer, version=True)


class Note(Base):
    class Meta:
        table_name = "aio-notes"

    owner = Column(String, hash_key=True)
    n = Column(Integer, range_key=True)
    text = Column(String)


class Post(Base):
    class Meta:
        table_name = "aio-shared"

    pk = Column(String, hash_key=True, template="USER#{user}")
    sk = Column(String, range_key=True, template="POST#{n}")
    user = Column(String)
    n = Column(Integer)


class Profile(Base):
    class Meta:
        table_name = "aio-shared"

    pk = Column(String, hash_key=True, template="USER#{user}")
    sk = Column(String, range_key=True, template="PROFILE#{user}")
    user = Column(String)
    bio = Column(String)


def run(engine_user: Callable[[AsyncEngine], Awaitable[T]], template: str) -> T:
    """Run a test body on a fresh event loop with an engine it closes at the end."""

    async def main() -> T:
        async with AsyncEngine(table_name_template=template) as engine:
            return await engine_user(engine)

    return asyncio.run(main())


@pytest.fixture(scope="module", autouse=True)
def bound(local_endpoint: str, table_template: str) -> None:
    run(lambda engine: engine.bind(base=Base), table_template)


def uid() -> str:
    return uuid.uuid4().hex[:10]


def test_the_quickstart_with_await(table_template: str) -> None:
    async def body(engine: AsyncEngine) -> None:
        key = uid()
        user = User(id=key, name="Ada")
        await engine.save(user)
        assert user.version == 1
        again = User(id=key)
        await engine.load(again)
        assert (again.name, again.version) == ("Ada", 1)

        async def visit(u: User) -> None:
            await asyncio.sleep(0)  # a coroutine function: awaited by update
            u.visits += 1

        await engine.update(again, visit)
        assert (again.visits, again.version) == (1, 2)
        await engine.save(*[Note(owner=key, n=i, text=f"t{i}") for i in range(5)])
        query = engine.query(Note).key((Note.owner == key) & (Note.n >= 2))
        assert [n.n async for n in query] == [2, 3, 4]
        assert (await query.first()).n == 2
        assert await query.count() == 3
        assert len(await query.all()) == 3
        assert (
            await engine.query(Note).key((Note.owner == key) & (Note.n == 1)).one()
        ).text == "t1"
        assert await engine.scan(User).filter(User.id == key).count() == 1
        with pytest.raises(ConditionFailedError):
            await engine.save(User(id=key, name="x"), condition=User.name == "nobody")
        await engine.delete(again)
        with pytest.raises(MissingObjectsError):
            await engine.load(User(id=key))

    run(body, table_template)


def test_concurrent_versioned_updates_add_up_exactly(table_template: str) -> None:
    """8 tasks x 50 read-increment-save cycles on one versioned item end at exactly 400."""

    async def body(engine: AsyncEngine) -> int:
        key = uid()
        await engine.save(User(id=key, visits=0))

        def increment(u: User) -> None:
            u.visits += 1

        async def worker() -> None:
            for _ in range(50):
                await engine.update(User(id=key), increment, retries=1000, max_backoff=0.05)

        await asyncio.gather(*[worker() for _ in range(8)])
        final = User(id=key)
        await engine.load(final, consistent=True)
        assert final.version == 401
        return int(final.visits)

    assert run(body, table_template) == 400


def test_cancelled_saves_leave_the_pool_healthy_and_returned_saves_stored(
    table_template: str,
) -> None:
    """Saves cancelled at random points: every save that returned is stored, and the engine
    (its pool) goes on working."""

    async def body(engine: AsyncEngine) -> tuple[set[str], set[str]]:
        rng = random.Random(7)
        prefix = uid()
        returned: set[str] = set()

        async def save(n: int) -> None:
            key = f"{prefix}-{n}"
            await engine.save(Note(owner=prefix, n=n, text=key))
            returned.add(key)

        for round_ in range(20):
            tasks = [asyncio.create_task(save(round_ * 50 + i)) for i in range(50)]
            for _ in range(rng.randint(0, 6)):
                await asyncio.sleep(0)  # let some get somewhere before cancelling
            for task in rng.sample(tasks, 25):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        stored = {n.text async for n in engine.query(Note).key(Note.owner == prefix).consistent()}
        # After all the cancellations the engine still works.
        await engine.save(Note(owner=prefix, n=-1, text="after"))
        await engine.load(Note(owner=prefix, n=-1))
        return returned, stored

    returned, stored = run(body, table_template)
    assert returned <= stored
    assert len(returned) >= 500  # the uncancelled half at least


def test_coroutine_receivers_are_awaited_and_plain_ones_called(table_template: str) -> None:
    seen: list[str] = []

    async def async_receiver(sender: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0)
        seen.append(f"async {kwargs['obj'].id}")

    def plain_receiver(sender: Any, **kwargs: Any) -> None:
        seen.append(f"plain {kwargs['obj'].id}")

    async def body(engine: AsyncEngine) -> None:
        with (
            signals.object_saved.connected_to(async_receiver, sender=User),
            signals.object_saved.connected_to(plain_receiver, sender=User),
        ):
            await engine.save(User(id="sig-" + uid()))

    run(body, table_template)
    assert sorted(s.split()[0] for s in seen) == ["async", "plain"]


def test_transactions_and_collections(table_template: str) -> None:
    async def body(engine: AsyncEngine) -> list[str]:
        user = uid()
        async with engine.transaction() as tx:
            tx.save(Profile(user=user, bio="hi"), Post(user=user, n=1), Post(user=user, n=2))
        async with engine.transaction("r") as rx:
            profile = Profile(user=user)
            rx.load(profile)
        assert profile.bio == "hi"
        query = engine.query(Collection(Post, Profile)).key(Post.pk == f"USER#{user}")
        return [type(x).__name__ async for x in query]

    assert run(body, table_template) == ["Post", "Post", "Profile"]


def test_a_stream_gives_changes_with_await(table_template: str) -> None:
    async def body(engine: AsyncEngine) -> list[Change]:
        stream = engine.stream(User, "latest")
        assert await anext(stream) is None  # opened at the end: caught up
        key = uid()
        await engine.save(User(id=key, name="s"))
        changes: list[Change] = []
        for _ in range(200):
            change = await anext(stream)
            if change is not None and change.key["id"] == key:
                changes.append(change)
                break
        assert stream.token["shards"]
        return changes

    (change,) = run(body, table_template)
    assert change.event == "insert" and change.new.name == "s"


def test_the_sync_and_async_engines_send_the_same_requests(
    table_template: str, recorder: Any
) -> None:
    """One core: a save, a load and a query are the same requests from both shells."""
    sync_engine, recorded = recorder
    sent: list[tuple[str, dict[str, Any]]] = []

    class Recording:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def call(self, service: Any, operation: str, params: dict[str, Any]) -> Any:
            sent.append((operation, params))
            return await self.inner.call(service, operation, params)

    key = uid()

    def sync_side(engine: Engine) -> None:
        engine.save(Note(owner=key, n=1, text="a"))
        engine.load(Note(owner=key, n=1))
        engine.query(Note).key(Note.owner == key).all()

    async def async_side() -> None:
        from streamodel.transport import AsyncLeanTransport

        engine = AsyncEngine(
            table_name_template=table_template, transport=Recording(AsyncLeanTransport())
        )
        try:
            await engine.save(Note(owner=key, n=1, text="a"))
            await engine.load(Note(owner=key, n=1))
            await engine.query(Note).key(Note.owner == key).all()
        finally:
            await engine.close()

    sync_side(sync_engine)
    asyncio.run(async_side())
    mine = [(op, params) for _, op, params in recorded.calls]
    assert mine == sent
