"""Worker throughput against shard count and worker processes, in simulation.

A FakeStreams stream of S shards is served over HTTP (FakeStreamsServer); W ``streamodel
worker`` processes (tests/benchmarks/scaling_app.py) share it, with their leases and
checkpoints in a DynamoDB Local started here. For each (S, W): the workers start and take
their leases on a first wave of one change per shard, then R changes are appended at once and
the time until every one was handled gives changes/s. The handler only counts, so this is
the cost of reading (GetRecords over HTTP, decoding into model objects, checkpoints).

Usage: ``python tests/benchmarks/scaling.py [--shards 1 4 16 64] [--workers 1 2 4]
[--records 4000] [--write docs/performance.md]``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
for _name in ("NO_PROXY", "no_proxy"):
    os.environ[_name] = ",".join(filter(None, [os.environ.get(_name), "127.0.0.1", "localhost"]))

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import scaling_app  # noqa: E402

from streamodel import Engine  # noqa: E402
from streamodel.testing.fake_streams import FakeStreams  # noqa: E402
from streamodel.testing.http import FakeStreamsServer  # noqa: E402
from streamodel.testing.local import DynamoDBLocal  # noqa: E402

MARKER = "<!-- scaling table -->"


def lines(path: Path) -> int:
    try:
        with path.open("rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def wait_lines(path: Path, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if lines(path) >= count:
            return True
        time.sleep(0.02)
    return False


def one(endpoint: str, template: str, arn: str, shards: int, workers: int, records: int) -> str:
    fake = FakeStreams(stream_arn=arn, shards=shards)
    ids = fake.shard_ids()
    for i, sid in enumerate(ids):  # first wave: one change per shard
        fake.put({"id": {"S": f"w{i}"}}, new_image={"id": {"S": f"w{i}"}}, shard_id=sid)
    out = Path(tempfile.mkdtemp()) / "handled.txt"
    with FakeStreamsServer(fake) as server:
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL_DYNAMODB": endpoint,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": server.endpoint_url,
            "SCALING_TEMPLATE": template,
            "SCALING_GROUP": f"scaling-{uuid.uuid4().hex[:8]}",
            "SCALING_OUT": str(out),
            "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        }
        command = [sys.executable, "-m", "streamodel", "worker", "scaling_app:worker"]
        command += ["--log-level", "WARNING"]
        procs = [
            subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for _ in range(workers)
        ]
        try:
            if not wait_lines(out, shards, 120):
                return f"| {shards} | {workers} | first wave not handled in 120 s | |"
            time.sleep(2.0)  # let leases settle (fair share) before the measured wave
            for i in range(records):
                key = {"id": {"S": f"k{i}"}}
                fake.put(key, new_image={"id": {"S": f"k{i}"}, "n": {"N": str(i)}})
            started = time.perf_counter()
            done = wait_lines(out, shards + records, 300)
            seconds = time.perf_counter() - started
            if not done:
                return f"| {shards} | {workers} | not all handled in 300 s ({lines(out)}) | |"
            calls = fake.calls.get("GetRecords", 0)
            return f"| {shards} | {workers} | {records / seconds:,.0f} | {calls:,} |"
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args(argv)
    rows = []
    with DynamoDBLocal() as local:
        template = "scaling-{table_name}"
        engine = Engine(endpoint_url=local.endpoint_url, table_name_template=template)
        engine.bind(scaling_app.Tick)
        arn = engine.stream_arn(scaling_app.Tick)
        for shards in args.shards:
            for workers in args.workers:
                row = one(local.endpoint_url, template, arn, shards, workers, args.records)
                print(row, flush=True)
                rows.append(row)
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    table = "\n".join(
        [
            MARKER,
            f"Scaling run: `python tests/benchmarks/scaling.py` ({args.records:,} changes per "
            f"configuration, {os.cpu_count()} cores, load average after {load})",
            "",
            "| shards | worker processes | changes/s | GetRecords calls (whole run) |",
            "| ---: | ---: | ---: | ---: |",
            *rows,
            MARKER,
        ]
    )
    print(table)
    if args.write:
        text = args.write.read_text()
        if text.count(MARKER) >= 2:
            head, _, rest = text.partition(MARKER)
            _, _, tail = rest.partition(MARKER)
            text = head + table + tail
        else:
            text = text.rstrip("\n") + "\n\n" + table + "\n"
        args.write.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
