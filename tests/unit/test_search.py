"""Queries and scans: resumable tokens, parallel scans, flat memory, validation."""

from __future__ import annotations

import gc
import json
import threading
import tracemalloc
from typing import Any

import pytest

from streamodel import (
    Binary,
    Column,
    GlobalSecondaryIndex,
    Integer,
    InvalidConditionError,
    InvalidPositionError,
    String,
    new_base,
)

Base = new_base()


class Row(Base):
    part = Column(String, hash_key=True)
    seq = Column(Integer, range_key=True)
    tag = Column(String)
    by_tag = GlobalSecondaryIndex(hash_key="tag", projection="keys")


class Blob(Base):
    id = Column(Binary, hash_key=True)
    note = Column(String)


def rows(*seqs: int) -> list[dict[str, Any]]:
    return [{"part": {"S": "p"}, "seq": {"N": str(s)}, "tag": {"S": "t"}} for s in seqs]


def test_token_mid_page_resumes_after_the_last_object(engine: Any, transport: Any) -> None:
    """A token taken mid-page is the last returned object's key; a search moved to it
    sends that key as ExclusiveStartKey."""
    transport.queue("Query", {"Items": rows(1, 2, 3), "LastEvaluatedKey": rows(3)[0]})
    results = iter(engine.query(Row).key(Row.part == "p"))
    assert results.token == {"v": 1, "after": None}
    assert next(results).seq == 1
    token = results.token
    assert token == {"v": 1, "after": {"part": {"S": "p"}, "seq": {"N": "1"}}}
    json.dumps(token)
    transport.calls.clear()
    list(engine.query(Row).key(Row.part == "p").move_to(token))
    assert transport.only("Query")["ExclusiveStartKey"] == {
        "part": {"S": "p"},
        "seq": {"N": "1"},
    }


def test_token_after_a_page_is_dynamodbs_key_and_none_at_the_end(
    engine: Any, transport: Any
) -> None:
    """After a page's last object the token is LastEvaluatedKey; after the very last
    object it is None (nothing more), without another call."""
    last = {"part": {"S": "p"}, "seq": {"N": "9"}}  # a filter skipped items up to 9
    transport.queue("Query", {"Items": rows(1), "LastEvaluatedKey": last}, {"Items": rows(10)})
    results = iter(engine.query(Row).key(Row.part == "p"))
    next(results)
    assert results.token == {"v": 1, "after": {"part": {"S": "p"}, "seq": {"N": "9"}}}
    assert transport.operations() == ["Query"]
    next(results)
    assert results.token is None
    assert transport.operations() == ["Query", "Query"]


def test_limit_then_resume(engine: Any, transport: Any) -> None:
    """limit(n) stops after n objects; the token continues from there."""
    transport.queue("Query", {"Items": rows(1, 2, 3, 4)})
    results = iter(engine.query(Row).key(Row.part == "p").limit(2))
    assert [r.seq for r in results] == [1, 2]
    assert results.token == {"v": 1, "after": {"part": {"S": "p"}, "seq": {"N": "2"}}}


def test_binary_keys_are_base64_in_tokens(engine: Any, transport: Any) -> None:
    """Binary key values go into tokens as base64 text and come back as bytes."""
    transport.queue("Scan", {"Items": [{"id": {"B": b"\x00\xff"}}, {"id": {"B": b"\x01"}}]})
    results = iter(engine.scan(Blob))
    next(results)
    token = results.token
    assert token == {"v": 1, "after": {"id": {"B": "AP8="}}}
    transport.calls.clear()
    engine.scan(Blob, start=json.loads(json.dumps(token))).first()
    assert transport.only("Scan")["ExclusiveStartKey"] == {"id": {"B": b"\x00\xff"}}


def test_index_tokens_carry_table_and_index_keys(engine: Any, transport: Any) -> None:
    """On an index the position is the table keys plus the index keys."""
    transport.queue("Query", {"Items": rows(1, 2)})
    results = iter(engine.query(Row.by_tag).key(Row.tag == "t"))
    next(results)
    assert results.token == {
        "v": 1,
        "after": {"part": {"S": "p"}, "seq": {"N": "1"}, "tag": {"S": "t"}},
    }


