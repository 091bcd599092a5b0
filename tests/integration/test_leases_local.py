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
from streamodel.stream.leases import LeaseManager
from streamodel.testing.fake_streams import FakeStreams
from streamodel.testing.http import FakeStreamsServer

APPS = Path(__file__).parent / "apps"
sys.path.insert(0, str(APPS))
import lease_app  # noqa: E402
from written import complete_lines  # noqa: E402

FAILOVER = 3.0
# How long the subprocess test waits for something that must happen eventually. A liveness
# limit, not a speed claim: how soon failover happens is asserted on a logical clock below,
# and a loaded 2-core machine can stretch any wall-clock figure.
EVENTUALLY = 120.0


class FakeClock:
    """A monotonic clock that moves only when the test advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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


def held_by_pid(engine: Engine, group: str, arn: str, pid: int) -> list[str]:
    """Open shards whose lease names the worker process ``pid`` as owner (ids are
    ``host:pid:random``)."""
    return [
        sid
        for owner, sids in owners_of_open_leases(engine, group, arn).items()
        if owner.split(":")[1] == str(pid)
        for sid in sids
    ]


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
    a SIGKILLed worker's shards are taken over by the others, and a SIGTERMed worker gives
    its leases up as it exits (so peers need not wait for them to expire). How soon expiry
    and release hand leases over is checked on a logical clock by the tests below."""
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

            wait_for(all_handled, EVENTUALLY, "every change of rounds 1-3")

            def balanced() -> bool:
                owners = owners_of_open_leases(engine, group, tick_arn)
                counts = [len(v) for v in owners.values()]
                return len(owners) == 3 and max(counts) - min(counts) <= 1

            try:
                wait_for(balanced, EVENTUALLY, "leases balanced over three workers")
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

            killed = procs[0]
            assert held_by_pid(engine, group, tick_arn, killed.pid), "it held no lease"
            killed.kill()
            killed.wait(timeout=10)
            put_round(4)
            wait_for(all_handled, EVENTUALLY, "every change after the SIGKILL")
            wait_for(
                lambda: not held_by_pid(engine, group, tick_arn, killed.pid),
                EVENTUALLY,
                "the SIGKILLed worker's leases taken over",
            )

            stopped = procs[1]
            assert held_by_pid(engine, group, tick_arn, stopped.pid), "it held no lease"
            stopped.send_signal(signal.SIGTERM)
            assert stopped.wait(timeout=60) == 0
            # Released on the way out: free at once for the last worker, no expiry to wait.
            assert held_by_pid(engine, group, tick_arn, stopped.pid) == []
            put_round(5)
            wait_for(all_handled, EVENTUALLY, "every change after the SIGTERM")
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


# -- failover on a logical clock: LeaseManager against the state table on DynamoDB Local ----

SHARDS = [(f"shardId-{i:020d}-logical", None) for i in range(4)]


def _managers(
    engine: Engine, arn: str, clock: FakeClock, *, failover: float = 10.0
) -> tuple[LeaseManager, LeaseManager]:
    group = f"logical-{uuid.uuid4().hex[:8]}"
    stores = [StateStore(engine, group), StateStore(engine, group)]
    stores[0].setup()
    first = LeaseManager(stores[0], arn, "Tick", "worker-a", failover=failover, clock=clock)
    # No stealing: the second process takes leases only when they are free or expired.
    second = LeaseManager(
        stores[1], arn, "Tick", "worker-b", failover=failover, max_steal=0, clock=clock
    )
    return first, second


def test_dead_owners_leases_are_taken_exactly_when_failover_has_passed(
    engine: Engine, tick_arn: str
) -> None:
    """Leases whose counter has not moved are taken by a peer in its first round once
    ``failover`` seconds have passed on the peer's own clock since it saw that counter, and
    not a moment before; the old owner finds out at its next renewal and loses them all."""
    clock = FakeClock()
    a, b = _managers(engine, tick_arn, clock)
    a.run_round(SHARDS)
    assert a.held == {sid for sid, _ in SHARDS}
    b.run_round(SHARDS)  # b first sees a's counters now
    assert b.held == set()
    clock.advance(a.failover - 0.001)
    b.run_round(SHARDS)
    assert b.held == set() and b.awaiting_expiry() == sorted(b.states)
    clock.advance(0.001)
    taken = b.run_round(SHARDS).taken
    assert set(taken) == b.held == {sid for sid, _ in SHARDS}
    again = a.run_round(SHARDS)  # a, a zombie now, tries to renew
    assert again.lost == {sid for sid, _ in SHARDS}
    # In the same round a balances by stealing back at most one lease, which it may read
    # only after a grace period, by which b has lost it.
    assert len(a.held) <= a.max_steal and not any(a.ready(sid) for sid in a.held)


def test_live_owner_keeps_its_leases_however_long_it_runs(engine: Engine, tick_arn: str) -> None:
    """An owner that renews every ``failover / 4`` seconds never loses a lease to a peer,
    whatever time passes."""
    clock = FakeClock()
    a, b = _managers(engine, tick_arn, clock)
    a.run_round(SHARDS)
    for _ in range(12):  # three failover periods
        clock.advance(a.renew_interval)
        assert a.due()
        assert a.run_round(SHARDS).lost == set()
        b.run_round(SHARDS)
        assert b.held == set() and b.takeable() == []
    assert a.held == {sid for sid, _ in SHARDS}


def test_released_leases_are_taken_at_once(engine: Engine, tick_arn: str) -> None:
    """Leases given up on shutdown are taken by a peer's next round with no time passing."""
    clock = FakeClock()
    a, b = _managers(engine, tick_arn, clock)
    a.run_round(SHARDS)
    b.run_round(SHARDS)
    assert b.held == set()
    a.release_all()
    b.run_round(SHARDS)
    assert b.held == {sid for sid, _ in SHARDS}
