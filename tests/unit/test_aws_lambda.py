"""Lambda handler units: the JSON converter, AWS's sample event, routing and partial batches."""

from __future__ import annotations

import base64
import copy
import datetime
import decimal
import re
from typing import Any

import pytest

from streamodel import Column, Engine, Integer, String, new_base, signals
from streamodel.exceptions import ConditionFailedError, InvalidModelError
from streamodel.stream import Change, Worker
from streamodel.stream.aws_lambda import (
    LambdaHandler,
    botocore_record,
    lambda_event,
    lambda_handler,
    lambda_record,
    table_name_from_arn,
)
from streamodel.stream.coordinator import _created_at
from streamodel.stream.records import UndecodableRecordError, decode_record
from streamodel.stream.worker import DeadLetterInfo
from streamodel.testing.event_source_mapping import Invocation, _done_count
from streamodel.transport.json_shape import datetime_from_json, item_from_json

Base = new_base()


class Message(Base):
    class Meta:
        table_name = "my-table"

    Id = Column(Integer, hash_key=True)
    Message = Column(String)


ARN = "arn:aws:dynamodb:us-east-2:123456789012:table/my-table/stream/2023-06-10T19:26:16.525"

# The example event of the Lambda developer guide, "Using AWS Lambda with Amazon DynamoDB".
AWS_SAMPLE_EVENT: dict[str, Any] = {
    "Records": [
        {
            "eventID": "1",
            "eventVersion": "1.0",
            "dynamodb": {
                "Keys": {"Id": {"N": "101"}},
                "NewImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}},
                "StreamViewType": "NEW_AND_OLD_IMAGES",
                "SequenceNumber": "111",
                "SizeBytes": 26,
            },
            "awsRegion": "us-west-2",
            "eventName": "INSERT",
            "eventSourceARN": ARN,
            "eventSource": "aws:dynamodb",
        },
        {
            "eventID": "2",
            "eventVersion": "1.0",
            "dynamodb": {
                "OldImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}},
                "SequenceNumber": "222",
                "Keys": {"Id": {"N": "101"}},
                "SizeBytes": 59,
                "NewImage": {"Message": {"S": "This item has changed"}, "Id": {"N": "101"}},
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "awsRegion": "us-west-2",
            "eventName": "MODIFY",
            "eventSourceARN": ARN,
            "eventSource": "aws:dynamodb",
        },
        {
            "eventID": "3",
            "eventVersion": "1.0",
            "dynamodb": {
                "Keys": {"Id": {"N": "101"}},
                "SizeBytes": 38,
                "SequenceNumber": "333",
                "OldImage": {"Message": {"S": "This item has changed"}, "Id": {"N": "101"}},
                "StreamViewType": "NEW_AND_OLD_IMAGES",
            },
            "awsRegion": "us-west-2",
            "eventName": "REMOVE",
            "eventSourceARN": ARN,
            "eventSource": "aws:dynamodb",
        },
    ]
}


def test_sample_event_decodes_and_dispatches(engine: Engine, transport: Any) -> None:
    """AWS's documented sample event becomes insert, modify and remove Changes of the model,
    each announced by change_received, and the batch reports no failures."""
    worker = Worker(engine, group="g")
    changes: list[Change] = []
    worker.subscribe(Message)(changes.append)
    received: list[Change] = []

    def on_received(sender: Any, change: Change) -> None:
        received.append(change)

    signals.change_received.connect(on_received, sender=Message)
    try:
        response = worker.lambda_handler(copy.deepcopy(AWS_SAMPLE_EVENT), None)
    finally:
        signals.change_received.disconnect(on_received, sender=Message)
    assert response == {"batchItemFailures": []}
    assert [c.event for c in changes] == ["insert", "modify", "remove"]
    assert received == changes
    insert, modify, remove = changes
    assert insert.key == {"Id": 101} and insert.new.Message == "New item!" and insert.old is None
    assert modify.old.Message == "New item!" and modify.new.Message == "This item has changed"
    assert modify.changed == ("Message",)
    assert remove.new is None and remove.old.Message == "This item has changed"
    assert [c.sequence_number for c in changes] == ["111", "222", "333"]
    assert [c.event_id for c in changes] == ["1", "2", "3"]
    assert all(c.shard_id == ARN and c.created_at.tzinfo is not None for c in changes)
    assert not remove.expired
    assert transport.calls == []  # plain subscribers that succeed need no state


def test_ttl_delete_is_expired(engine: Engine) -> None:
    """A REMOVE carrying the DynamoDB service's userIdentity is a Change with expired=True."""
    worker = Worker(engine, group="g")
    changes: list[Change] = []
    worker.subscribe(Message)(changes.append)
    event = copy.deepcopy(AWS_SAMPLE_EVENT)
    event["Records"] = event["Records"][2:]
    event["Records"][0]["userIdentity"] = {
        "type": "Service",
        "principalId": "dynamodb.amazonaws.com",
    }
    assert worker.lambda_handler(event, None) == {"batchItemFailures": []}
    (change,) = changes
    assert change.event == "remove" and change.expired


def test_converter_restores_bytes_datetimes_and_keeps_numbers() -> None:
    """Base64 binaries become bytes at every depth (B, BS, inside M and L), numbers stay
    strings, and the epoch-second creation time becomes an aware UTC datetime."""
    blob = b"\x00\xffbin"
    text = base64.b64encode(blob).decode()
    record = {
        "eventName": "INSERT",
        "dynamodb": {
            "ApproximateCreationDateTime": 1700000000,
            "Keys": {"k": {"B": text}},
            "NewImage": {
                "k": {"B": text},
                "bs": {"BS": [text]},
                "n": {"N": "1.50"},
                "ns": {"NS": ["1", "2"]},
                "m": {"M": {"inner": {"L": [{"B": text}, {"S": "x"}, {"NULL": True}]}}},
                "b": {"BOOL": False},
            },
        },
    }
    converted = botocore_record(record)
    image = converted["dynamodb"]["NewImage"]
    assert converted["dynamodb"]["Keys"] == {"k": {"B": blob}}
    assert image["bs"] == {"BS": [blob]} and image["n"] == {"N": "1.50"}
    assert image["ns"] == {"NS": ["1", "2"]} and image["b"] == {"BOOL": False}
    assert image["m"] == {"M": {"inner": {"L": [{"B": blob}, {"S": "x"}, {"NULL": True}]}}}
    assert converted["dynamodb"]["ApproximateCreationDateTime"] == datetime.datetime(
        2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC
    )
    assert record["dynamodb"]["Keys"] == {"k": {"B": text}}  # the event is not modified
    assert botocore_record(converted) == converted  # a botocore record passes unchanged
    back = lambda_record(converted, event_source_arn=ARN, aws_region="us-east-2")
    assert back["dynamodb"]["NewImage"] == record["dynamodb"]["NewImage"]
    assert back["dynamodb"]["ApproximateCreationDateTime"] == 1700000000
    assert back["eventSource"] == "aws:dynamodb" and back["eventSourceARN"] == ARN
    assert back["awsRegion"] == "us-east-2" and back["eventVersion"] == "1.1"


def test_lambda_json_and_botocore_shapes_decode_to_equal_changes() -> None:
    """The same record decodes to the same Change from botocore's shape and Lambda's JSON."""
    raw = {
        "eventID": "e1",
        "eventName": "MODIFY",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime.datetime(
                2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC
            ),
            "Keys": {"Id": {"N": "7"}},
            "OldImage": {"Id": {"N": "7"}, "Message": {"S": "a"}},
            "NewImage": {"Id": {"N": "7"}, "Message": {"S": "b"}},
            "SequenceNumber": "000000000000000000042",
        },
    }
    event = lambda_event([lambda_record(raw, event_source_arn=ARN)])
    direct = decode_record(Message, raw, shard_id="s", sequence_number="000000000000000000042")
    via = decode_record(
        Message,
        botocore_record(event["Records"][0]),
        shard_id="s",
        sequence_number="000000000000000000042",
    )
    for name in ("event", "key", "changed", "sequence_number", "event_id", "created_at"):
        assert getattr(via, name) == getattr(direct, name), name
    assert (via.old.Message, via.new.Message) == (direct.old.Message, direct.new.Message)


