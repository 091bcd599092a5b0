"""The raw Coordinator over a real DynamoDB Local stream (one shard per table there)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from streamodel.stream.coordinator import Coordinator, RawRecord
from streamodel.transport import BotocoreTransport, RetryingTransport, RetryPolicy


class Stream:
    """The module's one stream-enabled table, and helpers to write to and read from it."""

    def __init__(self, transport: RetryingTransport, table: str, arn: str) -> None:
        self.transport = transport
        self.table = table
        self.arn = arn

    def put(self, item: dict[str, Any]) -> None:
        self.transport.call("dynamodb", "PutItem", {"TableName": self.table, "Item": item})

    def update(self, pk: str, n: int) -> None:
        self.transport.call(
            "dynamodb",
            "UpdateItem",
            {
                "TableName": self.table,
                "Key": {"pk": {"S": pk}},
                "UpdateExpression": "SET n = :n",
                "ExpressionAttributeValues": {":n": {"N": str(n)}},
            },
        )

    def delete(self, pk: str) -> None:
        self.transport.call(
            "dynamodb", "DeleteItem", {"TableName": self.table, "Key": {"pk": {"S": pk}}}
        )

    def open(self, position: Any = "trim_horizon", **options: Any) -> Coordinator:
        return Coordinator(self.transport, self.arn, position, **options)


def mine(prefix: str) -> Callable[[RawRecord], bool]:
    return lambda r: str(r.record["dynamodb"]["Keys"]["pk"]["S"]).startswith(prefix)


def read(
    coordinator: Coordinator,
    wanted: Callable[[RawRecord], bool],
    count: int,
    *,
    settle: bool = True,
    timeout: float = 10,
) -> list[RawRecord]:
    """Reads until `count` wanted records came (failing after `timeout` s), then, if `settle`,
    until three reads in a row found nothing (so extra records would show)."""
    records: list[RawRecord] = []
    deadline = time.monotonic() + timeout
    idle = 0
    while len(records) < count or (settle and idle < 3):
        if time.monotonic() > deadline:
            if len(records) < count:
                raise AssertionError(f"{len(records)} of {count} records came: {records}")
            break
        record = coordinator.next_record()
        if record is None:
            idle += 1
            continue
        idle = 0
        if wanted(record):
            records.append(record)
    return records


@pytest.fixture(scope="module")
def stream(local_endpoint: str, nonce: str) -> Stream:
    """One NEW_AND_OLD_IMAGES stream table for the whole module (Local slows down otherwise)."""
    transport = RetryingTransport(BotocoreTransport(endpoint_url=local_endpoint), RetryPolicy())
    table = f"raw-stream-{nonce}"
    transport.call(
        "dynamodb",
        "CreateTable",
        {
            "TableName": table,
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        },
    )
    description = transport.call("dynamodb", "DescribeTable", {"TableName": table})["Table"]
    assert description["TableStatus"] == "ACTIVE"  # DynamoDB Local creates tables at once
    return Stream(transport, table, description["LatestStreamArn"])


def test_changes_come_back_in_order_with_images(stream: Stream) -> None:
    """Inserts, modifies and removes come back in write order with their old and new images."""
    stream.put({"pk": {"S": "order-a"}, "n": {"N": "1"}, "b": {"B": b"\x00\xff"}})
    stream.update("order-a", 2)
    stream.put({"pk": {"S": "order-b"}, "n": {"N": "1"}})
    stream.put({"pk": {"S": "order-b"}, "n": {"N": "1"}})  # changes nothing: no record
    stream.delete("order-a")
    coordinator = stream.open()
    records = read(coordinator, mine("order-"), 4)
    assert len(coordinator.shards) == 1
    events = [
        (
            r.record["eventName"],
            r.record["dynamodb"]["Keys"]["pk"]["S"],
            r.record["dynamodb"].get("OldImage"),
            r.record["dynamodb"].get("NewImage"),
        )
        for r in records
    ]
    a1 = {"pk": {"S": "order-a"}, "n": {"N": "1"}, "b": {"B": b"\x00\xff"}}
    a2 = {"pk": {"S": "order-a"}, "n": {"N": "2"}, "b": {"B": b"\x00\xff"}}
    assert events == [
        ("INSERT", "order-a", None, a1),
        ("MODIFY", "order-a", a1, a2),
        ("INSERT", "order-b", None, {"pk": {"S": "order-b"}, "n": {"N": "1"}}),
        ("REMOVE", "order-a", a2, None),
    ]
    numbers = [int(r.sequence_number) for r in records]
    assert numbers == sorted(numbers)
    for record in records:
        assert len(record.sequence_number) >= 21
        created = record.record["dynamodb"]["ApproximateCreationDateTime"]
        assert isinstance(created, datetime) and created.tzinfo is not None
        assert record.record["eventSource"] == "aws:dynamodb"


def test_token_resumes_exactly_after_the_last_record(stream: Stream) -> None:
    """A token taken mid-page, through JSON, resumes at the next record: no loss, no repeat."""
    for n in range(10):
        stream.put({"pk": {"S": f"token-{n}"}, "n": {"N": str(n)}})
    coordinator = stream.open(limit=3)
    taken = read(coordinator, mine("token-"), 4, settle=False)
    token = json.loads(json.dumps(coordinator.token))
    (entry,) = token["shards"].values()
    assert entry["after"] == taken[-1].sequence_number.zfill(40)
    resumed = stream.open(token, limit=3)
    rest = read(resumed, mine("token-"), 6)
    keys = [r.record["dynamodb"]["Keys"]["pk"]["S"] for r in taken + rest]
    assert keys == [f"token-{n}" for n in range(10)]
    coordinator.move_to(token)
    again = read(coordinator, mine("token-"), 6)
    assert [r.sequence_number for r in again] == [r.sequence_number for r in rest]


def test_latest_sees_only_later_writes(stream: Stream) -> None:
    """A reader opened at 'latest' gets the writes made after it opened, and nothing older."""
    stream.put({"pk": {"S": "latest-old"}, "n": {"N": "1"}})
    coordinator = stream.open("latest")
    for n in range(3):
        stream.put({"pk": {"S": f"latest-new-{n}"}, "n": {"N": str(n)}})
    records = read(coordinator, lambda r: True, 3)
    assert [r.record["dynamodb"]["Keys"]["pk"]["S"] for r in records] == [
        f"latest-new-{n}" for n in range(3)
    ]


def test_datetime_position_skips_older_records(stream: Stream) -> None:
    """A datetime in the future skips every existing record; one in the past skips none."""
    stream.put({"pk": {"S": "when-1"}, "n": {"N": "1"}})
    future = stream.open(datetime.now(UTC) + timedelta(hours=1))
    assert read(future, mine("when-"), 0) == []
    assert future.stats.skipped >= 1
    past = stream.open(datetime.now(UTC) - timedelta(hours=1))
    assert len(read(past, mine("when-"), 1)) == 1
