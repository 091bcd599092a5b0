"""start="snapshot" against DynamoDB Local: every stored item, then the stream, across
SIGKILLs and concurrent writes; resumed snapshots skip finished segments."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.cli import main as cli_main
from streamodel.stream import Change, Worker
from streamodel.stream.checkpoints import SHARD_END
from streamodel.stream.snapshot import SNAPSHOT_MARKER, segment_id, snapshot_scope

APPS = Path(__file__).parent / "apps"
sys.path.insert(0, str(APPS))
import shared_snapshot_app  # noqa: E402  (the shared-snapshot app's model)
import snapshot_app  # noqa: E402  (the subprocess app's models, shared with these tests)
from test_worker_local import (  # noqa: E402  (the worker tests' subprocess helpers)
    _assert_children_used,
    _kill_once_it_handles,
    _start_worker,
    _worker_env,
    wait_for,
)
from written import complete_lines  # noqa: E402

Base = new_base()


class Parcel(Base):
    id = Column(String, hash_key=True)
    weight = Column(Integer)


@pytest.fixture(scope="module", autouse=True)
def bound(engine: Engine) -> None:
    engine.bind(base=Base)
    engine.bind(base=snapshot_app.Base)


def group() -> str:
    return f"s{uuid.uuid4().hex[:12]}"


ITEMS = 2000


class Writer(threading.Thread):
    """Updates and deletes the source's items (and adds new ones) until stopped, one write
    at a time, so the snapshot runs under concurrent writes."""

    def __init__(self, engine: Engine, items: dict[str, Any], prefix: str) -> None:
        super().__init__(daemon=True)
        self.engine, self.items, self.prefix = engine, items, prefix
        self.done = threading.Event()
        self.writes = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(7)
        try:
            while not self.done.is_set():
                roll = rng.random()
                if roll < 0.1 or not self.items:
                    key = f"{self.prefix}-new-{self.writes}"
                    item = snapshot_app.SnapItem(id=key, value=0)
                    self.engine.save(item)
                    self.items[key] = item
                elif roll < 0.25:
                    key = rng.choice(list(self.items))
                    self.engine.delete(self.items.pop(key))
                else:
                    item = self.items[rng.choice(list(self.items))]
                    item.value += 1
                    self.engine.save(item)
                self.writes += 1
        except BaseException as error:  # reported by the test
            self.error = error


def _marker_phase(engine: Engine, store_group: str) -> str | None:
    worker = Worker(engine, group=store_group)
    arn = engine.stream_arn(snapshot_app.SnapItem)
    marker = worker.store.load(snapshot_scope(arn)).get(SNAPSHOT_MARKER)
    return None if marker is None else str(marker.checkpoint)


def test_snapshot_then_stream_copy_equals_source_across_sigkills(
    engine: Engine, local_endpoint: str, table_template: str, tmp_path: Path
) -> None:
    """2,000 items written before the group exists; writers update, delete and add items
    while the snapshotting worker runs and is SIGKILLed twice mid-snapshot; after a final
    run to the end, the version-skipping copy projection equals the source table exactly."""
    prefix = uuid.uuid4().hex[:8]
    # The source table is shared by the session: start from an empty one.
    for stale in engine.scan(snapshot_app.SnapItem):
        engine.delete(stale)
    for stale in engine.scan(snapshot_app.SnapCopy):
        engine.delete(stale)
    items: dict[str, Any] = {}
    for n in range(ITEMS):
        item = snapshot_app.SnapItem(id=f"{prefix}-{n:05d}", value=n)
        engine.save(item)
        items[item.id] = item
    name = group()
    out = tmp_path / "handled.txt"
    env = _worker_env(engine, local_endpoint, table_template, name, out)
    writer = Writer(engine, items, prefix)
    writer.start()
    try:
        for new in (300, 500):
            _kill_once_it_handles(_start_worker(env, app="snapshot_app:worker"), out, new=new)
            # Killed in the middle of the snapshot, not after it.
            assert _marker_phase(engine, name) == "scanning"
            assert not any(line.startswith("r ") for line in complete_lines(out))
    finally:
        writer.done.set()
        writer.join()
    assert writer.error is None, writer.error
    assert writer.writes > 0
    final = _start_worker(env, "--until-caught-up", app="snapshot_app:worker")
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err.decode()
    assert _marker_phase(engine, name) == "done"

    source = {i.id: (i.value, i.version) for i in engine.scan(snapshot_app.SnapItem)}
    copy = {c.id: (c.value, c.source_version) for c in engine.scan(snapshot_app.SnapCopy)}
    assert source == {key: (item.value, item.version) for key, item in items.items()}
    assert copy == source
    lines = complete_lines(out)
    assert any(line.startswith("r ") for line in lines), "the stream part delivered nothing"
    _assert_children_used(engine, out, processes=3)


def test_restarted_snapshot_skips_finished_segments(
    recorder: tuple[Engine, Any], capsys: pytest.CaptureFixture[str], table_template: str
) -> None:
    """A snapshot stopped part-way resumes after its last checkpoint: finished segments are
    never scanned again, the segment in progress resumes after its last handled item, and
    every item is delivered exactly once over both runs; `streamodel status` shows the
    snapshot's progress."""
    engine, transport = recorder
    for stale in engine.scan(Parcel):
        engine.delete(stale)
    keys = {f"p{n:04d}" for n in range(200)}
    for key in sorted(keys):
        engine.save(Parcel(id=key, weight=1))
    name = group()

    def snapshot_worker(stop_after: int | None) -> tuple[Worker, list[Change]]:
        worker = Worker(engine, group=name, start="snapshot", snapshot_segments=4, batch_size=10)
        got: list[Change] = []

        @worker.subscribe(Parcel)
        def handle(change: Change) -> None:
            got.append(change)
            if stop_after is not None and len(got) == stop_after:
                worker.stop()

        return worker, got

    first, first_got = snapshot_worker(stop_after=120)
    first.run(until_caught_up=True)
    assert len(first_got) == 120
    assert all(c.snapshot and c.event == "insert" and c.old is None for c in first_got)
    assert all(c.sequence_number is None for c in first_got)
    arn = engine.stream_arn(Parcel)
    segments = first.store.load(snapshot_scope(arn))
    finished = {s.shard_id for sid, s in segments.items() if s.checkpoint == SHARD_END}
    assert finished and len(finished) < 4
    finished_indexes = {int(sid.rsplit("-", 1)[1]) for sid in finished}

    assert cli_main(["status", name, "--table-name-template", table_template, "--json"]) == 0
    (snap,) = json.loads(capsys.readouterr().out)["snapshots"]
    assert snap["segments_done"] == len(finished) and snap["segments"] == 4
    assert snap["items"] == 120 and snap["phase"] == "scanning"

    transport.calls.clear()
    second, second_got = snapshot_worker(stop_after=None)
    second.run(until_caught_up=True)
    scans = transport.sent("Scan")
    scanned = [params for params in scans if params["TableName"].endswith("Parcel")]
    assert scanned and not {p["Segment"] for p in scanned} & finished_indexes
    assert any("ExclusiveStartKey" in p for p in scanned[:1])
    first_keys = [c.key["id"] for c in first_got]
    second_keys = [c.key["id"] for c in second_got if c.snapshot]
    assert sorted(first_keys + second_keys) == sorted(keys)

    engine.save(Parcel(id="after-snapshot", weight=2))
    second.run(until_caught_up=True)
    assert [c.key["id"] for c in second_got if not c.snapshot] == ["after-snapshot"]
    assert cli_main(["status", name, "--table-name-template", table_template]) == 0
    assert "snapshot of Parcel: 4/4 segments done" in capsys.readouterr().out


