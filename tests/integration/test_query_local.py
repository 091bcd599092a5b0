"""Queries and scans on DynamoDB Local: resumable tokens, projections, counts, parallel
scans and key validation."""

from __future__ import annotations

import json
import uuid

import pytest

from streamodel import (
    Binary,
    Column,
    Engine,
    GlobalSecondaryIndex,
    Integer,
    InvalidConditionError,
    LocalSecondaryIndex,
    String,
    new_base,
)

Base = new_base()


class Entry(Base):
    part = Column(String, hash_key=True)
    seq = Column(Integer, range_key=True)
    kind = Column(String)
    body = Column(String)
    extra = Column(String)
    by_kind = GlobalSecondaryIndex(hash_key="kind", range_key="seq", projection=["body"])
    by_body = LocalSecondaryIndex(range_key="body", projection="keys")


class Bin(Base):
    id = Column(Binary, hash_key=True)
    marker = Column(String)


@pytest.fixture(scope="module", autouse=True)
def bound(engine: Engine) -> None:
    engine.bind(base=Base)


@pytest.fixture(scope="module")
def part(engine: Engine) -> str:
    """A partition of 30 entries (kinds a/b/c), written with a batch put."""
    key = uuid.uuid4().hex
    entries = [
        Entry(part=key, seq=i, kind=f"{key}-{'abc'[i % 3]}", body=f"b{i:02}") for i in range(30)
    ]
    engine.save(*entries, replace=True)
    return key


def test_tokens_resume_a_query_across_pages(engine: Engine, part: str) -> None:
    """Stopping anywhere and resuming from the JSON round-tripped token gives every entry
    exactly once, in order, with a filter and small pages."""
    query = engine.query(Entry, page_size=4).key(Entry.part == part).filter(Entry.body >= "b05")
    seen: list[int] = []
    token = None
    for stop_after in (1, 4, 5, 100):
        results = iter(query.move_to(token))
        for _, entry in zip(range(stop_after), results, strict=False):
            seen.append(entry.seq)
        token = results.token
        if token is None:
            break
        token = json.loads(json.dumps(token))
    assert seen == list(range(5, 30))
    assert token is None


def test_token_on_a_gsi_and_descending(engine: Engine, part: str) -> None:
    """A GSI query backwards resumes from its token (table and index keys)."""
    query = engine.query(Entry.by_kind).key(Entry.kind == f"{part}-a").forward(False)
    results = iter(query.page_size(2))
    first = [next(results).seq for _ in range(3)]
    rest = [e.seq for e in query.move_to(results.token)]
    assert first + rest == list(range(27, -1, -3))


def test_binary_key_tokens(engine: Engine) -> None:
    """A scan over binary keys resumes from a token carrying them as base64."""
    marker = uuid.uuid4().hex
    engine.save(*[Bin(id=bytes([i, 255 - i]), marker=marker) for i in range(6)], replace=True)
    scan = engine.scan(Bin).filter(Bin.marker == marker)
    results = iter(scan)
    first = next(results)
    token = json.loads(json.dumps(results.token))
    rest = list(scan.move_to(token))
    assert sorted(b.id for b in [first, *rest]) == sorted(bytes([i, 255 - i]) for i in range(6))


def test_projections_and_counts(engine: Engine, part: str) -> None:
    """Column projections bring the keys along; 'keys' on an LSI; count() without items."""
    entry = engine.query(Entry).key(Entry.part == part).project(["kind"]).first()
    assert (entry.part, entry.seq, entry.kind, entry.body) == (part, 0, f"{part}-a", None)
    keys = engine.query(Entry.by_body).key(Entry.part == part).project("keys").first()
    assert (keys.seq, keys.body, keys.kind) == (0, "b00", None)
    gsi = engine.query(Entry.by_kind).key(Entry.kind == f"{part}-b").project(["body"]).first()
    assert (gsi.seq, gsi.body) == (1, "b01")
    assert engine.query(Entry).key(Entry.part == part).count() == 30
    assert engine.query(Entry, projection="count").key(Entry.part == part).count() == 30


def test_parallel_scan_finds_everything_once(engine: Engine, part: str) -> None:
    """A 4-worker parallel scan returns each matching item exactly once; count agrees."""
    scan = engine.scan(Entry, page_size=5).filter(Entry.part == part).parallel(4)
    assert sorted(e.seq for e in scan) == list(range(30))
    assert scan.count() == 30
    assert scan.first() is not None  # stopping early shuts the workers down


def test_key_conditions_validated(engine: Engine, part: str) -> None:
    """Filters on keys, range conditions on the hash key, projections outside a GSI and
    consistent reads on a GSI are refused with the column named."""
    with pytest.raises(InvalidConditionError, match="seq"):
        engine.query(Entry).key(Entry.part == part).filter(Entry.seq > 3)
    with pytest.raises(InvalidConditionError, match="part"):
        engine.query(Entry).key(Entry.part > "a")
    with pytest.raises(InvalidConditionError, match="not projected"):
        engine.query(Entry.by_kind).key(Entry.kind == "x").project(["extra"])
    with pytest.raises(InvalidConditionError):
        engine.query(Entry.by_kind, consistent=True)