def test_failure_stops_the_batch_at_that_record(engine: Engine) -> None:
    """A handler failure returns that record's sequence number as the batch item failure and
    the records after it are not handled (on_failure="stop": no state table is needed)."""
    worker = Worker(engine, group="g", on_failure="stop")
    seen: list[str] = []

    @worker.subscribe(Message)
    def handler(change: Change) -> None:
        seen.append(change.sequence_number)
        if change.event == "modify":
            raise RuntimeError("boom")

    response = lambda_handler(worker)(copy.deepcopy(AWS_SAMPLE_EVENT), None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "222"}]}
    assert seen == ["111", "222"]


def test_running_out_of_time_reports_the_next_record(engine: Engine) -> None:
    """When the invocation's remaining time drops below the margin, the batch stops before
    the next record and reports it, instead of timing out."""
    worker = Worker(engine, group="g")
    seen: list[str] = []
    worker.subscribe(Message)(lambda c: seen.append(c.sequence_number))

    class Context:
        left = [5000, 100]

        def get_remaining_time_in_millis(self) -> int:
            return self.left.pop(0)

    response = lambda_handler(worker, time_margin=1.0)(copy.deepcopy(AWS_SAMPLE_EVENT), Context())
    assert response == {"batchItemFailures": [{"itemIdentifier": "333"}]}
    assert seen == ["111", "222"]


