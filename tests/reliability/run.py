"""``make reliability``: every reliability scenario at full size, then the figures table.

Starts its own DynamoDB Local (a fresh instance, so stream tables hold only this run's
changes), runs every scenario over plain HTTP and then over TLS (a loopback TLS terminator
with a test CA, ``tests/support/tls.py``, in front of the fault proxy), and exits 1 when any
scenario broke a promise. ``RELIABILITY_OPERATIONS``, ``RELIABILITY_WORKER_CHANGES`` and
``RELIABILITY_KILL_CHANGES`` change the sizes.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.pop("AWS_PROFILE", None)
sys.path.insert(0, str(Path(__file__).parent))

import scenarios

from streamodel.testing.local import DynamoDBLocal

OPERATIONS = int(os.environ.get("RELIABILITY_OPERATIONS", "2000"))
WORKER_CHANGES = int(os.environ.get("RELIABILITY_WORKER_CHANGES", "1000"))
KILL_CHANGES = int(os.environ.get("RELIABILITY_KILL_CHANGES", "5000"))


def main() -> int:
    started = time.monotonic()
    rows: list[scenarios.Figures] = []
    with DynamoDBLocal() as server:
        url = server.endpoint_url
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = url
        os.environ["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"] = url
        template = "rel-{table_name}"
        # Every scenario twice: plain HTTP, then over TLS (client -TLS-> loopback terminator
        # -> fault proxy -> DynamoDB Local, the terminator's test CA trusted through
        # AWS_CA_BUNDLE, which the worker and writer processes inherit).
        for tls in (False, True):
            over = "TLS" if tls else "plain HTTP"
            for transport in ("botocore", "lean"):
                scenarios.unknown_increment_is_not_retried(
                    url, template, transport=transport, tls=tls
                )
                print(
                    f"unknown-outcome increments, {transport}, {over}: sent once, counted once",
                    flush=True,
                )
            for transport in ("botocore", "lean"):
                rows.append(
                    scenarios.data_plane(
                        url, template, transport=transport, operations=OPERATIONS, tls=tls
                    )
                )
                print(rows[-1].row(), rows[-1].notes, flush=True)
            for transport in ("botocore", "lean"):
                rows.append(
                    scenarios.worker_under_faults(
                        url, template, transport=transport, changes=WORKER_CHANGES, tls=tls
                    )
                )
                print(rows[-1].row(), rows[-1].notes, flush=True)
            rows.append(
                scenarios.worker_killed(url, template, changes=KILL_CHANGES, kills=20, tls=tls)
            )
            print(rows[-1].row(), rows[-1].notes, flush=True)
            rows.append(scenarios.writes_killed(url, template, kills=20, tls=tls))
            print(rows[-1].row(), rows[-1].notes, flush=True)
    print()
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; {time.monotonic() - started:.0f} s"
    )
    print()
    print(scenarios.table(rows))
    print()
    for figures in rows:
        if figures.notes:
            print(f"- {figures.scenario}: {figures.notes}")
    broken = [(f.scenario, p) for f in rows for p in f.problems]
    for scenario, problem in broken:
        print(f"PROBLEM {scenario}: {problem}")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
