"""Several worker processes of one group share a multi-shard stream through leases.

The stream is a FakeStreams served over HTTP (DynamoDB Local keeps one shard per table);
the leases and checkpoints are in DynamoDB Local.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from streamodel import Engine
from streamodel.stream.checkpoints import SHARD_END, START_MARKER, StateStore
from streamodel.testing.fake_streams import FakeStreams
from streamodel.testing.http import FakeStreamsServer

APPS = Path(__file__).parent / "apps"
sys.path.insert(0, str(APPS))
import lease_app  # noqa: E402
from written import complete_lines  # noqa: E402

FAILOVER = 3.0


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until ``predicate`` holds; return the seconds it took, fail after ``timeout``."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)
    return time.monotonic() - start


def handled(out: Path) -> list[tuple[str, str, str, int]]:
    rows = []
    for line in complete_lines(out):
        owner, shard, sequence, at = line.split()
        rows.append((owner, shard, sequence, int(at)))
    return rows


def all_records(fake: FakeStreams) -> set[tuple[str, str]]:
    return {
        (sid, r["dynamodb"]["SequenceNumber"])
        for sid in fake.shard_ids()
        for r in fake.records(sid)
    }


def owners_of_open_leases(engine: Engine, group: str, arn: str) -> dict[str, list[str]]:
    store = StateStore(engine, group)
    by_owner: dict[str, list[str]] = defaultdict(list)
    for sid, state in store.load(arn).items():
        if sid != START_MARKER and state.checkpoint != SHARD_END and state.owner:
            by_owner[state.owner].append(sid)
    return by_owner


@pytest.fixture(scope="module")
def tick_arn(engine: Engine) -> str:
    """The Tick table on DynamoDB Local (its stream ARN names the fake stream)."""
    engine.bind(lease_app.Tick)
    return engine.stream_arn(lease_app.Tick)


def test_three_workers_share_shards_and_take_over(
    engine: Engine, local_endpoint: str, table_template: str, tick_arn: str, tmp_path: Path
) -> None:
    """Three workers: every change handled, no shard read by two at once, leases balanced;
    a SIGKILLed worker's shards are taken over within the failover time plus a round, and a
    SIGTERMed worker's shards move at once."""
    fake = FakeStreams(stream_arn=tick_arn, shards=6)
    keys = [f"k{i}" for i in range(48)]

    def put_round(n: int) -> None:
        for key in keys:
            fake.put({"id": {"S": key}}, new_image={"id": {"S": key}, "n": {"N": str(n)}})

    group = f"leases-{uuid.uuid4().hex[:8]}"
    out = tmp_path / "handled.txt"
    put_round(1)
    with FakeStreamsServer(fake) as server:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL_DYNAMODB": local_endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": server.endpoint_url,
            "STREAMODEL_TEST_TEMPLATE": table_template,
            "STREAMODEL_TEST_GROUP": group,
            "STREAMODEL_TEST_OUT": str(out),
            "STREAMODEL_TEST_FAILOVER": str(FAILOVER),
            "PYTHONPATH": os.pathsep.join([str(APPS), os.environ.get("PYTHONPATH", "")]),
        }
        command = [
            sys.executable,
            "-m",
            "streamodel",
            "worker",
            "lease_app:worker",
            "--log-level",
            "WARNING",
        ]
        procs = [
            subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(3)
        ]
        try:
            put_round(2)
            fake.split(fake.shard_ids(open_only=True)[0])
            put_round(3)

            def all_handled() -> bool:
                return all_records(fake) <= {(s, q) for _, s, q, _ in handled(out)}

            wait_for(all_handled, 60, "every change of rounds 1-3")

            def balanced() -> bool:
                owners = owners_of_open_leases(engine, group, tick_arn)
                counts = [len(v) for v in owners.values()]
                return len(owners) == 3 and max(counts) - min(counts) <= 1

            try:
                wait_for(balanced, 6 * FAILOVER, "leases balanced over three workers")
            except AssertionError:
                raise AssertionError(
                    f"not balanced: {dict(owners_of_open_leases(engine, group, tick_arn))}; "
                    f"open shards {fake.shard_ids(open_only=True)}; "
                    f"{[p.poll() for p in procs]} "
                    f"{[p.stderr.read().decode()[-2000:] for p in procs if p.poll() is not None]}"
                ) from None
            open_shards = len(fake.shard_ids(open_only=True))
            counts = [len(v) for v in owners_of_open_leases(engine, group, tick_arn).values()]
            assert sum(counts) == open_shards and max(counts) <= math.ceil(open_shards / 3)

            procs[0].kill()
            procs[0].wait(timeout=10)
            put_round(4)
            took = wait_for(all_handled, 30, "every change after the SIGKILL")
            assert took <= FAILOVER + FAILOVER / 4 + 3.0, f"takeover took {took:.1f}s"

            procs[1].send_signal(signal.SIGTERM)
            assert procs[1].wait(timeout=20) == 0
            put_round(5)
            took = wait_for(all_handled, 30, "every change after the SIGTERM")
            assert took < FAILOVER, f"hand-off after SIGTERM took {took:.1f}s (no expiry wait)"
            assert set(owners_of_open_leases(engine, group, tick_arn)) == {
                next(iter(owners_of_open_leases(engine, group, tick_arn)))
            }
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=10)

    rows = sorted(handled(out), key=lambda r: r[3])
    by_shard: dict[str, list[str]] = defaultdict(list)
    for owner, shard, _, _ in rows:
        if not by_shard[shard] or by_shard[shard][-1] != owner:
            by_shard[shard].append(owner)
    # A shard changes hands at most at the initial take, a steal, the kill and the SIGTERM;
    # two workers reading it at once would interleave far more often.
    assert max(len(runs) for runs in by_shard.values()) <= 5, dict(by_shard)
