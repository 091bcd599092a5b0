"""Snapshot and migration benchmarks against DynamoDB Local (``make bench``; issue #16).

Two parts, on run.py's 11-attribute ``Account`` model, against a DynamoDB Local started here:

* **Throughput.** A table of N items (``--items``, default 20,000), read whole by three
  clients in the same process with the same number of segments (``--segments``, default 4)
  and the same page size (items per Scan call; ``--pages``, default 100, the Worker's
  ``batch_size`` default, and 1,000), all strongly consistent:

  - raw boto3: one thread per segment paging a ``Scan`` (``Segment``/``TotalSegments``)
    on one shared client, each item decoded with boto3's ``TypeDeserializer`` into the
    benchmark's plain dataclass (run.py's ``boto3_load``);
  - streamodel parallel scan: ``engine.scan(Account).consistent().page_size(P)
    .parallel(S)``, model objects;
  - streamodel snapshot: ``Worker(engine, group=<new>, start="snapshot",
    snapshot_segments=S, batch_size=P)`` with a no-op handler, ``run(until_caught_up=True)``:
    every item as a ``Change`` holding a model object, with the pin, the segment leases,
    a checkpoint per page and segment, and the (empty) stream after the pin.

  The items are loaded before the table has a stream (then ``bind`` enables it), as for the
  old table a snapshot is for: the pin reads an empty stream. The clients take turns,
  ``--rounds`` times (default 3); each row reports the median and the range of its rounds.

* **Flat memory** (``--memory``, default 100,000; 0 skips it): a snapshot (as above) and a
  ``streamodel.migrate.Migration`` (schema version 1 -> 2, every item written) over
  ``--memory-small`` (default 10,000) and ``--memory`` items, each run in a child process
  of its own: peak memory traced by ``tracemalloc`` during the run, and the growth of the
  process's resident high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs``
  just before the run) over its resident size then.

Usage: ``python tests/benchmarks/snapshot_bench.py [--items 20000] [--memory 100000]
[--write docs/performance.md]``; ``run.py`` (``make bench``) runs it after its own rows
(``--snapshot-items 0`` there skips it, ``--snapshot-memory 0`` its memory part). The whole
default run takes 8 to 10 minutes on two cores, most of it the 100,000-item migration (one
process writes one item at a time) and loading 240,000 items into DynamoDB Local.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import boto3  # noqa: E402
import run  # noqa: E402  (sets the AWS environment up; the model and its item shapes)

from streamodel import (  # noqa: E402
    Boolean,
    Column,
    DateTime,
    Engine,
    Integer,
    List,
    Map,
    Number,
    Set,
    String,
    new_base,
)
from streamodel._diff import meta_of  # noqa: E402
from streamodel.migrate import Migration  # noqa: E402
from streamodel.stream import Change, Worker  # noqa: E402
from streamodel.stream.checkpoints import StateStore  # noqa: E402
from streamodel.tables import create_table_request  # noqa: E402
from streamodel.testing.local import DynamoDBLocal  # noqa: E402

Account = run.Account
MARKER = "<!-- snapshot benchmark -->"
TENANTS = 1000  # hash keys the items are spread over (a segment is a range of hash keys)


# -- the migration's model: Account at schema version 2 -------------------------------------

LegacyBase = new_base()


def add_tier(item: dict[str, Any]) -> dict[str, Any]:
    item["tier"] = "basic"
    return item


class LegacyAccount(LegacyBase):
    """``Account`` whose stored items are at schema version 1 (no ``tier`` yet)."""

    class Meta:
        table_name = "LegacyAccount"
        stream = None
        schema_version = 2
        upgrades = {1: add_tier}

    tenant = Column(String, hash_key=True)
    id = Column(String, range_key=True)
    name = Column(String)
    age = Column(Integer)
    balance = Column(Number)
    active = Column(Boolean)
    created = Column(DateTime)
    tags = Column(Set(String))
    address = Column(Map(street=String, city=String, zip=String))
    scores = Column(List(Number))
    version = Column(Integer, version=True)
    tier = Column(String)


# -- loading ------------------------------------------------------------------------------


def wire_item(i: int) -> dict[str, Any]:
    """Item ``i`` as DynamoDB stores it (the same values as run.py's rows)."""
    return run.hand_dump(run.Plain(**run.sample_values(f"t{i % TENANTS:03d}", i)))


def create_without_stream(client: Any, model: type[Any], table: str) -> None:
    """The model's table without its stream: ``engine.bind`` enables it after the load."""
    request = create_table_request(meta_of(model), table)
    request.pop("StreamSpecification", None)
    client.create_table(**request)
    client.get_waiter("table_exists").wait(TableName=table)


def load(client: Any, table: str, total: int, threads: int = 8) -> float:
    """Write items 0 .. total-1 with BatchWriteItem from ``threads`` threads; the seconds."""

    def put(start: int) -> None:
        requests = [
            {"PutRequest": {"Item": wire_item(i)}} for i in range(start, min(start + 25, total))
        ]
        pending: dict[str, Any] = {table: requests}
        while pending:
            answer = client.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or {}

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(put, range(0, total, 25)):
            pass
    return time.perf_counter() - started


# -- throughput ---------------------------------------------------------------------------


class Run:
    """One timed read of the whole table by one client."""

    def __init__(self, items: int, wall: float, cpu: float, note: str = "") -> None:
        self.items, self.wall, self.cpu, self.note = items, wall, cpu, note

    @property
    def rate(self) -> float:
        return self.items / self.wall


def timed(fn: Callable[[], tuple[int, str]]) -> Run:
    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    items, note = fn()
    return Run(items, time.perf_counter() - wall0, time.process_time() - cpu0, note)


def raw_parallel_scan(client: Any, table: str, segments: int, page: int) -> tuple[int, str]:
    """One thread per segment, each paging its Scan; items decoded by boto3's deserializer."""

    def segment(index: int) -> int:
        params: dict[str, Any] = {
            "TableName": table,
            "Segment": index,
            "TotalSegments": segments,
            "ConsistentRead": True,
            "Limit": page,
        }
        count = 0
        while True:
            answer = client.scan(**params)
            for item in answer["Items"]:
                run.boto3_load(item)
                count += 1
            last = answer.get("LastEvaluatedKey")
            if not last:
                return count
            params["ExclusiveStartKey"] = last

    with ThreadPoolExecutor(segments) as pool:
        return sum(pool.map(segment, range(segments))), ""


def streamodel_parallel_scan(engine: Engine, segments: int, page: int) -> tuple[int, str]:
    search = engine.scan(Account).consistent().page_size(page).parallel(segments)
    return sum(1 for _ in search), ""


def snapshot(engine: Engine, segments: int, page: int) -> tuple[int, str]:
    """A new group's snapshot, run to its end; the note splits its time into the part
    before the first delivery (state table, pin), the scan, and the part after the last."""
    worker = Worker(
        engine,
        group=f"bench-{uuid.uuid4().hex[:8]}",
        start="snapshot",
        snapshot_segments=segments,
        batch_size=page,
    )
    seen = [0, 0.0, 0.0]  # count, first and last delivery (perf_counter)

    @worker.subscribe(Account)
    def noop(change: Change) -> None:
        now = time.perf_counter()
        if not seen[0]:
            seen[1] = now
        seen[0] += 1
        seen[2] = now

    started = time.perf_counter()
    worker.run(until_caught_up=True)
    ended = time.perf_counter()
    scans = sum(scan.scans for scan in worker.snapshots)
    count = int(seen[0])
    note = json.dumps(
        {
            "before": seen[1] - started,
            "scan": seen[2] - seen[1],
            "after": ended - seen[2],
            "scans": scans,
        }
    )
    return count, note


def throughput(
    endpoint: str, items: int, segments: int, pages: Iterable[int], rounds: int
) -> tuple[list[str], float]:
    """The throughput table's rows, and the seconds the load took."""
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    engine = Engine(endpoint_url=endpoint, table_name_template="snapbench-{table_name}")
    table = engine.table_name(Account)
    create_without_stream(client, Account, table)
    print(f"loading {items:,} items...", flush=True)
    loaded = load(client, table, items)
    engine.bind(Account)  # enables the stream: empty, as on a table older than a day
    rows = []
    for page in pages:
        clients: dict[str, Callable[[], tuple[int, str]]] = {
            "raw boto3 (threads, `TypeDeserializer`)": lambda p=page: raw_parallel_scan(
                client, table, segments, p
            ),
            "streamodel `engine.scan(...).parallel(S)`": lambda p=page: streamodel_parallel_scan(
                engine, segments, p
            ),
            'streamodel `Worker(start="snapshot")`': lambda p=page: snapshot(engine, segments, p),
        }
        # Warm-up pass (JIT of DynamoDB Local, connections, generated functions): not counted.
        for fn in clients.values():
            fn()
        runs: dict[str, list[Run]] = {name: [] for name in clients}
        names = list(clients)
        for r in range(rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:  # rotating order
                result = timed(clients[name])
                assert result.items == items, (name, result.items)
                runs[name].append(result)
                print(f"page {page}, round {r + 1}: {name}: {result.rate:,.0f} items/s", flush=True)
        base = statistics.median(r.rate for r in runs[names[0]])
        for name, results in runs.items():
            rates = [r.rate for r in results]
            median = statistics.median(rates)
            cpu = statistics.median(r.cpu / r.items for r in results)
            cells = [
                name,
                str(page),
                f"{median:,.0f}",
                f"{min(rates):,.0f} to {max(rates):,.0f}",
                f"{median / base:.2f}x",
                f"{cpu * 1e6:,.1f} µs",
            ]
            if results[0].note:
                parts = [json.loads(r.note) for r in results]
                scan_rates = [items / p["scan"] for p in parts]
                before = statistics.median(p["before"] for p in parts)
                after = statistics.median(p["after"] for p in parts)
                scans = parts[0]["scans"]
                cells.append(
                    f"scan alone {statistics.median(scan_rates):,.0f}/s; before the first "
                    f"item {before:.2f} s, after the last {after:.2f} s; {scans:,} Scan calls"
                )
            else:
                cells.append("")
            rows.append("| " + " | ".join(cells) + " |")
    return rows, loaded


# -- flat memory: each run in a child process ---------------------------------------------


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(kind: str, endpoint: str, template: str, total: int, segments: int) -> dict[str, Any]:
    """One measured run (in this process, a child of the benchmark): its peaks and time."""
    engine = Engine(endpoint_url=endpoint, table_name_template=template)
    model = Account if kind == "snapshot" else LegacyAccount
    engine.bind(model)  # the table exists: a DescribeTable, outside the measurement
    counted = [0]
    job: Callable[[], Any]
    if kind == "snapshot":
        group = f"mem-{uuid.uuid4().hex[:8]}"
        worker = Worker(engine, group=group, start="snapshot", snapshot_segments=segments)

        @worker.subscribe(Account)
        def noop(change: Change) -> None:
            counted[0] += 1

        def job() -> Any:
            worker.run(until_caught_up=True)

    else:
        name = f"mem-{uuid.uuid4().hex[:8]}"
        migration = Migration(
            engine, LegacyAccount, segments=segments, group=name, name=name, progress="off"
        )

        def job() -> Any:
            result = migration.run()
            assert result.complete, result.summary()
            counted[0] = result.written

    gc.collect()
    rss_before = _status_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    tracemalloc.start()
    started = time.perf_counter()
    job()
    seconds = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    hwm = _status_kb("VmHWM")
    assert counted[0] == total, (kind, counted[0], total)
    return {
        "kind": kind,
        "items": total,
        "traced_peak": peak,
        "rss_before_kb": rss_before,
        "hwm_kb": hwm,
        "seconds": seconds,
    }


def memory(endpoint: str, sizes: list[int], segments: int) -> tuple[list[str], float]:
    """The memory table's rows (each run in a child process), and the seconds the loads
    took."""
    client = boto3.client("dynamodb", endpoint_url=endpoint)
    loading = 0.0
    results: list[dict[str, Any]] = []
    for total in sizes:
        template = f"mem{total}-{{table_name}}"
        engine = Engine(endpoint_url=endpoint, table_name_template=template)
        for model in (Account, LegacyAccount):
            table = engine.table_name(model)
            create_without_stream(client, model, table)
            print(f"loading {total:,} items into {table}...", flush=True)
            loading += load(client, table, total)
        engine.bind(Account)  # the snapshot's stream, enabled after the load
        StateStore(engine, "bench").setup()  # the state table, created outside the runs
        for kind in ("snapshot", "migration"):
            print(f"memory: {kind} of {total:,} items...", flush=True)
            command = [sys.executable, __file__, "--child", kind, "--endpoint", endpoint]
            command += ["--template", template, "--child-items", str(total)]
            command += ["--segments", str(segments)]
            done = subprocess.run(command, check=True, capture_output=True, text=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            print(result, flush=True)
            results.append(result)
    rows = []
    for r in results:
        what = (
            f'snapshot (`Worker(start="snapshot")`, {segments} segments, no-op handler)'
            if r["kind"] == "snapshot"
            else f"migration (`Migration`, {segments} segments, every item written)"
        )
        growth = (r["hwm_kb"] - r["rss_before_kb"]) / 1024
        rows.append(
            f"| {what} | {r['items']:,} | {r['traced_peak'] / 2**20:.1f} MB | "
            f"{growth:+.1f} MB (from {r['rss_before_kb'] / 1024:.0f} MB) | "
            f"{r['seconds']:.0f} s ({r['items'] / r['seconds']:,.0f} items/s) |"
        )
    verdicts = []
    for kind in ("snapshot", "migration"):
        runs = [r for r in results if r["kind"] == kind]
        small, large = runs[0], runs[-1]
        ratio = large["traced_peak"] / small["traced_peak"]
        verdicts.append(f"{kind} {ratio:.2f}x for {large['items'] / small['items']:.0f}x the items")
    rows.append("")
    rows.append("Peak traced memory, largest ÷ smallest run: " + "; ".join(verdicts) + ".")
    return rows, loading


# -- report -------------------------------------------------------------------------------


def report(
    command: str,
    items: int,
    segments: int,
    rounds: int,
    throughput_rows: list[str],
    memory_rows: list[str],
    seconds: float,
    loading: float,
) -> str:
    lines = [
        MARKER,
        f"Run: `{command}` (whole run {seconds:.0f} s, of which {loading:.0f} s loading "
        "items with BatchWriteItem from 8 threads)",
        "",
        f"Machine: {run.machine()}",
        "",
        f"Throughput: a table of {items:,} items, {segments} segments for every client, "
        f"strongly consistent; median of {rounds} rounds (the clients take turns), the range "
        "of the rounds, ratio of medians to raw boto3, client CPU per item (median).",
        "",
        "| client | page | items/s | range | ratio | CPU per item | |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        *throughput_rows,
    ]
    if memory_rows:
        lines += [
            "",
            "Flat memory: each run in a child process of its own; tracemalloc's peak during "
            "the run, and the growth of the process's resident high-water mark over its "
            "resident size just before the run (time with tracemalloc on).",
            "",
            "| run | items | peak traced | resident high-water growth | time |",
            "| --- | ---: | ---: | ---: | ---: |",
            *memory_rows,
        ]
    lines.append(MARKER)
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    """Replace the section between the markers, or add it (with its heading) at the end."""
    existing = path.read_text()
    if existing.count(MARKER) >= 2:
        head, _, rest = existing.partition(MARKER)
        _, _, tail = rest.partition(MARKER)
        path.write_text(head + text + tail)
    else:
        heading = "## Snapshots and migrations\n\n"
        path.write_text(existing.rstrip("\n") + "\n\n" + heading + text + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=20_000, help="throughput table size")
    parser.add_argument("--segments", type=int, default=4, help="segments for every client")
    parser.add_argument("--pages", type=int, nargs="+", default=[100, 1000], help="page sizes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--memory", type=int, default=100_000, help="largest memory run's items (0: skip)"
    )
    parser.add_argument("--memory-small", type=int, default=10_000)
    parser.add_argument("--write", type=Path, help="also write the section into this file")
    parser.add_argument("--child", choices=["snapshot", "migration"], help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--template", help=argparse.SUPPRESS)
    parser.add_argument("--child-items", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = child(args.child, args.endpoint, args.template, args.child_items, args.segments)
        print(json.dumps(result))
        return 0
    started = time.perf_counter()
    command = "python tests/benchmarks/snapshot_bench.py " + " ".join(argv or sys.argv[1:])
    with DynamoDBLocal() as local:
        rows, loading = throughput(
            local.endpoint_url, args.items, args.segments, args.pages, args.rounds
        )
    memory_rows: list[str] = []
    if args.memory:
        # A fresh DynamoDB Local: the throughput part's tables and stream do not weigh on it.
        with DynamoDBLocal() as local:
            sizes = sorted({args.memory_small, args.memory})
            memory_rows, more = memory(local.endpoint_url, sizes, args.segments)
            loading += more
    text = report(
        command.strip(),
        args.items,
        args.segments,
        args.rounds,
        rows,
        memory_rows,
        time.perf_counter() - started,
        loading,
    )
    print(text)
    if args.write:
        write(args.write, text)
        print(f"written to {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
