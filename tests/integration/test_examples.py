"""The examples run as users run them."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
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
