"""Entities of a shared table and key templates, without a network: what is declared,
what requests say, how items are routed."""

from __future__ import annotations

import datetime
import gc
from typing import Any

import pytest

from streamodel import (
    Collection,
    Column,
    DateTime,
    Engine,
    GlobalSecondaryIndex,
    Integer,
    InvalidConditionError,
    InvalidModelError,
    String,
    ValidationError,
    new_base,
)
from streamodel.entities import entities_of, shared, table_shape
from streamodel.tables import create_table_request


def shop() -> tuple[type[Any], type[Any], type[Any]]:
    base = new_base()

    class Account(base):  # type: ignore[valid-type, misc]
        class Meta:
            table_name = "shop"

        pk = Column(String, hash_key=True, template="ACCOUNT#{id}")
        id = Column(String)

    class Order(base):  # type: ignore[valid-type, misc]
        class Meta:
            table_name = "shop"

        pk = Column(String, hash_key=True, template="ACCOUNT#{account}")
        account = Column(String)
        status = Column(String)
        by_status = GlobalSecondaryIndex(hash_key="status", projection="keys", name="gsi1")

    class Alone(base):  # type: ignore[valid-type, misc]
        class Meta:
            table_name = "alone"

        pk = Column(String, hash_key=True)

    return Account, Order, Alone


def test_models_sharing_a_table_are_its_entities_and_others_are_not() -> None:
    Account, Order, Alone = shop()
    assert entities_of(Account) == {"Account": Account, "Order": Order}
    assert shared(Account) and shared(Order) and not shared(Alone)
    # Another base's models of the same table name are not these entities.
    Again, _, _ = shop()
    assert entities_of(Account)["Account"] is Account and Again is not Account


def test_a_declared_entity_is_shared_even_alone_and_names_are_checked() -> None:
    base = new_base()

    class Solo(base):  # type: ignore[valid-type, misc]
        class Meta:
            entity = "solo"

        pk = Column(String, hash_key=True)

    assert shared(Solo) and Solo.Meta.entity == "solo"
    for bad in ("", 3):
        with pytest.raises(InvalidModelError, match=r"Meta\.entity must be"):

            class Bad(base):  # type: ignore[valid-type, misc]
                class Meta:
                    entity = bad

                pk = Column(String, hash_key=True)

    with pytest.raises(InvalidModelError, match="entity_attribute: column 'kind'"):

        class Clash(base):  # type: ignore[valid-type, misc]
            class Meta:
                entity_attribute = "kind"

            pk = Column(String, hash_key=True)
            kind = Column(String)


def test_writes_name_the_entity_only_in_shared_tables() -> None:
    Account, _, Alone = shop()
    engine = Engine(endpoint_url="http://127.0.0.1:9")
    from streamodel import writes

    saved = writes.save(engine.table_name(Account), Account(id="7"))
    values = saved.request["ExpressionAttributeValues"]
    assert {"S": "Account"} in values.values()
    assert saved.request["Key"] == {"pk": {"S": "ACCOUNT#7"}}
    alone = writes.save("alone", Alone(pk="x"))
    assert "_entity" not in str(alone.request)
    assert writes.put("shop", Account(id="8")).request["_entity"] == {"S": "Account"}


def test_searches_of_a_model_filter_on_its_entity_and_collections_on_theirs() -> None:
    Account, Order, Alone = shop()
    engine = Engine(endpoint_url="http://127.0.0.1:9")
    request = engine.query(Order).key(Order.pk == "ACCOUNT#1").request()
    assert "FilterExpression" in request
    assert {"S": "Order"} in request["ExpressionAttributeValues"].values()
    both = engine.query(Collection(Account, Order)).key(Account.pk == "ACCOUNT#1").request()
    assert sorted(v["S"] for v in both["ExpressionAttributeValues"].values()) == [
        "ACCOUNT#1",
        "Account",
        "Order",
    ]
    assert "FilterExpression" not in engine.scan(Alone).request()
    with pytest.raises(InvalidConditionError, match="whole items"):
        engine.query(Collection(Account, Order)).project("keys")
    with pytest.raises(InvalidConditionError, match="key condition may only use"):
        engine.query(Collection(Account, Order)).key(Order.status == "x")


def test_collection_routes_items_by_their_entity_attribute() -> None:
    Account, Order, _ = shop()
    both = Collection(Account, Order)
    assert both.route({"_entity": {"S": "Order"}}) is Order
    assert both.route({"_entity": {"S": "Ghost"}}) is None
    assert both.route({}) is None
    assert both.unknown({"_entity": {"S": "Ghost"}}, "test")
    assert not Collection(Account).unknown({"_entity": {"S": "Order"}}, "test")

    class Twin(Account.__base__):  # type: ignore[name-defined, misc]
        class Meta:
            table_name = "shop"
            entity = "Account"

        pk = Column(String, hash_key=True)

    with pytest.raises(InvalidModelError, match="both entity 'Account'"):
        Collection(Account, Twin)


