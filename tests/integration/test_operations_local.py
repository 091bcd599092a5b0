"""Operating workers against DynamoDB Local: the Prometheus endpoint and its probes,
OpenTelemetry spans, and a default install that imports neither."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from streamodel import Column, Engine, Integer, String, new_base, tracing
from streamodel.cli import group_status
from streamodel.stream import Change, DeadLetterInfo, Worker

APPS = Path(__file__).parent / "apps"
sys.path.insert(0, str(APPS))
import metrics_app  # noqa: E402  (the subprocess app's model, bound by these tests)

Base = new_base()


class Reading(Base):
    id = Column(String, hash_key=True)
    value = Column(Integer)


@pytest.fixture(scope="module")
def lean(local_endpoint: str, table_template: str) -> Engine:
    """One engine (the default transport): the worker tests here run once, not per transport."""
    engine = Engine(endpoint_url=local_endpoint, table_name_template=table_template)
    engine.bind(Reading)
    engine.bind(metrics_app.Gauge)
    return engine


def group() -> str:
    return f"ops{uuid.uuid4().hex[:12]}"


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something true (returned), failing after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.05)


def get(port: int, path: str) -> tuple[int, bytes]:
    """GET http://127.0.0.1:port/path: (status, body), 5xx answers included."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def scrape(port: int) -> dict[str, Any]:
    """The worker's /metrics, parsed by prometheus_client's own parser: family name ->
    family."""
    status, body = get(port, "/metrics")
    assert status == 200, body
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def samples(families: dict[str, Any], family: str, sample: str | None = None, **labels: str):
    """The (labels, value) of one family's samples named ``sample`` matching ``labels``."""
    return [
        (s.labels, s.value)
        for s in families[family].samples
        if s.name == (sample or family) and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def test_metrics_endpoint_reports_what_the_worker_did(lean: Engine) -> None:
    """A worker with metrics_port=0 serves /metrics on a free port: handled, retried and
    dead-lettered changes, the held lease, the lag and the requests per operation are what
    the test made happen; /healthz and /readyz answer 200; the port closes with the run."""
    name = group()
    good = [f"good-{uuid.uuid4().hex[:8]}" for _ in range(4)]
    bad = f"bad-{uuid.uuid4().hex[:8]}"
    handled: list[str] = []
    letters: list[DeadLetterInfo] = []
    worker = Worker(
        lean,
        group=name,
        start="latest",
        metrics_port=0,
        max_attempts=2,
        retry_wait=0.001,
        retry_wait_max=0.002,
        idle_wait=0.02,
        dead_letter=letters.append,
    )

    @worker.subscribe(Reading)
    def handle(change: Change) -> None:
        if change.key["id"] == bad:
            raise RuntimeError("this one is refused")
        handled.append(change.key["id"])

    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    try:
        port = wait_for(lambda: worker.metrics_port, what="the bound port")
        wait_for(lambda: get(port, "/readyz")[0] == 200, what="ready")
        written_from = time.time()
        for key in [*good[:2], bad, *good[2:]]:
            lean.save(Reading(id=key, value=1))
        written_to = time.time()
        wait_for(lambda: set(handled) == set(good) and letters, what="every change handled")
        # Checkpoints follow the round that handled the changes.
        families = wait_for(lambda: checkpointed(scrape(port), name), what="a checkpoint")
        scraped_to = time.time()

        table = lean.table_name(Reading)  # shard series are per table
        mine = {"group": name, "table": table}
        handled_total = samples(families, *HANDLED, **mine)
        assert sum(v for _, v in handled_total) == 5  # the dead-lettered change counts
        assert sum(v for _, v in samples(families, *DEAD, **mine)) == 1
        assert sum(v for _, v in samples(families, *RETRIES, **mine)) == 1  # 2 attempts
        ((held_labels, held),) = samples(families, "streamodel_worker_leases_held", **mine)
        assert held == 1.0
        shard = held_labels["shard"]
        assert {labels["shard"] for labels, _ in handled_total} == {shard}
        # Lag: now minus the creation time of the last change handled, which is no later
        # than the last write and no earlier than the minute of the first (DynamoDB Local
        # rounds creation times down to the minute); the same figure `streamodel status`
        # shows, read a moment later.
        ((_, lag),) = samples(families, "streamodel_worker_lag_seconds", **mine)
        assert 0 <= lag <= scraped_to - written_from + 60.0, lag
        status_from = time.time()
        (row,) = group_status(worker.store)["shards"]
        assert row["shard_id"] == shard
        assert lag - 0.1 <= row["lag_seconds"] <= lag + (time.time() - scraped_to) + 0.1
        assert written_to >= written_from and status_from >= scraped_to
        assert samples(families, "streamodel_worker_caught_up", **mine)
        assert samples(families, "streamodel_worker_ready", group=name) == [({"group": name}, 1)]
        # Requests per operation: the stream reads and the lease and checkpoint writes.
        for operation in ("GetRecords", "UpdateItem"):
            counts = samples(
                families,
                "streamodel_dynamodb_request_duration_seconds",
                "streamodel_dynamodb_request_duration_seconds_count",
                group=name,
                operation=operation,
            )
            assert counts and counts[0][1] > 0, operation
        status, body = get(port, "/healthz")
        assert status == 200 and json.loads(body)["alive"] is True
        status, body = get(port, "/readyz")
        assert status == 200 and json.loads(body)["leases"] == 1
    finally:
        worker.stop()
        runner.join(timeout=60)
    assert not runner.is_alive()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)


