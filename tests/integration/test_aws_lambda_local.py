"""The Lambda handler against DynamoDB Local streams, driven by the emulated event source
mapping: identical Changes, partial batches, exactly-once projections, dead letters."""

from __future__ import annotations

import importlib.util
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.exceptions import MissingObjectsError
from streamodel.stream import Change, Worker
from streamodel.stream.aws_lambda import (
    botocore_record,
    lambda_event,
    lambda_record,
)
from streamodel.stream.coordinator import Coordinator
from streamodel.stream.records import decode_record
from streamodel.testing.event_source_mapping import LocalEventSourceMapping
from streamodel.transactions import WriteTransaction
from streamodel.types import ALL_TYPES

Base = new_base()


class Source(Base):
    class Meta:
        table_name = "lambda-source"

    id = Column(String, hash_key=True)
    count = Column(Integer)


class Note(Base):
    class Meta:
        table_name = "lambda-note"

    id = Column(String, hash_key=True)
    text = Column(String)


class Total(Base):
    """A projection of Source kept by a transactional subscriber."""

    class Meta:
        table_name = "lambda-total"
        stream = None

    id = Column(String, hash_key=True)
    changes = Column(Integer)
    last = Column(Integer)
    version = Column(Integer, version=True)


Typed = type(
    "LambdaTyped",
    (Base,),
    {
        "Meta": type("Meta", (), {"table_name": "lambda-typed"}),
        "id": Column(String, hash_key=True),
        **{f"c{i}": Column(factory()) for i, (factory, _) in enumerate(ALL_TYPES)},
    },
)


@pytest.fixture(scope="module", autouse=True)
def bound(engine: Engine) -> None:
    """Bind this module's models once."""
    engine.bind(base=Base)


def group() -> str:
    return f"l{uuid.uuid4().hex[:12]}"


def read_raw(reader: Coordinator, expected: int, timeout: float = 20.0) -> list[Any]:
    """Raw records from ``reader`` until ``expected`` arrived or the deadline passed."""
    records: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        raw = reader.next_record()
        if raw is not None:
            records.append(raw)
    return records


