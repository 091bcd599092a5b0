"""The examples run as users run them."""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from streamodel.testing.local import DynamoDBLocal

ROOT = Path(__file__).resolve().parents[2]


def dynamodb_local_pids(port: int) -> list[int]:
    """The live processes whose command line is a DynamoDB Local listening on ``port``.

    Reads ``/proc/*/cmdline`` (argv split on NULs) rather than ``pgrep -f "-port N"``, whose
    pattern starting with ``-`` is taken for an option: pgrep then exits 2 and prints nothing,
    and a check on its output can never fail."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # the process ended while we looked, or is not ours to read
            continue
        if not any(b"DynamoDBLocal" in arg for arg in argv):
            continue
        if any(a == b"-port" and b == str(port).encode() for a, b in itertools.pairwise(argv)):
            found.append(int(entry.name))
    return found


def test_process_scan_finds_a_running_dynamodb_local(streamodel_local: DynamoDBLocal) -> None:
    """The scan that proves the demo left no JVM behind does find one that is running (the
    session's own), so an empty answer from it means something."""
    assert dynamodb_local_pids(streamodel_local.port) == [streamodel_local.pid]
    assert dynamodb_local_pids(1) == []


def test_demo_runs_and_its_projection_matches() -> None:
    """`make demo`'s script starts its own DynamoDB Local, succeeds, and leaves no JVM behind."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "projection matches the source table" in result.stdout
    assert "StaleVersionError" in result.stdout
    port = int(result.stdout.split("DynamoDB Local at http://127.0.0.1:")[1].split()[0])
    left = dynamodb_local_pids(port)
    assert left == [], f"DynamoDB Local on port {port} still running: pids {left}"


def test_single_table_example_runs_and_its_projection_matches() -> None:
    """examples/single_table.py (customers, orders and lines in one table) starts its own
    DynamoDB Local like the demo and prints the facts single-table design rests on: one
    collection Query gives the customer then their orders in key order, the overloaded
    index serves both entities, a failed cross-entity transaction writes nothing, the
    worker gets only the entities it subscribed to, and its projection equals the orders."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "single_table.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    lines = out.splitlines()

    # The collection: the lines under its heading, up to the summary.
    start = next(
        i for i, line in enumerate(lines) if line.startswith("Collection(Customer, Order)")
    )
    end = next(i for i in range(start, len(lines)) if lines[i].strip().startswith("->"))
    read = [tuple(line.split()) for line in lines[start + 1 : end]]
    assert read == [
        ("Customer", "CUSTOMER#ada"),
        ("Order", "ORDER#O-1001"),
        ("Order", "ORDER#O-1003"),
    ], out
    assert "-> 1 customer + 2 orders" in lines[end]
    assert "the collection query still returns 3 items" in out  # the Review is filtered out

    # The refused transaction left the customer's count as it was.
    assert "placing O-1001 again: TransactionCanceledError ['ConditionalCheckFailed'" in out
    assert "order_count is still 2" in out

    # gsi1, one index for two entities; the shipped order moved to its new status.
    assert "gsi1 STATUS#placed: ['O-1002', 'O-1003']" in out
    assert "gsi1 STATUS#shipped: ['O-1001']" in out
    assert "gsi1 PRODUCT#MUG: [('O-1001', 2), ('O-1002', 1)]" in out

    # One stream for the table, routed by entity; the Review is skipped and counted.
    assert "Customer 5, Order 5, OrderLine 6; unknown entities skipped: 1" in out
    # Only the subscribed entities reach the handlers: a Customer record routed to Order
    # (or a Review read as anything) would raise these counts.
    assert "delivered Order 3, OrderLine 6; unknown entities skipped: 1" in out

    # The projection's revenue is the sum of each customer's order totals (after the refund).
    found = {}
    for line in lines:
        match = re.match(
            r"\s+(\w+): projection (\d+) orders, revenue ([\d.]+); orders (\d+) "
            r"\(order_count (\d+)\), sum of totals ([\d.]+)",
            line,
        )
        if match:
            name, *numbers = match.groups()
            found[name] = tuple(Decimal(n) for n in numbers)
    expected_revenue = {"ada": Decimal("63.00"), "bob": Decimal("12.50")}  # 33 + 54 - 24; 12.50
    assert set(found) == set(expected_revenue), out
    for name, (orders, revenue, order_rows, order_count, total) in found.items():
        assert revenue == total == expected_revenue[name], (name, out)
        assert orders == order_rows == order_count, (name, out)

    port = int(out.split("DynamoDB Local at http://127.0.0.1:")[1].split()[0])
    left = dynamodb_local_pids(port)
    assert left == [], f"DynamoDB Local on port {port} still running: pids {left}"
