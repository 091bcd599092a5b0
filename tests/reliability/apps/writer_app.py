"""A writer run as a subprocess and SIGKILLed by the reliability scenarios.

Step after step it writes "begin STEP", commits a transaction of 4 new documents and writes
"tx STEP", then batch-writes 25 rows and writes "batch STEP" (each line flushed and fsynced
before the next write, so what a line acknowledges was acknowledged by DynamoDB). Steps start
at RELIABILITY_BASE; names carry RELIABILITY_RUN.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scenarios import Doc, Row

from streamodel import Engine

engine = Engine(table_name_template=os.environ["STREAMODEL_TEST_TEMPLATE"])
run = os.environ["RELIABILITY_RUN"]
out = open(os.environ["RELIABILITY_OUT"], "a", buffering=1)  # noqa: SIM115 - kept open


def note(text: str) -> None:
    out.write(text + "\n")
    out.flush()
    os.fsync(out.fileno())


step = int(os.environ.get("RELIABILITY_BASE", "0"))
while True:
    note(f"begin {step}")
    with engine.transaction() as tx:
        tx.save(*(Doc(id=f"{run}-s{step}-{k}", value=str(step)) for k in range(4)))
    note(f"tx {step}")
    engine.save(
        *(Row(group=f"{run}-b{step}", n=n, value=str(step)) for n in range(25)), replace=True
    )
    note(f"batch {step}")
    step += 1