def test_lambda_changes_equal_reader_changes_for_every_type(engine: Engine) -> None:
    """Records of DynamoDB Local's stream, in Lambda's JSON shape, give Changes equal, type for
    type, to engine.stream's for every type in ALL_TYPES (a TTL-marked delete is expired)."""
    stream = engine.stream(Typed, "latest")
    reader = Coordinator(engine.transport, engine.stream_arn(Typed), "latest")
    values = {f"c{i}": sample for i, (_, sample) in enumerate(ALL_TYPES)}
    obj = Typed(id=uuid.uuid4().hex, **values)
    engine.save(obj)
    obj.c0 = "changed"
    engine.save(obj)
    engine.delete(obj)
    expected: list[Change] = []
    deadline = time.monotonic() + 20
    while len(expected) < 3 and time.monotonic() < deadline:
        change = next(stream)
        if change is not None:
            expected.append(change)
    raws = read_raw(reader, 3)
    assert len(expected) == len(raws) == 3

    records = [lambda_record(r.record, event_source_arn=reader.stream_arn) for r in raws]
    ttl_remove = dict(
        records[2], userIdentity={"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    )
    worker = Worker(engine, group=group())
    got: list[Change] = []
    worker.subscribe(Typed)(got.append)
    assert worker.lambda_handler(lambda_event([*records, ttl_remove]), None) == {
        "batchItemFailures": []
    }
    assert len(got) == 4
    for mine, theirs in zip(got, expected, strict=False):
        assert mine.event == theirs.event
        assert mine.key == theirs.key
        assert mine.changed == theirs.changed
        assert mine.sequence_number == theirs.sequence_number
        assert mine.event_id == theirs.event_id
        assert mine.created_at == theirs.created_at
        assert mine.expired is theirs.expired is False
        for side in ("old", "new"):
            a, b = getattr(mine, side), getattr(theirs, side)
            assert (a is None) == (b is None), side
            for name in values if a is not None else ():
                va, vb = getattr(a, name), getattr(b, name)
                assert type(va) is type(vb) and va == vb, (side, name)
    assert got[3].event == "remove" and got[3].expired
    # The converter restores exactly what botocore gave the reader.
    assert botocore_record(records[0])["dynamodb"] == {
        **raws[0].record["dynamodb"],
        "ApproximateCreationDateTime": expected[0].created_at,
    }
    # And decoding that shape directly agrees as well.
    direct = decode_record(
        Typed, raws[1].record, shard_id=raws[1].shard_id, sequence_number=raws[1].sequence_number
    )
    assert direct.changed == got[1].changed == ("c0",)


def test_failing_record_is_retried_alone_and_order_per_item_holds(engine: Engine) -> None:
    """A record whose handler fails is retried from that record, without redelivering the
    records before it, and every item's changes are handled once each, in order."""
    worker = Worker(engine, group=group(), max_attempts=5)
    handled: list[tuple[str, int]] = []
    failures = {"left": 2}
    ids = [uuid.uuid4().hex for _ in range(3)]

    @worker.subscribe(Source)
    def handler(change: Change) -> None:
        if change.key["id"] == ids[1] and change.new.count == 2 and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("transient")
        handled.append((change.key["id"], change.new.count))

    mapping = LocalEventSourceMapping(
        engine, Source, worker.lambda_handler, batch_size=4, start="latest"
    )
    for n in range(4):
        for i in ids:
            engine.save(Source(id=i, count=n))
    invocations = mapping.run()

    assert handled == [(i, n) for n in range(4) for i in ids]  # each once, in stream order
    failed = [inv for inv in invocations if inv.response["batchItemFailures"]]
    assert len(failed) == 2
    failing_seq = failed[0].response["batchItemFailures"][0]["itemIdentifier"]
    retried = invocations[invocations.index(failed[0]) + 1]
    assert retried.sequence_numbers[0] == failing_seq  # resumes at the failed record
    assert failed[1].sequence_numbers[0] == failing_seq
    assert not list(worker.store.dead_letters())


def test_transactional_projection_stays_exact_across_retries_and_redeliveries(
    engine: Engine,
) -> None:
    """A projection written by a transactional subscriber equals the source after failing
    invocations and after Lambda delivers whole batches again."""
    worker = Worker(engine, group=group(), max_attempts=10)
    ids = [uuid.uuid4().hex for _ in range(2)]
    calls = {"tx": 0}
    flaky = {"plain": 2, "tx": 2}

    @worker.subscribe(Source)
    def plain(change: Change) -> None:
        # Fails after the transactional step of some records committed: the retry must not
        # apply them again.
        if change.new is not None and change.new.count % 3 == 1 and flaky["plain"]:
            flaky["plain"] -= 1
            raise RuntimeError("plain handler fails once")

    @worker.subscribe(Source, transactional=True)
    def project(change: Change, tx: WriteTransaction) -> None:
        calls["tx"] += 1
        if change.new is not None and change.new.count == 5 and flaky["tx"]:
            flaky["tx"] -= 1
            raise RuntimeError("projection fails")
        total = Total(id=change.key["id"])
        try:
            engine.load(total, consistent=True)
        except MissingObjectsError:
            total.changes = 0
        total.changes += 1
        total.last = change.new.count if change.new is not None else -1
        tx.save(total)

    mapping = LocalEventSourceMapping(
        engine, Source, worker.lambda_handler, batch_size=3, start="latest"
    )
    rounds = 7
    for n in range(rounds):
        for i in ids:
            engine.save(Source(id=i, count=n))
    engine.delete(Source(id=ids[0]))
    invocations = mapping.run()
    assert any(inv.response["batchItemFailures"] for inv in invocations)
    for inv in list(invocations):  # Lambda delivers every batch again, e.g. after a timeout
        assert mapping.redeliver(inv).response == {"batchItemFailures": []}

    first, second = Total(id=ids[0]), Total(id=ids[1])
    engine.load(first, second, consistent=True)
    assert (first.changes, first.last) == (rounds + 1, -1)
    assert (second.changes, second.last) == (rounds, rounds - 1)
    # Redelivered changes never reached the transactional handler again.
    assert calls["tx"] == 2 * rounds + 1 + 2


def test_poison_record_is_dead_lettered_after_max_attempts(engine: Engine) -> None:
    """A record that keeps failing is retried for max_attempts invocations, then goes whole to
    the worker's dead letters, and the records after it are handled."""
    name = group()
    worker = Worker(engine, group=name, max_attempts=3)
    poison, after = uuid.uuid4().hex, uuid.uuid4().hex
    handled: list[str] = []
    tries = {"n": 0}

    @worker.subscribe(Source)
    def handler(change: Change) -> None:
        if change.key["id"] == poison:
            tries["n"] += 1
            raise RuntimeError("cannot handle this one")
        handled.append(change.key["id"])

    mapping = LocalEventSourceMapping(
        engine, Source, worker.lambda_handler, batch_size=10, start="latest"
    )
    engine.save(Source(id=poison, count=1))
    engine.save(Source(id=after, count=2))
    invocations = mapping.run()

    assert tries["n"] == 3
    assert [bool(inv.response["batchItemFailures"]) for inv in invocations] == [True, True, False]
    assert handled == [after]
    (letter,) = list(worker.store.dead_letters())
    assert letter.record["dynamodb"]["Keys"]["id"] == {"S": poison}
    assert letter.attempts == 3 and "cannot handle this one" in letter.error
    assert letter.sequence_number == invocations[0].sequence_numbers[0]


def test_tracking_and_attempt_items_expire_by_ttl(engine: Engine) -> None:
    """The state items Lambda handling writes carry expires_at (two days on, past the
    stream's 24 hours), and binding them turns DynamoDB's TTL on for the state table."""
    worker = Worker(engine, group=group(), max_attempts=5)
    fails = {"n": 1}

    @worker.subscribe(Source, transactional=True)
    def project(change: Change, tx: WriteTransaction) -> None:
        if fails["n"]:
            fails["n"] -= 1
            raise RuntimeError("first try fails")
        tx.save(Total(id=change.key["id"], changes=1, last=0))

    mapping = LocalEventSourceMapping(
        engine, Source, worker.lambda_handler, batch_size=10, start="latest"
    )
    engine.save(Source(id=uuid.uuid4().hex, count=1))
    before = time.time()
    assert [bool(inv.response["batchItemFailures"]) for inv in mapping.run()] == [True, False]
    state = engine.table_name(worker.lambda_handler.AppliedChange)
    items = engine.transport.call(
        "dynamodb",
        "Scan",
        {
            "TableName": state,
            "FilterExpression": "begins_with(pk, :scope)",
            "ExpressionAttributeValues": {":scope": {"S": f"lambda|{worker.group}|"}},
            "ConsistentRead": True,
        },
    )["Items"]
    kinds = sorted(item["sk"]["S"].split("|")[0] for item in items)
    assert kinds == ["applied", "attempts"]
    for item in items:
        expires = int(item["expires_at"]["N"])
        assert before + 2 * 86400 - 5 <= expires <= time.time() + 2 * 86400 + 5
    ttl = engine.transport.call("dynamodb", "DescribeTimeToLive", {"TableName": state})
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    assert ttl["TimeToLiveDescription"]["TimeToLiveStatus"] in ("ENABLED", "ENABLING")


def test_records_of_two_models_in_one_batch_are_routed_by_table(engine: Engine) -> None:
    """Each record of a batch mixing two tables reaches the subscribers of its own model."""
    sources = Coordinator(engine.transport, engine.stream_arn(Source), "latest")
    notes = Coordinator(engine.transport, engine.stream_arn(Note), "latest")
    key = uuid.uuid4().hex
    engine.save(Source(id=key, count=1))
    engine.save(Note(id=key, text="hello"))
    (source_raw,) = read_raw(sources, 1)
    (note_raw,) = read_raw(notes, 1)
    event = lambda_event(
        [
            lambda_record(note_raw.record, event_source_arn=notes.stream_arn),
            lambda_record(source_raw.record, event_source_arn=sources.stream_arn),
        ]
    )
    worker = Worker(engine, group=group())
    seen: list[tuple[str, Any]] = []
    worker.subscribe(Source)(lambda c: seen.append(("source", c.new.count)))
    worker.subscribe(Note)(lambda c: seen.append(("note", c.new.text)))
    assert worker.lambda_handler(event, None) == {"batchItemFailures": []}
    assert seen == [("note", "hello"), ("source", 1)]


def test_example_function_keeps_its_projection_exact(engine: Engine) -> None:
    """examples/lambda_function.py's subscribers, run through the emulated mapping, keep
    customer totals equal to the orders written."""
    path = Path(__file__).resolve().parents[2] / "examples" / "lambda_function.py"
    spec = importlib.util.spec_from_file_location("lambda_function_example", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    engine.bind(base=example.Base)
    worker = example.build_worker(engine)
    worker.group = group()
    mapping = LocalEventSourceMapping(
        engine, example.Order, worker.lambda_handler, batch_size=4, start="latest"
    )
    customer = uuid.uuid4().hex
    orders = [example.Order(id=uuid.uuid4().hex, customer=customer, amount=n) for n in range(6)]
    engine.save(*orders)
    orders[1].amount = 10
    engine.save(orders[1])
    engine.delete(orders[2])
    mapping.run()
    total = example.CustomerTotal(customer=customer)
    engine.load(total, consistent=True)
    assert (total.orders, total.amount) == (5, 0 + 10 + 3 + 4 + 5)