def test_unknown_table_is_refused_before_anything_is_handled(engine: Engine) -> None:
    """A record of a table no subscription reads raises InvalidModelError before any record
    of the batch reaches a handler."""
    worker = Worker(engine, group="g")
    seen: list[Change] = []
    worker.subscribe(Message)(seen.append)
    event = copy.deepcopy(AWS_SAMPLE_EVENT)
    event["Records"][1]["eventSourceARN"] = ARN.replace("my-table", "other")
    with pytest.raises(InvalidModelError, match="other"):
        worker.lambda_handler(event, None)
    assert seen == []


def test_table_name_from_arn() -> None:
    """The table name is read from stream and table ARNs; anything else is refused."""
    assert table_name_from_arn(ARN) == "my-table"
    assert table_name_from_arn("arn:aws:dynamodb:r:1:table/t.x-y") == "t.x-y"
    with pytest.raises(ValueError):
        table_name_from_arn("eventsourcearn")


def test_mapping_retries_from_the_lowest_reported_failure() -> None:
    """The emulated mapping counts the records before the lowest reported failure as done,
    and retries the whole batch after an exception or an unknown identifier."""
    batch = [{"dynamodb": {"SequenceNumber": s}} for s in ("1", "2", "3")]

    def done(response: Any = None, error: BaseException | None = None) -> int:
        return _done_count(batch, Invocation({"Records": batch}, response, error))

    assert done({"batchItemFailures": []}) == 3
    assert done(None) == 3
    assert done({"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "2"}]}) == 1
    assert done({"batchItemFailures": [{"itemIdentifier": "9"}]}) == 0
    assert done(error=RuntimeError()) == 0


def test_converter_shares_what_needs_no_conversion() -> None:
    """Converting a record copies nothing that holds no binary text: images without binaries
    are the event's own dicts, and of an image with binaries only the values holding them
    (and the maps and lists around them) are new. The event is never modified."""
    event = copy.deepcopy(AWS_SAMPLE_EVENT)
    record = event["Records"][1]
    converted = botocore_record(record)
    for name in ("Keys", "OldImage", "NewImage"):
        assert converted["dynamodb"][name] is record["dynamodb"][name], name
    assert converted is not record and converted["dynamodb"] is not record["dynamodb"]
    assert "ApproximateCreationDateTime" not in record["dynamodb"]

    text = base64.b64encode(b"\x01").decode()
    tags = {"SS": ["a"]}
    listed = {"L": [{"N": "1"}, {"B": text}]}
    image = {"s": {"S": "x"}, "tags": tags, "m": {"M": {"l": listed, "n": {"N": "2"}}}}
    before = copy.deepcopy(image)
    restored = item_from_json(image)
    assert image == before  # not modified
    assert restored["s"] is image["s"] and restored["tags"] is tags
    inner = restored["m"]["M"]
    assert inner["n"] is image["m"]["M"]["n"] and inner["l"]["L"][0] is listed["L"][0]
    assert inner["l"]["L"][1] == {"B": b"\x01"}
    assert item_from_json(restored) is restored  # nothing left to convert


def test_one_time_converter_for_every_shape() -> None:
    """Epoch seconds in every JSON form and datetimes of any zone become the same aware UTC
    datetime; what is not a time is refused with ValueError, and a stream record with such a
    time is undecodable (not a 1970 change). The reader's ``since`` filter reads the same
    shapes (numeric text included) and delivers a record whose time it cannot read."""
    moment = datetime.datetime(2023, 11, 14, 22, 13, 20, tzinfo=datetime.UTC)
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    for value in (
        1700000000,
        1700000000.0,
        decimal.Decimal("1700000000"),
        "1700000000",
        moment,
        moment.replace(tzinfo=None),
        moment.astimezone(plus_two),
    ):
        converted = datetime_from_json(value)
        assert converted == moment and converted.tzinfo is datetime.UTC, value
    for bad in (True, None, "soon", [1], 1e300):
        with pytest.raises(ValueError):
            datetime_from_json(bad)
    record = copy.deepcopy(AWS_SAMPLE_EVENT["Records"][0])
    record["dynamodb"]["ApproximateCreationDateTime"] = True
    with pytest.raises(UndecodableRecordError):
        decode_record(Message, record, shard_id="s", sequence_number="111")
    assert _created_at({"dynamodb": {"ApproximateCreationDateTime": "1700000000"}}) == moment
    assert _created_at({"dynamodb": {"ApproximateCreationDateTime": "soon"}}) is None
    assert _created_at({"dynamodb": {}}) is None


def _entity_record(entity: str, sequence: str) -> dict[str, Any]:
    """The sample's first record, its item naming ``entity`` (single-table design)."""
    record = copy.deepcopy(AWS_SAMPLE_EVENT["Records"][0])
    record["dynamodb"]["NewImage"]["_entity"] = {"S": entity}
    record["dynamodb"]["SequenceNumber"] = sequence
    return record


def test_worker_builds_its_lambda_handler_once(engine: Engine) -> None:
    """worker.lambda_handler is one handler (and one pair of state models) per worker; a
    handler taken before a later subscribe still serves the new subscription, of another
    entity of a table it already routed: each record goes to the entity its item names,
    and one of no known entity is passed over and counted."""
    entities = new_base()

    class Note(entities):  # type: ignore[valid-type, misc]
        class Meta:
            table_name = "my-table"

        Id = Column(Integer, hash_key=True)
        Message = Column(String)

    class Reply(entities):  # type: ignore[valid-type, misc]
        class Meta:
            table_name = "my-table"

        Id = Column(Integer, hash_key=True)
        Message = Column(String)

    worker = Worker(engine, group="g")
    seen: list[tuple[str, str]] = []
    worker.subscribe(Note)(lambda c: seen.append(("note", c.sequence_number)))
    handler = worker.lambda_handler
    assert isinstance(handler, LambdaHandler)
    assert worker.lambda_handler is handler
    assert worker.lambda_handler.AppliedChange is handler.AppliedChange
    first = {"Records": [_entity_record("Note", "111"), _entity_record("Reply", "112")]}
    assert handler(copy.deepcopy(first), None) == {"batchItemFailures": []}
    assert seen == [("note", "111")]  # Reply's record is nobody's yet: passed over
    worker.subscribe(Reply)(lambda c: seen.append(("reply", c.sequence_number)))
    records = [_entity_record(e, s) for e, s in (("Reply", "113"), ("Ghost", "114"))]
    assert handler({"Records": records}, None) == {"batchItemFailures": []}
    assert seen == [("note", "111"), ("reply", "113")]
    assert handler.skipped == 1  # Ghost: no such entity


def _counted(item_count: int) -> dict[str, Any]:
    """A GetItem answer holding a failure counter item at ``item_count``."""
    return {
        "Item": {
            "pk": {"S": "lambda|g|" + ARN},
            "sk": {"S": "attempts|1"},
            "counter": {"N": str(item_count)},
        }
    }


def _counter_write(params: dict[str, Any]) -> tuple[str, int]:
    """(condition, value written) of a counter UpdateItem, placeholders filled in."""

    def fill(text: str) -> str:
        return re.sub(
            r"[#:]\w+",
            lambda m: (
                params["ExpressionAttributeNames"].get(m.group())
                or next(iter(params["ExpressionAttributeValues"][m.group()].values()))
            ),
            text,
        )

    written = re.search(r"counter=(\S+?)(,|$)", fill(params["UpdateExpression"]))
    assert written is not None
    return fill(params["ConditionExpression"]), int(written.group(1))


@pytest.mark.parametrize("created_first", [True, False])
def test_failure_counter_survives_concurrent_invocations(
    engine: Engine, transport: Any, created_first: bool
) -> None:
    """The failure counter is a version-conditioned read-modify-write: when another
    invocation created the counter item first, or moved it between the read and the write,
    the count is read again and written on top of theirs; none is lost, and at
    max_attempts the change is dead-lettered."""
    letters: list[DeadLetterInfo] = []
    worker = Worker(engine, group="g", max_attempts=3, dead_letter=letters.append)

    @worker.subscribe(Message)
    def fail(change: Change) -> None:
        raise RuntimeError("always")

    handler = worker.lambda_handler
    handler._ready = True  # the state table and its TTL: not what this test is about
    race = ConditionFailedError("moved", item=_counted(2)["Item"])
    if created_first:  # missing, our create loses, theirs is at 2: we write 3
        transport.queue("GetItem", {}, _counted(2))
    else:  # at 1, our 2 loses to theirs, read again at 2: we write 3
        transport.queue("GetItem", _counted(1), _counted(2))
    transport.queue("UpdateItem", race, {})
    event = copy.deepcopy(AWS_SAMPLE_EVENT)
    event["Records"] = event["Records"][:1]
    assert handler(event, None) == {"batchItemFailures": []}
    (letter,) = letters
    assert letter.attempts == 3 and str(letter.error) == "always"
    writes = [p for _, op, p in transport.calls if op == "UpdateItem"]
    first = "attribute_not_exists(counter)" if created_first else "counter = 1"
    assert [_counter_write(w) for w in writes] == [
        (first, 1 if created_first else 2),
        ("counter = 2", 3),
    ]


def test_lambda_retries_within_an_invocation_through_the_workers_dispatcher(
    engine: Engine, transport: Any
) -> None:
    """The Lambda handler delivers through the worker's own Dispatcher: with
    attempts_per_invocation=3, a handler failing twice gets the record on its third try in the
    same invocation, and the batch goes through without writing any state."""
    worker = Worker(engine, group="g", on_failure="stop", retry_wait=0.0001)
    handler = lambda_handler(worker, attempts_per_invocation=3)
    assert handler.dispatcher is worker.dispatcher
    tries: list[str] = []

    @worker.subscribe(Message, events=("modify",))
    def flaky(change: Change) -> None:
        tries.append(change.sequence_number)
        if len(tries) < 3:
            raise RuntimeError("not yet")

    response = handler(copy.deepcopy(AWS_SAMPLE_EVENT), None)
    assert response == {"batchItemFailures": []}
    assert tries == ["222", "222", "222"]
    assert transport.calls == []
