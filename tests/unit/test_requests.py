"""The requests the engine sends, by what they mean: every one is checked against botocore's
service model (inside the fake transport of conftest.py), and expressions are compared with
their placeholders substituted (``meaning.py``), so renumbering placeholders, reordering
clauses or dropping redundant parentheses passes, and changing what is written or checked
fails. What the requests do to stored items is checked on DynamoDB Local
(``tests/integration``)."""

from __future__ import annotations

import re
from typing import Any

import marshmallow
import pytest
from meaning import condition, meaning, same_request, update

import streamodel
from streamodel import (
    Column,
    ConditionFailedError,
    DateTime,
    GlobalSecondaryIndex,
    Integer,
    LocalSecondaryIndex,
    Set,
    StaleVersionError,
    String,
    Timestamp,
    new_base,
    signals,
)
from streamodel.tables import create_table_request

Base = new_base()


class User(Base):
    id = Column(String, hash_key=True)
    name = Column(String)
    email = Column(String)
    tags = Column(Set(String))
    age = Column(Integer)
    by_email = GlobalSecondaryIndex(hash_key="email", projection=["name"])


class Doc(Base):
    id = Column(String, hash_key=True)
    body = Column(String)
    version = Column(Integer, version=True)


class Event(Base):
    class Meta:
        read_units = 5
        write_units = 2
        stream = "keys"

    owner = Column(String, hash_key=True)
    at = Column(Integer, range_key=True)
    kind = Column(String)
    note = Column(String)
    by_kind = GlobalSecondaryIndex(hash_key="kind", range_key="at", projection="keys")


class Log(Base):
    class Meta:
        stream = None
        ttl = {"column": "expires"}

    owner = Column(String, hash_key=True)
    seq = Column(Integer, range_key=True)
    level = Column(String)
    text = Column(String)
    expires = Column(Timestamp)
    by_level = LocalSecondaryIndex(range_key="level", projection=["text"])


def stored_user(**values: Any) -> User:
    """A User as if loaded from DynamoDB, with exactly ``values`` stored."""
    from streamodel._diff import fill
    from streamodel.models import new_instance

    obj = new_instance(User)
    item = {
        User.Meta.columns_by_name[k].dynamo_name: User.Meta.columns_by_name[k].type.dynamo_dump(v)
        for k, v in values.items()
    }
    fill(obj, item)  # type: ignore[arg-type]
    return obj  # type: ignore[return-value]


def test_save_new_object_sets_only_set_columns(engine: Any, transport: Any) -> None:
    """Saving a new object SETs the columns it holds, not untouched ones, with no condition."""
    engine.save(User(id="u1", name="Ann", tags={"b", "a"}))
    assert same_request(
        transport.only("UpdateItem"),
        {
            "TableName": "User",
            "Key": {"id": {"S": "u1"}},
            "UpdateExpression": "SET #n0=:v0, #n1=:v1",
            "ExpressionAttributeNames": {"#n0": "name", "#n1": "tags"},
            "ExpressionAttributeValues": {":v0": {"S": "Ann"}, ":v1": {"SS": ["a", "b"]}},
        },
    )


def test_save_after_change_writes_only_that_column(engine: Any, transport: Any) -> None:
    """After a load, changing one column makes the save name only that column."""
    transport.queue(
        "GetItem",
        {"Item": {"id": {"S": "u1"}, "name": {"S": "Ann"}, "age": {"N": "3"}}},
    )
    user = User(id="u1")
    engine.load(user)
    user.age = 4
    engine.save(user)
    (_, op, params) = transport.calls[1]
    assert op == "UpdateItem"
    assert same_request(
        params,
        {
            "TableName": "User",
            "Key": {"id": {"S": "u1"}},
            "UpdateExpression": "SET #n0=:v0",
            "ExpressionAttributeNames": {"#n0": "age"},
            "ExpressionAttributeValues": {":v0": {"N": "4"}},
        },
    )


