"""FakeStreams behaves like DynamoDB Streams as seen through boto3 and BotocoreTransport."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from streamodel.exceptions import (
    ExpiredIteratorError,
    ResourceNotFoundError,
    ServerError,
    ThrottledError,
    TransportError,
    TrimmedDataError,
)
from streamodel.testing.fake_streams import FakeStreams

SERVICE_MODEL = get_session().get_service_model("dynamodbstreams")


def call(fake: FakeStreams, operation: str, **params: Any) -> dict[str, Any]:
    """Calls the fake after checking the request against botocore's own service model."""
    shape = SERVICE_MODEL.operation_model(operation).input_shape
    report = ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()
    return fake.call("dynamodbstreams", operation, params)


def key(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{i}"}}


def image(i: int, n: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{i}"}, "n": {"N": str(n)}, "b": {"B": b"\x00\x01"}}


def read_all(fake: FakeStreams, shard_id: str, kind: str = "TRIM_HORIZON") -> list[dict[str, Any]]:
    iterator = call(
        fake,
        "GetShardIterator",
        StreamArn=fake.stream_arn,
        ShardId=shard_id,
        ShardIteratorType=kind,
    )["ShardIterator"]
    records: list[dict[str, Any]] = []
    for _ in range(10_000):
        page = call(fake, "GetRecords", ShardIterator=iterator)
        records.extend(page["Records"])
        if "NextShardIterator" not in page or not page["Records"]:
            break
        iterator = page["NextShardIterator"]
    return records


def test_records_look_like_boto3_stream_records() -> None:
    """A put record has the fields, types and formats boto3 returns for GetRecords."""
    fake = FakeStreams(region="eu-west-1")
    fake.put(key(1), new_image=image(1, 1))
    fake.put(key(1), new_image=image(1, 2), old_image=image(1, 1))
    fake.put(key(1), old_image=image(1, 2))
    records = read_all(fake, fake.shard_ids()[0])
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    for record in records:
        assert record["eventSource"] == "aws:dynamodb"
        assert record["eventVersion"] == "1.1"
        assert record["awsRegion"] == "eu-west-1"
        assert re.fullmatch(r"[0-9a-f]{32}", record["eventID"])
        assert "userIdentity" not in record
        body = record["dynamodb"]
        assert body["Keys"] == key(1)
        assert body["StreamViewType"] == "NEW_AND_OLD_IMAGES"
        assert isinstance(body["SizeBytes"], int) and body["SizeBytes"] > 0
        assert re.fullmatch(r"[0-9]{21,40}", body["SequenceNumber"])
        created = body["ApproximateCreationDateTime"]
        assert isinstance(created, datetime) and created.tzinfo is not None
        assert created.microsecond == 0
    assert "OldImage" not in records[0]["dynamodb"]
    assert records[1]["dynamodb"]["OldImage"] == image(1, 1)
    assert records[1]["dynamodb"]["NewImage"]["b"] == {"B": b"\x00\x01"}
    assert "NewImage" not in records[2]["dynamodb"]
    sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequences == sorted(set(sequences))


def test_ttl_deletes_carry_the_service_identity() -> None:
    """A TTL delete carries userIdentity naming the DynamoDB service, as AWS sends it."""
    fake = FakeStreams()
    record = fake.put(key(1), old_image=image(1, 1), event="REMOVE", ttl=True)
    assert record["userIdentity"] == {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}
    with pytest.raises(ValueError):
        fake.put(key(1), new_image=image(1, 1), ttl=True)


def test_view_type_keeps_only_its_images() -> None:
    """KEYS_ONLY and NEW_IMAGE streams leave out the images their view type excludes."""
    keys_only = FakeStreams(view_type="KEYS_ONLY")
    body = keys_only.put(key(1), new_image=image(1, 2), old_image=image(1, 1))["dynamodb"]
    assert "NewImage" not in body and "OldImage" not in body
    assert body["StreamViewType"] == "KEYS_ONLY"
    new_only = FakeStreams(view_type="NEW_IMAGE")
    body = new_only.put(key(1), new_image=image(1, 2), old_image=image(1, 1))["dynamodb"]
    assert body["NewImage"] == image(1, 2) and "OldImage" not in body


def test_describe_stream_pages_through_shards() -> None:
    """DescribeStream returns at most describe_page_size shards and names the last one."""
    fake = FakeStreams(shards=5, describe_page_size=2)
    seen: list[str] = []
    params: dict[str, Any] = {"StreamArn": fake.stream_arn, "Limit": 100}
    pages = 0
    while True:
        description = call(fake, "DescribeStream", **params)["StreamDescription"]
        pages += 1
        assert description["StreamStatus"] == "ENABLED"
        seen += [s["ShardId"] for s in description["Shards"]]
        if "LastEvaluatedShardId" not in description:
            break
        params["ExclusiveStartShardId"] = description["LastEvaluatedShardId"]
    assert pages == 3
    assert seen == fake.shard_ids()
    for shard_id in seen:
        assert re.fullmatch(r"shardId-[0-9]{20}-[0-9a-f]{8}", shard_id)


def test_split_closes_parent_and_routes_keys_to_one_child() -> None:
    """After a split the parent has an ending sequence number and each key goes to one child."""
    fake = FakeStreams()
    (root,) = fake.shard_ids()
    children = fake.split(root)
    description = call(fake, "DescribeStream", StreamArn=fake.stream_arn)["StreamDescription"]
    by_id = {s["ShardId"]: s for s in description["Shards"]}
    assert "EndingSequenceNumber" in by_id[root]["SequenceNumberRange"]
    for child in children:
        assert by_id[child]["ParentShardId"] == root
        assert "EndingSequenceNumber" not in by_id[child]["SequenceNumberRange"]
    owners = {fake.shard_of(key(i)) for i in range(50)}
    assert owners == set(children)
    for i in range(50):
        assert fake.put(key(i), new_image=image(i, 1)) and fake.shard_of(key(i)) == fake.shard_of(
            key(i)
        )
    with pytest.raises(ValueError):
        fake.put(key(1), new_image=image(1, 1), shard_id=root)


def test_closed_shard_last_page_has_records_and_no_next_iterator() -> None:
    """The last page of a closed shard carries its final records and no NextShardIterator."""
    fake = FakeStreams(max_page_size=2)
    (root,) = fake.shard_ids()
    for n in range(3):
        fake.put(key(1), new_image=image(1, n))
    fake.close(root)
    iterator = call(
        fake,
        "GetShardIterator",
        StreamArn=fake.stream_arn,
        ShardId=root,
        ShardIteratorType="TRIM_HORIZON",
    )["ShardIterator"]
    first = call(fake, "GetRecords", ShardIterator=iterator)
    assert len(first["Records"]) == 2 and "NextShardIterator" in first
    last = call(fake, "GetRecords", ShardIterator=first["NextShardIterator"], Limit=1000)
    assert len(last["Records"]) == 1 and "NextShardIterator" not in last


def test_iterator_types() -> None:
    """TRIM_HORIZON, LATEST, AT_ and AFTER_SEQUENCE_NUMBER start where AWS starts them."""
    fake = FakeStreams()
    (root,) = fake.shard_ids()
    puts = [fake.put(key(1), new_image=image(1, n)) for n in range(4)]
    seqs = [p["dynamodb"]["SequenceNumber"] for p in puts]

    def first(kind: str, sequence: str | None = None) -> list[str]:
        params: dict[str, Any] = {
            "StreamArn": fake.stream_arn,
            "ShardId": root,
            "ShardIteratorType": kind,
        }
        if sequence is not None:
            params["SequenceNumber"] = sequence
        iterator = call(fake, "GetShardIterator", **params)["ShardIterator"]
        page = call(fake, "GetRecords", ShardIterator=iterator)
        return [r["dynamodb"]["SequenceNumber"] for r in page["Records"]]

    assert first("TRIM_HORIZON") == seqs
    assert first("LATEST") == []
    assert first("AT_SEQUENCE_NUMBER", seqs[1]) == seqs[1:]
    assert first("AFTER_SEQUENCE_NUMBER", seqs[1]) == seqs[2:]
    assert first("AFTER_SEQUENCE_NUMBER", seqs[1].zfill(40)) == seqs[2:]
    latest = call(
        fake,
        "GetShardIterator",
        StreamArn=fake.stream_arn,
        ShardId=root,
        ShardIteratorType="LATEST",
    )["ShardIterator"]
    new = fake.put(key(1), new_image=image(1, 9))
    page = call(fake, "GetRecords", ShardIterator=latest)
    assert page["Records"] == [new]


def test_trimmed_records_and_shards() -> None:
    """Trimmed positions raise TrimmedDataError; a trimmed shard leaves DescribeStream."""
    fake = FakeStreams()
    (root,) = fake.shard_ids()
    puts = [fake.put(key(1), new_image=image(1, n)) for n in range(4)]
    seqs = [p["dynamodb"]["SequenceNumber"] for p in puts]
    old = call(
        fake,
        "GetShardIterator",
        StreamArn=fake.stream_arn,
        ShardId=root,
        ShardIteratorType="TRIM_HORIZON",
    )["ShardIterator"]
    fake.trim(before=seqs[2])
    with pytest.raises(TrimmedDataError):
        call(fake, "GetRecords", ShardIterator=old)
    with pytest.raises(TrimmedDataError):
        call(
            fake,
            "GetShardIterator",
            StreamArn=fake.stream_arn,
            ShardId=root,
            ShardIteratorType="AFTER_SEQUENCE_NUMBER",
            SequenceNumber=seqs[0],
        )
    assert [r["dynamodb"]["SequenceNumber"] for r in read_all(fake, root)] == seqs[2:]
    after = call(
        fake,
        "GetShardIterator",
        StreamArn=fake.stream_arn,
        ShardId=root,
        ShardIteratorType="AFTER_SEQUENCE_NUMBER",
        SequenceNumber=seqs[1],
    )
    assert len(call(fake, "GetRecords", ShardIterator=after["ShardIterator"])["Records"]) == 2
    children = fake.split(root)
    fake.trim(root)
    assert fake.shard_ids() == children
    with pytest.raises(ResourceNotFoundError):
        call(
            fake,
            "GetShardIterator",
            StreamArn=fake.stream_arn,
            ShardId=root,
            ShardIteratorType="TRIM_HORIZON",
        )


def test_injected_failures_use_the_shared_error_translation() -> None:
    """fail_next raises the streamodel error BotocoreTransport would raise for that code."""
    fake = FakeStreams()
    fake.fail_next("DescribeStream", "LimitExceededException", times=2)
    fake.fail_next("DescribeStream", "InternalServerError")
    fake.fail_next("GetRecords", "ValidationException")
    for expected in (ThrottledError, ThrottledError, ServerError):
        with pytest.raises(expected) as info:
            call(fake, "DescribeStream", StreamArn=fake.stream_arn)
        assert info.value.operation == "DescribeStream"
    assert call(fake, "DescribeStream", StreamArn=fake.stream_arn)["StreamDescription"]
    assert fake.calls["DescribeStream"] == 4
    with pytest.raises(TransportError) as error:
        call(fake, "GetRecords", ShardIterator="x" * 10)
    assert error.value.code == "ValidationException"
    with pytest.raises(ResourceNotFoundError):
        call(fake, "DescribeStream", StreamArn=fake.stream_arn + "x")


def test_expire_iterators_and_empty_pages() -> None:
    """Expired iterators raise ExpiredIteratorError; injected empty pages do not move."""
    fake = FakeStreams()
    (root,) = fake.shard_ids()
    fake.put(key(1), new_image=image(1, 1))
    iterator = call(
        fake,
        "GetShardIterator",
        StreamArn=fake.stream_arn,
        ShardId=root,
        ShardIteratorType="TRIM_HORIZON",
    )["ShardIterator"]
    fake.expire_iterators()
    with pytest.raises(ExpiredIteratorError):
        call(fake, "GetRecords", ShardIterator=iterator)
    fake.inject_empty_pages(root, 2)
    iterator = call(
        fake,
        "GetShardIterator",
        StreamArn=fake.stream_arn,
        ShardId=root,
        ShardIteratorType="TRIM_HORIZON",
    )["ShardIterator"]
    sizes = []
    for _ in range(3):
        page = call(fake, "GetRecords", ShardIterator=iterator)
        sizes.append(len(page["Records"]))
        iterator = page["NextShardIterator"]
    assert sizes == [0, 0, 1]


def test_other_services_are_delegated_or_refused() -> None:
    """DynamoDB calls go to the inner transport when there is one and fail otherwise."""

    class Inner:
        def call(self, service: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
            return {"service": service, "operation": operation}

    assert FakeStreams(inner=Inner()).call("dynamodb", "GetItem", {}) == {
        "service": "dynamodb",
        "operation": "GetItem",
    }
    with pytest.raises(ValueError):
        FakeStreams().call("dynamodb", "GetItem", {})


def test_creation_time_is_injectable() -> None:
    """Records take their creation time from `at`, else from the fake's clock."""
    start = datetime(2024, 5, 1, 12, 0, 0, 700_000, tzinfo=UTC)
    fake = FakeStreams(now=lambda: start)
    assert fake.put(key(1), new_image=image(1, 1))["dynamodb"][
        "ApproximateCreationDateTime"
    ] == start.replace(microsecond=0)
    later = start + timedelta(hours=1)
    body = fake.put(key(1), new_image=image(1, 1), at=later)["dynamodb"]
    assert body["ApproximateCreationDateTime"] == later.replace(microsecond=0)
