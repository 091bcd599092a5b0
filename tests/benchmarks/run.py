"""``make bench``: streamodel against hand-written dicts, boto3 and PynamoDB, in one run.

Measures, on one 11-attribute model (strings, int, Decimal, bool, aware datetime, string set,
3-key map, 5-number list, version):

* CPU only: object -> wire, wire -> object, object -> full save request;
* against a DynamoDB Local started here: saves, single gets, batch gets, a scan and a query
  of N items, one-column updates, versioned updates (raw boto3 client, PynamoDB, streamodel
  on the botocore and on the lean transport): ops/s, ratio to raw boto3, p50 latency and
  client CPU per operation;
* streams: replay of N changes from TRIM_HORIZON into objects (raw boto3 loop with
  hand-written unpacking vs ``engine.stream``), and save -> handler latency of a Worker;
* over TLS: the single-item operations, a scan and a query against the same DynamoDB Local
  behind loopback TLS terminators (``tls_front.py``, a test CA trusted through
  ``AWS_CA_BUNDLE`` / ``verify=``), raw boto3 and streamodel on both transports, with the
  new TLS connections counted during the timed rounds;
* cold start: process start to the first answered ``GetItem``, a child process per run, for
  streamodel, raw boto3 and PynamoDB.

Then, each in a process of its own: ``snapshot_bench.py`` (snapshots and migrations),
``async_transport.py`` (the asyncio transport's HTTP layer against aiohttp and httpx, client
CPU against a stub) and ``aio_bench.py`` (``AsyncEngine`` against aioboto3, aiodynamo and the
sync ``Engine`` on threads: loads at 1 to 256 in flight, client CPU against a stub, 10,000
concurrent saves) and ``aio_worker_bench.py`` (stream replay, ``AsyncWorker`` against
``Worker``); ``--no-aio`` skips the asyncio ones, ``--scaling`` adds ``scaling.py``.

Usage: ``python tests/benchmarks/run.py [--n 500] [--write docs/performance.md]``
(``BENCH_N`` also sets N). The default run takes about four minutes on two cores.
"""

from __future__ import annotations

import argparse
import compileall
import cProfile
import dataclasses
import datetime
import decimal
import gc
import io
import json
import os
import platform
import pstats
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.pop("AWS_PROFILE", None)
for _name in ("NO_PROXY", "no_proxy"):
    os.environ[_name] = ",".join(filter(None, [os.environ.get(_name), "127.0.0.1", "localhost"]))

import boto3  # noqa: E402  (the environment above must be set first)
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer  # noqa: E402

from streamodel import (  # noqa: E402
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    List,
    Map,
    Number,
    Set,
    String,
    new_base,
    writes,
)
from streamodel._diff import fill, plan_save  # noqa: E402
from streamodel.models import new_instance  # noqa: E402
from streamodel.testing.local import DynamoDBLocal  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
UTC = datetime.UTC

# -- the model, four ways -----------------------------------------------------------------

Base = new_base()


class Account(Base):
    class Meta:
        table_name = "Account"

    tenant = Column(String, hash_key=True)
    id = Column(String, range_key=True)
    name = Column(String)
    age = Column(Integer)
    balance = Column(Number)
    active = Column(Boolean)
    created = Column(DateTime)
    tags = Column(Set(String))
    address = Column(Map(street=String, city=String, zip=String))
    scores = Column(List(Number))
    version = Column(Integer, version=True)


@dataclasses.dataclass
class Plain:
    """The object hand-written code and boto3's (de)serializers work with."""

    tenant: str
    id: str
    name: str
    age: int
    balance: decimal.Decimal
    active: bool
    created: datetime.datetime
    tags: set[str]
    address: dict[str, str]
    scores: list[decimal.Decimal]
    version: int


def sample_values(tenant: str, i: int) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "id": f"id-{i:08d}",
        "name": f"user number {i}",
        "age": 20 + i % 50,
        "balance": decimal.Decimal(f"{i}.25"),
        "active": i % 2 == 0,
        "created": datetime.datetime(2024, 5, 17, 12, 30, 45, 123000, tzinfo=UTC),
        "tags": {"alpha", "beta", f"t{i % 7}"},
        "address": {"street": "1 Main St", "city": "Springfield", "zip": "12345"},
        "scores": [decimal.Decimal(x) for x in ("1", "2.5", "3", "4.75", "5")],
        "version": 1,
    }


def hand_dump(o: Plain) -> dict[str, Any]:
    """The floor: a hand-written object -> wire function."""
    return {
        "tenant": {"S": o.tenant},
        "id": {"S": o.id},
        "name": {"S": o.name},
        "age": {"N": str(o.age)},
        "balance": {"N": str(o.balance)},
        "active": {"BOOL": o.active},
        "created": {"S": o.created.isoformat()},
        "tags": {"SS": list(o.tags)},
        "address": {"M": {k: {"S": v} for k, v in o.address.items()}},
        "scores": {"L": [{"N": str(x)} for x in o.scores]},
        "version": {"N": str(o.version)},
    }


def hand_load(item: dict[str, Any]) -> Plain:
    """The floor: a hand-written wire -> object function."""
    return Plain(
        tenant=item["tenant"]["S"],
        id=item["id"]["S"],
        name=item["name"]["S"],
        age=int(item["age"]["N"]),
        balance=decimal.Decimal(item["balance"]["N"]),
        active=item["active"]["BOOL"],
        created=datetime.datetime.fromisoformat(item["created"]["S"]),
        tags=set(item["tags"]["SS"]),
        address={k: v["S"] for k, v in item["address"]["M"].items()},
        scores=[decimal.Decimal(v["N"]) for v in item["scores"]["L"]],
        version=int(item["version"]["N"]),
    )


def hand_save_request(o: Plain, table: str) -> dict[str, Any]:
    """The floor for a full versioned save request (a conditional PutItem)."""
    return {
        "TableName": table,
        "Item": {**hand_dump(o), "version": {"N": str(o.version + 1)}},
        "ConditionExpression": "attribute_not_exists(#v) OR #v = :v",
        "ExpressionAttributeNames": {"#v": "version"},
        "ExpressionAttributeValues": {":v": {"N": str(o.version)}},
    }


_SER = TypeSerializer()
_DESER = TypeDeserializer()


def boto3_dump(o: Plain) -> dict[str, Any]:
    values = dataclasses.asdict(o)
    values["created"] = o.created.isoformat()
    return {k: _SER.serialize(v) for k, v in values.items()}


def boto3_load(item: dict[str, Any]) -> Plain:
    values = {k: _DESER.deserialize(v) for k, v in item.items()}
    values["age"] = int(values["age"])
    values["version"] = int(values["version"])
    values["created"] = datetime.datetime.fromisoformat(values["created"])
    return Plain(**values)


def pynamodb_model(endpoint: str, table: str) -> Any:
    """The same model declared with PynamoDB 6."""
    from pynamodb import attributes as a
    from pynamodb.models import Model

    class Address(a.MapAttribute[str, Any]):
        street = a.UnicodeAttribute()
        city = a.UnicodeAttribute()
        zip = a.UnicodeAttribute()

    class PynamoAccount(Model):
        class Meta:
            table_name = table
            host = endpoint
            region = os.environ["AWS_DEFAULT_REGION"]
            aws_access_key_id = os.environ["AWS_ACCESS_KEY_ID"]
            aws_secret_access_key = os.environ["AWS_SECRET_ACCESS_KEY"]
            billing_mode = "PAY_PER_REQUEST"
            # Every table in the run has a stream, as streamodel's do: streams cost server time.
            stream_view_type = "NEW_AND_OLD_IMAGES"

        tenant = a.UnicodeAttribute(hash_key=True)
        id = a.UnicodeAttribute(range_key=True)
        name = a.UnicodeAttribute()
        age = a.NumberAttribute()
        balance = a.NumberAttribute()  # PynamoDB numbers are floats: no Decimal type
        active = a.BooleanAttribute()
        created = a.UTCDateTimeAttribute()
        tags = a.UnicodeSetAttribute()
        address = Address()
        scores = a.ListAttribute(of=a.NumberAttribute)
        version = a.VersionAttribute()

    return PynamoAccount