def test_clearing_a_column_removes_it(engine: Any, transport: Any) -> None:
    """Setting a stored column to None (or an empty set) REMOVEs it."""
    user = stored_user(id="u1", name="Ann", tags={"x"})
    user.name = None
    user.tags = set()
    engine.save(user)
    assert same_request(
        transport.only("UpdateItem"),
        {
            "TableName": "User",
            "Key": {"id": {"S": "u1"}},
            "UpdateExpression": "REMOVE #n0, #n1",
            "ExpressionAttributeNames": {"#n0": "name", "#n1": "tags"},
        },
    )


def test_unchanged_stored_object_sends_nothing(engine: Any, transport: Any) -> None:
    """Saving an object that is stored exactly as it is makes no call at all."""
    user = stored_user(id="u1", name="Ann")
    engine.save(user)
    user.name = "Ann"  # touched, but equal to what is stored
    engine.save(user)
    assert transport.calls == []


def test_second_save_after_save_sends_nothing(engine: Any, transport: Any) -> None:
    """After a successful save the object is known stored, so saving again sends nothing."""
    user = User(id="u1", name="Ann")
    engine.save(user)
    engine.save(user)
    assert transport.operations() == ["UpdateItem"]


def test_save_with_condition(engine: Any, transport: Any) -> None:
    """A save's condition is rendered with the update, sharing placeholders."""
    engine.save(User(id="u1", name="Ann"), condition=User.name.is_(None) | (User.age < 18))
    assert same_request(
        transport.only("UpdateItem"),
        {
            "TableName": "User",
            "Key": {"id": {"S": "u1"}},
            "UpdateExpression": "SET #n0=:v0",
            "ConditionExpression": "(attribute_not_exists(#n0)) OR (#n1 < :v1)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            "ExpressionAttributeNames": {"#n0": "name", "#n1": "age"},
            "ExpressionAttributeValues": {":v0": {"S": "Ann"}, ":v1": {"N": "18"}},
        },
    )


def test_atomic_save_of_new_object_requires_absence(engine: Any, transport: Any) -> None:
    """An atomic save of a new object requires that no item exists."""
    engine.save(User(id="u1", name="Ann"), atomic=True)
    params = transport.only("UpdateItem")
    assert meaning(params)["ConditionExpression"] == condition("attribute_not_exists(#id)")
    assert meaning(params)["UpdateExpression"] == update("SET #name = :ann", ann={"S": "Ann"})


def test_atomic_save_of_loaded_object_checks_every_known_column(
    engine: Any, transport: Any
) -> None:
    """An atomic save of a loaded object requires every column to be as it was loaded."""
    user = stored_user(id="u1", name="Ann", age=3)
    user.age = 4
    engine.save(user, atomic=True)
    params = transport.only("UpdateItem")
    assert meaning(params)["UpdateExpression"] == update("SET #age = :four", four={"N": "4"})
    assert meaning(params)["ConditionExpression"] == condition(
        "#name = :ann AND attribute_not_exists(#email) AND attribute_not_exists(#tags)"
        " AND #age = :three",
        ann={"S": "Ann"},
        three={"N": "3"},
    )