def test_the_table_of_shared_entities_has_every_index_and_projects_the_entity() -> None:
    Account, _, _ = shop()
    request = create_table_request(table_shape(Account), "shop")
    (gsi,) = request["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "gsi1"
    # A keys-only index of a shared table carries the entity, which reads filter on.
    assert gsi["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["_entity"]}


def test_same_named_indexes_must_agree() -> None:
    base = new_base()

    class A(base):  # type: ignore[valid-type, misc]
        class Meta:
            table_name = "t"

        pk = Column(String, hash_key=True)
        x = Column(String)
        ix = GlobalSecondaryIndex(hash_key="x", name="gsi1")

    class B(base):  # type: ignore[valid-type, misc]
        class Meta:
            table_name = "t"

        pk = Column(String, hash_key=True)
        y = Column(Integer)
        ix = GlobalSecondaryIndex(hash_key="y", name="gsi1")

    with pytest.raises(InvalidModelError, match="declare index 'gsi1'"):
        table_shape(A)
    assert B.Meta.entity == "B"


def test_a_model_that_went_away_is_no_entity_any_more() -> None:
    """Models declared in a test's body do not make a table shared for later tests."""
    base = new_base()

    class Kept(base):  # type: ignore[valid-type, misc]
        class Meta:
            table_name = "t"

        pk = Column(String, hash_key=True)

    def declare_another() -> None:
        class Gone(base):  # type: ignore[valid-type, misc]
            class Meta:
                table_name = "t"

            pk = Column(String, hash_key=True)

        assert shared(Kept)

    declare_another()
    gc.collect()
    assert list(entities_of(Kept)) == ["Kept"] and not shared(Kept)


def test_templates_compose_read_back_and_prefix() -> None:
    base = new_base()

    class Event(base):  # type: ignore[valid-type, misc]
        pk = Column(String, hash_key=True, template="DAY#{day}")
        sk = Column(String, range_key=True, template="AT#{at}#N#{n}")
        day = Column(String)
        at = Column(DateTime)
        n = Column(Integer)

    at = datetime.datetime(2026, 12, 5, 10, 0, tzinfo=datetime.UTC)
    event = Event(day="d1", at=at, n=3)
    assert event.pk == "DAY#d1"
    assert event.sk.startswith("AT#2026-12-05") and event.sk.endswith("#N#3")
    again = Event(pk="DAY#d2", sk=event.sk)
    assert (again.day, again.at, again.n) == ("d2", at, 3)
    assert Event(pk="OTHER").day is None  # not the template's shape: nothing read back
    assert Event.sk.compose() == "AT#"
    assert Event.sk.compose(at=at).endswith("#N#")
    with pytest.raises(InvalidConditionError, match="in order"):
        Event.sk.compose(n=1)
    with pytest.raises(InvalidConditionError, match="not in its template"):
        Event.sk.compose(day="x")
    with pytest.raises(ValidationError):
        Event(day="d", at="not a datetime", n=1)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("X#{missing}", "not a column"),
        ("X#{n:03}", "plain column names"),
        ("X#", "names no column"),
        ("X#{pk}", "templated column itself"),
        ("X#{blob}", "string or number"),
    ],
)
def test_bad_templates_are_refused_naming_the_column(template: str, message: str) -> None:
    from streamodel import Binary

    base = new_base()
    with pytest.raises(InvalidModelError, match=message):

        class Bad(base):  # type: ignore[valid-type, misc]
            pk = Column(String, hash_key=True, template=template)
            n = Column(Integer)
            blob = Column(Binary)


def test_clearing_a_part_clears_its_column_and_other_parts_come_from_the_key() -> None:
    base = new_base()

    class Order(base):  # type: ignore[valid-type, misc]
        pk = Column(String, hash_key=True, template="C#{customer}#{order}")
        by_status = Column(String, template="S#{status}")
        customer = Column(String)
        order = Column(String)
        status = Column(String)

    order = Order(customer="a", order="1", status="paid")
    order.status = None  # leaves a sparse index: the composed column goes too
    assert (order.by_status, order.status) == (None, None)
    known_by_key = Order(pk="C#a#1")
    known_by_key.order = "2"  # the part not set comes from the key as it was
    assert known_by_key.pk == "C#a#2"


def test_a_shared_table_needs_both_images_in_its_stream() -> None:
    base = new_base()

    class A(base):  # type: ignore[valid-type, misc]
        class Meta:
            table_name = "t"
            stream = "new"

        pk = Column(String, hash_key=True)

    class B(base):  # type: ignore[valid-type, misc]
        class Meta:
            table_name = "t"
            stream = "new"

        pk = Column(String, hash_key=True)

    with pytest.raises(InvalidModelError, match="must carry both images"):
        table_shape(A)
    with pytest.raises(InvalidModelError, match="must carry both images"):
        Collection(A, B)


def test_the_entity_and_schema_version_attributes_must_differ() -> None:
    base = new_base()
    with pytest.raises(InvalidModelError, match="entity_attribute and schema_version_attribute"):

        class Same(base):  # type: ignore[valid-type, misc]
            class Meta:
                entity_attribute = "_schema"

            pk = Column(String, hash_key=True)
