"""Single-table design: customers, orders and order lines in ONE DynamoDB table.

It starts an embedded DynamoDB Local (as ``examples/demo.py`` does), declares three entities
of the table ``shop`` and a projection table ``customer_revenue``, places orders in
transactions that span entities, reads a customer with their orders in one Query, queries an
index shared by two entities, and keeps revenue per customer from the table's change stream
with a worker subscribed to two of the three entities. It ends by checking the projection
against the orders. DynamoDB Local is stopped on the way out.

Access patterns, and the key design that serves each (``gsi1`` is one index overloaded by
two entities; a Customer item has no gsi1 keys, so customers are not in it)::

    access pattern                        where   key condition
    ------------------------------------  ------  ------------------------------------------
    a customer                            table   pk = CUSTOMER#<customer>, sk = CUSTOMER#<customer>
    a customer with their orders          table   pk = CUSTOMER#<customer>   (Collection)
    a customer's orders, newest first     table   pk = CUSTOMER#<customer>, sk begins_with ORDER#
    an order                              table   pk = CUSTOMER#<customer>, sk = ORDER#<order>
    an order's lines                      table   pk = ORDER#<order>, sk begins_with LINE#
    orders in a status, by day placed     gsi1    gsi1pk = STATUS#<status>, gsi1sk = <day>#<order>
    order lines of a product, by order    gsi1    gsi1pk = PRODUCT#<sku>,   gsi1sk = ORDER#<order>

Every key is a ``Column(String, template=...)``: composed from the item's own columns when
they are set (``Order(customer_id="ada", order_id="O-1001")`` has its ``pk`` and ``sk``), and
the source of a part that was not read (a keys-only read still knows its ``order_id``).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from decimal import Decimal

from streamodel import (
    Collection,
    Column,
    Engine,
    GlobalSecondaryIndex,
    Integer,
    Number,
    String,
    TransactionCanceledError,
    add,
    new_base,
)
from streamodel.stream import Change, Worker
from streamodel.testing.local import DynamoDBLocal
from streamodel.transactions import WriteTransaction

Base = new_base()


class Customer(Base):
    class Meta:
        table_name = "shop"

    pk = Column(String, hash_key=True, template="CUSTOMER#{customer_id}")
    sk = Column(String, range_key=True, template="CUSTOMER#{customer_id}")
    customer_id = Column(String)
    name = Column(String)
    order_count = Column(Integer, default=0)


class Order(Base):
    class Meta:
        table_name = "shop"

    pk = Column(String, hash_key=True, template="CUSTOMER#{customer_id}")
    sk = Column(String, range_key=True, template="ORDER#{order_id}")
    gsi1pk = Column(String, template="STATUS#{status}")
    gsi1sk = Column(String, template="{placed_on}#{order_id}")
    customer_id = Column(String)
    order_id = Column(String)  # sortable ids: the customer's partition lists them in order
    placed_on = Column(String)  # an ISO date, so it sorts as text
    status = Column(String, default="placed")
    total = Column(Number)
    version = Column(Integer, version=True)  # a new order's save fails if the order exists
    by_status = GlobalSecondaryIndex(hash_key="gsi1pk", range_key="gsi1sk", name="gsi1")


class OrderLine(Base):
    class Meta:
        table_name = "shop"

    pk = Column(String, hash_key=True, template="ORDER#{order_id}")
    sk = Column(String, range_key=True, template="LINE#{sku}")
    gsi1pk = Column(String, template="PRODUCT#{sku}")
    gsi1sk = Column(String, template="ORDER#{order_id}")
    order_id = Column(String)
    sku = Column(String)
    customer_id = Column(String)  # copied from the order: the projection needs it
    quantity = Column(Integer)
    unit_price = Column(Number)
    # The same index as Order.by_status (same name, keys and projection): GSI overloading.
    by_product = GlobalSecondaryIndex(hash_key="gsi1pk", range_key="gsi1sk", name="gsi1")


class CustomerRevenue(Base):
    """The projection, in a table of its own, kept by the worker from shop's stream."""

    class Meta:
        table_name = "customer_revenue"
        stream = None

    customer_id = Column(String, hash_key=True)
    orders = Column(Integer)
    revenue = Column(Number)


