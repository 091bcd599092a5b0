"""Operating workers, without DynamoDB: the CLI's flags, request metrics and spans around
retries, the Lambda handler's EMF lines, `status` with migrations and `--watch`, and the
heartbeat behind the probes.

The tests that need an extra (prometheus_client, the OpenTelemetry SDK, rich) import it
first with ``importorskip``: ``make test`` runs the unit tests once more on the lowest
runtime versions, where no extra is installed. The dev install has them all.
"""

from __future__ import annotations

import argparse
import io
import json
import time
import types
from typing import Any

import pytest

from streamodel import Column, Engine, Integer, String, new_base
from streamodel import cli as cli_module
from streamodel.exceptions import ServerError, ThrottledError
from streamodel.stream import Change, DeadLetterInfo, Worker
from streamodel.stream.emf import EmfRecorder, emf_line
from streamodel.stream.monitoring import Heartbeat
from streamodel.transport.retry import RetryingTransport, RetryPolicy

Base = new_base()


class Message(Base):
    class Meta:
        table_name = "ops-messages"

    Id = Column(Integer, hash_key=True)
    Message = Column(String)


ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/ops-messages/stream/2024-01-01T00:00:00.000"


# -- the command line ----------------------------------------------------------------------


def test_worker_metrics_port_flag_is_parsed() -> None:
    args = cli_module.build_parser().parse_args(["worker", "app:worker", "--metrics-port", "0"])
    assert args.metrics_port == 0
    assert cli_module.build_parser().parse_args(["worker", "app:worker"]).metrics_port is None
    with pytest.raises(SystemExit) as exited:
        cli_module.build_parser().parse_args(["worker", "app:worker", "--metrics-port", "70000"])
    assert exited.value.code == 2


