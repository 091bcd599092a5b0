"""The engine against DynamoDB Local: types, diff-based saves, signals, versions, reads."""

from __future__ import annotations

import datetime
import decimal
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamodel import (
    Column,
    ConditionFailedError,
    Engine,
    GlobalSecondaryIndex,
    Integer,
    InvalidConditionError,
    LocalSecondaryIndex,
    Map,
    MissingObjectsError,
    Number,
    Set,
    StaleVersionError,
    StreamodelError,
    String,
    TableMismatchError,
    Timestamp,
    TransactionCanceledError,
    ValidationError,
    new_base,
    signals,
)
from streamodel.types import ALL_TYPES

ROOT = Path(__file__).resolve().parents[2]

Base = new_base()


class User(Base):
    id = Column(String, hash_key=True)
    name = Column(String)
    email = Column(String)
    age = Column(Integer)
    tags = Column(Set(String))
    address = Column(Map(city=String, zip=String))
    by_email = GlobalSecondaryIndex(hash_key="email", projection="keys")


class Versioned(Base):
    id = Column(String, hash_key=True)
    counter = Column(Integer, default=0)
    note = Column(String)
    version = Column(Integer, version=True)


class Event(Base):
    class Meta:
        ttl = {"column": "expires"}

    stream_id = Column(String, hash_key=True)
    seq = Column(Integer, range_key=True)
    kind = Column(String)
    amount = Column(Number)
    expires = Column(Timestamp)
    by_kind = LocalSecondaryIndex(range_key="kind")


class Exotic(Base):
    """Attribute names that only work through placeholders."""

    id = Column(String, hash_key=True, name="key.with-dots#and:colons")
    name = Column(String)  # a reserved word
    spaced = Column(String, name="with space ü")
    values = Column(Integer, name="values")


AllTypes = type(
    "AllTypes",
    (Base,),
    {
        "id": Column(String, hash_key=True),
        **{f"c{i}": Column(factory()) for i, (factory, _) in enumerate(ALL_TYPES)},
    },
)


@pytest.fixture(scope="module", autouse=True)
def bound(engine: Engine) -> None:
    """Bind every model of this module once (tables live for the whole session)."""
    engine.bind(base=Base)


def new_id() -> str:
    return uuid.uuid4().hex


def raw_item(engine: Engine, model: Any, key: dict[str, Any]) -> dict[str, Any] | None:
    response = engine.transport.call(
        "dynamodb",
        "GetItem",
        {"TableName": engine.table_name(model), "Key": key, "ConsistentRead": True},
    )
    return response.get("Item")


@pytest.fixture
def received() -> Iterator[list[tuple[str, Any, dict[str, Any]]]]:
    """Every signal sent during the test, as (signal name, sender, kwargs)."""
    log: list[tuple[str, Any, dict[str, Any]]] = []
    receivers = []
    for name in ("before_save", "object_saved", "before_delete", "object_deleted", "object_loaded"):
        signal = getattr(signals, name)

        def receiver(sender: Any, _name: str = name, **kwargs: Any) -> None:
            log.append((_name, sender, kwargs))

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    yield log
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def test_quickstart_runs_verbatim(local_endpoint: str) -> None:
    """examples/quickstart.py (the seed quickstart) runs against DynamoDB Local and succeeds."""
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": local_endpoint,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": local_endpoint,
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "as expected: ConditionFailedError" in result.stdout
    assert "quickstart ok" in result.stdout


def test_every_type_round_trips_through_a_real_table(engine: Engine) -> None:
    """Every type in ALL_TYPES is stored and loaded back equal to the value saved."""
    obj = AllTypes(id=new_id(), **{f"c{i}": sample for i, (_, sample) in enumerate(ALL_TYPES)})
    engine.save(obj)
    same = AllTypes(id=obj.id)
    engine.load(same, consistent=True)
    for i, (_, sample) in enumerate(ALL_TYPES):
        assert getattr(same, f"c{i}") == sample, f"type #{i}"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    text=st.text(min_size=1, max_size=50),
    number=st.decimals(
        allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20
    ),
    strings=st.sets(st.text(min_size=1, max_size=10), max_size=5),
)
def test_values_round_trip_property(
    engine: Engine, text: str, number: decimal.Decimal, strings: set[str]
) -> None:
    """Arbitrary strings, decimals and string sets come back from DynamoDB Local unchanged."""
    obj = Event(stream_id=new_id(), seq=1, kind=text, amount=number, expires=None)
    engine.save(obj)
    user = User(id=new_id(), tags=strings)
    engine.save(user)
    same, same_user = Event(stream_id=obj.stream_id, seq=1), User(id=user.id)
    engine.load(same, same_user, consistent=True)
    assert same.kind == text
    assert same.amount == number
    assert (same_user.tags or set()) == strings