def checkpointed(families: dict[str, Any], name: str) -> dict[str, Any] | None:
    """``families`` once they count a checkpoint write of group ``name``, else None."""
    return families if sum(v for _, v in samples(families, *CHECKPOINTS, group=name)) else None


HANDLED = ("streamodel_worker_changes_handled", "streamodel_worker_changes_handled_total")
DEAD = ("streamodel_worker_dead_letters", "streamodel_worker_dead_letters_total")
RETRIES = ("streamodel_worker_handler_retries", "streamodel_worker_handler_retries_total")
CHECKPOINTS = ("streamodel_worker_checkpoint_writes", "streamodel_worker_checkpoint_writes_total")


class _Lines:
    """A child's stderr, read line by line on a thread (so the pipe never fills)."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in iter(stream.readline, b""):
            self.lines.append(line.decode(errors="replace"))

    def find(self, pattern: str) -> str | None:
        for line in list(self.lines):
            match = re.search(pattern, line)
            if match:
                return match.group(1)
        return None

    def text(self) -> str:
        return "".join(self.lines)


def test_readyz_is_ready_with_leases_and_unready_once_sigterm_begins(
    lean: Engine, local_endpoint: str, table_template: str, tmp_path: Path
) -> None:
    """`streamodel worker --metrics-port 0`: /readyz turns 200 once the worker holds its
    lease; after SIGTERM, while the change in hand still runs, /readyz is 503 and /healthz
    still 200; then the worker exits 0."""
    out, gate = tmp_path / "handled.txt", tmp_path / "gate"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": local_endpoint,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": local_endpoint,
        "STREAMODEL_TEST_TEMPLATE": table_template,
        "STREAMODEL_TEST_GROUP": group(),
        "STREAMODEL_TEST_OUT": str(out),
        "STREAMODEL_TEST_GATE": str(gate),
        "PYTHONPATH": os.pathsep.join([str(APPS), os.environ.get("PYTHONPATH", "")]),
    }
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "streamodel", "worker", "metrics_app:worker"),
            *("--metrics-port", "0", "--log-level", "INFO"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    stderr = _Lines(process.stderr)
    try:
        port = int(
            wait_for(
                lambda: (
                    stderr.find(r"metrics on http://[^:]+:(\d+)/metrics")
                    or process.poll() is not None
                ),
                timeout=60,
                what="the metrics port in the log",
            )
        )
        assert process.poll() is None, stderr.text()
        ready = wait_for(
            lambda: (answer := get(port, "/readyz"))[0] == 200 and json.loads(answer[1]),
            timeout=60,
            what="/readyz 200",
        )
        assert ready["leases"] == 1 and ready["stopping"] is False, ready
        key = uuid.uuid4().hex
        lean.save(metrics_app.Gauge(id=key, value=1))
        wait_for(lambda: out.exists() and f"started {key}" in out.read_text(), timeout=60)
        process.send_signal(signal.SIGTERM)
        unready = wait_for(
            lambda: (answer := get(port, "/readyz"))[0] == 503 and json.loads(answer[1]),
            what="/readyz 503 after SIGTERM",
        )
        assert unready["stopping"] is True and process.poll() is None
        assert get(port, "/healthz")[0] == 200
        assert f"done {key}" not in out.read_text()  # the change is still in hand
        gate.touch()
        assert process.wait(timeout=60) == 0, stderr.text()
        assert f"done {key}" in out.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """streamodel's spans, caught in memory (a provider of its own, not the global one)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        tracing.set_tracer_provider(None)
        provider.shutdown()