def test_worker_metrics_port_reaches_the_worker_before_it_runs(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`streamodel worker app:worker --metrics-port 9102` runs the worker with that port."""
    pytest.importorskip("prometheus_client")
    worker = Worker(engine, group="g")
    ran: list[Any] = []
    monkeypatch.setattr(worker, "run", lambda **kw: ran.append((worker.metrics_port, kw)))
    monkeypatch.setattr(cli_module, "load_object", lambda spec: worker)
    assert cli_module.main(["worker", "app:worker", "--metrics-port", "9102"]) == 0
    assert ran == [(9102, {"until_caught_up": False})]


def test_worker_metrics_port_without_prometheus_client_is_one_line(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    worker = Worker(engine, group="g")
    monkeypatch.setattr(cli_module, "load_object", lambda spec: worker)
    monkeypatch.setattr(worker, "run", lambda **kw: pytest.fail("must not run"))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "prometheus_client" else real(name, *a),
    )
    assert cli_module.main(["worker", "app:worker", "--metrics-port", "9102"]) == 2
    assert "streamodel[metrics]" in capsys.readouterr().err


# -- request metrics and spans around retries ------------------------------------------------


class Flaky:
    """Throttles the first ``throttles`` calls, then answers (or always, with ``-1``)."""

    def __init__(self, throttles: int) -> None:
        self.throttles = throttles
        self.calls = 0

    def call(self, service: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        if self.throttles < 0 or self.calls <= self.throttles:
            raise ThrottledError("slow down", operation=operation, code="ThrottlingException")
        return {"ConsumedCapacity": {"TableName": "t", "CapacityUnits": 1.0}}


def _engine_like(inner: Any, attempts: int = 5) -> Any:
    policy = RetryPolicy(attempts=attempts, base=0.0, max_wait=0.0)
    return types.SimpleNamespace(transport=RetryingTransport(inner, policy), retry=policy)


def test_request_metrics_count_each_operation_its_retries_and_throttles() -> None:
    """Two throttles then an answer: one operation of one duration, two retries, two
    throttles; an operation throttled to the end: one error more, three throttles more."""
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry

    from streamodel import instrument
    from streamodel.stream.prometheus import RequestMetrics

    registry = CollectorRegistry()
    metrics = RequestMetrics(registry, lambda: "g")
    engine = _engine_like(Flaky(2))
    instrument.add_listener(engine, metrics)
    engine.transport.call("dynamodb", "GetItem", {"TableName": "t", "Key": {}})
    labels = {"group": "g", "operation": "GetItem"}

    def value(name: str, **extra: str) -> float | None:
        return registry.get_sample_value(name, {**labels, **extra})

    assert value("streamodel_dynamodb_request_duration_seconds_count") == 1
    assert value("streamodel_dynamodb_retries_total") == 2
    assert value("streamodel_dynamodb_throttles_total") == 2
    assert value("streamodel_dynamodb_request_errors_total", error="ThrottlingException") is None

    failing = _engine_like(Flaky(-1), attempts=3)
    instrument.add_listener(failing, metrics)
    with pytest.raises(ThrottledError):
        failing.transport.call("dynamodb", "GetItem", {"TableName": "t", "Key": {}})
    assert value("streamodel_dynamodb_request_duration_seconds_count") == 2
    assert value("streamodel_dynamodb_retries_total") == 4
    assert value("streamodel_dynamodb_throttles_total") == 5
    assert value("streamodel_dynamodb_request_errors_total", error="ThrottlingException") == 1

    instrument.remove_listener(engine, metrics)
    engine.transport.call("dynamodb", "GetItem", {"TableName": "t", "Key": {}})
    assert value("streamodel_dynamodb_request_duration_seconds_count") == 2  # not counted
    assert engine.transport.inner.calls == 4  # the wrapper forwards what it does not have


def test_one_span_per_operation_with_its_retries_as_events() -> None:
    """A retried operation is one CLIENT span with a ``retry`` event per retry; a failed one
    has ``error.type`` (DynamoDB's code) and an error status."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, StatusCode

    from streamodel import instrument, tracing

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.set_tracer_provider(provider)
    try:
        engine = _engine_like(Flaky(2))
        transport = instrument.instrumented(engine.transport, engine.retry)
        params = {"TableName": "t", "Key": {}, "ReturnConsumedCapacity": "TOTAL"}
        transport.call("dynamodb", "GetItem", params)
        failing = _engine_like(Flaky(-1), attempts=2)
        with pytest.raises(ThrottledError):
            instrument.instrumented(failing.transport, failing.retry).call(
                "dynamodb", "BatchWriteItem", {"RequestItems": {"a": [{}, {}], "b": [{}]}}
            )
    finally:
        tracing.set_tracer_provider(None)
    ok, failed = exporter.get_finished_spans()
    assert ok.name == "GetItem t" and ok.kind == SpanKind.CLIENT
    assert [e.name for e in ok.events] == ["retry", "retry"]
    assert ok.events[0].attributes["error.type"] == "ThrottlingException"
    assert [e.attributes["streamodel.attempt"] for e in ok.events] == [2, 3]
    assert json.loads(ok.attributes["aws.dynamodb.consumed_capacity"][0])["TableName"] == "t"
    assert failed.name == "BatchWriteItem"  # two tables: no single collection
    assert list(failed.attributes["aws.dynamodb.table_names"]) == ["a", "b"]
    assert failed.attributes["db.operation.batch.size"] == 3
    assert failed.attributes["error.type"] == "ThrottlingException"
    assert failed.status.status_code == StatusCode.ERROR


def test_a_retry_hook_the_program_set_is_kept() -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry

    from streamodel import instrument
    from streamodel.stream.prometheus import RequestMetrics

    seen: list[tuple[str, str]] = []
    engine = _engine_like(Flaky(1))
    engine.retry.on_retry = lambda operation, error: seen.append((operation, type(error).__name__))
    registry = CollectorRegistry()
    instrument.add_listener(engine, RequestMetrics(registry, lambda: "g"))
    engine.transport.call("dynamodb", "Query", {"TableName": "t"})
    assert seen == [("Query", "ThrottledError")]
    labels = {"group": "g", "operation": "Query"}
    assert registry.get_sample_value("streamodel_dynamodb_retries_total", labels) == 1


def test_server_errors_of_writes_are_errors_not_retries() -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client import CollectorRegistry

    from streamodel import instrument
    from streamodel.stream.prometheus import RequestMetrics

    class Broken:
        def call(self, service: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
            raise ServerError("boom", operation=operation, code="InternalServerError")

    registry = CollectorRegistry()
    engine = _engine_like(Broken())
    instrument.add_listener(engine, RequestMetrics(registry, lambda: "g"))
    with pytest.raises(ServerError):
        engine.transport.call("dynamodb", "UpdateItem", {"TableName": "t", "Key": {}})
    labels = {"group": "g", "operation": "UpdateItem"}
    assert registry.get_sample_value("streamodel_dynamodb_retries_total", labels) is None
    errors = {**labels, "error": "InternalServerError"}
    assert registry.get_sample_value("streamodel_dynamodb_request_errors_total", errors) == 1


# -- the probes' heartbeat -----------------------------------------------------------------


def test_heartbeat_liveness_and_readiness() -> None:
    beat = Heartbeat(None)
    assert beat.alive(1.0, now=beat.started + 1000)  # setting up: alive, however long
    assert not beat.ready
    beat.beat(ready=True, leases=2)
    assert beat.ready and beat.fields["leases"] == 2
    assert beat.last_beat is not None
    assert beat.alive(30.0, now=beat.last_beat + 29)
    assert not beat.alive(30.0, now=beat.last_beat + 31)


def test_probes_follow_the_loop_and_shutdown(engine: Engine) -> None:
    pytest.importorskip("prometheus_client")
    from streamodel.stream.prometheus import liveness, readiness

    worker = Worker(engine, group="g", failover=10.0)
    stopping = [False]
    assert readiness(worker, lambda: stopping[0])[0] is False  # not running
    assert liveness(worker)[0] is True
    worker.running = True
    worker._heartbeat = Heartbeat(None)
    assert readiness(worker, lambda: stopping[0])[0] is False  # no lease round yet
    worker.ready = True
    worker._heartbeat.beat(ready=True, leases=1)
    assert readiness(worker, lambda: stopping[0]) == (
        True,
        {
            "ready": True,
            "stopping": False,
            "leases": 1,
            "group": "g",
            "worker_id": worker.worker_id,
        },
    )
    stopping[0] = True
    ready, body = readiness(worker, lambda: stopping[0])
    assert ready is False and body["stopping"] is True
    worker._heartbeat.last_beat = time.monotonic() - 31  # the loop stopped going round
    assert liveness(worker)[0] is False


# -- EMF from the Lambda handler -------------------------------------------------------------

EMF_UNITS = {"Seconds", "Microseconds", "Milliseconds", "Bytes", "Count", "Count/Second", "None"}


def assert_valid_emf(line: str) -> dict[str, Any]:
    """Check one line against CloudWatch's Embedded Metric Format specification."""
    document = json.loads(line)
    meta = document["_aws"]
    assert isinstance(meta["Timestamp"], int) and meta["Timestamp"] > 1_500_000_000_000
    assert meta["CloudWatchMetrics"]
    for directive in meta["CloudWatchMetrics"]:
        assert isinstance(directive["Namespace"], str) and 0 < len(directive["Namespace"]) <= 255
        for dimension_set in directive["Dimensions"]:
            assert 0 < len(dimension_set) <= 30
            for name in dimension_set:
                assert isinstance(document[name], str) and document[name]
        assert 0 < len(directive["Metrics"]) <= 100
        for metric in directive["Metrics"]:
            assert set(metric) <= {"Name", "Unit", "StorageResolution"}
            assert metric.get("Unit", "None") in EMF_UNITS
            value = document[metric["Name"]]
            assert isinstance(value, int | float) and not isinstance(value, bool)
    return dict(document)


def _record(sequence: str, message_id: Any, created: float) -> dict[str, Any]:
    return {
        "eventID": f"e{sequence}",
        "eventName": "INSERT",
        "eventSource": "aws:dynamodb",
        "eventSourceARN": ARN,
        "awsRegion": "us-east-1",
        "dynamodb": {
            "Keys": {"Id": message_id},
            "NewImage": {"Id": message_id, "Message": {"S": "hi"}},
            "SequenceNumber": sequence,
            "ApproximateCreationDateTime": created,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def test_lambda_handler_prints_its_counters_as_emf(
    engine: Engine, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each invocation ends with one valid EMF line per table: changes handled, retries (the
    record the batch failed at), dead letters (an undecodable record) and the lag."""
    letters: list[DeadLetterInfo] = []
    worker = Worker(engine, group="billing", on_failure="stop", dead_letter=letters.append)

    @worker.subscribe(Message)
    def handle(change: Change) -> None:
        if change.key["Id"] == 3:
            raise RuntimeError("refused")

    handler = worker.lambda_handler.__class__(worker, emf_namespace="streamodel-test")
    monkeypatch.setattr(handler, "_setup", lambda: None)  # no state table needed here
    created = time.time() - 42
    event = {
        "Records": [
            _record("100", {"N": "1"}, created - 10),
            _record("101", {"N": "not a number"}, created - 5),  # undecodable: dead letter
            _record("102", {"N": "2"}, created),
            _record("103", {"N": "3"}, created + 1),  # fails: the batch stops here
            _record("104", {"N": "4"}, created + 2),
        ]
    }
    response = handler(event, None)
    assert response == {"batchItemFailures": [{"itemIdentifier": "103"}]}
    assert len(letters) == 1
    (line,) = capsys.readouterr().out.splitlines()
    document = assert_valid_emf(line)
    (directive,) = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "streamodel-test"
    assert directive["Dimensions"] == [["Group", "Table"]]
    assert document["Group"] == "billing" and document["Table"] == "ops-messages"
    assert document["ChangesHandled"] == 3
    assert document["HandlerRetries"] == 1
    assert document["DeadLetters"] == 1
    assert 42 <= document["LagSeconds"] < 42 + 60
    # An invocation that did nothing prints nothing; no emf_namespace, no lines at all.
    assert handler({"Records": []}, None) == {"batchItemFailures": []}
    assert capsys.readouterr().out == ""
    worker.lambda_handler({"Records": [_record("200", {"N": "5"}, created)]}, None)
    assert capsys.readouterr().out == ""


def test_emf_line_is_valid_for_every_counter() -> None:
    recorder = EmfRecorder("ns", lambda: "g", out=io.StringIO())
    recorder.dead_letter(ARN)
    (line,) = recorder.lines()
    document = assert_valid_emf(line)
    assert document["DeadLetters"] == 1 and "LagSeconds" not in document
    assert [m["Name"] for m in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]] == [
        "ChangesHandled",
        "HandlerRetries",
        "DeadLetters",
    ]
    assert assert_valid_emf(emf_line("ns", {"Group": "g"}, [("X", 1.5, "Seconds")]))["X"] == 1.5
    with pytest.raises(ValueError):
        EmfRecorder("", lambda: "g")


# -- status: migrations and --watch -------------------------------------------------------


def _state(scope: str, shard_id: str, **fields: Any) -> Any:
    values = {
        "stream_arn": scope,
        "shard_id": shard_id,
        "model": "Order",
        "checkpoint": None,
        "owner": None,
        "records": None,
        "rate": None,
        "last_created_at": None,
        "parent": None,
        "segments": None,
    }
    values.update(fields)
    return types.SimpleNamespace(**values)


class FakeStore:
    group = "streamodel-migrate"

    def __init__(self, states: list[Any]) -> None:
        self.states = states

    def all_states(self) -> list[Any]:
        return self.states

    def dead_letters(self) -> list[Any]:
        return []


MIGRATION = "migrate|orders|Order@v3"


def _migration_store(done_segments: int) -> FakeStore:
    from streamodel.stream.checkpoints import SHARD_END as END

    states = [
        _state(MIGRATION, "~migration", segments=2, checkpoint="scanning"),
        _state(MIGRATION, "snapshot-segment-0000", checkpoint=END, records=5),
        _state(
            MIGRATION,
            "snapshot-segment-0001",
            checkpoint=END if done_segments == 2 else '{"id": "k9"}',
            records=3,
            owner=None if done_segments == 2 else "host:1:abc",
        ),
    ]
    return FakeStore(states)


def test_status_shows_a_migrations_progress(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`streamodel migrate`'s segments (scope migrate|TABLE|NAME) are a migration row, not
    shards: its phase, segments done of all, items scanned and the processes on it."""
    status = cli_module.group_status(_migration_store(done_segments=1))
    assert status["shards"] == []
    assert status["migrations"] == [
        {
            "name": "Order@v3",
            "table": "orders",
            "model": "Order",
            "phase": "scanning",
            "segments_done": 1,
            "segments": 2,
            "items": 8,
            "workers": ["host:1:abc"],
        }
    ]
    assert status["workers"]["host:1:abc"]["leases"] == 1

    store = _migration_store(done_segments=1)
    monkeypatch.setattr(cli_module, "_state_store", lambda _args: store)
    assert cli_module.cmd_status(argparse.Namespace(json=False, watch=False, interval=2)) == 0
    out = capsys.readouterr().out
    assert "migration Order@v3 of orders: 1/2 segments done, 8 item(s) scanned" in out


def test_status_watch_redraws_in_place() -> None:
    """--watch draws the status, then redraws it over itself (cursor up, then the new
    frame) as soon as each read is done, with each read's migrations progress."""
    pytest.importorskip("rich")
    import threading

    from rich.console import Console

    stores = iter([_migration_store(1), _migration_store(2), _migration_store(2)])
    screen = io.StringIO()
    before_read: list[str] = []

    def read() -> dict[str, Any]:
        before_read.append(screen.getvalue())
        return cli_module.group_status(next(stores))

    console = Console(file=screen, force_terminal=True, width=160, color_system=None)
    cli_module.watch_status(read, interval=0.001, stop=threading.Event(), console=console, rounds=3)
    up = "\x1b[1A"  # rich's Live moves the cursor up over the last frame, then draws
    first = before_read[2].split(up)[0]
    assert "1/2" in first and "host:1:abc" in first
    # The second read was on screen, over the first, before the third read began.
    assert up in before_read[2] and "2/2" in before_read[2].rsplit(up, 1)[1]
    last_frame = screen.getvalue().rsplit(up, 1)[1]
    assert "2/2" in last_frame and "1/2" not in last_frame