# Another service writes into the same table with its own models: it imports only the entity
# it owns, so it declares Meta.entity (a model alone under its base is otherwise not marked
# as an entity at all). This program has no model for "Review": its readers skip the item.
ReviewsBase = new_base()


class Review(ReviewsBase):
    class Meta:
        table_name = "shop"
        entity = "Review"

    pk = Column(String, hash_key=True, template="CUSTOMER#{customer_id}")
    sk = Column(String, range_key=True, template="REVIEW#{sku}")
    customer_id = Column(String)
    sku = Column(String)
    stars = Column(Integer)


PRICES = {"MUG": Decimal("12.50"), "TEA": Decimal("8.00"), "POT": Decimal("30.00")}


def place_order(
    engine: Engine, customer_id: str, order_id: str, day: str, items: dict[str, int]
) -> Order:
    """The order, its lines and the customer's order count, all or nothing."""
    order = Order(customer_id=customer_id, order_id=order_id, placed_on=day)
    lines = [
        OrderLine(
            order_id=order_id,
            sku=sku,
            customer_id=customer_id,
            quantity=quantity,
            unit_price=PRICES[sku],
        )
        for sku, quantity in items.items()
    ]
    order.total = sum((line.quantity * line.unit_price for line in lines), Decimal(0))
    customer = Customer(customer_id=customer_id)  # not read first: the count is ADDed to
    customer.order_count = add(1)
    with engine.transaction() as tx:
        tx.save(order, *lines)
        tx.save(customer, condition=Customer.pk.exists())  # no order for an unknown customer
    return order


def build_worker(engine: Engine, delivered: Counter[str]) -> Worker:
    """Revenue per customer from Order and OrderLine changes only (one stream reader for the
    table; Customer and Review changes are never handed to it)."""
    worker = Worker(engine, group="revenue", start="trim_horizon")

    # Transactional handlers: the projection's update commits with the stream checkpoint,
    # so a change delivered again after a crash is not counted twice.
    @worker.subscribe(Order, events=("insert",), transactional=True)
    def count_order(change: Change, tx: WriteTransaction) -> None:
        delivered[change.model.__name__] += 1
        row = CustomerRevenue(customer_id=change.new.customer_id)
        row.orders = add(1)
        tx.save(row)

    @worker.subscribe(OrderLine, transactional=True)
    def line_revenue(change: Change, tx: WriteTransaction) -> None:
        delivered[change.model.__name__] += 1
        before = change.old.quantity * change.old.unit_price if change.old else 0
        after = change.new.quantity * change.new.unit_price if change.new else 0
        line = change.new or change.old
        row = CustomerRevenue(customer_id=line.customer_id)
        row.revenue = add(after - before)
        tx.save(row)

    return worker