def test_changing_one_column_sends_only_that_column(recorder: Any) -> None:
    """After a load, changing one column sends an UpdateExpression that names only it."""
    engine, transport = recorder
    user = User(id=new_id(), name="Ann", email="ann@example.com", age=30)
    engine.save(user)
    loaded = User(id=user.id)
    engine.load(loaded)
    transport.calls.clear()
    loaded.age = 31
    engine.save(loaded)
    (request,) = transport.sent("UpdateItem")
    assert request["UpdateExpression"] == "SET #n0=:v0"
    assert request["ExpressionAttributeNames"] == {"#n0": "age"}
    assert request["ExpressionAttributeValues"] == {":v0": {"N": "31"}}
    item = raw_item(engine, User, {"id": {"S": user.id}})
    assert item == {
        "id": {"S": user.id},
        "name": {"S": "Ann"},
        "email": {"S": "ann@example.com"},
        "age": {"N": "31"},
    }


def test_unchanged_stored_object_costs_no_write(recorder: Any) -> None:
    """Saving an object that is known to be stored as it is sends nothing."""
    engine, transport = recorder
    user = User(id=new_id(), name="Bo")
    engine.save(user)
    transport.calls.clear()
    engine.save(user)
    assert transport.calls == []


def test_clearing_columns_removes_them(engine: Engine) -> None:
    """Setting a column to None or an empty set removes the attribute; '' is stored."""
    user = User(id=new_id(), name="Cy", email="c@example.com", tags={"a"})
    engine.save(user)
    user.email = None
    user.tags = set()
    user.name = ""
    engine.save(user)
    item = raw_item(engine, User, {"id": {"S": user.id}})
    assert item == {"id": {"S": user.id}, "name": {"S": ""}}


def test_save_signals_carry_sender_and_diff(engine: Engine, received: list[Any]) -> None:
    """before_save and object_saved are sent with the model as sender and a per-column diff."""
    user = User(id=new_id(), name="Di")
    engine.save(user)
    user.name = "Dee"
    engine.save(user)
    saves = [(n, s, k) for n, s, k in received if n in ("before_save", "object_saved")]
    assert [n for n, _, _ in saves] == ["before_save", "object_saved"] * 2
    assert all(s is User and k["obj"] is user and k["engine"] is engine for _, s, k in saves)
    assert saves[0][2]["diff"] == {"name": (None, "Di")}
    assert saves[3][2]["diff"] == {"name": ("Di", "Dee")}


def test_a_set_read_back_in_another_order_is_not_written_again(
    engine: Engine, received: list[Any]
) -> None:
    """An item written elsewhere with its set in another order and a number spelled another
    way: loading it, assigning the same set again, changing one column and saving writes
    (and reports) only that column. (DynamoDB Local answers with sorted sets, as streamodel
    writes them; test_requests covers an answer in another order, as DynamoDB gives.)"""
    user_id = new_id()
    engine.transport.call(
        "dynamodb",
        "PutItem",
        {
            "TableName": engine.table_name(User),
            "Item": {
                "id": {"S": user_id},
                "tags": {"SS": ["zeta", "alpha", "mu"]},
                "age": {"N": "30.0"},
            },
        },
    )
    user = User(id=user_id)
    engine.load(user)
    assert user.tags == {"zeta", "alpha", "mu"} and user.age == 30
    user.tags = set(user.tags)  # assigned again, the same set
    user.name = "Ann"
    engine.save(user)
    saved = [k["diff"] for n, _, k in received if n == "object_saved"]
    assert saved == [{"name": (None, "Ann")}]
    item = raw_item(engine, User, {"id": {"S": user_id}})
    assert item is not None and item["name"] == {"S": "Ann"}
    assert sorted(item["tags"]["SS"]) == ["alpha", "mu", "zeta"]


