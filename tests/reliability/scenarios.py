"""The reliability scenarios, each sized by its caller: short in ``make test``, full in
``make reliability`` (``tests/reliability/run.py``). Each returns its :class:`Figures` and
records every violated promise in ``Figures.problems`` (empty means it held)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamodel import Column, Engine, Integer, String, new_base
from streamodel.actions import add
from streamodel.batch import BatchWriteError
from streamodel.exceptions import (
    MissingObjectsError,
    ServerError,
    StreamodelError,
)
from streamodel.stream import Change, Worker
from streamodel.stream.checkpoints import SHARD_END, StateStore

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "integration" / "apps"))
sys.path.insert(0, str(HERE.parent))  # tests/: the ``support`` package
from proxy import FaultProxy  # noqa: E402  (a sibling module, not a package)
from support.tls import TLSTerminator  # noqa: E402

FAULTS_5 = {"reset": 0.05, "delay": 0.05, "truncate": 0.05, "throttle": 0.05, "error": 0.05}

Base = new_base()


class Doc(Base):
    """A versioned document: every save is conditional on the version it last saw."""

    class Meta:
        table_name = "RelDoc"

    id = Column(String, hash_key=True)
    version = Column(Integer, version=True)
    value = Column(String)


class Tally(Base):
    """A counter incremented with ADD, the classic non-idempotent write."""

    class Meta:
        table_name = "RelTally"

    id = Column(String, hash_key=True)
    count = Column(Integer)


class Row(Base):
    """Rows written by batches and read back by queries."""

    class Meta:
        table_name = "RelRow"

    group = Column(String, hash_key=True)
    n = Column(Integer, range_key=True)
    value = Column(String)


class Event(Base):
    """The table whose stream the worker scenarios read."""

    class Meta:
        table_name = "RelEvent"

    id = Column(String, hash_key=True)
    value = Column(Integer)


@dataclass
class Figures:
    """One line of the figures table."""

    scenario: str
    operations: int = 0
    faults: int = 0
    acknowledged: int = 0
    verified: int = 0
    produced: int | None = None
    delivered: int | None = None
    duplicates: int = 0
    lost: int = 0
    problems: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def row(self) -> list[str]:
        def text(value: int | None) -> str:
            return "-" if value is None else str(value)

        return [
            self.scenario,
            str(self.operations),
            str(self.faults),
            str(self.acknowledged),
            str(self.verified),
            text(self.produced),
            text(self.delivered),
            str(self.duplicates),
            str(self.lost),
        ]


HEADER = [
    "scenario",
    "operations",
    "faults injected",
    "writes acknowledged",
    "writes verified",
    "changes produced",
    "changes delivered",
    "duplicates",
    "lost",
]


def table(rows: list[Figures]) -> str:
    """The figures as a Markdown table."""
    lines = [HEADER, ["---"] * len(HEADER), *(f.row() for f in rows)]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@contextlib.contextmanager
def front(upstream: str, *, tls: bool) -> Iterator[tuple[str, TLSTerminator | None]]:
    """The URL clients use to reach ``upstream``: itself, or with ``tls`` a loopback TLS
    terminator in front of it (``client -TLS-> terminator -> upstream``), whose test CA is
    trusted through ``AWS_CA_BUNDLE`` while the block runs (botocore reads it when a client is
    made; the lean transport takes it from its client; children get it in their environment).
    Yields ``(url, terminator or None)``."""
    if not tls:
        yield upstream, None
        return
    with TLSTerminator(upstream) as terminator:
        before = os.environ.get("AWS_CA_BUNDLE")
        os.environ["AWS_CA_BUNDLE"] = terminator.ca_bundle_path
        try:
            yield terminator.endpoint_url, terminator
        finally:
            if before is None:
                os.environ.pop("AWS_CA_BUNDLE", None)
            else:
                os.environ["AWS_CA_BUNDLE"] = before


def _over(transport: str, tls: bool) -> str:
    return f"{transport}, TLS" if tls else transport


def _tls_notes(figures: Figures, terminator: TLSTerminator | None) -> None:
    if terminator is not None:
        figures.notes["TLS connections accepted"] = terminator.connections_accepted
        figures.notes["TLS handshakes failed"] = terminator.handshakes_failed


def settle(call: Callable[[], Any], attempts: int = 50) -> Any:
    """Repeat an idempotent call (a read) until it gets an answer through the faults."""
    for _ in range(attempts - 1):
        try:
            return call()
        except ServerError:
            continue
    return call()


# -- 1. faults between streamodel and DynamoDB ----------------------------------------------


def data_plane(
    upstream: str,
    template: str,
    *,
    transport: str,
    operations: int,
    seed: int = 7,
    tls: bool = False,
) -> Figures:
    """Versioned saves, loads, queries, batch writes, transactions and ADD counters through
    the fault proxy (with ``tls``, over TLS to a terminator in front of the proxy); then every
    acknowledged write is checked in the table directly."""
    figures = Figures(f"data plane, {_over(transport, tls)}, 5% of each fault")
    figures.notes["transaction groups checked"] = 0
    direct = Engine(endpoint_url=upstream, table_name_template=template)
    direct.bind(base=Base)
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    with (
        FaultProxy(upstream, seed=seed, **FAULTS_5) as proxy,
        front(proxy.endpoint_url, tls=tls) as (endpoint, terminator),
    ):
        engine = Engine(
            endpoint_url=endpoint,
            transport=transport,  # type: ignore[arg-type]
            table_name_template=template,
        )
        docs = [Doc(id=f"{run}-d{i}", value="v0") for i in range(40)]
        direct.save(*docs)
        expected_doc = {d.id: "v0" for d in docs}
        tallies = [Tally(id=f"{run}-t{i}", count=0) for i in range(5)]
        direct.save(*tallies)
        # A counter's expected value: acknowledged increments plus those whose outcome was
        # unknown but whose request reached the server (the proxy logs which did).
        tally_expected = dict.fromkeys((t.id for t in tallies), 0)
        rows_expected: dict[tuple[str, int], str] = {}
        rows_maybe: dict[tuple[str, int], set[str | None]] = {}
        # (doc ids, marker, outcome "ok" or "unknown", step); ``last_write`` is the step of
        # the last attempted write (of any outcome) to each doc, so the final check knows
        # which docs of a transaction group nothing wrote after it.
        tx_groups: list[tuple[list[str], str, str, int]] = []
        last_write: dict[str, int] = {}
        unknown = 0

        def group_problem(ids: list[str], marker: str, outcome: str, applied: bool) -> None:
            """Read the group's docs straight from DynamoDB Local (no faults) right after
            the transaction: every doc carries ``marker`` or none does, and the group is
            applied exactly when the caller believes so (acknowledged, or read back)."""
            probe = [Doc(id=i) for i in ids]
            direct.load(*probe, consistent=True)
            carries = [p.value == marker for p in probe]
            figures.notes["transaction groups checked"] += 1
            if any(carries) and not all(carries):
                figures.problems.append(
                    f"transaction {marker} ({outcome}) stored in part: "
                    f"{[(p.id, p.value) for p in probe]}"
                )
            elif all(carries) != applied:
                figures.problems.append(
                    f"transaction {marker} ({outcome}): caller believes applied={applied}, "
                    f"stored {[(p.id, p.value) for p in probe]}"
                )

        def attempt(fn: Callable[[], Any]) -> tuple[str, Any]:
            mark = len(proxy.log)
            try:
                fn()
            except StreamodelError as error:
                forwarded = any(i.forwarded for i in proxy.log[mark:])
                return ("unknown" if isinstance(error, ServerError) else "error"), (
                    error,
                    forwarded,
                )
            except Exception as error:  # the promise: never anything but a streamodel error
                figures.problems.append(f"foreign error {type(error).__name__}: {error}")
                return "foreign", (error, True)
            return "ok", None

        for step in range(operations):
            kind = rng.choices(
                ["save", "load", "query", "batch", "transaction", "add"], [30, 20, 10, 15, 10, 15]
            )[0]
            figures.operations += 1
            if kind == "save":
                doc = rng.choice(docs)
                value = f"v{step}"
                doc.value = value
                last_write[doc.id] = step
                outcome, info = attempt(lambda d=doc: engine.save(d))
                if outcome == "ok":
                    figures.acknowledged += 1
                    expected_doc[doc.id] = value
                else:
                    unknown += 1
                    # The caller knows the outcome is unknown: it reads the truth back.
                    settle(lambda d=doc: engine.load(d, consistent=True))
                    if doc.value not in (value, expected_doc[doc.id]):
                        figures.problems.append(f"{doc.id}: phantom value {doc.value!r}")
                    expected_doc[doc.id] = doc.value
            elif kind == "load":
                doc = rng.choice(docs)
                probe = Doc(id=doc.id)
                outcome, info = attempt(lambda p=probe: engine.load(p, consistent=True))
                if outcome == "ok" and probe.value != expected_doc[doc.id]:
                    figures.problems.append(f"load of {doc.id} read {probe.value!r}")
            elif kind == "query":
                group = f"{run}-g{rng.randrange(4)}"
                found: list[Row] = []
                outcome, info = attempt(
                    lambda g=group, found=found: found.extend(
                        engine.query(Row, consistent=True).key(Row.group == g).all()
                    )
                )
                if outcome == "ok":
                    known = {k for k in rows_expected if k[0] == group}
                    got = {(r.group, r.n) for r in found}
                    if not known <= got:
                        figures.problems.append(f"query of {group} missed {known - got}")
            elif kind == "batch":
                group = f"{run}-g{rng.randrange(4)}"
                ns = rng.sample(range(200), rng.randint(5, 40))
                value = f"b{step}"
                rows = [Row(group=group, n=n, value=value) for n in ns]
                mark = len(proxy.log)
                try:
                    engine.save(*rows, replace=True)
                    unwritten: list[Any] = []
                except BatchWriteError as error:
                    unwritten = list(error.objects)
                except Exception as error:
                    figures.problems.append(f"batch raised {type(error).__name__}: {error}")
                    unwritten = rows
                del mark
                for row in rows:
                    key = (row.group, row.n)
                    if any(row is u for u in unwritten):
                        rows_maybe.setdefault(key, {rows_expected.get(key)}).add(value)
                    else:
                        figures.acknowledged += 1
                        rows_expected[key] = value
                        rows_maybe.pop(key, None)
            elif kind == "transaction":
                chosen = rng.sample(docs, 3)
                marker = f"x{step}"
                tally = rng.choice(tallies)

                def commit(
                    chosen: list[Doc] = chosen, tally: Tally = tally, m: str = marker
                ) -> None:
                    with engine.transaction() as tx:
                        for d in chosen:
                            d.value = m
                        tx.save(*chosen)
                        tally.count = add(1)  # type: ignore[assignment]
                        tx.save(tally)

                ids = [d.id for d in chosen]
                for i in ids:
                    last_write[i] = step
                outcome, info = attempt(commit)
                if outcome == "ok":
                    figures.acknowledged += 4
                    tally_expected[tally.id] += 1
                    for d in chosen:
                        expected_doc[d.id] = marker
                    tx_groups.append((ids, marker, "ok", step))
                    group_problem(ids, marker, "ok", applied=True)
                else:
                    unknown += 1
                    for d in [*chosen, tally]:
                        settle(lambda d=d: engine.load(d, consistent=True))
                    applied = [d.value == marker for d in chosen]
                    if any(applied) and not all(applied):
                        figures.problems.append(f"transaction {marker} applied in part")
                    if all(applied):
                        tally_expected[tally.id] += 1
                        for d in chosen:
                            expected_doc[d.id] = marker
                    tx_groups.append((ids, marker, "unknown", step))
                    group_problem(ids, marker, "unknown", applied=all(applied))
            else:  # add
                tally = rng.choice(tallies)
                tally.count = add(1)  # type: ignore[assignment]
                outcome, info = attempt(lambda t=tally: engine.save(t))
                if outcome == "ok":
                    figures.acknowledged += 1
                    tally_expected[tally.id] += 1
                else:
                    unknown += 1
                    if outcome == "error" or not isinstance(info[0], ServerError):
                        figures.problems.append(f"increment failed with {info[0]!r}")
                    if info[1]:
                        tally_expected[tally.id] += 1  # reached the server: applied once
                    settle(lambda t=tally: engine.load(t, consistent=True))
        figures.faults = proxy.total_injected()
        figures.notes["injected"] = dict(proxy.injected)
        figures.notes["unknown outcomes"] = unknown
        _tls_notes(figures, terminator)

    # -- verification, straight against DynamoDB Local --------------------------------
    fresh = [Doc(id=i) for i in expected_doc]
    direct.load(*fresh, consistent=True)
    for doc in fresh:
        if doc.value == expected_doc[doc.id]:
            continue
        figures.lost += 1
        figures.problems.append(
            f"{doc.id}: stored {doc.value!r}, expected {expected_doc[doc.id]!r}"
        )
    stored_tallies = [Tally(id=i) for i in tally_expected]
    direct.load(*stored_tallies, consistent=True)
    for tally in stored_tallies:
        want = tally_expected[tally.id]
        if (tally.count or 0) > want:
            figures.duplicates += (tally.count or 0) - want
            figures.problems.append(f"{tally.id}: counted {tally.count}, expected {want}")
        elif (tally.count or 0) < want:
            figures.lost += want - (tally.count or 0)
            figures.problems.append(f"{tally.id}: counted {tally.count}, expected {want}")
    stored_rows = {
        (r.group, r.n): r.value
        for g in range(4)
        for r in direct.query(Row, consistent=True).key(Row.group == f"{run}-g{g}")
    }
    for key, value in rows_expected.items():
        if stored_rows.get(key) != value and stored_rows.get(key) not in rows_maybe.get(key, ()):
            figures.lost += 1
            figures.problems.append(f"row {key}: stored {stored_rows.get(key)!r}, want {value!r}")
    for key, values in rows_maybe.items():
        if stored_rows.get(key) not in values:
            figures.problems.append(f"row {key}: stored {stored_rows.get(key)!r} not in {values}")
    # Again at the end, over the docs of each group that nothing wrote after it: they all
    # still carry the marker if the group was applied, and none does if it was not.
    for ids, marker, outcome, step in tx_groups:
        untouched = [Doc(id=i) for i in ids if last_write[i] == step]
        if not untouched:
            continue
        direct.load(*untouched, consistent=True)
        carries = [d.value == marker for d in untouched]
        applied = outcome == "ok" or all(expected_doc[d.id] == marker for d in untouched)
        if any(carries) and not all(carries):
            figures.problems.append(
                f"transaction {marker} ({outcome}) stored in part at the end: "
                f"{[(d.id, d.value) for d in untouched]}"
            )
        elif all(carries) != applied:
            figures.problems.append(
                f"transaction {marker} ({outcome}): applied={applied} but stored "
                f"{[(d.id, d.value) for d in untouched]}"
            )
    figures.verified = figures.acknowledged - figures.lost
    return figures


def unknown_increment_is_not_retried(
    upstream: str, template: str, *, transport: str, tls: bool = False
) -> None:
    """An ADD whose request reached DynamoDB but whose answer was lost raises ServerError, is
    sent exactly once, and counts exactly once; a transaction in the same situation is
    retried with its ClientRequestToken and counts once too. With ``tls`` the client talks
    TLS to a terminator in front of the proxy, so the reset, the cut answer and the 500 must
    reach it through the terminator."""
    direct = Engine(endpoint_url=upstream, table_name_template=template)
    direct.bind(Tally)
    with FaultProxy(upstream) as proxy, front(proxy.endpoint_url, tls=tls) as (endpoint, _):
        engine = Engine(
            endpoint_url=endpoint,
            transport=transport,  # type: ignore[arg-type]
            table_name_template=template,
        )
        for kind in ("reset", "truncate", "error"):
            tally = Tally(id=uuid.uuid4().hex, count=0)
            direct.save(tally)
            before = proxy.by_operation["UpdateItem"]
            proxy.force("UpdateItem", kind, forwarded=True)
            tally.count = add(1)  # type: ignore[assignment]
            try:
                engine.save(tally)
            except ServerError:
                pass
            else:
                raise AssertionError(f"{kind}: an increment with a lost answer was acknowledged")
            assert proxy.by_operation["UpdateItem"] == before + 1, f"{kind}: sent again"
            stored = Tally(id=tally.id)
            direct.load(stored, consistent=True)
            assert stored.count == 1, f"{kind}: counted {stored.count}"

            tally = Tally(id=uuid.uuid4().hex, count=0)
            direct.save(tally)
            proxy.force("TransactWriteItems", kind, forwarded=True)
            with engine.transaction() as tx:
                tally.count = add(1)  # type: ignore[assignment]
                tx.save(tally)
            stored = Tally(id=tally.id)
            direct.load(stored, consistent=True)
            assert stored.count == 1, f"{kind}: a retried transaction counted {stored.count}"


# -- 1b. the stream worker under the same faults ---------------------------------------------


def worker_under_faults(
    upstream: str,
    template: str,
    *,
    transport: str,
    changes: int,
    seed: int = 11,
    tls: bool = False,
) -> Figures:
    """A worker reading through the fault proxy (restarted whenever a fault ends its run)
    delivers every change at least once, and no checkpoint it writes passes an unhandled
    change."""
    figures = Figures(f"worker, {_over(transport, tls)}, 5% of each fault")
    direct = Engine(endpoint_url=upstream, table_name_template=template)
    direct.bind(Event)
    group = f"rel-{uuid.uuid4().hex[:10]}"
    # The group starts at the stream's current end: only this run's changes count.
    opener = Worker(direct, group=group, start="latest", failover=1.0)
    opener.subscribe(Event)(lambda change: None)
    opener.run(until_caught_up=True)
    ids = [f"e{n}-{uuid.uuid4().hex[:6]}" for n in range(changes)]
    for n, i in enumerate(ids):
        direct.save(Event(id=i, value=n))
    figures.produced = changes
    handled: list[tuple[int, str]] = []
    crashes = 0
    with (
        FaultProxy(upstream, seed=seed, **FAULTS_5) as proxy,
        front(proxy.endpoint_url, tls=tls) as (endpoint, terminator),
    ):
        engine = Engine(
            endpoint_url=endpoint,
            transport=transport,  # type: ignore[arg-type]
            table_name_template=template,
        )
        deadline = time.monotonic() + 60 + changes * 0.2
        while {i for _, i in handled} < set(ids) and time.monotonic() < deadline:
            worker = Worker(
                engine, group=group, failover=1.0, batch_size=20, retry_wait=0.001, idle_wait=0.01
            )

            @worker.subscribe(Event)
            def record(change: Change) -> None:
                handled.append((int(change.sequence_number), change.key["id"]))

            store = worker.store
            save = store.save

            def checked_save(state: Any, *, at: Any = None, save: Any = save) -> None:
                # The promise: a checkpoint never passes a change no handler has seen.
                if state.checkpoint and state.checkpoint != SHARD_END:
                    limit = int(state.checkpoint)
                    seen = {s for s, _ in handled}
                    stream = _our_sequences(direct, ids)
                    passed = [s for s in stream if s <= limit and s not in seen]
                    if passed:
                        figures.problems.append(f"checkpoint {limit} passes {len(passed)}")
                save(state, at=at)

            store.save = checked_save  # type: ignore[method-assign]
            try:
                worker.run(until_caught_up=True)
            except StreamodelError:
                crashes += 1  # a fault ended the run: restart, as a supervisor would
            except Exception as error:
                figures.problems.append(f"worker raised {type(error).__name__}: {error}")
                break
        figures.faults = proxy.total_injected()
        figures.operations = proxy.requests
        _tls_notes(figures, terminator)
    ours = [i for _, i in handled if i in set(ids)]
    figures.delivered = len(ours)
    figures.duplicates = len(ours) - len(set(ours))
    figures.lost = len(set(ids) - set(ours))
    figures.notes["restarts after a fault"] = crashes
    figures.acknowledged = changes
    figures.verified = changes
    if figures.lost:
        figures.problems.append(f"{figures.lost} change(s) never delivered")
    return figures


_SEQUENCES: dict[tuple[str, ...], list[int]] = {}


def _our_sequences(engine: Engine, ids: list[str]) -> list[int]:
    """The sequence numbers of the changes to ``ids``, read once from the stream directly."""
    cached = _SEQUENCES.get(tuple(ids))
    if cached is not None and len(cached) >= len(ids):
        return cached
    wanted = set(ids)
    stream = engine.stream(Event, "trim_horizon")
    found: list[int] = []
    idle = 0
    while idle < 3:
        change = next(stream)
        if change is None:
            idle += 1
            continue
        idle = 0
        if change.key["id"] in wanted:
            found.append(int(change.sequence_number))
    _SEQUENCES[tuple(ids)] = found
    return found


# -- 2. process faults ----------------------------------------------------------------------

APPS = HERE / "apps"


def _app_env(upstream: str, template: str, extra: dict[str, str]) -> dict[str, str]:
    """The children's environment: this process's (``AWS_CA_BUNDLE`` included, which
    :func:`front` sets for TLS runs), pointed at ``upstream``."""
    return {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": upstream,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": upstream,
        "STREAMODEL_TEST_TEMPLATE": template,
        "PYTHONPATH": os.pathsep.join(
            [str(APPS), str(HERE.parent / "integration" / "apps"), os.environ.get("PYTHONPATH", "")]
        ),
        **extra,
    }


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def writes_killed(
    upstream: str, template: str, *, kills: int, seed: int = 3, tls: bool = False
) -> Figures:
    """A writer of 4-item transactions and 25-item batches SIGKILLed at random points: every
    transaction is in the table whole or not at all, every acknowledged batch is whole. With
    ``tls`` the writer talks TLS to a terminator in front of ``upstream`` (the checks read
    ``upstream`` directly)."""
    with front(upstream, tls=tls) as (endpoint, terminator):
        figures = _writes_killed(upstream, endpoint, template, kills=kills, seed=seed)
        _tls_notes(figures, terminator)
    if tls:
        figures.scenario += ", TLS"
    return figures


def _writes_killed(
    upstream: str, endpoint: str, template: str, *, kills: int, seed: int
) -> Figures:
    figures = Figures("SIGKILL of a writer (transactions, batches)")
    direct = Engine(endpoint_url=upstream, table_name_template=template)
    direct.bind(base=Base)
    rng = random.Random(seed)
    run = uuid.uuid4().hex[:8]
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"writer-{run}.txt"
    env = _app_env(endpoint, template, {"RELIABILITY_RUN": run, "RELIABILITY_OUT": str(out)})
    for k in range(kills):
        process = subprocess.Popen(
            [sys.executable, str(APPS / "writer_app.py")],
            env={**env, "RELIABILITY_BASE": str(k * 100_000)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        target = len(_lines(out)) + rng.randint(2, 12)
        try:
            wait_for(
                lambda p=process, t=target: len(_lines(out)) >= t or p.poll() is not None,  # type: ignore[misc]
                60,
                "the writer's progress",
            )
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        if process.returncode not in (-signal.SIGKILL, 0):
            figures.problems.append(f"writer failed: {process.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
    acked = _lines(out)
    figures.notes["kills"] = kills
    figures.faults = kills
    # Every transaction the writer started, acknowledged or not, is whole or absent.
    steps = [int(line.split()[1]) for line in acked if line.startswith("begin")]
    for step in steps:
        docs = [Doc(id=f"{run}-s{step}-{k}") for k in range(4)]
        try:
            direct.load(*docs, consistent=True)
            present = 4
        except MissingObjectsError as error:
            present = 4 - len(error.objects)
        figures.operations += 1
        if present not in (0, 4):
            figures.problems.append(f"transaction {step}: {present} of 4 items stored")
        rows = direct.query(Row, consistent=True).key(Row.group == f"{run}-b{step}").all()
        if len(rows) not in (0, 25):
            figures.notes.setdefault("batches cut by a kill", 0)
            figures.notes["batches cut by a kill"] += 1
        acknowledged = f"batch {step}" in acked
        if acknowledged and len(rows) != 25:
            figures.lost += 25 - len(rows)
            figures.problems.append(f"batch {step} acknowledged, {len(rows)} of 25 stored")
        tx_acked = f"tx {step}" in acked
        if tx_acked and present != 4:
            figures.lost += 4
    for line in acked:
        if not line.startswith("begin"):
            figures.acknowledged += 4 if line.startswith("tx") else 25
    figures.verified = figures.acknowledged - figures.lost
    out.unlink(missing_ok=True)
    return figures


def worker_killed(
    upstream: str,
    template: str,
    *,
    changes: int,
    kills: int,
    seed: int = 1234,
    tls: bool = False,
) -> Figures:
    """``streamodel worker`` SIGKILLed at ``kills`` random points in a run of ``changes``
    changes and restarted each time: none missing, and every duplicate is a change after the
    checkpoint that was stored when the process died. With ``tls`` the worker processes talk
    TLS to a terminator in front of ``upstream``."""
    with front(upstream, tls=tls) as (endpoint, terminator):
        figures = _worker_killed(
            upstream, endpoint, template, changes=changes, kills=kills, seed=seed
        )
        _tls_notes(figures, terminator)
    if tls:
        figures.scenario += ", TLS"
    return figures


def _worker_killed(
    upstream: str, endpoint: str, template: str, *, changes: int, kills: int, seed: int
) -> Figures:
    figures = Figures(f"SIGKILL of the worker x{kills}")
    import worker_app

    direct = Engine(endpoint_url=upstream, table_name_template=template)
    direct.bind(worker_app.Counter)
    group = f"kill-{uuid.uuid4().hex[:10]}"
    opener = Worker(direct, group=group, start="latest", failover=1.0)
    opener.subscribe(worker_app.Counter)(lambda change: None)
    opener.run(until_caught_up=True)
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"killed-{group}.txt"
    env = _app_env(
        endpoint,
        template,
        {
            "STREAMODEL_TEST_GROUP": group,
            "STREAMODEL_TEST_OUT": str(out),
            "STREAMODEL_TEST_FAILOVER": "1",
        },
    )
    ids = set()
    for n in range(changes):
        key = f"k{n % 500}-{group}"
        ids.add(key)
        direct.save(worker_app.Counter(id=key, value=n))
    figures.produced = changes
    rng = random.Random(seed)
    store = StateStore(direct, group)
    allowed: set[str] = set()
    command = [
        sys.executable,
        "-m",
        "streamodel",
        "worker",
        "worker_app:worker",
        "--log-level",
        os.environ.get("RELIABILITY_LOG", "WARNING"),
    ]
    # The kill points: after how many distinct changes delivered each process dies.
    points = sorted(rng.sample(range(1, changes), kills))

    def distinct() -> int:
        return len({line.split()[0] for line in _lines(out)})

    for point in points:
        before = len(_lines(out))
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        try:
            wait_for(
                lambda p=process, t=point: distinct() >= t or p.poll() is not None,  # type: ignore[misc]
                120,
                "the worker's progress",
            )
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
        checkpoints = [
            int(s.checkpoint)
            for s in store.all_states()
            if s.checkpoint and s.checkpoint != SHARD_END
        ]
        checkpoint = max(checkpoints, default=0)
        # Handled by the killed process after its last stored checkpoint: may come again.
        allowed |= {
            line.split()[0] for line in _lines(out)[before:] if int(line.split()[0]) > checkpoint
        }
    final = subprocess.Popen(
        [*command, "--until-caught-up"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, err = final.communicate(timeout=600)
    if final.returncode != 0:
        figures.problems.append(f"final worker failed: {err.decode()[-500:]}")
    delivered = [line.split() for line in _lines(out)]
    ours = [seq for seq, _, key in delivered if key in ids]
    figures.delivered = len(ours)
    figures.duplicates = len(ours) - len(set(ours))
    counts: dict[str, int] = {}
    for seq in ours:
        counts[seq] = counts.get(seq, 0) + 1
    unexplained = [s for s, c in counts.items() if c > 1 and s not in allowed]
    if unexplained:
        figures.problems.append(f"{len(unexplained)} duplicate(s) before a stored checkpoint")
    figures.lost = max(0, changes - len(set(ours)))
    if figures.lost:
        figures.problems.append(f"{figures.lost} change(s) never delivered")
    figures.operations = changes
    figures.acknowledged = figures.verified = changes
    figures.faults = kills
    figures.notes["redeliverable after the kills"] = len(allowed)
    out.unlink(missing_ok=True)
    return figures