def main() -> int:
    started = time.monotonic()
    # DynamoDB Local accepts any region and credentials; boto3 just needs some.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    # Readers log (once per reader) the items of entities they do not know.
    logging.basicConfig(format="  log: %(message)s", level=logging.WARNING, stream=sys.stdout)
    with DynamoDBLocal() as local:
        print(f"DynamoDB Local at {local.endpoint_url}", flush=True)
        engine = Engine(endpoint_url=local.endpoint_url)
        engine.bind(base=Base)  # one table for the three entities, with gsi1 for two of them
        print("table shop: entities Customer, Order, OrderLine; gsi1 shared by Order, OrderLine")

        engine.save(
            Customer(customer_id="ada", name="Ada"), Customer(customer_id="bob", name="Bob")
        )
        print("placing orders: order + lines + the customer's order_count, one transaction each")
        placed = [
            place_order(engine, "ada", "O-1001", "2024-06-01", {"MUG": 2, "TEA": 1}),
            place_order(engine, "bob", "O-1002", "2024-06-02", {"MUG": 1}),
            place_order(engine, "ada", "O-1003", "2024-06-03", {"POT": 1, "TEA": 3}),
        ]
        for order in placed:
            print(f"  {order.customer_id} {order.order_id} {order.placed_on} total {order.total}")
        try:
            place_order(engine, "ada", "O-1001", "2024-06-04", {"POT": 1})
        except TransactionCanceledError as error:
            codes = [reason["code"] for reason in error.reasons]  # order, line, customer
            ada = Customer(customer_id="ada")
            engine.load(ada)
            print(
                f"placing O-1001 again: TransactionCanceledError {codes}; nothing written "
                f"(ada's order_count is still {ada.order_count})"
            )

        print("Collection(Customer, Order) for CUSTOMER#ada, one Query, in key order:")
        ada_pk = Customer.pk.compose(customer_id="ada")
        collection = engine.query(Collection(Customer, Order)).key(Customer.pk == ada_pk)
        found = collection.all()
        for obj in found:
            print(f"  {type(obj).__name__:<8} {obj.sk}")
        kinds = Counter(type(obj).__name__ for obj in found)
        print(f"  -> {kinds['Customer']} customer + {kinds['Order']} orders")

        newest = engine.query(Order, forward=False).key(
            (Order.pk == ada_pk) & Order.sk.begins_with(Order.sk.compose())  # "ORDER#"
        )
        print("ada's orders, newest first:", [order.order_id for order in newest])

        keys_only = engine.query(Order, projection="keys").key(Order.pk == ada_pk).first()
        assert keys_only is not None
        print(f"a keys-only read knows its parts: {keys_only.sk} -> order_id {keys_only.order_id}")

        bob, bobs_order = Customer(customer_id="bob"), Order(customer_id="bob", order_id="O-1002")
        engine.load(bob, bobs_order)  # one BatchGetItem, two entities
        print(f"loaded together: {bob.name} and {bobs_order.order_id} ({bobs_order.total})")

        print("shipping O-1001 (its gsi1pk follows its status)")
        first = placed[0]
        first.status = "shipped"
        engine.save(first)
        for status in ("placed", "shipped"):
            in_status = engine.query(Order.by_status).key(
                Order.gsi1pk == Order.gsi1pk.compose(status=status)
            )
            print(f"  gsi1 {Order.gsi1pk.compose(status=status)}:", [o.order_id for o in in_status])
        mugs = engine.query(OrderLine.by_product).key(
            OrderLine.gsi1pk == OrderLine.gsi1pk.compose(sku="MUG")
        )
        print("  gsi1 PRODUCT#MUG:", [(line.order_id, line.quantity) for line in mugs])

        print("refunding O-1003's TEA line: delete the line, lower the total, one transaction")
        third = placed[2]
        tea = OrderLine(order_id="O-1003", sku="TEA")
        engine.load(tea)
        third.total -= tea.quantity * tea.unit_price
        with engine.transaction() as tx:
            tx.delete(tea)
            tx.save(third)  # versioned: refused if the order changed since it was read

        engine.save(Review(customer_id="ada", sku="MUG", stars=5))
        print("another service wrote a Review into ada's partition (entity unknown here)")
        again = engine.query(Collection(Customer, Order)).key(Customer.pk == ada_pk)
        print(f"  the collection query still returns {len(again.all())} items")

        stream = engine.stream(Collection(Customer, Order, OrderLine), "trim_horizon")
        per_entity: Counter[str] = Counter()
        while (change := next(stream)) is not None:
            per_entity[change.model.__name__] += 1
        print(
            "the table's stream read as Collection(Customer, Order, OrderLine): "
            + ", ".join(f"{name} {per_entity[name]}" for name in ("Customer", "Order", "OrderLine"))
            + f"; unknown entities skipped: {stream.skipped}"
        )

        delivered: Counter[str] = Counter()
        worker = build_worker(engine, delivered)
        worker.run(until_caught_up=True)
        print(
            f"worker (Order inserts + OrderLine changes): delivered Order {delivered['Order']}, "
            f"OrderLine {delivered['OrderLine']}; unknown entities skipped: {worker.skipped}"
        )

        print("projection customer_revenue vs the orders:")
        ok = True
        for customer in engine.scan(Customer):
            orders = engine.query(Order).key(Order.pk == customer.pk).all()
            total = sum((order.total for order in orders), Decimal(0))
            row = CustomerRevenue(customer_id=customer.customer_id)
            engine.load(row)
            match = row.revenue == total and row.orders == len(orders) == customer.order_count
            ok = ok and match
            print(
                f"  {customer.customer_id}: projection {row.orders} orders, revenue {row.revenue}; "
                f"orders {len(orders)} (order_count {customer.order_count}), "
                f"sum of totals {total} -> {'match' if match else 'MISMATCH'}"
            )
        if not ok:
            print("FAILED: the projection does not match the orders")
            return 1
        print(f"projection matches the orders; {time.monotonic() - started:.1f}s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