def test_a_save_is_one_client_span(engine: Engine, spans: InMemorySpanExporter) -> None:
    """One save is exactly one CLIENT span following the DynamoDB database conventions; a
    request that asks for its consumed capacity has it on its span."""
    engine.bind(Reading)
    spans.clear()
    engine.save(Reading(id=uuid.uuid4().hex, value=1))
    (span,) = spans.get_finished_spans()
    table = engine.table_name(Reading)
    assert span.name == f"UpdateItem {table}" and span.kind == SpanKind.CLIENT
    attributes = dict(span.attributes or {})
    assert attributes["db.system.name"] == "aws.dynamodb"
    assert attributes["db.operation.name"] == "UpdateItem"
    assert attributes["db.collection.name"] == table
    assert list(attributes["aws.dynamodb.table_names"]) == [table]
    assert attributes["rpc.system"] == "aws-api" and attributes["rpc.method"] == "UpdateItem"
    assert attributes["server.address"] == "127.0.0.1"
    assert "error.type" not in attributes and span.status.is_ok

    spans.clear()
    key = {"id": {"S": "missing"}}
    engine.transport.call(
        "dynamodb", "GetItem", {"TableName": table, "Key": key, "ReturnConsumedCapacity": "TOTAL"}
    )
    (span,) = spans.get_finished_spans()
    (consumed,) = span.attributes["aws.dynamodb.consumed_capacity"]
    assert json.loads(consumed)["TableName"] == table


def test_a_handled_change_is_a_consumer_span(lean: Engine, spans: InMemorySpanExporter) -> None:
    """A change a worker hands to its handler is one CONSUMER span, linked to its shard's
    span, with the event id and the lag; the handler's own request is its child."""
    name = group()
    worker = Worker(lean, group=name, start="latest", idle_wait=0.02)
    seen: list[Change] = []

    @worker.subscribe(Reading)
    def handle(change: Change) -> None:
        seen.append(change)
        lean.load(Reading(id=change.key["id"]))

    spans.clear()
    worker.run(until_caught_up=True)  # records the start
    key = uuid.uuid4().hex
    lean.save(Reading(id=key, value=2))
    worker.run(until_caught_up=True)
    # (Other tests' changes of the same minute come too: DynamoDB Local's creation times
    # are whole minutes, and a "latest" start keeps what it cannot tell apart.)
    (change,) = [c for c in seen if c.key["id"] == key]
    finished = spans.get_finished_spans()
    consumers = [s for s in finished if s.kind == SpanKind.CONSUMER]
    assert len(consumers) == len(seen)  # one span per handled change
    (consumer,) = [s for s in consumers if s.attributes["messaging.message.id"] == change.event_id]
    table = lean.table_name(Reading)
    assert consumer.name == f"process {table}" and consumer.parent is None
    attributes = dict(consumer.attributes or {})
    assert attributes["messaging.message.id"] == change.event_id
    assert attributes["messaging.destination.partition.id"] == change.shard_id
    assert attributes["messaging.consumer.group.name"] == name
    assert attributes["streamodel.change.delivered"] is True
    assert 0 <= attributes["streamodel.change.lag_seconds"] < 120
    (link,) = consumer.links
    (shard,) = [s for s in finished if s.context.span_id == link.context.span_id]
    assert shard.attributes["messaging.destination.partition.id"] == change.shard_id
    (child,) = [s for s in finished if s.parent and s.parent.span_id == consumer.context.span_id]
    assert child.name == f"GetItem {table}" and child.kind == SpanKind.CLIENT


# Run in a child whose import system cannot find prometheus_client or opentelemetry, as in a
# default install: what it tried to find, and what it imported, are printed at the end.
_DEFAULT_INSTALL = textwrap.dedent(
    """
    import json, sys
    HIDDEN = ("prometheus_client", "opentelemetry")
    looked = []

    class Hide:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HIDDEN:
                looked.append(name)
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Hide())
    import streamodel
    from streamodel import Column, Engine, Integer, String, new_base
    from streamodel.stream import Worker

    Base = new_base()

    class Reading(Base):
        id = Column(String, hash_key=True)
        value = Column(Integer)

    engine = Engine(table_name_template=sys.argv[1])
    worker = Worker(engine, group=sys.argv[2], start="trim_horizon")
    handled = []
    worker.subscribe(Reading)(handled.append)
    worker.run(until_caught_up=True)
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in HIDDEN)
    print(json.dumps({"handled": len(handled), "looked": looked, "loaded": loaded}))
    """
)


def test_default_install_imports_neither_prometheus_nor_opentelemetry(
    lean: Engine, local_endpoint: str, table_template: str
) -> None:
    """Without the extras, importing streamodel and running a Worker (no metrics_port)
    imports neither prometheus_client nor opentelemetry, and looks for OpenTelemetry once."""
    lean.save(Reading(id=uuid.uuid4().hex, value=3))
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL_DYNAMODB": local_endpoint,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": local_endpoint,
    }
    done = subprocess.run(
        [sys.executable, "-c", _DEFAULT_INSTALL, table_template, group()],
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    report = json.loads(done.stdout.decode().splitlines()[-1])
    assert report["handled"] >= 1  # the worker really ran
    assert report["loaded"] == []
    assert report["looked"] == ["opentelemetry"]  # checked once, never imported
