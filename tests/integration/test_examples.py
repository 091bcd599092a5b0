"""The examples run as users run them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
    port = result.stdout.split("DynamoDB Local at http://127.0.0.1:")[1].split()[0]
    running = subprocess.run(["pgrep", "-f", f"-port {port}"], capture_output=True, text=True)
    assert running.stdout.strip() == "", f"DynamoDB Local on port {port} still running"
