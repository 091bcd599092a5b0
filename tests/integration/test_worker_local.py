"""The Worker against DynamoDB Local: dispatch, checkpoints, dead letters, signals, crashes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.cli import main as cli_main
from streamodel.stream import Change, DeadLetterInfo, Worker

APPS = Path(__file__).parent / "apps"
sys.path.insert(0, str(APPS))
import worker_app  # noqa: E402  (the subprocess app's models, shared with these tests)
from written import complete_lines, transport_name  # noqa: E402

Base = new_base()


class Order(Base):
    id = Column(String, hash_key=True)
    status = Column(String)


class Invoice(Base):
    id = Column(String, hash_key=True)
    amount = Column(Integer)


@pytest.fixture(scope="module", autouse=True)
def bound(engine: Engine) -> None:
    """Bind this module's models (and the subprocess app's) once."""
    engine.bind(base=Base)
    engine.bind(worker_app.Counter)


def group() -> str:
    return f"g{uuid.uuid4().hex[:12]}"


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll ``predicate`` until it holds, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def test_changes_reach_matching_handlers_and_checkpoints_hold(engine: Engine) -> None:
    """Each change reaches the handlers of its model and event; a rerun of the group redelivers
    nothing, and later changes only are delivered to the next run."""
    worker = Worker(engine, group=group(), start="latest")
    orders: list[Change] = []
    inserts: list[Change] = []
    invoices: list[Change] = []
    worker.subscribe(Order)(orders.append)
    worker.subscribe(Order, events=("insert",))(inserts.append)
    worker.subscribe(Invoice)(invoices.append)
    # Open the streams at "latest" first, so the changes below come after the start.
    worker.run(until_caught_up=True)
    order = Order(id=uuid.uuid4().hex, status="new")
    engine.save(order)
    order.status = "paid"
    engine.save(order)
    invoice = Invoice(id=uuid.uuid4().hex, amount=5)
    engine.save(invoice)
    engine.delete(order)
    worker.run(until_caught_up=True)
    assert [c.event for c in orders if c.key["id"] == order.id] == ["insert", "modify", "remove"]
    assert [c.new.status for c in inserts if c.key["id"] == order.id] == ["new"]
    assert [c.new.amount for c in invoices if c.key["id"] == invoice.id] == [5]

    seen = len(orders)
    worker.run(until_caught_up=True)
    assert len(orders) == seen
    engine.save(Order(id=uuid.uuid4().hex, status="late"))
    worker.run(until_caught_up=True)
    assert [c.new.status for c in orders[seen:]] == ["late"]


def test_failing_handler_sends_exactly_that_change_to_dead_letters(
    engine: Engine, table_template: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A handler that always fails for one change dead-letters exactly that change, and every
    other change is handled; `streamodel dead-letters GROUP` lists it with its error."""
    name = group()
    worker = Worker(engine, group=name, start="latest", max_attempts=3, retry_wait=0.001)
    handled: list[str] = []
    poison = uuid.uuid4().hex
    attempts = {"n": 0}

    @worker.subscribe(Order)
    def handler(change: Change) -> None:
        if change.key["id"] == poison:
            attempts["n"] += 1
            raise RuntimeError("cannot handle this one")
        handled.append(change.key["id"])

    worker.run(until_caught_up=True)
    ids = [uuid.uuid4().hex for _ in range(3)]
    for i in (ids[0], poison, ids[1], ids[2]):
        engine.save(Order(id=i, status="x"))
    worker.run(until_caught_up=True)
    # A fresh group started at "latest" may also see a few older changes (at-least-once).
    assert [i for i in handled if i in ids] == ids
    assert attempts["n"] == 3
    (letter,) = list(worker.store.dead_letters())
    assert letter.record["dynamodb"]["Keys"]["id"] == {"S": poison}
    assert "cannot handle this one" in letter.error and letter.attempts == 3

    assert cli_main(["dead-letters", name, "--table-name-template", table_template]) == 0
    out = capsys.readouterr()
    assert poison in out.out and "1 dead letter(s)" in out.err


