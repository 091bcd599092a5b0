"""An AWS Lambda function running streamodel subscribers on a table's DynamoDB stream.

Deploy it with the handler ``lambda_function.handler`` and an event source mapping on the
``orders`` table's stream (settings in docs/lambda.md). The same subscribers could run in a
self-hosted ``Worker`` unchanged.

``python examples/lambda_function.py`` runs it locally: an embedded DynamoDB Local, a burst of
orders, and an emulated event source mapping calling ``handler``; it ends by checking the
projection against a scan of the orders.
"""

from __future__ import annotations

import logging
import os
import uuid

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.exceptions import MissingObjectsError
from streamodel.stream import Change, Worker
from streamodel.transactions import WriteTransaction

logger = logging.getLogger("orders")

Base = new_base()


class Order(Base):
    class Meta:
        table_name = "orders"

    id = Column(String, hash_key=True)
    customer = Column(String)
    amount = Column(Integer)


class CustomerTotal(Base):
    """How many orders a customer has and their total amount (kept exactly-once)."""

    class Meta:
        table_name = "customer-totals"
        stream = None

    customer = Column(String, hash_key=True)
    orders = Column(Integer)
    amount = Column(Integer)
    version = Column(Integer, version=True)


def build_worker(engine: Engine) -> Worker:
    """The subscribers: the same code runs on Lambda or in ``streamodel worker``."""
    # max_attempts counts failed *invocations* on Lambda before a change is dead-lettered.
    worker = Worker(engine, group="orders-lambda", max_attempts=5)

    @worker.subscribe(Order, events=("insert",))
    def announce(change: Change) -> None:
        # Plain subscriber: at-least-once, so it must tolerate a repeat (event_id helps).
        logger.info("new order %s (%s)", change.key["id"], change.event_id)

    @worker.subscribe(Order, transactional=True)
    def totals(change: Change, tx: WriteTransaction) -> None:
        # Writes through tx commit together with the change's tracking item: exactly-once.
        deltas: dict[str, tuple[int, int]] = {}
        for obj, sign in ((change.old, -1), (change.new, 1)):
            if obj is not None:
                count, amount = deltas.get(obj.customer, (0, 0))
                deltas[obj.customer] = (count + sign, amount + sign * (obj.amount or 0))
        for customer, (count, amount) in deltas.items():
            total = CustomerTotal(customer=customer)
            try:
                engine.load(total, consistent=True)
            except MissingObjectsError:
                total.orders, total.amount = 0, 0
            total.orders += count
            total.amount += amount
            tx.save(total)

    return worker


engine = Engine(table_name_template=os.environ.get("TABLE_NAME_TEMPLATE", "{table_name}"))
worker = build_worker(engine)
# Create the handler once per container: it keeps the engine's connections warm.
handler = worker.lambda_handler


def main() -> None:
    """Run the function locally against DynamoDB Local through an emulated event source
    mapping (batches of 10, retries from the reported record)."""
    from streamodel.testing.event_source_mapping import LocalEventSourceMapping
    from streamodel.testing.local import DynamoDBLocal

    with DynamoDBLocal() as local:
        local_engine = Engine(endpoint_url=local.endpoint_url)
        local_engine.bind(base=Base)
        local_worker = build_worker(local_engine)
        mapping = LocalEventSourceMapping(
            local_engine, Order, local_worker.lambda_handler, batch_size=10
        )
        orders = [Order(id=uuid.uuid4().hex, customer=f"c{n % 3}", amount=n) for n in range(1, 31)]
        local_engine.save(*orders)
        for order in orders[::4]:
            order.amount = (order.amount or 0) * 2
            local_engine.save(order)
        local_engine.delete(*orders[::7])
        invocations = mapping.run()
        print(f"{len(invocations)} invocations")
        expected: dict[str, tuple[int, int]] = {}
        for order in local_engine.scan(Order):
            count, amount = expected.get(order.customer, (0, 0))
            expected[order.customer] = (count + 1, amount + (order.amount or 0))
        for customer, (count, amount) in sorted(expected.items()):
            total = CustomerTotal(customer=customer)
            local_engine.load(total)
            assert (total.orders, total.amount) == (count, amount), customer
            print(f"{customer}: {count} orders, {amount}")
        print("projection matches the orders table")


if __name__ == "__main__":
    main()