def test_sender_filter_receives_only_that_model(engine: Engine) -> None:
    """A receiver connected with sender=Model gets only that model's saves."""
    got: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        got.append(kwargs["obj"])

    signals.object_saved.connect(receiver, sender=Versioned, weak=False)
    try:
        engine.save(User(id=new_id(), name="x"))
        v = Versioned(id=new_id())
        engine.save(v)
    finally:
        signals.object_saved.disconnect(receiver, sender=Versioned)
    assert got == [v]


def test_raising_before_save_leaves_table_unchanged(engine: Engine) -> None:
    """An exception in a before_save receiver aborts the save: the stored item is unchanged."""
    user = User(id=new_id(), name="Ed")
    engine.save(user)

    def veto(sender: Any, **kwargs: Any) -> None:
        raise RuntimeError("vetoed")

    signals.before_save.connect(veto, sender=User, weak=False)
    try:
        user.name = "Edward"
        with pytest.raises(RuntimeError, match="vetoed"):
            engine.save(user)
    finally:
        signals.before_save.disconnect(veto, sender=User)
    item = raw_item(engine, User, {"id": {"S": user.id}})
    assert item is not None and item["name"] == {"S": "Ed"}
    assert user._sm_snapshot is not None and user._sm_snapshot["name"] == {"S": "Ed"}


def test_bad_values_leave_table_unchanged(engine: Engine) -> None:
    """A save with one bad value raises ValidationError per field and writes nothing."""
    good = User(id=new_id(), name="Flo")
    bad = User(id=new_id(), name="Gus", age="not a number")
    with pytest.raises(ValidationError) as raised:
        engine.save(good, bad)
    assert set(raised.value.messages) == {"age"}
    assert raw_item(engine, User, {"id": {"S": good.id}}) is None
    assert raw_item(engine, User, {"id": {"S": bad.id}}) is None


def test_empty_index_key_refused_before_sending(engine: Engine) -> None:
    """An empty string for an index key column is refused by name, and nothing is written."""
    event = Event(stream_id=new_id(), seq=1, kind="")
    with pytest.raises(ValidationError) as raised:
        engine.save(event)
    assert "by_kind" in str(raised.value.messages["kind"])
    assert raw_item(engine, Event, {"stream_id": {"S": event.stream_id}, "seq": {"N": "1"}}) is None


def test_oversized_item_refused_before_sending(engine: Engine) -> None:
    """An item over DynamoDB's 400 KB limit is refused with its size, and nothing is written."""
    user = User(id=new_id(), name="x" * (401 * 1024))
    with pytest.raises(ValidationError, match="400"):
        engine.save(user)
    assert raw_item(engine, User, {"id": {"S": user.id}}) is None


def test_versions_increment_and_stale_saves_fail(engine: Engine) -> None:
    """Versioned saves count 1, 2, ...; a stale copy's save and delete raise StaleVersionError."""
    v = Versioned(id=new_id(), note="a")
    engine.save(v)
    assert v.version == 1
    stale = Versioned(id=v.id)
    engine.load(stale)
    v.note = "b"
    engine.save(v)
    assert v.version == 2
    stale.note = "c"
    with pytest.raises(StaleVersionError) as raised:
        engine.save(stale)
    assert raised.value.item is not None and raised.value.item["version"] == {"N": "2"}
    with pytest.raises(StaleVersionError):
        engine.delete(stale)
    item = raw_item(engine, Versioned, {"id": {"S": v.id}})
    assert item is not None and item["note"] == {"S": "b"} and item["version"] == {"N": "2"}


def test_key_only_object_is_not_reset_to_version_one(engine: Engine) -> None:
    """A new object built from the key of a stored versioned item cannot overwrite it."""
    v = Versioned(id=new_id(), note="keep")
    engine.save(v)
    blind = Versioned(id=v.id, note="overwrite")
    with pytest.raises(StaleVersionError):
        engine.save(blind)
    item = raw_item(engine, Versioned, {"id": {"S": v.id}})
    assert item is not None and item["note"] == {"S": "keep"} and item["version"] == {"N": "1"}


def test_atomic_delete_fails_after_a_concurrent_change(engine: Engine) -> None:
    """delete(atomic=True) is refused when the stored item changed since this object loaded it."""
    user = User(id=new_id(), name="Hal")
    engine.save(user)
    other = User(id=user.id)
    engine.load(other)
    other.name = "Hal 9000"
    engine.save(other)
    with pytest.raises(ConditionFailedError):
        engine.delete(user, atomic=True)
    engine.delete(other, atomic=True)
    assert raw_item(engine, User, {"id": {"S": user.id}}) is None


