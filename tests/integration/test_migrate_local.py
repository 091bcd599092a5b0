"""streamodel migrate / Migration against DynamoDB Local: upgrades written once per item
across SIGKILLs, concurrent saves kept, conflicts retried, dead letters, backfills."""

from __future__ import annotations

import functools
import io
import os
import random
import re
import subprocess
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from streamodel import Column, Engine, Integer, MissingObjectsError, String, new_base
from streamodel.cli import main as cli_main
from streamodel.migrate import Migration, migration_scope
from streamodel.stream.checkpoints import SHARD_END, StateStore
from streamodel.stream.snapshot import segment_id

APPS = Path(__file__).parent / "apps"
sys.path.insert(0, str(APPS))
import migrate_app  # noqa: E402  (the subprocess app's model, shared with these tests)
import shared_migrate_app  # noqa: E402  (the shared-migration app's model)
from test_worker_local import wait_for  # noqa: E402
from written import complete_lines  # noqa: E402

Base = new_base()


def fragile_upgrade(item: dict[str, Any]) -> dict[str, Any]:
    if item["id"].startswith("bad"):
        raise RuntimeError(f"cannot upgrade {item['id']}")
    item["size"] = len(item["id"])
    return item


class Fragile(Base):
    class Meta:
        stream = None
        schema_version = 2
        upgrades = {1: fragile_upgrade}

    id = Column(String, hash_key=True)
    size = Column(Integer)
    note = Column(String)


@pytest.fixture(scope="module")
def local(local_endpoint: str, table_template: str) -> Engine:
    """One engine (the default transport): these tests are about the migration, not the
    transports, and the SIGKILL test is too long to run twice."""
    engine = Engine(endpoint_url=local_endpoint, table_name_template=table_template)
    engine.bind(base=Base)
    engine.bind(base=migrate_app.Base)
    return engine


def put_raw(engine: Engine, model: type[Any], items: list[dict[str, Any]]) -> None:
    """Write raw wire items (old schema versions) with BatchWriteItem."""
    table = engine.table_name(model)
    for start in range(0, len(items), 25):
        requests = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        pending: dict[str, Any] = {table: requests}
        while pending:
            answer = engine.transport.call("dynamodb", "BatchWriteItem", {"RequestItems": pending})
            pending = answer.get("UnprocessedItems") or {}


def get_raw(engine: Engine, model: type[Any], key: str) -> dict[str, Any] | None:
    answer = engine.transport.call(
        "dynamodb",
        "GetItem",
        {"TableName": engine.table_name(model), "Key": {"id": {"S": key}}, "ConsistentRead": True},
    )
    item: dict[str, Any] | None = answer.get("Item")
    return item


def scan_raw(engine: Engine, model: type[Any], prefix: str) -> dict[str, dict[str, Any]]:
    items: dict[str, dict[str, Any]] = {}
    for page in engine.scan(model).consistent().pages():
        for item in page.get("Items", []):
            if item["id"]["S"].startswith(prefix):
                items[item["id"]["S"]] = item
    return items


def group() -> str:
    return f"m{uuid.uuid4().hex[:12]}"


def fragile_items(prefix: str, good: int, bad: int) -> list[dict[str, Any]]:
    return [{"id": {"S": f"{prefix}-{i}"}} for i in range(good)] + [
        {"id": {"S": f"bad{prefix}-{i}"}} for i in range(bad)
    ]