SHARED_ITEMS = 300


def _batch_write(engine: Engine, model: type[Any], requests: list[dict[str, Any]]) -> None:
    """Send PutRequests and DeleteRequests with BatchWriteItem, 25 at a time."""
    table = engine.table_name(model)
    for start in range(0, len(requests), 25):
        pending: dict[str, Any] = {table: requests[start : start + 25]}
        while pending:
            answer = engine.transport.call("dynamodb", "BatchWriteItem", {"RequestItems": pending})
            pending = answer.get("UnprocessedItems") or {}


def _segment_states(engine: Engine, name: str) -> dict[str, Any]:
    """The lease items of group ``name``'s snapshot of Crate, by segment (marker left out)."""
    scope = snapshot_scope(engine.stream_arn(shared_snapshot_app.Crate))
    states = Worker(engine, group=name).store.load(scope)
    return {sid: state for sid, state in states.items() if sid != SNAPSHOT_MARKER}


def _held_by(engine: Engine, name: str, pid: int) -> set[str]:
    """The snapshot segments whose lease the process ``pid`` holds (worker ids hold the pid)."""
    states = _segment_states(engine, name)
    return {sid for sid, state in states.items() if f":{pid}:" in (state.owner or "")}


def test_two_processes_share_one_snapshot(
    engine: Engine, local_endpoint: str, table_template: str, tmp_path: Path
) -> None:
    """Two `streamodel worker` processes of one group run one snapshot's segments at the
    same time. Every item is delivered; each segment is delivered whole, each item once, by
    one process, and each process does at least one segment; a finished segment is never
    read again. The only repeats allowed are those of a handover: a segment's first items
    (at most one batch) delivered by the process it was stolen from, before it noticed and
    before the new owner began.

    Nothing depends on timing: the first process takes every segment's lease and is held on
    its first item (the app's gate) until the second one holds a lease of its own (stolen
    from the first: leases balance by stealing the victim's highest segment, which the first
    process, reading from the lowest, has not begun)."""
    crate = shared_snapshot_app.Crate
    engine.bind(crate)
    # The table is shared by this test's runs on both transports: start from an empty one.
    stale = [
        {"DeleteRequest": {"Key": {"id": item["id"]}}}
        for page in engine.scan(crate).consistent().project("keys").pages()
        for item in page.get("Items", [])
    ]
    _batch_write(engine, crate, stale)
    prefix = uuid.uuid4().hex[:8]
    keys = {f"{prefix}-{n:04d}" for n in range(SHARED_ITEMS)}
    _batch_write(
        engine,
        crate,
        [{"PutRequest": {"Item": {"id": {"S": k}, "weight": {"N": "1"}}}} for k in sorted(keys)],
    )
    name = group()
    out = tmp_path / "handled.txt"
    env = _worker_env(engine, local_endpoint, table_template, name, out)
    env["STREAMODEL_TEST_FAILOVER"] = "3"
    command = [sys.executable, "-m", "streamodel", "worker", "shared_snapshot_app:worker"]
    command += ["--until-caught-up", "--log-level", "WARNING"]
    first = subprocess.Popen(
        command,
        env={**env, "STREAMODEL_TEST_GATE": "1"},
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    processes = [first]
    try:
        wait_for(
            lambda: f"{first.pid} gate" in complete_lines(out) or first.poll() is not None,
            timeout=60,
            what="the first process holding its first snapshot item",
        )
        assert first.poll() is None, first.communicate()[1].decode()
        segments = {segment_id(i) for i in range(shared_snapshot_app.SEGMENTS)}
        assert _held_by(engine, name, first.pid) == segments
        second = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        processes.append(second)
        wait_for(
            lambda: bool(_held_by(engine, name, second.pid)) or second.poll() is not None,
            timeout=60,
            what="the second process taking a segment's lease",
        )
        _, first_err = first.communicate(b"go\n", timeout=120)
        _, second_err = second.communicate(timeout=120)
        assert first.returncode == 0, first_err.decode()
        assert second.returncode == 0, second_err.decode()
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    _assert_children_used(engine, out, processes=2)

    # "<pid> <segment> s <key>" per snapshot delivery (the gate's line has two fields), in
    # the order the two processes wrote them down.
    lines = [line.split() for line in complete_lines(out)]
    delivered = [fields for fields in lines if len(fields) == 4 and fields[2] == "s"]
    assert {key for _, _, _, key in delivered} == keys

    def keys_of(positions: list[int]) -> list[str]:
        return [delivered[p][3] for p in positions]

    finishers = {}
    for index in range(shared_snapshot_app.SEGMENTS):
        sid = segment_id(index)
        scan = engine.scan(crate).consistent().segment(index, shared_snapshot_app.SEGMENTS)
        order = [item.id for item in scan]  # the segment's items, in scan order
        assert order, f"{sid} holds no item: the test needs every segment to have some"
        got: dict[str, list[int]] = {}  # pid -> positions (in `delivered`) of its deliveries
        for position, (pid, segment, _, _) in enumerate(delivered):
            if segment == sid:
                got.setdefault(pid, []).append(position)
        # One process delivered the whole segment, each item once, in scan order.
        (finisher,) = [pid for pid, positions in got.items() if keys_of(positions) == order]
        finishers[sid] = finisher
        # The other may have begun the segment after it was stolen, before it noticed: then
        # it delivered the segment's first items (from its last checkpoint that landed: none
        # here), at most one batch, all before the new owner began. Never anything else.
        for pid, positions in got.items():
            if pid != finisher:
                assert keys_of(positions) == order[: len(positions)], (sid, pid)
                assert len(positions) <= shared_snapshot_app.BATCH_SIZE, (sid, pid)
                assert max(positions) < min(got[finisher]), (sid, pid)
    # Both processes took part: each delivered at least one whole segment.
    assert set(finishers.values()) == {str(first.pid), str(second.pid)}, finishers
    states = _segment_states(engine, name)
    assert {sid: s.checkpoint for sid, s in states.items()} == dict.fromkeys(segments, SHARD_END)
    # The checkpointed counts hold each item once.
    assert sum(s.records for s in states.values()) == len(keys)