def pynamo_values(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    out.pop("version")
    out["balance"] = float(values["balance"])
    out["scores"] = [float(x) for x in values["scores"]]
    return out


# -- measuring ------------------------------------------------------------------------------


def cpu_per_item(fn: Callable[[], Any], iterations: int, rounds: int) -> float:
    """Seconds per call of ``fn`` in the best of ``rounds`` rounds of ``iterations`` calls,
    as ``timeit`` reports it: slower rounds are other work on the machine, not ``fn``. The
    garbage collector is paused, as ``timeit`` does (a full collection's cost depends on
    everything else the process holds, not on ``fn``)."""
    for _ in range(min(200, iterations)):
        fn()
    times = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(iterations):
                fn()
            times.append((time.perf_counter() - start) / iterations)
    finally:
        gc.enable()
    return min(times)


@dataclasses.dataclass
class Result:
    ops: int
    wall: float
    cpu: float
    latencies: list[float]
    # ops/s of each turn the client took (see ``interleaved``); empty for a single run.
    turn_rates: list[float] = dataclasses.field(default_factory=list)

    @property
    def ops_per_s(self) -> float:
        """The median over the client's turns: a pause of DynamoDB Local's JVM (or of the
        machine) slows one turn of one client, not that client's whole total."""
        if self.turn_rates:
            return statistics.median(self.turn_rates)
        return self.ops / self.wall

    @property
    def cpu_per_op(self) -> float:
        return self.cpu / self.ops

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")


def timed(calls: list[Callable[[], Any]], ops_per_call: int | None = 1) -> Result:
    """Run each call, timing each one; ``ops_per_call`` counts items per call (batches), or
    is None when each call returns the number of items it read (scans and queries)."""
    latencies = []
    count = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for call in calls:
        t0 = time.perf_counter()
        got = call()
        latencies.append(time.perf_counter() - t0)
        count += got if ops_per_call is None else ops_per_call
    return Result(count, time.perf_counter() - wall0, time.process_time() - cpu0, latencies)


def chunks(seq: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


# -- the runs -------------------------------------------------------------------------------

CLIENTS = ("raw boto3", "PynamoDB", "streamodel botocore", "streamodel lean")
SCANS = 3  # each client batch-gets, scans and queries its N items this many times


def written_item(plan: Any) -> dict[str, Any]:
    """The item a save plan of a new object writes."""
    names = [column.dynamo_name for column in plan.set_columns]
    return {**plan.key, **dict(zip(names, plan.set_wires, strict=True))}


def run_cpu(iterations: int, rounds: int) -> dict[str, dict[str, float]]:
    values = sample_values("cpu", 1)
    plain = Plain(**values)
    wire = hand_dump(plain)
    engine = Engine(endpoint_url="http://127.0.0.1:1")  # never contacted: CPU only
    obj = Account(**{k: v for k, v in values.items() if k != "version"})
    plan = plan_save(obj, condition=None, atomic=False)
    sm_wire = {
        **plan.key,
        **{c.dynamo_name: w for c, w in zip(plan.set_columns, plan.set_wires, strict=True)},
    }

    def sm_load() -> Any:
        target = new_instance(Account)
        fill(target, sm_wire)
        return target

    def sm_request() -> Any:
        return writes.save(engine.table_name(Account), obj).request

    pm = pynamodb_model("http://127.0.0.1:1", "cpu")
    pobj = pm(**pynamo_values(values))
    pwire = pobj.serialize()
    from pynamodb.connection.base import Connection

    sent: list[dict[str, Any]] = []

    def no_dispatch(self: Any, operation: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        sent.append(kwargs)
        return {}

    original = Connection.dispatch
    Connection.dispatch = no_dispatch  # type: ignore[method-assign]
    try:

        def pm_request() -> Any:
            pobj.version = 1  # each call saves version 1 -> 2 under its condition
            pobj.save()
            sent.clear()

        results = {
            "hand-written": {
                "dump": cpu_per_item(lambda: hand_dump(plain), iterations, rounds),
                "load": cpu_per_item(lambda: hand_load(wire), iterations, rounds),
                "request": cpu_per_item(lambda: hand_save_request(plain, "t"), iterations, rounds),
            },
            "boto3 TypeSerializer": {
                "dump": cpu_per_item(lambda: boto3_dump(plain), iterations, rounds),
                "load": cpu_per_item(lambda: boto3_load(wire), iterations, rounds),
            },
            "PynamoDB": {
                "dump": cpu_per_item(pobj.serialize, iterations, rounds),
                "load": cpu_per_item(lambda: pm.from_raw_data(pwire), iterations, rounds),
                "request": cpu_per_item(pm_request, iterations, rounds),
            },
            "streamodel": {
                "dump": cpu_per_item(
                    lambda: plan_save(obj, condition=None, atomic=False), iterations, rounds
                ),
                "load": cpu_per_item(sm_load, iterations, rounds),
                "request": cpu_per_item(sm_request, iterations, rounds),
            },
        }
    finally:
        Connection.dispatch = original  # type: ignore[method-assign]
    return results


LAMBDA_RECORDS = 1000
LAMBDA_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/{table}/stream/2024-05-17T12:00:00.000"


def lambda_modify_event(table: str, records: int = LAMBDA_RECORDS) -> dict[str, Any]:
    """A Lambda DynamoDB Streams event of ``records`` MODIFY records of the 11-attribute
    item (both images; the new one renamed and a version on), as Lambda's runtime delivers
    it: JSON-decoded, epoch-second creation times."""
    from streamodel.stream.aws_lambda import lambda_event, lambda_record

    arn = LAMBDA_ARN.format(table=table)
    built = []
    for i in range(records):
        old = hand_dump(Plain(**sample_values("lambda", i)))
        new = {**old, "name": {"S": f"renamed {i}"}, "version": {"N": "2"}}
        raw = {
            "eventID": f"event-{i}",
            "eventName": "MODIFY",
            "dynamodb": {
                "ApproximateCreationDateTime": datetime.datetime(
                    2024, 5, 17, 12, 30, i % 60, tzinfo=UTC
                ),
                "Keys": {"tenant": old["tenant"], "id": old["id"]},
                "OldImage": old,
                "NewImage": new,
                "SequenceNumber": str(10**20 + i),
                "SizeBytes": 600,
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
        }
        built.append(lambda_record(raw, event_source_arn=arn))
    return lambda_event(built)


def cpu_per_record(fn: Callable[[], int], records: int, rounds: int) -> float:
    """CPU seconds (``process_time``) per record of ``fn``, one call handling ``records``
    records, in the best of ``rounds`` calls after one warm-up call; the garbage collector
    paused, as in :func:`cpu_per_item`."""
    assert fn() == records
    times = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            start = time.process_time()
            handled = fn()
            times.append((time.process_time() - start) / records)
            assert handled == records, handled
    finally:
        gc.enable()
    return min(times)


def run_lambda(rounds: int) -> dict[str, float | str]:
    """CPU per record of one 1,000-record MODIFY event read three ways: streamodel's
    ``worker.lambda_handler`` (typed model objects), AWS Lambda Powertools' batch processor
    (both images deserialized to dicts) and a hand-written loop over boto3's
    ``TypeDeserializer`` (the floor). Each handler keeps what it made, and the batch reports
    no failures."""
    from streamodel.stream import Worker

    engine = Engine(endpoint_url="http://127.0.0.1:1")  # never contacted: CPU only
    event = lambda_modify_event(engine.table_name(Account))
    ok = {"batchItemFailures": []}
    results: dict[str, float | str] = {}

    deserialize = _DESER.deserialize

    def hand_written() -> int:
        kept = []
        for record in event["Records"]:
            data = record["dynamodb"]
            old = {k: deserialize(v) for k, v in data["OldImage"].items()}
            new = {k: deserialize(v) for k, v in data["NewImage"].items()}
            kept.append((old, new))
        return len(kept)

    results["hand-written loop, boto3 `TypeDeserializer`"] = cpu_per_record(
        hand_written, LAMBDA_RECORDS, rounds
    )

    try:
        from aws_lambda_powertools.utilities.batch import (
            BatchProcessor,
            EventType,
            process_partial_response,
        )
    except ImportError:
        results["AWS Lambda Powertools `BatchProcessor`"] = (
            "skipped: aws-lambda-powertools is not installed (pip install -e '.[bench]')"
        )
    else:
        processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
        images: list[Any] = []

        def keep_images(record: Any) -> None:
            images.append((record.dynamodb.old_image, record.dynamodb.new_image))

        def powertools() -> int:
            images.clear()
            response = process_partial_response(
                event=event, record_handler=keep_images, processor=processor, context=None
            )
            assert response == ok, response
            return len(images)

        results["AWS Lambda Powertools `BatchProcessor`"] = cpu_per_record(
            powertools, LAMBDA_RECORDS, rounds
        )

    worker = Worker(engine, group="bench")
    changes: list[Any] = []
    worker.subscribe(Account)(changes.append)
    handler = worker.lambda_handler

    def streamodel_handler() -> int:
        changes.clear()
        assert handler(event, None) == ok
        return len(changes)

    results["streamodel `worker.lambda_handler`"] = cpu_per_record(
        streamodel_handler, LAMBDA_RECORDS, rounds
    )
    change = changes[-1]
    assert type(change.new) is Account and change.changed == ("name", "version"), change
    return results


def report_lambda(rows: dict[str, float | str]) -> list[str]:
    floor = next(iter(rows.values()))
    lines = [
        f"### Lambda: one {LAMBDA_RECORDS:,}-record MODIFY event, CPU per record "
        "(best of rounds; lower is better)",
        "",
        "| handler | CPU per record | ratio |",
        "| --- | ---: | ---: |",
    ]
    for name, value in rows.items():
        if isinstance(value, str) or isinstance(floor, str):
            lines.append(f"| {name} | {value} | — |")
        else:
            lines.append(f"| {name} | {us(value)} µs | {value / floor:.2f}x |")
    lines += [
        "",
        "The same event, as Lambda's runtime delivers it (JSON-decoded, epoch-second times), "
        "of the 11-attribute item with both images; CPU only (`process_time`), nothing sent. "
        "Hand-written: a loop deserializing both images to dicts with boto3's "
        "`TypeDeserializer`. Powertools: `process_partial_response` with a "
        "`BatchProcessor(EventType.DynamoDBStreams)` whose record handler reads "
        "`old_image` and `new_image` (dicts). streamodel: `worker.lambda_handler` with one "
        "plain subscriber, each record decoded into a `Change` holding typed `Account` "
        "objects (old and new, key, changed columns) and dispatched, the partial batch "
        "response built as for a real invocation.",
        "",
    ]
    return lines


def profile(fn: Callable[[], Any], iterations: int, limit: int = 12) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(iterations):
        fn()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(limit)
    return out.getvalue()


def create_raw_table(client: Any, table: str) -> None:
    client.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "tenant", "KeyType": "HASH"},
            {"AttributeName": "id", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "tenant", "AttributeType": "S"},
            {"AttributeName": "id", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def warm_up(client: Any, table: str, count: int) -> None:
    """DynamoDB Local is a JVM: give its JIT some work before anything is measured."""
    for i in range(count):
        item = hand_dump(Plain(**sample_values("warm", i)))
        client.put_item(TableName=table, Item=item)
        client.get_item(TableName=table, Key={"tenant": item["tenant"], "id": item["id"]})
    client.query(
        TableName=table,
        KeyConditionExpression="tenant = :t",
        ExpressionAttributeValues={":t": {"S": "warm"}},
    )


Step = tuple[str, list[Callable[[], Any]], int | None]
"""One operation of a client: its name, its calls, and the items each call counts (None:
the call returns how many items it read)."""


def raw_steps(client: Any, table: str, n: int, tenant: str) -> Iterator[Step]:
    objs = [Plain(**sample_values(tenant, i)) for i in range(n)]
    keys = [{"tenant": {"S": o.tenant}, "id": {"S": o.id}} for o in objs]
    yield "save", [(lambda o=o: client.put_item(**hand_save_request(o, table))) for o in objs], 1
    for o in objs:
        o.version += 1
    yield (
        "get",
        [(lambda k=k: hand_load(client.get_item(TableName=table, Key=k)["Item"])) for k in keys],
        1,
    )

    def batch(chunk: list[dict[str, Any]]) -> list[Plain]:
        got: list[Plain] = []
        request: dict[str, Any] = {table: {"Keys": chunk}}
        while request:
            response = client.batch_get_item(RequestItems=request)
            got.extend(hand_load(item) for item in response["Responses"].get(table, []))
            request = response.get("UnprocessedKeys") or {}
        return got

    yield "batch get", [(lambda c=c: batch(c)) for c in chunks(keys, 100)] * SCANS, 100

    def paginate(operation: str, **params: Any) -> int:
        got: list[Plain] = []
        while True:
            response = getattr(client, operation)(TableName=table, **params)
            got.extend(hand_load(item) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return len(got)
            params["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    yield "scan", [lambda: paginate("scan")] * SCANS, None
    query = {
        "KeyConditionExpression": "tenant = :t",
        "ExpressionAttributeValues": {":t": {"S": tenant}},
    }
    yield "query", [lambda: paginate("query", **query)] * SCANS, None
    yield (
        "update 1 column",
        [
            (
                lambda k=k, i=i: client.update_item(
                    TableName=table,
                    Key=k,
                    UpdateExpression="SET #n = :n",
                    ExpressionAttributeNames={"#n": "name"},
                    ExpressionAttributeValues={":n": {"S": f"renamed {i}"}},
                )
            )
            for i, k in enumerate(keys)
        ],
        1,
    )

    def versioned(o: Plain, i: int) -> None:
        client.update_item(
            TableName=table,
            Key={"tenant": {"S": o.tenant}, "id": {"S": o.id}},
            UpdateExpression="SET #n = :n, #v = :new",
            ConditionExpression="#v = :old",
            ExpressionAttributeNames={"#n": "name", "#v": "version"},
            ExpressionAttributeValues={
                ":n": {"S": f"again {i}"},
                ":new": {"N": str(o.version + 1)},
                ":old": {"N": str(o.version)},
            },
        )
        o.version += 1

    yield "versioned update", [(lambda o=o, i=i: versioned(o, i)) for i, o in enumerate(objs)], 1


def pynamodb_steps(model: Any, n: int, tenant: str) -> Iterator[Step]:
    objs = [model(**pynamo_values(sample_values(tenant, i))) for i in range(n)]
    yield "save", [(lambda o=o: o.save()) for o in objs], 1
    yield "get", [(lambda o=o: model.get(o.tenant, o.id)) for o in objs], 1
    keys = [(o.tenant, o.id) for o in objs]
    batches = [(lambda c=c: list(model.batch_get(c))) for c in chunks(keys, 100)]
    yield "batch get", batches * SCANS, 100
    yield "scan", [lambda: len(list(model.scan()))] * SCANS, None
    yield "query", [lambda: len(list(model.query(tenant)))] * SCANS, None
    # Like for like: PynamoDB's one-column update is update(actions=...); it conditions it on
    # the version unless told not to, and advances the version either way.
    yield (
        "update 1 column",
        [
            (
                lambda o=o, i=i: o.update(
                    actions=[model.name.set(f"renamed {i}")], add_version_condition=False
                )
            )
            for i, o in enumerate(objs)
        ],
        1,
    )
    yield (
        "versioned update",
        [
            (lambda o=o, i=i: o.update(actions=[model.name.set(f"again {i}")]))
            for i, o in enumerate(objs)
        ],
        1,
    )


def streamodel_steps(engine: Engine, n: int, tenant: str) -> Iterator[Step]:
    objs = [
        Account(**{k: v for k, v in sample_values(tenant, i).items() if k != "version"})
        for i in range(n)
    ]
    yield "save", [(lambda o=o: engine.save(o)) for o in objs], 1
    fresh = [Account(tenant=o.tenant, id=o.id) for o in objs]
    yield "get", [(lambda o=o: engine.load(o)) for o in fresh], 1
    batch_objs = [Account(tenant=o.tenant, id=o.id) for o in objs]
    batches = [(lambda c=c: engine.load(*c)) for c in chunks(batch_objs, 100)]
    yield "batch get", batches * SCANS, 100
    yield "scan", [lambda: len(engine.scan(Account).all())] * SCANS, None
    query = engine.query(Account).key(Account.tenant == tenant)
    yield "query", [lambda: len(query.all())] * SCANS, None

    def rename(o: Account, text: str, *, version_check: bool) -> None:
        o.name = text
        engine.save(o, version_check=version_check)

    # streamodel's save is diff-based: one changed column is one SET. Without the version
    # check (as raw boto3's one-column update has none) the version is still advanced, by
    # DynamoDB (ADD), and read back.
    yield (
        "update 1 column",
        [
            (lambda o=o, i=i: rename(o, f"renamed {i}", version_check=False))
            for i, o in enumerate(objs)
        ],
        1,
    )
    yield (
        "versioned update",
        [
            (lambda o=o, i=i: rename(o, f"again {i}", version_check=True))
            for i, o in enumerate(objs)
        ],
        1,
    )


def interleaved(
    clients: dict[str, Iterator[Step]], chunk: int = 25
) -> dict[str, dict[str, Result]]:
    """Run every client's operations side by side: each operation in chunks of ``chunk``
    calls, the clients taking turns (in a rotating order) chunk by chunk, so that load from
    elsewhere, JVM warm-up and DynamoDB Local's drift hit every client alike. The garbage
    collector runs (untimed) before each turn."""
    results: dict[str, dict[str, Result]] = {name: {} for name in clients}
    names = list(clients)
    for steps in zip(*clients.values(), strict=True):
        by_client = dict(zip(names, steps, strict=True))
        op = steps[0][0]
        totals = {name: Result(0, 0.0, 0.0, []) for name in names}
        longest = max(len(calls) for _, calls, _ in steps)
        size = chunk if longest > chunk else 1
        for turn, start in enumerate(range(0, longest, size)):
            for name in names[turn % len(names) :] + names[: turn % len(names)]:
                _, calls, per_call = by_client[name]
                # Each turn starts from a collected heap: otherwise whichever client
                # happens to trigger a full collection pays for everyone's objects.
                gc.collect()
                part = timed(calls[start : start + size], per_call)
                total = totals[name]
                total.ops += part.ops
                total.wall += part.wall
                total.cpu += part.cpu
                total.latencies += part.latencies
                total.turn_rates.append(part.ops / part.wall)
        for name in names:
            results[name][op] = totals[name]
    return results


def replay_raw(n: int, endpoint: str, table: str) -> Result:
    """Raw boto3: DescribeStream, iterator, GetRecords loop, hand-written unpacking."""
    ddb = boto3.client("dynamodb", endpoint_url=endpoint)
    streams = boto3.client("dynamodbstreams", endpoint_url=endpoint)
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]

    def replay() -> list[Plain]:
        got: list[Plain] = []
        shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shards[0]["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while len(got) < n and iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                image = record["dynamodb"].get("NewImage")
                if image is not None:
                    got.append(hand_load(image))
            iterator = page.get("NextShardIterator")
        return got[:n]

    result = timed([replay])
    return Result(n, result.wall, result.cpu, result.latencies)


def replay_streamodel(engine: Engine, n: int) -> Result:
    def replay() -> int:
        stream = engine.stream(Account, "trim_horizon")
        count = 0
        idle = 0
        while count < n and idle < 50:
            change = next(stream)
            if change is None:
                idle += 1
                continue
            count += 1
        return count

    result = timed([replay])
    return Result(n, result.wall, result.cpu, result.latencies)


def worker_latency(engine: Engine, count: int) -> str:
    """Save -> handler latency through a running Worker, or why it was skipped."""
    try:
        from streamodel.stream import Worker  # type: ignore[attr-defined]
    except ImportError:
        return "skipped: streamodel.stream.Worker does not exist yet"
    try:
        saved_at: dict[str, float] = {}
        latencies: list[float] = []
        done = threading.Event()
        worker = Worker(engine, group=f"bench-{uuid.uuid4().hex[:8]}", start="latest")

        @worker.subscribe(Account, events=("insert",))
        def handle(change: Any) -> None:
            started = saved_at.get(change.new.id)
            if started is not None:
                latencies.append(time.perf_counter() - started)
            if len(latencies) >= count:
                done.set()

        errors: list[BaseException] = []

        def run() -> None:
            try:
                worker.run()
            except BaseException as error:  # reported below
                errors.append(error)
                done.set()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        time.sleep(2.0)  # let it take its shards and reach the end
        for i in range(count):
            obj = Account(tenant="latency", id=f"lat-{i}", name="x")
            saved_at[obj.id] = time.perf_counter()
            engine.save(obj)
            time.sleep(0.02)
        done.wait(30)
        worker.stop()
        thread.join(10)
        if errors:
            return f"failed: {type(errors[0]).__name__}: {errors[0]}"
        if not latencies:
            return "failed: no change reached the handler within 30 s"
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        return f"p50 {p50:.0f} ms, p99 {p99:.0f} ms over {len(latencies)} saves"
    except Exception as error:  # the Worker is young: report, do not crash the benchmark
        return f"failed: {type(error).__name__}: {error}"


# -- over TLS: DynamoDB Local behind loopback TLS terminators -----------------------------------

TLS_CLIENTS = ("raw boto3", "streamodel botocore", "streamodel lean")
TLS_OPS = ("save", "get", "scan", "query", "update 1 column", "versioned update")


class TLSFront:
    """``tls_front.py`` in a child process: one TLS terminator per client in front of
    ``upstream`` (one test CA), and each terminator's count of accepted connections."""

    def __init__(self, upstream: str, names: tuple[str, ...]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("tls_front.py")), upstream, *names],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._in, self._out = self.process.stdin, self.process.stdout
        started = json.loads(self._out.readline())
        self.ca_bundle: str = started["ca_bundle"]
        self.endpoints: dict[str, str] = started["endpoints"]
        self.terminator: str = started["terminator"]

    def accepted(self) -> dict[str, int]:
        """Connections each terminator has accepted so far."""
        self._in.write("count\n")
        self._in.flush()
        counts: dict[str, int] = json.loads(self._out.readline())
        return counts

    def close(self) -> None:
        self._in.close()
        self.process.wait(timeout=30)


def only(steps: Iterator[Step], ops: tuple[str, ...]) -> Iterator[Step]:
    """The steps named in ``ops`` (the others are still generated, in order, and skipped)."""
    return (step for step in steps if step[0] in ops)


@dataclasses.dataclass
class TLSRun:
    network: dict[str, dict[str, Result]]
    new_connections: dict[str, int]  # accepted by each client's terminator in the timed rounds
    lean_opened: int  # LeanTransport.connections_opened in the timed rounds
    rounds: int
    terminator: str  # what terminated TLS (tls_front.py's choice)


def run_tls(endpoint: str, n: int, rounds: int) -> TLSRun:
    """The TLS rows: the clients take turns as in the plain section (``interleaved``), after
    one untimed warm-up pass that opens the connections and warms the JVM for these tables.
    Raw boto3 trusts the test CA through ``verify=``, streamodel through ``AWS_CA_BUNDLE``
    (as it reaches its botocore clients)."""
    front = TLSFront(endpoint, TLS_CLIENTS)
    previous = os.environ.get("AWS_CA_BUNDLE")
    os.environ["AWS_CA_BUNDLE"] = front.ca_bundle
    try:
        raw = boto3.client(
            "dynamodb", endpoint_url=front.endpoints["raw boto3"], verify=front.ca_bundle
        )
        create_raw_table(raw, "bench-tls-raw")
        engines = {
            name: Engine(
                endpoint_url=front.endpoints[name],
                table_name_template=f"bench-tls-{transport}-{{table_name}}",
                transport=transport,  # type: ignore[arg-type]
            )
            for name, transport in (
                ("streamodel botocore", "botocore"),
                ("streamodel lean", "lean"),
            )
        }
        for engine in engines.values():
            engine.bind(Account)
        lean = engines["streamodel lean"].transport.inner  # type: ignore[attr-defined]

        def steps(tenant: str, count: int) -> dict[str, Iterator[Step]]:
            return {
                "raw boto3": only(raw_steps(raw, "bench-tls-raw", count, tenant), TLS_OPS),
                **{
                    name: only(streamodel_steps(e, count, tenant), TLS_OPS)
                    for name, e in engines.items()
                },
            }

        print("TLS: warm-up pass (untimed)...", flush=True)
        interleaved(steps("tlswarm", min(n, 100)))
        accepted_before, opened_before = front.accepted(), lean.connections_opened
        all_rounds: dict[str, list[dict[str, Result]]] = {name: [] for name in TLS_CLIENTS}
        for r in range(rounds):
            print(f"TLS round {r + 1}: every client side by side (N={n})...", flush=True)
            for name, ops in interleaved(steps(f"tls{r}", n)).items():
                all_rounds[name].append(ops)
        accepted_after, opened_after = front.accepted(), lean.connections_opened
    finally:
        if previous is None:
            os.environ.pop("AWS_CA_BUNDLE", None)
        else:
            os.environ["AWS_CA_BUNDLE"] = previous
        front.close()
    network = {
        name: {op: max((r[op] for r in rs), key=lambda x: x.ops_per_s) for op in rs[0]}
        for name, rs in all_rounds.items()
    }
    return TLSRun(
        network,
        {name: accepted_after[name] - accepted_before[name] for name in TLS_CLIENTS},
        opened_after - opened_before,
        rounds,
        front.terminator,
    )


def report_tls(run: TLSRun) -> list[str]:
    lines = [
        "### Over TLS (DynamoDB Local behind a loopback TLS terminator; ops/s: median of the "
        "client's turns; ratio to raw boto3; client CPU per item)",
        "",
        "| operation | " + " | ".join(TLS_CLIENTS) + " |",
        "| --- |" + " ---: |" * len(TLS_CLIENTS),
    ]
    base_client = run.network["raw boto3"]
    for op in base_client:
        base = base_client[op].ops_per_s
        cells = [
            f"{r.ops_per_s:,.0f}/s ({r.ops_per_s / base:.2f}x), {us(r.cpu_per_op)} µs CPU"
            for r in (run.network[client][op] for client in TLS_CLIENTS)
        ]
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lean = run.network["streamodel lean"]
    ratios = {op: lean[op].ops_per_s / base_client[op].ops_per_s for op in lean}
    single = [op for op in ratios if op not in ("scan", "query")]
    verdict = "met" if min(ratios.values()) >= 1.5 else "not met"
    lines += [
        "",
        "New TLS connections during the timed rounds (each terminator's accepted count after "
        f"the {run.rounds} timed round(s) minus before, after an untimed warm-up pass): "
        + ", ".join(f"{name} {count}" for name, count in run.new_connections.items())
        + f"; streamodel lean `connections_opened`: {run.lean_opened}.",
        "",
        f"Target (lean ≥ 1.5x raw boto3 over TLS, single-item ops and scans): {verdict} "
        f"(single-item {min(ratios[op] for op in single):.2f}x to "
        f"{max(ratios[op] for op in single):.2f}x, scan {ratios['scan']:.2f}x, "
        f"query {ratios['query']:.2f}x).",
        "",
        f"TLS is terminated by {run.terminator}, one terminator per client, outside this "
        "process (`tests/benchmarks/tls_front.py`; certificates from one `trustme` test CA), "
        "so its TLS work is not in the clients' CPU figures; every request crosses it, so its "
        "latency is in every client's rate. Raw boto3 trusts the CA with `verify=`, "
        "streamodel through `AWS_CA_BUNDLE`. The rows send what the plain-HTTP rows send.",
        "",
    ]
    return lines


# -- cold start: process start to the first answered GetItem ---------------------------------

COLD_TABLE = "bench-cold"
_COLD_END = "\nprint(time.perf_counter() - _t0)\n"
COLD_CHILDREN = {
    "streamodel": """import time
_t0 = time.perf_counter()
from streamodel import Column, Engine, String, new_base

Base = new_base()


class Item(Base):
    class Meta:
        table_name = "bench-cold"

    id = Column(String, hash_key=True)
    name = Column(String)


engine = Engine()
item = Item(id="cold")
engine.load(item)
assert item.name == "cold start"
""",
    "raw boto3": """import time
_t0 = time.perf_counter()
import boto3

answer = boto3.client("dynamodb").get_item(TableName="bench-cold", Key={"id": {"S": "cold"}})
assert answer["Item"]["name"]["S"] == "cold start"
""",
    "PynamoDB": """import time
_t0 = time.perf_counter()
import os

from pynamodb.attributes import UnicodeAttribute
from pynamodb.models import Model


class Item(Model):
    class Meta:
        table_name = "bench-cold"
        host = os.environ["AWS_ENDPOINT_URL_DYNAMODB"]
        region = os.environ["AWS_DEFAULT_REGION"]

    id = UnicodeAttribute(hash_key=True)
    name = UnicodeAttribute()


assert Item.get("cold").name == "cold start"
""",
}


@dataclasses.dataclass
class ColdStart:
    inside: dict[str, float]  # best seconds from the child's first line to the answer
    whole: dict[str, float]  # best wall seconds of the whole child process
    runs: int
    bytecode: str


def precompile_streamodel() -> str:
    """boto3, botocore and PynamoDB come with their bytecode in site-packages; streamodel is
    installed editable from the work tree, and with ``PYTHONDONTWRITEBYTECODE`` set every
    child would compile it from source. Compile it once, as an installed package is."""
    import streamodel

    package = Path(streamodel.__file__).parent
    compileall.compile_dir(str(package), quiet=1)
    flag = os.environ.get("PYTHONDONTWRITEBYTECODE")
    return (
        f"streamodel precompiled with `compileall` before the runs "
        f"(PYTHONDONTWRITEBYTECODE={'set' if flag else 'unset'} here)"
    )


def run_cold_start(endpoint: str, runs: int) -> ColdStart:
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    client.create_table(
        TableName=COLD_TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(TableName=COLD_TABLE, Item={"id": {"S": "cold"}, "name": {"S": "cold start"}})
    bytecode = precompile_streamodel()
    env = {**os.environ, "AWS_ENDPOINT_URL_DYNAMODB": endpoint}
    env.pop("AWS_CA_BUNDLE", None)
    inside: dict[str, list[float]] = {name: [] for name in COLD_CHILDREN}
    whole: dict[str, list[float]] = {name: [] for name in COLD_CHILDREN}
    names = list(COLD_CHILDREN)
    for r in range(runs):
        # Alternating, in a rotating order, so drift on the machine hits all three.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            started = time.perf_counter()
            child = subprocess.run(
                [sys.executable, "-c", COLD_CHILDREN[name] + _COLD_END],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=False,
            )
            wall = time.perf_counter() - started
            if child.returncode != 0:
                raise RuntimeError(f"cold start of {name} failed: {child.stderr[-2000:]}")
            inside[name].append(float(child.stdout.split()[-1]))
            whole[name].append(wall)
    return ColdStart(
        {name: min(v) for name, v in inside.items()},
        {name: min(v) for name, v in whole.items()},
        runs,
        bytecode,
    )


def report_cold(cold: ColdStart) -> list[str]:
    def ms(seconds: float) -> str:
        return f"{seconds * 1000:,.0f} ms"

    lines = [
        f"### Cold start: process start to the first answered GetItem (best of {cold.runs}; "
        "lower is better)",
        "",
        "| | streamodel | raw boto3 | PynamoDB | streamodel ÷ raw boto3 | streamodel ÷ PynamoDB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, times in (
        ("in the child, from its first line", cold.inside),
        ("whole child process (interpreter start included)", cold.whole),
    ):
        sm = times["streamodel"]
        lines.append(
            f"| {label} | {ms(sm)} | {ms(times['raw boto3'])} | {ms(times['PynamoDB'])} | "
            f"{sm / times['raw boto3']:.2f}x | {sm / times['PynamoDB']:.2f}x |"
        )
    ratio = cold.inside["streamodel"] / cold.inside["raw boto3"]
    lines += [
        "",
        f"Target (streamodel ≤ raw boto3, in the child): {'met' if ratio <= 1 else 'not met'} "
        f"({ratio:.2f}x). One child process per run, the three alternating in a rotating "
        "order; each child imports its library, declares a one-table model (raw boto3: "
        "none), makes its client and reads one item: streamodel "
        "`Engine()` + `engine.load(obj)`, raw boto3 `boto3.client('dynamodb').get_item(...)`, "
        f"PynamoDB `Model.get`. {cold.bytecode}; boto3, botocore and PynamoDB use the "
        "bytecode installed with them.",
        "",
    ]
    return lines


# -- memory: a 100k-item scan and a 100k-change replay, without DynamoDB -------------------------


class _PagedScan:
    """A transport answering Scan with generated 1,000-item pages (about 0.3 MB each)."""

    def __init__(self, total: int) -> None:
        self.total = total

    def call(self, service: str, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        assert operation == "Scan", operation
        start = int(params.get("ExclusiveStartKey", {}).get("id", {}).get("S", "id--1")[3:]) + 1
        end = min(self.total, start + 1000)
        items = [hand_dump(Plain(**sample_values("mem", i))) for i in range(start, end)]
        for item in items:
            item["id"] = {"S": f"id-{int(item['id']['S'][3:]):08d}"}
        page: dict[str, Any] = {"Items": items, "Count": len(items)}
        if end < self.total:
            page["LastEvaluatedKey"] = {"tenant": {"S": "mem"}, "id": {"S": f"id-{end - 1}"}}
        return page


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_memory(total: int) -> list[str]:
    """Peak traced memory and process RSS of a ``total``-item scan and change replay."""
    import tracemalloc

    from streamodel.testing.fake_streams import FakeStreams

    lines = []
    engine = Engine(transport=_PagedScan(total))  # type: ignore[arg-type]
    rss0 = _peak_rss_mb()
    tracemalloc.start()
    started = time.perf_counter()
    count = sum(1 for _ in engine.scan(Account))
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == total, count
    lines.append(
        f"| scan of {total:,} items (`engine.scan(Account)`, 1,000-item pages) | "
        f"{peak / 2**20:.1f} MB | {_peak_rss_mb():.0f} MB (+{_peak_rss_mb() - rss0:.0f}) | "
        f"{seconds:.1f} s |"
    )

    fake = FakeStreams(shards=1, first_sequence=1)
    for i in range(total):
        wire = hand_dump(Plain(**sample_values("mem", i)))
        fake.put({"tenant": wire["tenant"], "id": wire["id"]}, new_image=wire)
    engine = Engine(transport=fake)
    engine._tables[Account] = {"name": "Account", "stream_arn": fake.stream_arn}
    rss0 = _peak_rss_mb()
    tracemalloc.start()
    started = time.perf_counter()
    stream = engine.stream(Account, "trim_horizon")
    count = 0
    while count < total:
        change = next(stream)
        if change is None:
            break
        count += 1
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == total, count
    lines.append(
        f"| replay of {total:,} changes (`engine.stream`, FakeStreams, 1,000-record pages) | "
        f"{peak / 2**20:.1f} MB | {_peak_rss_mb():.0f} MB (+{_peak_rss_mb() - rss0:.0f}) | "
        f"{seconds:.1f} s |"
    )
    return [
        "### Memory (no DynamoDB: a generated Scan and a FakeStreams replay)",
        "",
        "| run | peak traced by tracemalloc | peak RSS of the process | time (traced) |",
        "| --- | ---: | ---: | ---: |",
        *lines,
        "",
        "tracemalloc counts what the run allocated and still held at its peak (the fake "
        "stream's own records were built before it started); peak RSS is the process's "
        f"high-water mark, which includes the fake stream's {total:,} stored records.",
        "",
    ]


# -- report ---------------------------------------------------------------------------------


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


LOAD_BEFORE = _loadavg()


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}; load average before the run "
        f"{LOAD_BEFORE}, after {_loadavg()}"
    )


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f}"


def report_cpu(cpu: dict[str, dict[str, float]]) -> str:
    floor = cpu["hand-written"]
    lines = ["| | object → wire | wire → object | object → full save request |"]
    for name, row in cpu.items():
        cells = [
            f"{us(row[w])} µs ({row[w] / floor[w]:.1f}x)" if w in row else "—"
            for w in ("dump", "load", "request")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(
    n: int,
    cpu: dict[str, dict[str, float]],
    network: dict[str, dict[str, Result]],
    replays: dict[str, Result],
    latency: str,
    elapsed: float,
    command: str,
    *,
    lambda_rows: dict[str, float | str] | None = None,
) -> str:
    lines = [
        f"Machine: {machine()}",
        f"Command: `{command}` (N = {n}; whole run {elapsed:.0f} s)",
        "",
        "### CPU only, per item (best of rounds, as timeit; lower is better)",
        "",
        "| | object → wire | wire → object | object → full save request |",
        "| --- | ---: | ---: | ---: |",
    ]
    floor = cpu["hand-written"]
    for name, row in cpu.items():
        cells = []
        for what in ("dump", "load", "request"):
            if what in row:
                ratio = row[what] / floor[what]
                cells.append(f"{us(row[what])} µs ({ratio:.1f}x)")
            else:
                cells.append("—")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "x = ratio to the hand-written floor. streamodel's object → wire is `plan_save` "
        "(validation, wire values, diff); wire → object is `fill` of a new instance; the full "
        "save request adds the rendered `UpdateItem`. PynamoDB's full save request is "
        "`Model.save()` with its `dispatch` stubbed out.",
        "",
    ]
    if lambda_rows:
        lines += report_lambda(lambda_rows)
    if network:
        lines += report_network(network, replays, latency)
    return "\n".join(lines)


def report_network(
    network: dict[str, dict[str, Result]], replays: dict[str, Result], latency: str
) -> list[str]:
    lines = [
        "### Against DynamoDB Local (ops/s: median of the client's turns; ratio to raw boto3; "
        "client CPU per item)",
        "",
        "| operation | " + " | ".join(CLIENTS) + " |",
        "| --- |" + " ---: |" * len(CLIENTS),
    ]
    for op in network["raw boto3"]:
        base = network["raw boto3"][op].ops_per_s
        cells = []
        for client in CLIENTS:
            r = network[client][op]
            cells.append(
                f"{r.ops_per_s:,.0f}/s ({r.ops_per_s / base:.2f}x), {us(r.cpu_per_op)} µs CPU"
            )
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "p50 latency per call (ms): "
        + "; ".join(
            f"{client}: "
            + ", ".join(
                f"{op} {network[client][op].p50 * 1000:.2f}"
                for op in ("save", "get", "update 1 column", "versioned update")
            )
            for client in CLIENTS
        ),
        "",
        "What each row sends, per client (raw boto3; PynamoDB; streamodel, both transports):",
        "",
        "- save (a new item, versioned): a `PutItem` conditioned on the version; "
        "`save()`, a `PutItem` conditioned on the version; `engine.save(obj)`, one "
        "`UpdateItem` that sets every column and the version, conditioned on the version.",
        "- get: `GetItem`; `Model.get`, a `GetItem`; `engine.load(obj)`, a `GetItem`.",
        "- batch get: `BatchGetItem` of 100 keys; `batch_get`; `engine.load(*objs)`; batch "
        "gets, scans and queries read the N items three times (ops = items).",
        "- update 1 column (unconditional): `UpdateItem` `SET name`; "
        "`update(actions=[name.set(...)], add_version_condition=False)`, an `UpdateItem` "
        "that also advances the version and returns the whole new item (`ALL_NEW`, as "
        "PynamoDB always asks); change one column and `save(version_check=False)`, an "
        "`UpdateItem` with one SET and the version advanced by an ADD and read back.",
        "- versioned update (one column, conditioned on the version): `UpdateItem` `SET "
        "name, version` with `version = :old`; `update(actions=[name.set(...)])`, the same "
        "with PynamoDB's version condition (and `ALL_NEW`); change one column and "
        "`save(obj)`, one SET plus the version, conditioned on it.",
        "",
        "### Streams",
        "",
        "| replay of N changes from TRIM_HORIZON into objects | changes/s | ratio "
        "| CPU per change |",
        "| --- | ---: | ---: | ---: |",
    ]
    base = replays["raw boto3"].ops_per_s
    for name, r in replays.items():
        lines.append(
            f"| {name} | {r.ops_per_s:,.0f} | {r.ops_per_s / base:.2f}x | {us(r.cpu_per_op)} µs |"
        )
    lines += ["", f"Save → handler latency (Worker, default settings): {latency}", ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=int(os.environ.get("BENCH_N", "500")))
    parser.add_argument("--cpu-iterations", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--net-rounds", type=int, default=2)
    parser.add_argument("--write", type=Path, help="also write the report into this file")
    parser.add_argument("--profile", action="store_true", help="print cProfile hot spots")
    parser.add_argument(
        "--memory", type=int, default=100_000, help="items/changes of the memory runs (0: skip)"
    )
    parser.add_argument("--cpu-only", action="store_true", help="CPU and memory runs only")
    parser.add_argument("--memory-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--scaling", action="store_true", help="also run tests/benchmarks/scaling.py"
    )
    parser.add_argument(
        "--no-aio",
        action="store_true",
        help="skip tests/benchmarks/async_transport.py and aio_bench.py (asyncio)",
    )
    parser.add_argument(
        "--tls-rounds", type=int, default=2, help="timed rounds of the TLS section (0: skip)"
    )
    parser.add_argument(
        "--cold-runs", type=int, default=5, help="cold starts per library, best kept (0: skip)"
    )
    parser.add_argument(
        "--no-plain",
        action="store_true",
        help="skip the plain-HTTP network rows, stream replays and worker latency",
    )
    parser.add_argument(
        "--snapshot-items",
        type=int,
        default=20_000,
        help="table size of tests/benchmarks/snapshot_bench.py's throughput rows (0: skip it)",
    )
    parser.add_argument(
        "--snapshot-memory",
        type=int,
        default=100_000,
        help="items of snapshot_bench.py's largest flat-memory runs (0: skip them)",
    )
    args = parser.parse_args(argv)
    if args.memory_only:
        # The memory child: only the memory rows, and only their Markdown on stdout (the
        # parent writes it into the report as it is).
        print("\n".join(run_memory(args.memory)))
        return 0
    n = args.n
    started = time.perf_counter()
    command = "python tests/benchmarks/run.py " + " ".join(argv or sys.argv[1:])

    print(f"CPU-only benchmarks ({args.rounds} rounds of {args.cpu_iterations})...", flush=True)
    cpu = run_cpu(args.cpu_iterations, args.rounds)
    print(f"Lambda handlers ({args.rounds} rounds of a {LAMBDA_RECORDS:,}-record event)...")
    lambda_rows = run_lambda(args.rounds)
    print("\n".join(report_lambda(lambda_rows)), flush=True)

    if args.profile:
        values = sample_values("p", 1)
        obj = Account(**{k: v for k, v in values.items() if k != "version"})
        engine = Engine(endpoint_url="http://127.0.0.1:1")
        plan = plan_save(obj, condition=None, atomic=False)
        wire = {
            **plan.key,
            **{c.dynamo_name: w for c, w in zip(plan.set_columns, plan.set_wires, strict=True)},
        }
        print("== profile: streamodel object -> save request ==")
        print(profile(lambda: writes.save(engine.table_name(Account), obj).request, 3000))
        print("== profile: streamodel wire -> object ==")
        print(profile(lambda: fill(new_instance(Account), wire), 3000))

    memory: list[str] = []
    if args.memory:
        # In a process of its own: its peak RSS is its own, and the 100k-record heap it
        # leaves behind does not weigh on the other measurements.
        print(f"memory: scan and replay of {args.memory:,}...", flush=True)
        measured = subprocess.run(
            [sys.executable, __file__, "--memory-only", "--memory", str(args.memory)],
            check=True,
            capture_output=True,
            text=True,
        )
        lines = measured.stdout.splitlines()
        # Only the memory section, should anything else ever print in the child.
        heading = next(i for i, line in enumerate(lines) if line.startswith("### Memory"))
        memory = lines[heading:]
        print("\n".join(memory), flush=True)
    if args.cpu_only:
        print(report_cpu(cpu))
        return 0

    network: dict[str, dict[str, Result]] = {}
    replays: dict[str, Result] = {}
    latency = ""
    tls: TLSRun | None = None
    cold: ColdStart | None = None
    print("starting a fresh DynamoDB Local...", flush=True)
    with DynamoDBLocal() as local:
        endpoint = local.endpoint_url
        client = boto3.client("dynamodb", endpoint_url=endpoint)
        for table in ("bench-warm", "bench-raw"):
            create_raw_table(client, table)
        warm_up(client, "bench-warm", 300)
        if not args.no_plain:
            network, replays, latency = run_plain(endpoint, client, n, args.net_rounds)
        if args.cold_runs:
            print(f"cold starts ({args.cold_runs} of each, alternating)...", flush=True)
            cold = run_cold_start(endpoint, args.cold_runs)

    if args.tls_rounds:
        # A fresh instance again: DynamoDB Local's writes slow down as the plain section's
        # stream tables and records pile up (STREAMS.md), which would bury the TLS rows.
        print("starting a fresh DynamoDB Local for the TLS rows...", flush=True)
        with DynamoDBLocal() as local:
            client = boto3.client("dynamodb", endpoint_url=local.endpoint_url)
            create_raw_table(client, "bench-warm")
            warm_up(client, "bench-warm", 300)
            tls = run_tls(local.endpoint_url, n, args.tls_rounds)

    text = report(
        n,
        cpu,
        network,
        replays,
        latency,
        time.perf_counter() - started,
        command,
        lambda_rows=lambda_rows,
    )
    if tls is not None:
        text += "\n" + "\n".join(report_tls(tls))
    if cold is not None:
        text += "\n" + "\n".join(report_cold(cold))
    text += "\n" + "\n".join(memory)
    print()
    print(text)
    if args.write:
        write_docs(args.write, text)
        print(f"written to {args.write}")
    if args.snapshot_items:
        # Snapshots and migrations, against a DynamoDB Local of their own (about 10 minutes).
        snapshot = [sys.executable, str(Path(__file__).with_name("snapshot_bench.py"))]
        snapshot += ["--items", str(args.snapshot_items), "--memory", str(args.snapshot_memory)]
        status = subprocess.call(snapshot + (["--write", str(args.write)] if args.write else []))
        if status:
            return status
    if not args.no_aio:
        # asyncio (issue #15): the transport's own HTTP layer against aiohttp and httpx, then
        # AsyncEngine against aioboto3, aiodynamo and the sync Engine on threads (which
        # writes its section of the report).
        here = Path(__file__)
        status = subprocess.call([sys.executable, str(here.with_name("async_transport.py"))])
        if status:
            return status
        aio = [sys.executable, str(here.with_name("aio_bench.py"))]
        status = subprocess.call(aio + (["--write", str(args.write)] if args.write else []))
        if status:
            return status
        # Stream replay: AsyncWorker vs Worker with the same handlers (printed only).
        status = subprocess.call([sys.executable, str(here.with_name("aio_worker_bench.py"))])
        if status:
            return status
    if args.scaling:
        scaling = [sys.executable, str(Path(__file__).with_name("scaling.py"))]
        return subprocess.call(scaling + (["--write", str(args.write)] if args.write else []))
    return 0


def run_plain(
    endpoint: str, client: Any, n: int, net_rounds: int
) -> tuple[dict[str, dict[str, Result]], dict[str, Result], str]:
    """The plain-HTTP rows: every client side by side, the stream replays and the worker's
    save -> handler latency."""
    network: dict[str, dict[str, Result]] = {}
    replays: dict[str, Result] = {}
    pm = pynamodb_model(endpoint, "bench-pynamodb")
    pm.create_table(wait=True, billing_mode="PAY_PER_REQUEST")
    engines = {
        "streamodel botocore": Engine(
            endpoint_url=endpoint,
            table_name_template="bench-bc-{table_name}",
            transport="botocore",
        ),
        "streamodel lean": Engine(
            endpoint_url=endpoint,
            table_name_template="bench-lean-{table_name}",
            transport="lean",
        ),
    }
    for engine in engines.values():
        engine.bind(Account)

    def steps(tenant: str) -> dict[str, Iterator[Step]]:
        return {
            "raw boto3": raw_steps(client, "bench-raw", n, tenant),
            "PynamoDB": pynamodb_steps(pm, n, tenant),
            **{name: streamodel_steps(e, n, tenant) for name, e in engines.items()},
        }

    # The clients take turns chunk by chunk within each operation (see interleaved);
    # the first round also warms the JVM up for every request shape, and each
    # operation reports its best round.
    all_rounds: dict[str, list[dict[str, Result]]] = {name: [] for name in CLIENTS}
    for r in range(net_rounds):
        print(f"round {r + 1}: every client side by side (N={n})...", flush=True)
        for name, ops in interleaved(steps(f"bench{r}")).items():
            all_rounds[name].append(ops)
    for name, rounds in all_rounds.items():
        network[name] = {
            op: max((round_[op] for round_ in rounds), key=lambda x: x.ops_per_s)
            for op in rounds[0]
        }

    print("stream replay...", flush=True)
    lean_table = engines["streamodel lean"].table_name(Account)
    replay_runs: dict[str, Callable[[], Result]] = {
        "raw boto3": lambda: replay_raw(n, endpoint, lean_table),
        **{
            f"{name} engine.stream": (lambda e=engine: replay_streamodel(e, n))
            for name, engine in engines.items()
        },
    }
    for _ in range(3):  # taking turns, from a collected heap; each reports its best
        for name, replay in replay_runs.items():
            gc.collect()
            result = replay()
            if name not in replays or result.ops_per_s > replays[name].ops_per_s:
                replays[name] = result

    print("worker latency...", flush=True)
    latency = worker_latency(engines["streamodel lean"], 50)
    return network, replays, latency


def write_docs(path: Path, text: str) -> None:
    header = (
        "# Performance\n\n"
        "Measured by `make bench` (`tests/benchmarks/run.py`): one run, everything side by "
        "side, against a freshly started DynamoDB Local on the same machine, so the numbers "
        "are mostly client cost (DynamoDB Local answers a put in about 0.5 ms). Ratios within "
        "one run are what matter; absolute numbers move with the machine.\n\n"
        "## Latest run\n\n"
    )
    footer_marker = "<!-- notes below are kept when the table is regenerated -->"
    notes = ""
    if path.exists():
        existing = path.read_text()
        if footer_marker in existing:
            notes = existing[existing.index(footer_marker) :]
    path.write_text(header + text + "\n" + (notes or footer_marker + "\n"))


if __name__ == "__main__":
    sys.exit(main())
