"""The streamodel demo (``make demo``): save, stream, and a worker keeping a read model.

It starts an embedded DynamoDB Local, declares an ``Order`` model and an ``OrderView``
projection, runs a worker that keeps the projection up to date from ``Order``'s change
stream, makes a burst of saves, conditional and versioned updates and deletes (printing the
signals), prints each change the worker replays, and ends by checking that the projection
equals a scan of the source table. DynamoDB Local is stopped on the way out.
"""

from __future__ import annotations

import decimal
import os
import random
import sys
import threading
import time
import uuid
from typing import Any

from streamodel import (
    Column,
    ConditionFailedError,
    Engine,
    Integer,
    Number,
    Set,
    StaleVersionError,
    String,
    new_base,
    signals,
)
from streamodel.stream import Change, Worker
from streamodel.testing.local import DynamoDBLocal

Base = new_base()


class Order(Base):
    id = Column(String, hash_key=True)
    customer = Column(String)
    total = Column(Number)
    status = Column(String, default="new")
    tags = Column(Set(String))
    version = Column(Integer, version=True)


class OrderView(Base):
    """The read model: what a dashboard would query, kept from the stream."""

    class Meta:
        stream = None

    id = Column(String, hash_key=True)
    customer = Column(String)
    total = Column(Number)
    status = Column(String)


_print_lock = threading.Lock()


def log(text: str) -> None:
    # The worker thread prints too: one lock keeps lines whole.
    with _print_lock:
        print(text, flush=True)


def on_saved(sender: Any, *, obj: Any, diff: dict[str, Any], **_: Any) -> None:
    changes = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in diff.items())
    log(f"  signal object_saved   {sender.__name__} {obj.id[:8]} {changes}")


def on_deleted(sender: Any, *, obj: Any, **_: Any) -> None:
    log(f"  signal object_deleted {sender.__name__} {obj.id[:8]}")


def build_worker(engine: Engine) -> Worker:
    worker = Worker(engine, group="demo-projection", start="trim_horizon", batch_size=50)

    @worker.subscribe(Order)
    def project(change: Change) -> None:
        # Idempotent by construction (a mirror keyed by order id): replaying a change after
        # a restart leaves the same view, which is what at-least-once delivery needs.
        short = str(change.key["id"])[:8]
        log(f"  worker  {change.event:<6} {short} changed={list(change.changed)}")
        if change.event == "remove":
            view = OrderView(id=change.key["id"])
            engine.delete(view)
            return
        order = change.new
        engine.save(
            OrderView(id=order.id, customer=order.customer, total=order.total, status=order.status)
        )

    return worker


def burst(engine: Engine, rng: random.Random) -> None:
    customers = ["ada", "bob", "cyd"]
    orders = [
        Order(
            id=uuid.uuid4().hex,
            customer=rng.choice(customers),
            total=decimal.Decimal(rng.randint(100, 9999)) / 100,
            tags={"web"} if rng.random() < 0.5 else {"store", "promo"},
        )
        for _ in range(12)
    ]
    log("saving 12 orders (each a conditional, versioned UpdateItem)")
    engine.save(*orders)

    log("paying some orders only if they are still new")
    for order in orders[:6]:
        order.status = "paid"
        engine.save(order, condition=Order.status == "new")

    log("a concurrent writer with a stale copy loses, and nothing is overwritten")
    stale = Order(id=orders[0].id)
    engine.load(stale)
    orders[0].status = "shipped"
    engine.save(orders[0])
    stale.status = "cancelled"
    try:
        engine.save(stale)
    except StaleVersionError as error:
        log(f"  StaleVersionError: {error}")

    log("a conditional write whose condition fails is refused")
    try:
        engine.save(orders[1], condition=Order.status == "new")
    except ConditionFailedError as error:
        log(f"  ConditionFailedError: {error}")

    log("deleting three orders (versioned deletes)")
    engine.delete(*orders[-3:])


def projection_matches(engine: Engine) -> bool:
    source = {o.id: (o.customer, o.total, o.status) for o in engine.scan(Order)}
    view = {v.id: (v.customer, v.total, v.status) for v in engine.scan(OrderView)}
    return source == view


def main() -> int:
    started = time.monotonic()
    # DynamoDB Local accepts any region and credentials; boto3 just needs some.
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    with DynamoDBLocal() as local:
        log(f"DynamoDB Local at {local.endpoint_url}")
        engine = Engine(endpoint_url=local.endpoint_url)
        engine.bind(base=Base)
        signals.object_saved.connect(on_saved, sender=Order)
        signals.object_deleted.connect(on_deleted, sender=Order)

        worker = build_worker(engine)
        thread = threading.Thread(target=worker.run, name="worker", daemon=True)
        thread.start()

        burst(engine, random.Random(7))

        deadline = time.monotonic() + 30
        while not projection_matches(engine):
            if time.monotonic() > deadline or not thread.is_alive():
                log("FAILED: the projection does not match the source table")
                worker.stop()
                return 1
            time.sleep(0.2)
        worker.stop()
        thread.join(timeout=30)
        count = sum(1 for _ in engine.scan(OrderView))
        handled = sum(m.records for m in worker.metrics.values())
        log(
            f"projection matches the source table: {count} orders; the worker handled "
            f"{handled} changes; {time.monotonic() - started:.1f}s in all"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
