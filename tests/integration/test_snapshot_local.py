"""start="snapshot" against DynamoDB Local: every stored item, then the stream, across
SIGKILLs and concurrent writes; resumed snapshots skip finished segments."""

from __future__ import annotations

import json
import random
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
from streamodel.stream.snapshot import SNAPSHOT_MARKER, snapshot_scope

APPS = Path(__file__).parent / "apps"
sys.path.insert(0, str(APPS))
import snapshot_app  # noqa: E402  (the subprocess app's models, shared with these tests)
from test_worker_local import (  # noqa: E402  (the worker tests' subprocess helpers)
    _assert_children_used,
    _kill_once_it_handles,
    _start_worker,
    _worker_env,
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