def test_atomic_delete(engine: Any, transport: Any) -> None:
    """An atomic delete requires the stored item to be what was loaded."""
    user = stored_user(id="u1", name="Ann")
    engine.delete(user, atomic=True)
    params = transport.only("DeleteItem")
    assert params["Key"] == {"id": {"S": "u1"}}
    assert meaning(params)["ConditionExpression"] == condition(
        "#name = :ann AND attribute_not_exists(#email) AND attribute_not_exists(#tags)"
        " AND attribute_not_exists(#age)",
        ann={"S": "Ann"},
    )
    assert params["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"


def test_versioned_first_and_later_saves(engine: Any, transport: Any) -> None:
    """A versioned first save requires no version and sets 1; the next requires 1, sets 2."""
    doc = Doc(id="d", body="one")
    engine.save(doc)
    assert doc.version == 1
    doc.body = "two"
    engine.save(doc)
    assert doc.version == 2
    first, second = (params for _, _, params in transport.calls)
    assert same_request(
        first,
        {
            "TableName": "Doc",
            "Key": {"id": {"S": "d"}},
            "UpdateExpression": "SET #n0=:v0, #n1=:v1",
            "ConditionExpression": "attribute_not_exists(#n1)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            "ExpressionAttributeNames": {"#n0": "body", "#n1": "version"},
            "ExpressionAttributeValues": {":v0": {"S": "one"}, ":v1": {"N": "1"}},
        },
    )
    assert same_request(
        second,
        {
            "TableName": "Doc",
            "Key": {"id": {"S": "d"}},
            "UpdateExpression": "SET #n0=:v0, #n1=:v1",
            "ConditionExpression": "#n1 = :v2",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            "ExpressionAttributeNames": {"#n0": "body", "#n1": "version"},
            "ExpressionAttributeValues": {
                ":v0": {"S": "two"},
                ":v1": {"N": "2"},
                ":v2": {"N": "1"},
            },
        },
    )


def test_stale_version_raises_stale_version_error(engine: Any, transport: Any) -> None:
    """A refused versioned save whose stored version moved on raises StaleVersionError."""
    doc = Doc(id="d", body="one")
    engine.save(doc)
    transport.queue(
        "UpdateItem",
        ConditionFailedError("failed", item={"id": {"S": "d"}, "version": {"N": "5"}}),
    )
    doc.body = "two"
    with pytest.raises(StaleVersionError):
        engine.save(doc)
    assert doc.version == 1


def test_delete_of_versioned_object(engine: Any, transport: Any) -> None:
    """Deleting a versioned object requires the stored version to be the object's."""
    doc = Doc(id="d", body="one")
    engine.save(doc)
    engine.delete(doc)
    assert transport.operations()[1] == "DeleteItem"
    assert same_request(
        transport.calls[1][2],
        {
            "TableName": "Doc",
            "Key": {"id": {"S": "d"}},
            "ConditionExpression": "#n0 = :v0",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            "ExpressionAttributeNames": {"#n0": "version"},
            "ExpressionAttributeValues": {":v0": {"N": "1"}},
        },
    )


def test_plain_delete(engine: Any, transport: Any) -> None:
    """A plain delete sends only the table and key."""
    engine.delete(User(id="u1"))
    assert transport.only("DeleteItem") == {"TableName": "User", "Key": {"id": {"S": "u1"}}}


def test_load_150_objects_in_two_batches_retrying_unprocessed(engine: Any, transport: Any) -> None:
    """Loading 150 objects sends 100 + 50 keys and retries UnprocessedKeys."""
    users = [User(id=f"u{i:03}") for i in range(150)]

    def answer(params: dict[str, Any]) -> dict[str, Any]:
        keys = params["RequestItems"]["User"]["Keys"]
        if len(keys) == 100:  # first call: answer 99, leave one unprocessed
            return {
                "Responses": {"User": [{**k, "name": {"S": "n"}} for k in keys[:99]]},
                "UnprocessedKeys": {"User": {"Keys": keys[99:], "ConsistentRead": True}},
            }
        return {"Responses": {"User": [{**k, "name": {"S": "n"}} for k in keys]}}

    transport.queue("BatchGetItem", answer, answer, answer)
    engine.load(*users, consistent=True)
    sizes = [len(p["RequestItems"]["User"]["Keys"]) for _, _, p in transport.calls]
    assert transport.operations() == ["BatchGetItem"] * 3
    assert sizes == [100, 1, 50]
    first = transport.calls[0][2]["RequestItems"]["User"]
    assert first["ConsistentRead"] is True
    assert first["Keys"][0] == {"id": {"S": "u000"}}
    assert transport.calls[1][2]["RequestItems"]["User"]["Keys"] == [{"id": {"S": "u099"}}]
    assert all(u.name == "n" for u in users)


def test_keys_left_unprocessed_for_good_are_a_throttled_error(engine: Any, transport: Any) -> None:
    """Keys DynamoDB keeps leaving unprocessed end in a public ThrottledError once the
    engine's attempts are used up (never a private retry marker): the resends and the
    retries share one bound."""

    def never(params: dict[str, Any]) -> dict[str, Any]:
        return {"Responses": {}, "UnprocessedKeys": params["RequestItems"]}

    attempts = engine.retry.attempts
    transport.queue("BatchGetItem", *([never] * attempts))
    match = f"2 key\\(s\\) unprocessed after {attempts} attempts"
    with pytest.raises(streamodel.ThrottledError, match=match) as caught:
        engine.load(User(id="a"), User(id="b"))
    assert caught.value.code == "UnprocessedKeys"
    assert transport.operations() == ["BatchGetItem"] * attempts


def test_load_missing_objects_raises_after_filling_found(engine: Any, transport: Any) -> None:
    """load fills what it finds, then MissingObjectsError lists the rest."""
    transport.queue(
        "BatchGetItem", {"Responses": {"User": [{"id": {"S": "a"}, "age": {"N": "1"}}]}}
    )
    a, b = User(id="a"), User(id="b")
    with pytest.raises(streamodel.MissingObjectsError) as info:
        engine.load(a, b)
    assert a.age == 1
    assert info.value.objects == [b]


def test_query_on_gsi_with_key_filter_projection(engine: Any, transport: Any) -> None:
    """A GSI query renders key, filter and projection (keys always included, so objects can
    be saved and results resumed) with shared placeholders."""
    transport.queue("Query", {"Items": [{"id": {"S": "u1"}, "name": {"S": "Ann"}}], "Count": 1})
    search = (
        engine.query(User.by_email)
        .key(User.email == "a@b.c")
        .filter(User.name.begins_with("A"))
        .project(["name"])
        .forward(False)
        .page_size(10)
    )
    found = search.first()
    assert found.name == "Ann"
    assert same_request(
        transport.only("Query"),
        {
            "TableName": "User",
            "IndexName": "by_email",
            "KeyConditionExpression": "#n0 = :v0",
            "FilterExpression": "begins_with(#n1, :v1)",
            "ProjectionExpression": "#n2, #n0, #n1",
            "ScanIndexForward": False,
            "Limit": 10,
            "ExpressionAttributeNames": {"#n0": "email", "#n1": "name", "#n2": "id"},
            "ExpressionAttributeValues": {":v0": {"S": "a@b.c"}, ":v1": {"S": "A"}},
        },
    )


def test_query_with_range_key_condition(engine: Any, transport: Any) -> None:
    """A table query combines hash == and a range BETWEEN in the key condition."""
    list(engine.query(Event).key((Event.owner == "o") & Event.at.between(1, 9)).consistent())
    assert same_request(
        transport.only("Query"),
        {
            "TableName": "Event",
            "KeyConditionExpression": "(#n0 = :v0) AND (#n1 BETWEEN :v1 AND :v2)",
            "ConsistentRead": True,
            "ExpressionAttributeNames": {"#n0": "owner", "#n1": "at"},
            "ExpressionAttributeValues": {":v0": {"S": "o"}, ":v1": {"N": "1"}, ":v2": {"N": "9"}},
        },
    )


def test_scan_with_segments_follows_pages(engine: Any, transport: Any) -> None:
    """A segmented scan sends Segment/TotalSegments and follows LastEvaluatedKey."""
    transport.queue(
        "Scan",
        {"Items": [{"id": {"S": "a"}}], "LastEvaluatedKey": {"id": {"S": "a"}}},
        {"Items": [{"id": {"S": "b"}}]},
    )
    found = engine.scan(User).filter(User.age > 3).segment(1, 4).all()
    assert [u.id for u in found] == ["a", "b"]
    first, second = (p for _, _, p in transport.calls)
    assert same_request(
        first,
        {
            "TableName": "User",
            "FilterExpression": "#n0 > :v0",
            "Segment": 1,
            "TotalSegments": 4,
            "ExpressionAttributeNames": {"#n0": "age"},
            "ExpressionAttributeValues": {":v0": {"N": "3"}},
        },
    )
    assert second == {**first, "ExclusiveStartKey": {"id": {"S": "a"}}}


def test_count_uses_select_count(engine: Any, transport: Any) -> None:
    """count() asks DynamoDB to count (Select=COUNT) and sums the pages."""
    transport.queue(
        "Query",
        {"Count": 2, "LastEvaluatedKey": {"owner": {"S": "o"}, "at": {"N": "1"}}},
        {"Count": 3},
    )
    assert engine.query(Event).key(Event.owner == "o").count() == 5
    assert same_request(
        transport.calls[0][2],
        {
            "TableName": "Event",
            "KeyConditionExpression": "#n0 = :v0",
            "Select": "COUNT",
            "ExpressionAttributeNames": {"#n0": "owner"},
            "ExpressionAttributeValues": {":v0": {"S": "o"}},
        },
    )


def test_write_transaction(engine: Any, transport: Any) -> None:
    """A write transaction sends one TransactWriteItems with a ClientRequestToken."""
    checked = stored_user(id="c", name="C")
    with engine.transaction() as tx:
        tx.save(User(id="a", name="A"))
        tx.delete(User(id="b"))
        tx.check(checked, User.name == "C")
    params = transport.only("TransactWriteItems")
    token = params.pop("ClientRequestToken")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert same_request(
        params,
        {
            "TransactItems": [
                {
                    "Update": {
                        "TableName": "User",
                        "Key": {"id": {"S": "a"}},
                        "UpdateExpression": "SET #n0=:v0",
                        "ExpressionAttributeNames": {"#n0": "name"},
                        "ExpressionAttributeValues": {":v0": {"S": "A"}},
                    }
                },
                {"Delete": {"TableName": "User", "Key": {"id": {"S": "b"}}}},
                {
                    "ConditionCheck": {
                        "TableName": "User",
                        "Key": {"id": {"S": "c"}},
                        "ConditionExpression": "#n0 = :v0",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        "ExpressionAttributeNames": {"#n0": "name"},
                        "ExpressionAttributeValues": {":v0": {"S": "C"}},
                    }
                },
            ]
        },
    )


def test_read_transaction(engine: Any, transport: Any) -> None:
    """A read transaction sends one TransactGetItems and fills the objects."""
    transport.queue(
        "TransactGetItems", {"Responses": [{"Item": {"id": {"S": "a"}, "age": {"N": "7"}}}]}
    )
    a = User(id="a")
    with engine.transaction(mode="r") as tx:
        tx.load(a)
    assert transport.only("TransactGetItems") == {
        "TransactItems": [{"Get": {"TableName": "User", "Key": {"id": {"S": "a"}}}}]
    }
    assert a.age == 7


def test_create_table_provisioned_with_gsi_and_stream(valid_request: Any) -> None:
    """A provisioned model with a KEYS_ONLY GSI and a keys stream gives this CreateTable."""
    request = create_table_request(Event.Meta, "Event")
    valid_request("dynamodb", "CreateTable", request)
    assert request == {
        "TableName": "Event",
        "KeySchema": [
            {"AttributeName": "owner", "KeyType": "HASH"},
            {"AttributeName": "at", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "owner", "AttributeType": "S"},
            {"AttributeName": "at", "AttributeType": "N"},
            {"AttributeName": "kind", "AttributeType": "S"},
        ],
        "BillingMode": "PROVISIONED",
        "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 2},
        "GlobalSecondaryIndexes": [
            {
                "IndexName": "by_kind",
                "KeySchema": [
                    {"AttributeName": "kind", "KeyType": "HASH"},
                    {"AttributeName": "at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
                "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 2},
            }
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"},
    }


def test_create_table_on_demand_with_lsi_include_no_stream(valid_request: Any) -> None:
    """An on-demand model with an INCLUDE LSI and no stream gives this CreateTable."""
    request = create_table_request(Log.Meta, "prod-Log")
    valid_request("dynamodb", "CreateTable", request)
    assert request == {
        "TableName": "prod-Log",
        "KeySchema": [
            {"AttributeName": "owner", "KeyType": "HASH"},
            {"AttributeName": "seq", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "owner", "AttributeType": "S"},
            {"AttributeName": "seq", "AttributeType": "N"},
            {"AttributeName": "level", "AttributeType": "S"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
        "LocalSecondaryIndexes": [
            {
                "IndexName": "by_level",
                "KeySchema": [
                    {"AttributeName": "owner", "KeyType": "HASH"},
                    {"AttributeName": "level", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["text"]},
            }
        ],
    }


def test_create_table_gsi_include_on_demand(valid_request: Any) -> None:
    """An on-demand GSI with a column list projects INCLUDE and has no throughput."""
    request = create_table_request(User.Meta, "User")
    valid_request("dynamodb", "CreateTable", request)
    assert request["BillingMode"] == "PAY_PER_REQUEST"
    assert "ProvisionedThroughput" not in request
    assert request["GlobalSecondaryIndexes"] == [
        {
            "IndexName": "by_email",
            "KeySchema": [{"AttributeName": "email", "KeyType": "HASH"}],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["name"]},
        }
    ]
    assert request["StreamSpecification"] == {
        "StreamEnabled": True,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }


def test_validation_error_before_any_call(engine: Any, transport: Any) -> None:
    """Bad values raise streamodel.ValidationError per column before anything is sent."""
    good = User(id="ok", name="fine")
    bad = User(id="u1", name=5, age="old")  # type: ignore[arg-type]
    with pytest.raises(streamodel.ValidationError) as info:
        engine.save(good, bad)
    assert isinstance(info.value, marshmallow.ValidationError)
    assert set(info.value.messages) == {"name", "age"}  # type: ignore[arg-type]
    assert transport.calls == []


def test_missing_key_is_a_validation_error(engine: Any, transport: Any) -> None:
    """A missing key value is reported per column and nothing is sent."""
    with pytest.raises(streamodel.ValidationError) as info:
        engine.save(User(name="x"))
    assert set(info.value.messages) == {"id"}  # type: ignore[arg-type]
    assert transport.calls == []


def test_raising_before_save_aborts_the_write(engine: Any, transport: Any) -> None:
    """A before_save receiver that raises means no UpdateItem is sent."""

    def veto(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("no")

    signals.before_save.connect(veto, sender=User)
    try:
        with pytest.raises(RuntimeError):
            engine.save(User(id="u1", name="x"))
    finally:
        signals.before_save.disconnect(veto, sender=User)
    assert transport.calls == []


def test_save_signals_get_diff(engine: Any, transport: Any) -> None:
    """before_save and object_saved get diff: column name -> (old, new)."""
    received: list[tuple[str, Any, dict[str, Any]]] = []

    def on_before(sender: Any, **kwargs: Any) -> None:
        received.append(("before", sender, kwargs))

    def on_saved(sender: Any, **kwargs: Any) -> None:
        received.append(("saved", sender, kwargs))

    signals.before_save.connect(on_before, sender=User)
    signals.object_saved.connect(on_saved, sender=User)
    try:
        user = stored_user(id="u1", name="Ann", age=3)
        user.age = 4
        user.name = None
        engine.save(user)
    finally:
        signals.before_save.disconnect(on_before, sender=User)
        signals.object_saved.disconnect(on_saved, sender=User)
    assert [(kind, sender) for kind, sender, _ in received] == [("before", User), ("saved", User)]
    for _, _, kwargs in received:
        assert kwargs["engine"] is engine
        assert kwargs["obj"] is user
        assert kwargs["diff"] == {"name": ("Ann", None), "age": (3, 4)}


def test_a_diff_first_read_after_the_save_is_against_what_was_stored(
    engine: Any, transport: Any
) -> None:
    """The diff is built when a receiver first reads it; one read only by object_saved,
    after the object took its new snapshot, still compares with what was stored before."""
    diffs: list[dict[str, Any]] = []

    def on_saved(sender: Any, **kwargs: Any) -> None:
        diffs.append(kwargs["diff"])

    signals.object_saved.connect(on_saved)
    try:
        user = stored_user(id="u1", name="Ann", tags={"a"})
        assert user.tags is not None
        user.tags.add("b")  # changed in place: compared with the stored set
        user.name = "Bo"
        engine.save(user)
        doc = Doc(id="d1", body="x")
        engine.save(doc)
        doc.body = "y"
        engine.save(doc)
    finally:
        signals.object_saved.disconnect(on_saved)
    assert diffs == [
        {"name": ("Ann", "Bo"), "tags": ({"a"}, {"a", "b"})},
        {"body": (None, "x"), "version": (None, 1)},
        {"body": ("x", "y"), "version": (1, 2)},
    ]


def test_sets_in_another_order_and_numbers_in_another_spelling_are_unchanged(
    engine: Any, transport: Any
) -> None:
    """DynamoDB returns set members in no particular order and may spell a number another
    way: a loaded object whose set, list or map holds the same values writes none of them
    again, and its diff does not name them."""
    from streamodel._diff import fill
    from streamodel.models import new_instance
    from streamodel.types import List, Map, Number

    class Bag(Base):  # type: ignore[misc, valid-type]
        id = Column(String, hash_key=True)
        tags = Column(Set(String))
        scores = Column(List(Number()))
        doc = Column(Map(n=Number(), s=Set(Integer)))
        note = Column(String)

    bag = new_instance(Bag)
    fill(
        bag,
        {
            "id": {"S": "b"},
            "tags": {"SS": ["z", "a", "m"]},
            "scores": {"L": [{"N": "1.50"}, {"N": "2"}]},
            "doc": {"M": {"n": {"N": "3.0"}, "s": {"NS": ["20", "3"]}}},
            "note": {"S": "old"},
        },
    )
    diffs: list[dict[str, Any]] = []

    def on_save(sender: Any, **kwargs: Any) -> None:
        diffs.append(kwargs["diff"])

    signals.before_save.connect(on_save, sender=Bag)
    try:
        bag.note = "new"
        engine.save(bag)
    finally:
        signals.before_save.disconnect(on_save, sender=Bag)
    assert meaning(transport.only("UpdateItem"))["UpdateExpression"] == update(
        "SET #note = :new", new={"S": "new"}
    )
    assert diffs == [{"note": ("old", "new")}]
    assert bag.tags is not None
    bag.tags.add("b")  # a real change is still written
    engine.save(bag)
    assert meaning(transport.calls[-1][2])["UpdateExpression"] == update(
        "SET #tags = :tags",
        tags={"SS": ["z", "m", "b", "a"]},  # members in any order
    )


def test_same_wire_compares_what_dynamodb_compares() -> None:
    from streamodel.types import same_wire

    assert same_wire({"SS": ["a", "b"]}, {"SS": ["b", "a"]})
    assert same_wire({"NS": ["1.0", "2"]}, {"NS": ["2", "1"]})
    assert same_wire({"BS": [b"x", b"y"]}, {"BS": [b"y", b"x"]})
    assert same_wire({"N": "-0.50"}, {"N": "-0.5"})
    assert same_wire({"L": [{"SS": ["a", "b"]}]}, {"L": [{"SS": ["b", "a"]}]})
    assert same_wire({"M": {"k": {"N": "10"}}}, {"M": {"k": {"N": "1E+1"}}})
    assert same_wire(None, None)
    assert not same_wire({"SS": ["a", "b"]}, {"SS": ["a", "c"]})
    assert not same_wire({"SS": ["a"]}, {"SS": ["a", "a"]})
    assert not same_wire({"N": "1"}, {"S": "1"})
    assert not same_wire({"L": [{"N": "1"}, {"N": "2"}]}, {"L": [{"N": "2"}, {"N": "1"}]})
    assert not same_wire({"M": {"k": {"N": "1"}}}, {"M": {"j": {"N": "1"}}})
    assert not same_wire({"N": "x"}, {"N": "y"})  # not numbers: not the same
    assert not same_wire({"S": "a"}, None)


def test_fake_transport_rejects_invalid_requests(transport: Any) -> None:
    """The fake transport refuses a request botocore's model would reject (wrong name)."""
    with pytest.raises(AssertionError, match="invalid Scan request"):
        transport.call("dynamodb", "Scan", {"TableName": "T", "Segments": 4})
    assert transport.calls == []


def test_plain_updates_from_the_cache_equal_a_fresh_rendering() -> None:
    """plain_update keeps the text and names per shape; what it gives means the same as
    rendering the SETs and REMOVEs as updates and then the version condition on a fresh
    renderer."""
    from streamodel._render import Renderer, plain_update, render_updates
    from streamodel.actions import Update
    from streamodel.conditions import version_is

    name, email, tags, version = User.name, User.email, User.tags, Doc.version
    shapes: list[tuple[list[tuple[Any, Any]], list[Any], Any, Any]] = [
        ([(name, {"S": "1"}), (email, {"S": "2"})], [tags], version, None),
        ([(email, {"S": "3"}), (name, {"S": "4"})], [], version, {"N": "7"}),
        ([(name, {"S": "5"})], [], None, None),
        ([], [name, email], version, {"N": "1"}),
        ([], [], None, None),
    ]
    for _ in range(2):  # the second round is served from the cache
        for sets, removes, column, expected in shapes:
            r = Renderer()
            updates = [Update(c, "SET", "value", (w,), computed=False) for c, w in sets]
            updates += [Update(c, "REMOVE", computed=False) for c in removes]
            want: dict[str, Any] = {}
            expression = render_updates(r, updates)
            if expression is not None:
                want["UpdateExpression"] = expression
            if column is not None:
                want["ConditionExpression"] = r.condition(version_is(column, expected))
            want.update(r.params())
            columns, wires = [c for c, _ in sets], [w for _, w in sets]
            got = plain_update(columns, wires, removes, column, expected)
            assert meaning(got) == meaning(want)


def test_unassigned_values_are_diffed_only_when_they_can_change_in_place(
    engine: Any, transport: Any
) -> None:
    """A loaded object's set changed in place is written; its unassigned immutable values
    are not dumped again, so a value stored in another spelling is left as stored."""

    class Visit(Base):
        id = Column(String, hash_key=True)
        at = Column(DateTime)
        tags = Column(Set(String))

    transport.queue(
        "GetItem",
        {
            "Item": {
                "id": {"S": "v1"},
                "at": {"S": "2026-01-02T03:04:05+00:00"},  # another writer's spelling
                "tags": {"SS": ["a"]},
            }
        },
    )
    visit = Visit(id="v1")
    engine.load(visit)
    visit.tags.add("b")  # in place: no assignment
    engine.save(visit)
    params = transport.calls[1][2]
    assert meaning(params)["UpdateExpression"] == update(
        "SET #tags = :tags", tags={"SS": ["a", "b"]}
    )
    visit.at = visit.at  # assigned: written in streamodel's spelling
    engine.save(visit)
    assert meaning(transport.calls[2][2])["UpdateExpression"] == update(
        "SET #at = :at", at={"S": "2026-01-02T03:04:05.000000+00:00"}
    )
