"""Several models in one table, against DynamoDB Local: entities, composite keys,
collections, GSI overloading, transactions, and one stream per table routed by entity."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import pytest

from streamodel import (
    Collection,
    Column,
    Engine,
    GlobalSecondaryIndex,
    Integer,
    InvalidModelError,
    MissingObjectsError,
    String,
    new_base,
)
from streamodel.stream import Change, Worker

Base = new_base()


class Customer(Base):
    class Meta:
        table_name = "shop"

    pk = Column(String, hash_key=True, template="CUSTOMER#{customer_id}")
    sk = Column(String, range_key=True, template="PROFILE#{customer_id}")
    customer_id = Column(String)
    name = Column(String)
    orders = Column(Integer, default=0)


class Order(Base):
    class Meta:
        table_name = "shop"

    pk = Column(String, hash_key=True, template="CUSTOMER#{customer_id}")
    sk = Column(String, range_key=True, template="ORDER#{order_id}")
    customer_id = Column(String)
    order_id = Column(String)
    status = Column(String)
    total = Column(Integer)
    gsi1pk = Column(String, template="STATUS#{status}")
    gsi1sk = Column(String, template="ORDER#{order_id}")
    by_gsi1 = GlobalSecondaryIndex(hash_key="gsi1pk", range_key="gsi1sk", name="gsi1")


class Line(Base):
    class Meta:
        table_name = "shop"
        entity = "OrderLine"

    pk = Column(String, hash_key=True, template="ORDER#{order_id}")
    sk = Column(String, range_key=True, template="LINE#{product}")
    order_id = Column(String)
    product = Column(String)
    quantity = Column(Integer)
    # The same index as Order's: one GSI serving two entities.
    gsi1pk = Column(String, template="STATUS#{product}")
    gsi1sk = Column(String, template="ORDER#{order_id}")
    by_gsi1 = GlobalSecondaryIndex(hash_key="gsi1pk", range_key="gsi1sk", name="gsi1")


@pytest.fixture(scope="module", autouse=True)
def bound(engine: Engine) -> None:
    # Binding one entity makes the table for all three: keys, and the overloaded index.
    engine.bind(Customer)


def uid() -> str:
    return uuid.uuid4().hex[:10]


def raw_item(engine: Engine, pk: str, sk: str) -> dict[str, Any]:
    answer = engine.transport.call(
        "dynamodb",
        "GetItem",
        {"TableName": engine.table_name(Customer), "Key": {"pk": {"S": pk}, "sk": {"S": sk}}},
    )
    item: dict[str, Any] = answer["Item"]
    return item


def test_items_carry_their_entity_and_keys_compose_from_attributes(engine: Engine) -> None:
    c = uid()
    customer = Customer(customer_id=c, name="Ada")
    engine.save(customer)
    item = raw_item(engine, f"CUSTOMER#{c}", f"PROFILE#{c}")
    assert item["_entity"] == {"S": "Customer"}
    assert item["customer_id"] == {"S": c}
    line = Line(order_id="o1" + c, product="tea", quantity=2)
    engine.save(line)
    assert raw_item(engine, f"ORDER#o1{c}", "LINE#tea")["_entity"] == {"S": "OrderLine"}
    # A key read back into its parts: an object made from the key alone knows them.
    loaded = Customer(pk=f"CUSTOMER#{c}", sk=f"PROFILE#{c}")
    assert loaded.customer_id == c
    engine.load(loaded)
    assert loaded.name == "Ada"


def test_queries_scans_and_loads_are_per_entity(engine: Engine) -> None:
    c = uid()
    engine.save(Customer(customer_id=c, name="Bo"))
    engine.save(*[Order(customer_id=c, order_id=f"{n}", status="new", total=n) for n in range(3)])
    # One partition, two entities: a query of each model returns only its own.
    orders = engine.query(Order).key(Order.pk == Order.pk.compose(customer_id=c)).all()
    assert [o.order_id for o in orders] == ["0", "1", "2"]
    assert all(type(o) is Order for o in orders)
    customers = engine.query(Customer).key(Customer.pk == f"CUSTOMER#{c}").all()
    assert [(type(x), x.name) for x in customers] == [(Customer, "Bo")]
    assert engine.query(Order).key(Order.pk == f"CUSTOMER#{c}").count() == 3
    prefix = engine.query(Order).key(
        (Order.pk == f"CUSTOMER#{c}") & Order.sk.begins_with(Order.sk.compose())
    )
    assert len(prefix.all()) == 3
    scanned = engine.scan(Customer).filter(Customer.customer_id == c).all()
    assert [type(x) for x in scanned] == [Customer]
    # Another entity's item under the same key is not this model's.
    ghost = Customer(pk=f"CUSTOMER#{c}", sk="ORDER#0")
    with pytest.raises(MissingObjectsError):
        engine.load(ghost)


def test_a_collection_returns_every_entity_typed_in_key_order(engine: Engine) -> None:
    c = uid()
    engine.save(Customer(customer_id=c, name="Cy"))
    engine.save(Order(customer_id=c, order_id="a", status="new", total=5))
    engine.save(Order(customer_id=c, order_id="b", status="paid", total=7))
    results = iter(engine.query(Collection(Customer, Order)).key(Customer.pk == f"CUSTOMER#{c}"))
    got = [(type(x).__name__, x.sk) for x in results]
    assert got == [("Order", "ORDER#a"), ("Order", "ORDER#b"), ("Customer", f"PROFILE#{c}")]
    # The collection takes the key of any member, and counts across its entities.
    assert engine.query(Collection(Order, Customer)).key(Order.pk == f"CUSTOMER#{c}").count() == 3
    only_orders = engine.query(Collection(Order)).key(Order.pk == f"CUSTOMER#{c}").all()
    assert [type(x) for x in only_orders] == [Order, Order]


def test_one_index_serves_two_entities(engine: Engine) -> None:
    o = uid()
    engine.save(Order(customer_id="x" + o, order_id=o, status=f"s{o}", total=1))
    engine.save(Line(order_id=o, product=f"s{o}", quantity=3))  # the same gsi1pk value
    orders = engine.query(Order.by_gsi1).key(Order.gsi1pk == f"STATUS#s{o}").all()
    lines = engine.query(Line.by_gsi1).key(Line.gsi1pk == f"STATUS#s{o}").all()
    assert [type(x) for x in orders] == [Order]
    assert [(type(x), x.quantity) for x in lines] == [(Line, 3)]
    table = engine.transport.call(
        "dynamodb", "DescribeTable", {"TableName": engine.table_name(Customer)}
    )["Table"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["gsi1"]


def test_a_transaction_spans_entities(engine: Engine) -> None:
    c, o = uid(), uid()
    customer = Customer(customer_id=c, name="Di")
    engine.save(customer)
    with engine.transaction() as tx:
        tx.save(Order(customer_id=c, order_id=o, status="new", total=9))
        tx.save(Line(order_id=o, product="pen", quantity=1))
        customer.orders = 1
        tx.save(customer)
    with engine.transaction("r") as rx:
        order, line, again = (
            Order(customer_id=c, order_id=o),
            Line(order_id=o, product="pen"),
            Customer(customer_id=c),
        )
        for obj in (order, line, again):
            rx.load(obj)
    assert (order.total, line.quantity, again.orders) == (9, 1, 1)


def test_collections_refuse_what_does_not_belong_together() -> None:
    other = new_base()

    class Elsewhere(other):  # type: ignore[valid-type, misc]
        class Meta:
            table_name = "not-shop"

        pk = Column(String, hash_key=True)
        sk = Column(String, range_key=True)

    with pytest.raises(InvalidModelError, match="entities of one table"):
        Collection(Customer, Elsewhere)
    with pytest.raises(InvalidModelError, match="needs at least one model"):
        Collection()


def _reader_calls(
    engine: Engine, models: tuple[type[Any], ...]
) -> tuple[int, dict[str, list[str]]]:
    """Run a new group subscribed to ``models`` until caught up; the GetRecords calls it
    made, and the entity names each handler saw."""
    seen: dict[str, list[str]] = {m.__name__: [] for m in models}
    calls = 0
    inner = engine.transport

    class Counting:
        def call(self, service: Any, operation: str, params: dict[str, Any]) -> Any:
            nonlocal calls
            calls += operation == "GetRecords"
            return inner.call(service, operation, params)

    counted = Engine(table_name_template=engine.table_name_template, transport=Counting())
    worker = Worker(counted, group=f"g{uid()}", idle_wait=0.01)
    for model in models:

        @worker.subscribe(model)
        def handle(change: Change, name: str = model.__name__) -> None:
            seen[name].append(type(change.new or change.old).__name__)

    worker.run(until_caught_up=True)
    return calls, seen


def test_one_reader_per_table_routes_each_record_to_its_entity(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    c = uid()
    engine.save(Customer(customer_id=c, name="Ed"))
    engine.save(*[Order(customer_id=c, order_id=f"{n}", status="new", total=n) for n in range(4)])
    engine.save(Line(order_id=c, product="ink", quantity=1))
    # An item of an entity no model declares: skipped, counted, logged; never forced.
    engine.transport.call(
        "dynamodb",
        "PutItem",
        {
            "TableName": engine.table_name(Customer),
            "Item": {"pk": {"S": f"GHOST#{c}"}, "sk": {"S": "x"}, "_entity": {"S": "Ghost"}},
        },
    )
    single, _ = _reader_calls(engine, (Order,))
    with caplog.at_level(logging.WARNING, logger="streamodel.entities"):
        both, seen = _reader_calls(engine, (Customer, Order))
    assert set(seen["Customer"]) == {"Customer"} and set(seen["Order"]) == {"Order"}
    assert len(seen["Order"]) >= 4 and len(seen["Customer"]) >= 1
    # One reader for both entities: about a single reader's calls, where two readers (one
    # per model, as before) make twice as many.
    assert both < 1.5 * single, (both, single)
    assert "unknown entity 'Ghost'" in caplog.text


def test_engine_stream_of_a_model_or_a_collection(engine: Engine) -> None:
    c = uid()
    order_stream = engine.stream(Order, "latest")
    every = engine.stream(Collection(Customer, Order, Line), "latest")
    next(order_stream), next(every)  # open the shards at their current end
    engine.save(Customer(customer_id=c, name="Fa"))
    engine.save(Order(customer_id=c, order_id="1", status="new", total=1))
    engine.save(Line(order_id=c, product="cup", quantity=1))

    def read(stream: Any, expected: int) -> list[str]:
        out: list[str] = []
        deadline = time.monotonic() + 20
        while len(out) < expected and time.monotonic() < deadline:
            change = next(stream)
            if change is not None and change.new.pk.endswith(c):
                out.append(change.model.__name__)
        return out

    # Three partitions may sit in different shards: order holds per item, not across.
    assert sorted(read(every, 3)) == ["Customer", "Line", "Order"]
    assert read(order_stream, 1) == ["Order"]
    assert order_stream.skipped == 0  # other entities' records are not unknown ones