def test_raising_upgrade_is_dead_lettered_and_the_run_completes(
    local: Engine,
    local_endpoint: str,
    table_template: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`streamodel migrate` dead-letters an item whose upgrade raises (listed with its key and
    error by `streamodel dead-letters`), migrates the others and exits 0."""
    prefix, name = uuid.uuid4().hex[:8], group()
    put_raw(local, Fragile, fragile_items(prefix, 40, 2))
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", local_endpoint)
    common = ["--table-name-template", table_template]
    status = cli_main(
        [
            *["migrate", f"{__name__}:Fragile", "--segments", "3", "--group", name],
            *["--name", name, "--progress", "off", *common],
        ]
    )
    err = capsys.readouterr().err
    assert status == 0, err
    assert "2 dead-lettered" in err and "complete" in err
    stored = scan_raw(local, Fragile, prefix)
    assert len(stored) == 40
    assert all(item["_schema"] == {"N": "2"} for item in stored.values())
    assert all(item["size"]["N"] == str(len(key)) for key, item in stored.items())
    for i in range(2):
        assert "_schema" not in (get_raw(local, Fragile, f"bad{prefix}-{i}") or {})
    assert cli_main(["dead-letters", name, *common]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    for i in range(2):
        assert any(f"bad{prefix}-{i}" in line and "RuntimeError" in line for line in lines)


def test_missing_table_exits_non_zero(
    local_endpoint: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A migration that cannot run (its table does not exist) exits 1 with one line."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", local_endpoint)
    status = cli_main(
        [
            *["migrate", f"{__name__}:Fragile", "--table-name-template", "missing-{table_name}"],
            *["--progress", "off", "--state-table", "it-missing-state"],
        ]
    )
    assert status == 1
    assert "migration Fragile@v2" in capsys.readouterr().err


def test_concurrent_writes_between_read_and_write_are_kept(local: Engine) -> None:
    """A save landing between the migration's read and its write refuses the write; the item
    is re-read (already upgraded by that save: nothing to do) and the save is kept; an item
    deleted meanwhile is not recreated."""
    prefix = uuid.uuid4().hex[:8]
    put_raw(local, Fragile, fragile_items(prefix, 6, 0))
    meddled: set[str] = set()

    def meddle(item: dict[str, Any]) -> dict[str, Any] | None:
        """A backfill that, once per item, has another writer get there first."""
        key = item["id"]
        if not key.startswith(prefix):
            return None  # other tests' items: left alone
        if key not in meddled:
            meddled.add(key)
            if key == f"{prefix}-0":
                local.delete(Fragile(id=key))
            else:
                obj = Fragile(id=key)
                local.load(obj, consistent=True)
                obj.note = "concurrent"
                local.save(obj)
        return {**item, "note": "backfill"} if item.get("note") is None else None

    result = Migration(local, Fragile, fn=meddle, group=group(), segments=2, progress="off").run()
    assert result.complete
    assert result.conflicts == 6 and result.deleted == 1 and result.written == 0
    assert get_raw(local, Fragile, f"{prefix}-0") is None
    for i in range(1, 6):
        obj = Fragile(id=f"{prefix}-{i}")
        local.load(obj, consistent=True)
        assert obj.note == "concurrent"
    with pytest.raises(MissingObjectsError):
        local.load(Fragile(id=f"{prefix}-0"), consistent=True)


def test_backfill_and_second_run(local: Engine) -> None:
    """A backfill writes what its function returns; a rerun under the same name does
    nothing (complete), a new run over the backfilled table writes nothing."""
    prefix = uuid.uuid4().hex[:8]
    put_raw(local, Fragile, fragile_items(prefix, 30, 0))

    def shout(item: dict[str, Any]) -> dict[str, Any] | None:
        if not item["id"].startswith(prefix) or item.get("note") == "HI":
            return None
        return {**item, "note": "HI"}

    name = group()
    first = Migration(local, Fragile, fn=shout, name=name, group=name, progress="off").run()
    assert first.complete and first.written == 30
    assert all(item["note"] == {"S": "HI"} for item in scan_raw(local, Fragile, prefix).values())
    again = Migration(local, Fragile, fn=shout, name=name, group=name, progress="off").run()
    assert again.complete and again.scanned == 0
    fresh = Migration(local, Fragile, fn=shout, group=group(), progress="off").run()
    assert fresh.complete and fresh.written == 0 and fresh.scanned >= 30


def test_progress_uses_tqdm_when_installed(local: Engine) -> None:
    """With tqdm installed (the `cli` extra), progress is a tqdm bar."""
    pytest.importorskip  # noqa: B018  (tqdm is in the dev extra: the test never skips)
    import tqdm  # noqa: F401

    put_raw(local, Fragile, fragile_items(uuid.uuid4().hex[:8], 5, 0))
    out = io.StringIO()
    result = Migration(
        local, Fragile, group=group(), name=group(), progress="tqdm", progress_out=out
    ).run()
    assert result.complete
    text = out.getvalue()
    assert "item/s" in text or "s/item" in text, text
    assert f"migrate {result.name}" in text


def test_progress_falls_back_to_log_lines_without_tqdm(
    local: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without tqdm, progress="auto" logs plain lines (done, rate, ETA) instead."""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    put_raw(local, Fragile, fragile_items(uuid.uuid4().hex[:8], 5, 0))
    caplog.set_level("INFO", logger="streamodel.migrate")
    result = Migration(
        local, Fragile, group=group(), name=group(), progress="auto", progress_every=0.0
    ).run()
    assert result.complete
    lines = [r.getMessage() for r in caplog.records if "items/s" in r.getMessage()]
    assert lines and all(line.startswith(f"migration {result.name}: ") for line in lines)
    assert any("ETA" in line for line in lines)


ITEMS = 5000
KILLS = 2


class Saver(threading.Thread):
    """Saves Account objects while the migration runs: loads a random item, sets a note,
    saves (some land between the migration's read and its write), and adds new accounts."""

    def __init__(self, engine: Engine, prefix: str) -> None:
        super().__init__(daemon=True)
        self.engine, self.prefix = engine, prefix
        self.done = threading.Event()
        self.notes: dict[str, str] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        rng = random.Random(11)
        n = 0
        try:
            while not self.done.is_set():
                n += 1
                if rng.random() < 0.1:
                    key = f"{self.prefix}-new-{n}"
                    account = migrate_app.Account(id=key, first="N", last="W", bumps=1)
                else:
                    key = f"{self.prefix}-{rng.randrange(ITEMS)}"
                    account = migrate_app.Account(id=key)
                    self.engine.load(account, consistent=True)
                account.note = f"note-{n}"
                self.engine.save(account)
                self.notes[key] = account.note
        except BaseException as error:  # reported by the test
            self.error = error


def _progressed(checkpointed: Any, at_least: int, process: subprocess.Popen[bytes]) -> bool:
    return bool(checkpointed() >= at_least or process.poll() is not None)


def test_sigkilled_migration_upgrades_every_item_exactly_once(
    local: Engine, local_endpoint: str, table_template: str
) -> None:
    """`streamodel migrate` over 5,000 items written at versions 1 and 2, SIGKILLed twice
    (each time after it checkpointed progress since the last kill) and rerun to completion:
    every item is at version 3, the counting upgrade ran exactly once per item, and every
    concurrent save is kept."""
    prefix, name = uuid.uuid4().hex[:8], group()
    raw = []
    for i in range(ITEMS):
        key = {"id": {"S": f"{prefix}-{i}"}}
        if i % 2:
            raw.append({**key, "fullname": {"S": f"Ada L{i}"}})
        else:
            raw.append(
                {**key, "first": {"S": "Ada"}, "last": {"S": f"L{i}"}, "_schema": {"N": "2"}}
            )
    put_raw(local, migrate_app.Account, raw)
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": local_endpoint,
        "STREAMODEL_TEST_TEMPLATE": table_template,
        "PYTHONPATH": os.pathsep.join([str(APPS), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "streamodel", "migrate", "migrate_app:Account"]
    command += ["--engine", "migrate_app:engine", "--segments", "32", "--group", name]
    command += ["--failover", "1", "--progress", "log", "--log-level", "WARNING"]
    store = StateStore(local, name)
    store.setup()
    scope = migration_scope(local.table_name(migrate_app.Account), "Account@v3")

    def checkpointed() -> int:
        return sum(s.records or 0 for s in store.load(scope).values())

    saver = Saver(local, prefix)
    saver.start()
    try:
        last = 0
        for _ in range(KILLS):
            process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE)
            try:
                wait_for(
                    functools.partial(_progressed, checkpointed, last + 500, process),
                    timeout=120,
                    what="checkpointed progress before the kill",
                )
                assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            finally:
                process.kill()
                process.wait(timeout=30)
                process.stderr.close()  # type: ignore[union-attr]
            last = checkpointed()
            assert last < ITEMS, "the kill came after the migration finished"
        final = subprocess.run(command, env=env, capture_output=True, timeout=300)
        assert final.returncode == 0, final.stderr.decode()
        assert "complete" in final.stderr.decode()
    finally:
        saver.done.set()
        saver.join(timeout=30)
    assert saver.error is None, saver.error
    stored = scan_raw(local, migrate_app.Account, prefix)
    assert len(stored) == ITEMS + sum(1 for k in saver.notes if "-new-" in k)
    assert {item["_schema"]["N"] for item in stored.values()} == {"3"}
    assert {item["bumps"]["N"] for item in stored.values()} == {"1"}
    # The migration drops what the upgrade dropped; a save keeps attributes that are not
    # columns (docs/schema.md), so items a concurrent save upgraded first keep `fullname`.
    assert all("fullname" not in item for key, item in stored.items() if key not in saver.notes)
    for key, note in saver.notes.items():
        assert stored[key]["note"] == {"S": note}, key
    assert len(saver.notes) > 0


SHARED_ITEMS = 600
SHARED_SEGMENTS = 3
PAGE = 100  # Migration's default page_size: the items handled between two checkpoints


def _held_by(store: StateStore, scope: str, pid: int) -> set[str]:
    """The migration segments whose lease the process ``pid`` holds (worker ids hold the pid)."""
    return {sid for sid, s in store.load(scope).items() if f":{pid}:" in (s.owner or "")}


def _count(pattern: str, summary: str) -> int:
    found = re.search(pattern, summary)
    assert found, (pattern, summary)
    return int(found.group(1))


def test_two_processes_share_one_migration(
    local: Engine, local_endpoint: str, table_template: str, tmp_path: Path
) -> None:
    """Two `streamodel migrate` processes share one migration's segments at the same time:
    every item is upgraded and written exactly once (the counting upgrade ran once per item),
    each process finishes at least one segment, and no item is read twice but those of a
    handover: a segment's first items (at most one page), written by the process it was
    stolen from before it noticed, which the new owner reads again and leaves as they are.

    Nothing depends on timing: the first process takes every segment's lease and is held in
    its first upgrade (the app's gate) until the second one holds a lease of its own (stolen
    from the first: leases balance by stealing the victim's highest segment, which the first
    process, reading from the lowest, has not begun)."""
    shelf = shared_migrate_app.Shelf
    local.bind(shelf)
    assert not scan_raw(local, shelf, ""), "the Shelf table is this test's alone"
    prefix, name = uuid.uuid4().hex[:8], group()
    keys = {f"{prefix}-{i:04d}" for i in range(SHARED_ITEMS)}
    put_raw(local, shelf, [{"id": {"S": key}} for key in sorted(keys)])  # version 1
    out = tmp_path / "upgraded.txt"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": local_endpoint,
        "STREAMODEL_TEST_TEMPLATE": table_template,
        "STREAMODEL_TEST_OUT": str(out),
        "PYTHONPATH": os.pathsep.join([str(APPS), os.environ.get("PYTHONPATH", "")]),
    }
    command = [sys.executable, "-m", "streamodel", "migrate", "shared_migrate_app:Shelf"]
    command += ["--engine", "shared_migrate_app:engine", "--segments", str(SHARED_SEGMENTS)]
    command += ["--group", name, "--failover", "3", "--progress", "off", "--log-level", "WARNING"]
    store = StateStore(local, name)
    store.setup()
    scope = migration_scope(local.table_name(shelf), "Shelf@v2")
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
            what="the first process holding its first upgrade",
        )
        assert first.poll() is None, first.communicate()[1].decode()
        segments = {segment_id(i) for i in range(SHARED_SEGMENTS)}
        assert _held_by(store, scope, first.pid) == segments
        second = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        processes.append(second)
        wait_for(
            lambda: bool(_held_by(store, scope, second.pid)) or second.poll() is not None,
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
    summaries = {str(first.pid): first_err.decode(), str(second.pid): second_err.decode()}
    assert all("complete" in summary for summary in summaries.values()), summaries

    stored = scan_raw(local, shelf, prefix)
    assert set(stored) == keys
    # Every item at version 2, upgraded (and so written) once.
    assert sorted(k for k, item in stored.items() if item.get("_schema") != {"N": "2"}) == []
    assert sorted(k for k, item in stored.items() if item.get("moves") != {"N": "1"}) == []
    # "<pid> <key>" per upgrade run (the gate's line aside): one per item, each a write.
    upgrades = [line.split() for line in complete_lines(out) if not line.endswith(" gate")]
    assert Counter(key for _, key in upgrades) == dict.fromkeys(keys, 1)
    writer = {key: pid for pid, key in upgrades}
    finishers = {}
    handed_over = 0
    for index in range(SHARED_SEGMENTS):
        scan = local.scan(shelf).consistent().segment(index, SHARED_SEGMENTS)
        order = [writer[item.id] for item in scan]  # who wrote each item, in scan order
        assert order, f"segment {index} holds no item: the test needs every segment to have some"
        finishers[index] = order[-1]
        # One process wrote the segment, apart from its first items if it was stolen from
        # another that began it first (at most one page, from its start).
        begun = order.index(order[-1])  # the items written before the finisher began
        assert set(order[begun:]) == {order[-1]}, index
        assert begun <= PAGE and len(set(order[:begun])) <= 1, index
        handed_over += begun
    # Both processes took part: each finished at least one segment.
    assert set(finishers.values()) == set(summaries), finishers
    # Each process read each item once, but those of a handover: read again (by the new
    # owner) and left as they were, already at version 2.
    read = sum(_count(r"(\d+) item\(s\) read", s) for s in summaries.values())
    assert read == len(keys) + handed_over
    current = sum(_count(r"(\d+) already current", s) for s in summaries.values())
    assert current == handed_over
    for pid, summary in summaries.items():
        assert _count(r": (\d+) written", summary) == sum(1 for p, _ in upgrades if p == pid)
    states = {sid: s for sid, s in store.load(scope).items() if not sid.startswith("~")}
    assert {sid: s.checkpoint for sid, s in states.items()} == dict.fromkeys(segments, SHARD_END)
    assert sum(s.records for s in states.values()) == len(keys)