def test_custom_dead_letter_destination(engine: Engine) -> None:
    """A dead_letter callable receives the whole change and the error."""
    got: list[DeadLetterInfo] = []
    worker = Worker(engine, group=group(), start="latest", max_attempts=1, dead_letter=got.append)

    @worker.subscribe(Invoice)
    def fail(change: Change) -> None:
        raise ValueError("nope")

    worker.run(until_caught_up=True)
    invoice = Invoice(id=uuid.uuid4().hex, amount=1)
    engine.save(invoice)
    worker.run(until_caught_up=True)
    mine = [info for info in got if info.change is not None and info.change.key["id"] == invoice.id]
    assert len(mine) == 1 and isinstance(mine[0].error, ValueError)
    assert mine[0].change is not None and mine[0].change.new.amount == 1


def test_strict_order_stops_without_checkpointing_past_the_failure(engine: Engine) -> None:
    """With on_failure="stop" the worker stops at a failing change and a rerun delivers it again."""
    name = group()
    first = Worker(
        engine, group=name, start="latest", max_attempts=2, retry_wait=0.001, on_failure="stop"
    )
    seen: list[str] = []
    bad = uuid.uuid4().hex

    @first.subscribe(Order)
    def strict(change: Change) -> None:
        if change.key["id"] == bad:
            raise RuntimeError("not yet")
        seen.append(change.key["id"])

    first.run(until_caught_up=True)
    before, after = uuid.uuid4().hex, uuid.uuid4().hex
    for i in (before, bad, after):
        engine.save(Order(id=i, status="s"))
    first.run(until_caught_up=True)
    mine = {before, bad, after}
    assert [i for i in seen if i in mine] == [before]

    second = Worker(engine, group=name)
    again: list[str] = []
    second.subscribe(Order)(lambda change: again.append(change.key["id"]))
    second.run(until_caught_up=True)
    assert [i for i in again if i in mine] == [bad, after]


def _worker_env(
    engine: Engine, local_endpoint: str, table_template: str, name: str, out: Path
) -> dict[str, str]:
    """The child's environment: the session's DynamoDB Local and, through
    STREAMODEL_TRANSPORT, the transport of the ``engine`` fixture's parameter (the apps make
    their engines without clients, so it applies); each child appends the transport it made
    to ``out`` + ``.transport`` (see :func:`_assert_children_used`)."""
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": local_endpoint,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": local_endpoint,
        "STREAMODEL_TRANSPORT": transport_name(engine),
        "STREAMODEL_TEST_TRANSPORT_OUT": f"{out}.transport",
        "STREAMODEL_TEST_TEMPLATE": table_template,
        "STREAMODEL_TEST_GROUP": name,
        "STREAMODEL_TEST_OUT": str(out),
        "PYTHONPATH": os.pathsep.join([str(APPS), os.environ.get("PYTHONPATH", "")]),
    }


def _assert_children_used(engine: Engine, out: Path, processes: int) -> None:
    """Every one of the ``processes`` children made the ``engine`` fixture's transport."""
    lines = complete_lines(Path(f"{out}.transport"))
    assert len(lines) == processes, lines
    assert {line.split()[1] for line in lines} == {transport_name(engine)}, lines


def _start_worker(env: dict[str, str], *extra: str, app: str = "worker_app:worker") -> Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streamodel", "worker", app, "--log-level", "WARNING", *extra],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _kill_once_it_handles(process: Popen, out: Path, *, new: int, timeout: float = 90.0) -> int:
    """Wait until the worker ``process`` has appended at least ``new`` lines to ``out`` beyond
    those there now, then SIGKILL it; return the lines it appended. Fails, with the child's
    stderr, if it exits first or does not get that far within ``timeout`` seconds (it first
    waits out the killed predecessor's lease: two failover periods at most)."""
    before = len(complete_lines(out))
    try:
        wait_for(
            lambda: len(complete_lines(out)) >= before + new or process.poll() is not None,
            timeout=timeout,
            what=f"{new} change(s) handled by the worker before killing it",
        )
        assert process.poll() is None, (
            f"the worker exited ({process.returncode}) before it was killed: "
            + (process.stderr.read().decode() if process.stderr else "")
        )
    finally:
        process.kill()
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()
    return len(complete_lines(out)) - before


def _all_sequence_numbers(engine: Engine) -> set[str]:
    stream = engine.stream(worker_app.Counter, "trim_horizon")
    found: set[str] = set()
    idle = 0
    while idle < 5:
        change = next(stream)
        if change is None:
            idle += 1
            continue
        idle = 0
        found.add(change.sequence_number)
    return found