@pytest.mark.parametrize(
    "token",
    [
        {"after": None},
        {"v": 1},
        {"v": 1, "after": {"part": {"S": "p"}}},
        {"v": 1, "after": {"part": {"S": "p"}, "seq": {"N": 1}}},
        {"v": 1, "after": {"part": {"X": "p"}, "seq": {"N": "1"}}},
        "nope",
    ],
)
def test_malformed_tokens_refused(engine: Any, token: Any) -> None:
    """A token that is malformed or from another search raises InvalidPositionError."""
    with pytest.raises(InvalidPositionError):
        engine.query(Row).key(Row.part == "p").move_to(token)


def test_parallel_scan_reads_every_segment(engine: Any, transport: Any) -> None:
    """parallel(4) scans segments 0..3 of 4 on worker threads, following each one's pages."""
    threads: set[str] = set()
    lock = threading.Lock()

    def answer(params: dict[str, Any]) -> dict[str, Any]:
        with lock:
            threads.add(threading.current_thread().name)
        segment = params["Segment"]
        if "ExclusiveStartKey" in params:
            return {"Items": rows(segment * 10 + 1)}
        return {"Items": rows(segment * 10), "LastEvaluatedKey": rows(segment * 10)[0]}

    transport.queue("Scan", *[answer] * 8)
    found = sorted(r.seq for r in engine.scan(Row).filter(Row.tag == "t").parallel(4))
    assert found == [0, 1, 10, 11, 20, 21, 30, 31]
    segments = sorted((p["Segment"], p["TotalSegments"]) for _, _, p in transport.calls)
    assert segments == sorted([(s, 4) for s in range(4)] * 2)
    assert all(name.startswith("streamodel-scan") for name in threads)


def test_parallel_count_and_errors(engine: Any, transport: Any) -> None:
    """count() on a parallel scan sums every segment; a segment's error reaches the caller."""
    transport.queue("Scan", *[{"Count": 5}] * 3)
    assert engine.scan(Row).parallel(3).count() == 15
    transport.queue("Scan", RuntimeError("segment failed"), *[{"Items": []}] * 2)
    with pytest.raises(RuntimeError, match="segment failed"):
        engine.scan(Row).parallel(3).all()


def test_parallel_refusals(engine: Any) -> None:
    """parallel() is for scans, takes 1..1000 workers and no segment() or token."""
    with pytest.raises(InvalidConditionError):
        engine.query(Row).parallel(2)
    with pytest.raises(ValueError):
        engine.scan(Row).parallel(0)
    with pytest.raises(InvalidConditionError):
        engine.scan(Row).segment(0, 2).parallel(2)
    with pytest.raises(InvalidConditionError):
        iter(engine.scan(Row).parallel(2)).token  # noqa: B018


def test_iteration_memory_stays_flat(engine: Any, transport: Any) -> None:
    """Iterating 100k items over 1000 pages holds one page at a time: peak memory stays
    far below what 100k objects take."""
    pages = 1000

    def answer(params: dict[str, Any]) -> dict[str, Any]:
        start = int(params.get("ExclusiveStartKey", {"seq": {"N": "0"}})["seq"]["N"])
        items = rows(*range(start + 1, start + 101))
        return {"Items": items, **({"LastEvaluatedKey": items[-1]} if start < 99_900 else {})}

    transport.queue("Scan", *[answer] * pages)
    transport.calls = _Forgetful()
    gc.collect()
    tracemalloc.start()
    try:
        count = 0
        for _ in engine.scan(Row):
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 100_000
    assert peak < 5_000_000  # 100k objects would be tens of megabytes


class _Forgetful(list[Any]):
    """A call log that keeps nothing, so the test measures the search, not the fake."""

    def append(self, item: Any) -> None:
        pass


def test_parallel_scan_closed_from_one_of_its_own_threads() -> None:
    """An abandoned parallel scan may be closed by the garbage collector on one of its own
    worker threads; closing it there must not try to wait for that thread itself."""
    from streamodel.parallel import parallel_pages

    holder: dict[str, Any] = {}
    received, closed = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    class Segment:
        def pages(self, count: bool = False) -> Any:
            yield {"Items": []}
            assert received.wait(5)  # the consumer holds the first page: it is suspended
            try:
                holder["pages"].close()  # runs the generator's cleanup in this worker thread
            except BaseException as error:  # what the garbage collector would swallow
                errors.append(error)
            closed.set()
            yield {"Items": []}

    class FakeSearch:
        def segment(self, segment: int, total: int) -> Segment:
            return Segment()

    holder["pages"] = parallel_pages(FakeSearch(), 1)  # type: ignore[arg-type]
    assert next(holder["pages"]) == {"Items": []}
    received.set()
    assert closed.wait(5)
    assert errors == []