def test_load_fills_found_and_reports_missing(engine: Engine, received: list[Any]) -> None:
    """load fills every object found, then raises MissingObjectsError listing the others."""
    users = [User(id=new_id(), name=f"u{i}") for i in range(3)]
    engine.save(*users)
    found = [User(id=u.id) for u in users]
    missing = User(id=new_id())
    with pytest.raises(MissingObjectsError) as raised:
        engine.load(*found, missing)
    assert raised.value.objects == [missing]
    assert [f.name for f in found] == ["u0", "u1", "u2"]
    loaded = [k["obj"] for n, _, k in received if n == "object_loaded"]
    assert sorted(id(o) for o in loaded) == sorted(id(o) for o in found)


def test_load_of_more_than_a_batch(engine: Engine) -> None:
    """load of 150 objects works across BatchGetItem's 100-key limit."""
    users = [User(id=new_id(), age=i) for i in range(150)]
    engine.save(*users)
    copies = [User(id=u.id) for u in users]
    engine.load(*copies)
    assert [c.age for c in copies] == list(range(150))


def test_query_pages_and_helpers(engine: Engine) -> None:
    """Queries follow LastEvaluatedKey across pages; first/one/all/count behave as documented."""
    stream_id = new_id()
    events = [Event(stream_id=stream_id, seq=i, kind=f"k{i % 3}") for i in range(10)]
    engine.save(*events)
    query = engine.query(Event, page_size=3).key(Event.stream_id == stream_id)
    assert [e.seq for e in query] == list(range(10))
    assert [e.seq for e in query.forward(False).limit(4)] == [9, 8, 7, 6]
    assert query.count() == 10
    between = query.key((Event.stream_id == stream_id) & Event.seq.between(3, 5))
    assert [e.seq for e in between.all()] == [3, 4, 5]
    assert query.key((Event.stream_id == stream_id) & (Event.seq == 4)).one().seq == 4
    assert engine.query(Event).key(Event.stream_id == new_id()).first() is None
    with pytest.raises(StreamodelError):
        query.one()
    filtered = query.filter(Event.kind == "k1")
    assert [e.seq for e in filtered] == [1, 4, 7]
    assert filtered.count() == 3


def test_query_on_indexes(engine: Engine) -> None:
    """GSI (keys projection) and LSI queries return objects with the projected columns."""
    email = f"{new_id()}@example.com"
    user = User(id=new_id(), name="Ivy", email=email)
    engine.save(user)
    found = engine.query(User.by_email).key(User.email == email).one()
    assert found.id == user.id and found.email == email and found.name is None
    stream_id = new_id()
    engine.save(*[Event(stream_id=stream_id, seq=i, kind=k) for i, k in enumerate("cab")])
    kinds = [e.kind for e in engine.query(Event.by_kind).key(Event.stream_id == stream_id)]
    assert kinds == ["a", "b", "c"]
    with pytest.raises(InvalidConditionError):
        engine.query(User.by_email, consistent=True)


def test_scan_with_filter_and_segments(engine: Engine) -> None:
    """A filtered scan finds exactly the matching items; parallel segments partition the table."""
    marker = new_id()
    engine.save(*[User(id=new_id(), name=marker, age=i) for i in range(12)])
    scan = engine.scan(User).filter(User.name == marker)
    assert sorted(u.age for u in scan) == list(range(12))
    parts = [sorted(u.age for u in scan.segment(s, 3)) for s in range(3)]
    assert sorted(a for part in parts for a in part) == list(range(12))


def test_exotic_attribute_names_work(engine: Engine) -> None:
    """Names with dots, dashes, '#', ':', spaces, non-ASCII and reserved words round-trip."""
    obj = Exotic(id=new_id(), name="n", spaced="s", values=1)
    engine.save(obj)
    obj.values = 2
    engine.save(obj, condition=(Exotic.name == "n") & (Exotic.spaced.begins_with("s")))
    same = Exotic(id=obj.id)
    engine.load(same)
    assert (same.name, same.spaced, same.values) == ("n", "s", 2)
    with pytest.raises(ConditionFailedError):
        engine.save(obj, condition=Exotic.values == 99)