def test_sigterm_checkpoints_and_exits_cleanly(
    engine: Engine, local_endpoint: str, table_template: str, tmp_path: Path
) -> None:
    """SIGTERM makes `streamodel worker` exit 0 after checkpointing; a rerun redelivers nothing.
    The child runs the ``engine`` fixture's transport."""
    out = tmp_path / "handled.txt"
    env = _worker_env(engine, local_endpoint, table_template, group(), out)
    ids = [uuid.uuid4().hex for _ in range(20)]
    for i in ids:
        engine.save(worker_app.Counter(id=i, value=1))
    process = _start_worker(env)
    try:
        wait_for(
            lambda: {line.split()[2] for line in complete_lines(out)} >= set(ids), what="handled"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err.decode()
    handled = len(complete_lines(out))
    rerun = _start_worker(env, "--until-caught-up")
    _, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err.decode()
    assert len(complete_lines(out)) == handled
    _assert_children_used(engine, out, processes=2)


KILLS = 4


def test_sigkill_mid_work_loses_nothing(
    engine: Engine, local_endpoint: str, table_template: str, tmp_path: Path
) -> None:
    """A worker SIGKILLed at random points while it has work in hand, and restarted, delivers
    every change at least once. Each kill comes only after the worker handled something new
    since the previous kill, and with changes of its backlog still unhandled."""
    out = tmp_path / "handled.txt"
    env = _worker_env(engine, local_endpoint, table_template, group(), out)
    # 10 ms a change: the 100-change backlog of a cycle takes a worker a second at least,
    # so the kill (at most a 50 ms poll after the wanted lines) lands while it has work.
    env["STREAMODEL_TEST_HANDLER_SECONDS"] = "0.01"
    rng = random.Random(1234)
    produced: set[str] = set()
    mid_work = 0
    for cycle in range(KILLS):
        # A fresh backlog per cycle, far more than the worker handles before its kill, so
        # no worker can finish everything and turn the test into one clean run.
        for n in range(100):
            key = f"k{n % 30}-{uuid.uuid4().hex[:6]}"
            engine.save(worker_app.Counter(id=key, value=cycle * 100 + n))
            produced.add(key)
        added = _kill_once_it_handles(_start_worker(env), out, new=rng.randint(1, 20))
        unhandled = produced - {line.split()[2] for line in complete_lines(out)}
        if added > 0 and unhandled:
            mid_work += 1
    assert mid_work == KILLS, f"only {mid_work} of {KILLS} kills came while the worker had work"
    final = _start_worker(env, "--until-caught-up")
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    delivered = [line.split()[0] for line in complete_lines(out)]
    assert produced <= {line.split()[2] for line in complete_lines(out)}
    expected = _all_sequence_numbers(engine)
    assert expected <= set(delivered), f"missing {len(expected - set(delivered))} change(s)"
    duplicates = len(delivered) - len(set(delivered))
    # At-least-once: duplicates only come from the batches in flight at each kill.
    assert duplicates <= KILLS * 20 + 20
    _assert_children_used(engine, out, processes=KILLS + 1)


def test_transactional_projection_is_exact_across_sigkills(
    engine: Engine, local_endpoint: str, table_template: str, tmp_path: Path
) -> None:
    """A transactional projection counting changes per key equals the source after repeated
    SIGKILL/restart cycles, each kill coming after the worker ran its handler for something
    new since the last kill and before it handled all it had: no change counted twice, none
    missed."""
    import projection_app

    engine.bind(base=projection_app.Base)
    out = tmp_path / "handled.txt"
    env = _worker_env(engine, local_endpoint, table_template, group(), out)
    env["STREAMODEL_TEST_HANDLER_SECONDS"] = "0.01"  # as in the test above
    keys = [f"p{uuid.uuid4().hex[:8]}" for _ in range(8)]
    sources = {k: projection_app.Source(id=k, value=0) for k in keys}
    rng = random.Random(99)
    saved = 0
    mid_work = 0
    for _ in range(KILLS):
        for _ in range(rng.randint(30, 40)):
            source = sources[rng.choice(keys)]
            source.value += 1
            engine.save(source)
            saved += 1
        process = _start_worker(env, app="projection_app:worker")
        added = _kill_once_it_handles(process, out, new=rng.randint(1, 10))
        handled = {line.split()[0] for line in complete_lines(out)}
        if added > 0 and len(handled) < saved:
            mid_work += 1
    assert mid_work == KILLS, f"only {mid_work} of {KILLS} kills came while the worker had work"
    final = _start_worker(env, "--until-caught-up", app="projection_app:worker")
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    for key, source in sources.items():
        seen = projection_app.Seen(id=key)
        if source.value == 0:
            continue
        engine.load(seen, consistent=True)
        assert seen.count == source.value, key
    _assert_children_used(engine, out, processes=KILLS + 1)


def test_status_heartbeat_and_metrics(
    engine: Engine, table_template: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker publishes its progress: `streamodel status` shows each shard's checkpoint,
    records and lag, the heartbeat file says ready, and on_metrics gets per-shard counters."""
    import json

    name = group()
    reported: list[Any] = []
    beat = tmp_path / "heartbeat.json"
    worker = Worker(
        engine, group=name, start="latest", on_metrics=reported.append, heartbeat_file=str(beat)
    )
    worker.subscribe(Invoice)(lambda change: None)
    worker.run(until_caught_up=True)
    for amount in range(3):
        engine.save(Invoice(id=uuid.uuid4().hex, amount=amount))
    worker.run(until_caught_up=True)

    heartbeat = json.loads(beat.read_text())
    assert heartbeat["ready"] is True and heartbeat["worker_id"] == worker.worker_id
    assert reported and sum(m.records for m in reported[-1]) >= 3

    assert cli_main(["status", name, "--table-name-template", table_template, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    (shard,) = status["shards"]
    assert shard["model"] == "Invoice" and shard["records"] >= 3
    assert shard["state"] == "free"  # released when the run ended
    assert shard["checkpoint"] and shard["lag_seconds"] is not None
    assert cli_main(["status", name, "--table-name-template", table_template]) == 0
    assert "Invoice" in capsys.readouterr().out


def test_worker_survives_failing_dead_letter_store_without_skipping(engine: Engine) -> None:
    """When storing a dead letter fails with a server error, the worker keeps running and
    delivers that change again instead of skipping it."""
    from streamodel.exceptions import ServerError

    name = group()
    calls = {"dead": 0}
    got: list[str] = []

    def flaky_dead_letter(info: DeadLetterInfo) -> None:
        calls["dead"] += 1
        if calls["dead"] == 1:
            raise ServerError("dead-letter store unavailable", code="InternalServerError")
        assert info.change is not None
        got.append(info.change.key["id"])

    worker = Worker(
        engine,
        group=name,
        start="latest",
        max_attempts=1,
        retry_wait=0.001,
        retry_wait_max=0.01,
        dead_letter=flaky_dead_letter,
    )
    poison = uuid.uuid4().hex

    @worker.subscribe(Order)
    def handler(change: Change) -> None:
        if change.key["id"] == poison:
            raise RuntimeError("poison")

    worker.run(until_caught_up=True)
    engine.save(Order(id=poison, status="x"))
    worker.run(until_caught_up=True)
    assert got.count(poison) == 1 and calls["dead"] >= 2


def test_two_entities_of_one_table_lose_nothing_across_sigkills(
    engine: Engine, local_endpoint: str, table_template: str, tmp_path: Path
) -> None:
    """A worker subscribed to two entities of one table (one stream, one set of leases)
    SIGKILLed mid-work and restarted hands every change of both to its own handler only,
    and none of the unsubscribed third entity to anyone."""
    import entities_app

    engine.bind(base=entities_app.Base)
    out = tmp_path / "handled.txt"
    env = _worker_env(engine, local_endpoint, table_template, group(), out)
    env["STREAMODEL_TEST_HANDLER_SECONDS"] = "0.01"
    rng = random.Random(17)
    produced: set[tuple[str, str]] = set()
    kinds = (entities_app.Account, entities_app.Payment, entities_app.Note)
    run = uuid.uuid4().hex[:8]  # the table is the session's: other runs' items are in it
    for cycle in range(2):
        for n in range(60):
            model = kinds[n % 3]
            key = f"{run}-{cycle}-{n}"
            engine.save(model(id=key, value=n))
            produced.add((model.__name__, key))
        _kill_once_it_handles(
            _start_worker(env, app="entities_app:worker"), out, new=rng.randint(3, 15)
        )
    final = _start_worker(env, "--until-caught-up", app="entities_app:worker")
    _, err = final.communicate(timeout=120)
    assert final.returncode == 0, err.decode()
    lines = [line.split() for line in complete_lines(out)]
    assert all(handler == model for _, handler, model, _ in lines), lines
    handled = {(model, key) for _, _, model, key in lines if key.startswith(run)}
    assert handled == {(m, k) for m, k in produced if m != "Note"}
    _assert_children_used(engine, out, 3)