def test_write_transaction_commits_or_cancels_all(engine: Engine, received: list[Any]) -> None:
    """A write transaction commits all its items, or none when one condition fails."""
    a, b = User(id=new_id(), name="a"), User(id=new_id(), name="b")
    with engine.transaction() as tx:
        tx.save(a, b)
    assert raw_item(engine, User, {"id": {"S": a.id}}) is not None
    assert [n for n, _, _ in received if n == "object_saved"] == ["object_saved"] * 2

    c = User(id=new_id(), name="c")
    a.name = "a2"
    with pytest.raises(TransactionCanceledError) as raised, engine.transaction() as tx:
        tx.save(a, c)
        tx.check(b, User.name == "not b")
    assert raised.value.reasons[2]["obj"] is b
    assert raised.value.reasons[2]["code"] == "ConditionalCheckFailed"
    assert "check User" in str(raised.value)
    assert raw_item(engine, User, {"id": {"S": c.id}}) is None
    item = raw_item(engine, User, {"id": {"S": a.id}})
    assert item is not None and item["name"] == {"S": "a"}


def test_read_transaction_loads(engine: Engine) -> None:
    """A read transaction fills every object from one snapshot."""
    a = Versioned(id=new_id(), note="x")
    engine.save(a)
    copy = Versioned(id=a.id)
    with engine.transaction(mode="r") as tx:
        tx.load(copy)
    assert copy.note == "x" and copy.version == 1


def test_bind_enables_stream_and_ttl_and_detects_mismatch(engine: Engine, nonce: str) -> None:
    """bind enables a missing stream and TTL, and refuses a table whose keys differ."""
    base_name = f"Plain{uuid.uuid4().hex[:8]}"  # a table of its own on each transport
    name = f"it-{nonce}-{base_name}"
    engine.transport.call(
        "dynamodb",
        "CreateTable",
        {
            "TableName": name,
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    )
    local_base = new_base()

    class Plain(local_base):  # type: ignore[valid-type, misc]
        class Meta:
            table_name = base_name
            ttl = {"column": "expires"}

        id = Column(String, hash_key=True)
        expires = Column(Timestamp)

    class WrongKeys(local_base):  # type: ignore[valid-type, misc]
        class Meta:
            table_name = base_name

        id = Column(Integer, hash_key=True)

    engine.bind(Plain)
    table = engine.transport.call("dynamodb", "DescribeTable", {"TableName": name})["Table"]
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    ttl = engine.transport.call("dynamodb", "DescribeTimeToLive", {"TableName": name})
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires"
    with pytest.raises(TableMismatchError, match="type S, model needs N"):
        engine.bind(WrongKeys)


def test_model_bound_signal(local_endpoint: str, table_template: str) -> None:
    """bind sends model_bound once per model, with the engine and the model."""
    got: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        got.append((sender, kwargs["model"], kwargs["engine"]))

    fresh = Engine(endpoint_url=local_endpoint, table_name_template=table_template)
    signals.model_bound.connect(receiver, weak=False)
    try:
        fresh.bind(Versioned)
    finally:
        signals.model_bound.disconnect(receiver)
    assert got == [(Versioned, Versioned, fresh)]


def test_dates_sort_in_range_queries(engine: Engine) -> None:
    """Timestamp range conditions compare as times (stored as epoch seconds)."""
    stream_id = new_id()
    base = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    events = [
        Event(stream_id=stream_id, seq=i, expires=base + datetime.timedelta(days=i))
        for i in range(5)
    ]
    engine.save(*events)
    late = (
        engine.query(Event)
        .key(Event.stream_id == stream_id)
        .filter(Event.expires >= base + datetime.timedelta(days=3))
    )
    assert [e.seq for e in late] == [3, 4]


def test_foreign_item_raises_a_clear_error_on_read(engine: Engine) -> None:
    """An item another program stored with a wrong type is reported by model and column."""
    from streamodel import UndecodableItemError

    user_id = new_id()
    engine.transport.call(
        "dynamodb",
        "PutItem",
        {"TableName": engine.table_name(User), "Item": {"id": {"S": user_id}, "age": {"S": "x"}}},
    )
    with pytest.raises(UndecodableItemError) as raised:
        engine.load(User(id=user_id))
    assert raised.value.column == "age" and raised.value.model is User
    assert "User.age" in str(raised.value) and "stored as S, expected N" in str(raised.value)
