"""A worker's Prometheus endpoint and probes: ``Worker(metrics_port=PORT)``.

Loaded only when a worker has a ``metrics_port`` (install ``streamodel[metrics]``, which
brings ``prometheus_client``). While :meth:`Worker.run <streamodel.stream.Worker.run>` runs,
one HTTP server thread answers:

- ``/metrics``: the Prometheus text format (OpenMetrics when asked), from a registry of the
  worker's own (never the process-wide default one). Per ``group``, ``table`` and ``shard``:
  ``streamodel_worker_lag_seconds`` (now minus the creation time of the last change handled,
  as ``streamodel status`` counts it; for the open shards this worker holds),
  ``streamodel_worker_changes_handled_total``, ``streamodel_worker_handler_retries_total``,
  ``streamodel_worker_dead_letters_total``, ``streamodel_worker_checkpoint_writes_total``,
  ``streamodel_worker_leases_held`` (1 for each open shard or snapshot segment this worker
  holds, 0 for the others it knows of) and ``streamodel_worker_caught_up`` (1 when a held
  shard is read to its current end). Per ``group``: ``streamodel_worker_ready``,
  ``streamodel_worker_heartbeat_age_seconds``, ``streamodel_worker_info{worker_id}``. Per
  ``group`` and ``operation`` (every DynamoDB and DynamoDB Streams operation the worker's
  engine sends, handlers' own included; retries inside one operation):
  ``streamodel_dynamodb_request_duration_seconds`` (histogram),
  ``streamodel_dynamodb_throttles_total``, ``streamodel_dynamodb_retries_total`` and
  ``streamodel_dynamodb_request_errors_total{error}``.
- ``/healthz``: 200 while the worker's loop goes round (a round within ``max(30 s, 3 x
  failover)``; before its first round it is setting up, and alive), else 503.
- ``/readyz``: 200 once the first lease round ran (the worker holds what it can take, or
  knows it has nothing to take) and until shutdown begins (SIGTERM, SIGINT, ``stop()``),
  else 503.

The probes answer a small JSON body. Which worker, table and shard each series is about is
read from the worker at scrape time; nothing is counted twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from streamodel import instrument
from streamodel.exceptions import ThrottledError
from streamodel.stream.checkpoints import MARKER_PREFIX, SHARD_END
from streamodel.stream.leased import CAUGHT_UP_EMPTY_POLLS
from streamodel.stream.monitoring import Heartbeat, ShardMetrics, shard_table
from streamodel.tracing import error_type

__all__ = ["BIND_ADDRESS", "RequestMetrics", "WorkerCollector", "WorkerExporter"]

logger = logging.getLogger("streamodel.worker")

# Every interface: Prometheus scrapes from outside the container or host.
BIND_ADDRESS = "0.0.0.0"
# DynamoDB answers in milliseconds; GetRecords, batches and throttled retries take longer.
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SHARD_LABELS = ("group", "table", "shard")


def source_table(worker: Any, source: Any) -> str:
    """The ``table`` label of a reader's (or snapshot scan's) shards: the same key the worker
    files their :class:`ShardMetrics` under (see :func:`shard_table`)."""
    return str(worker.engine.table_name(source.collection.models[0]))


def _heartbeat(worker: Any) -> Heartbeat:
    beat: Heartbeat = worker._heartbeat  # replaced at each run(); read it each time
    return beat


def _sources(worker: Any) -> list[Any]:
    """What holds leases in the worker: its stream readers and its snapshots' scans."""
    return [*getattr(worker, "_readers", ()), *getattr(worker, "snapshots", ())]


class WorkerCollector(Collector):
    """Reads a worker's counters, leases and heartbeat at each scrape."""

    def __init__(self, worker: Any, stopping: Callable[[], bool]) -> None:
        self.worker = worker
        self.stopping = stopping

    def collect(self) -> Iterable[Metric]:
        for _ in range(3):
            try:
                return list(self._collect())
            except RuntimeError:  # a dict the loop changed while it was read: read again
                continue
        return list(self._collect())

    def _collect(self) -> Iterator[Metric]:
        worker = self.worker
        group = str(worker.group)
        now = datetime.now(UTC)

        def family(kind: type[Any], name: str, text: str) -> Any:
            return kind(name, text, labels=SHARD_LABELS)

        lag = family(
            GaugeMetricFamily,
            "streamodel_worker_lag_seconds",
            "Now minus the creation time of the last change handled on the shard "
            "(as `streamodel status`); open shards this worker holds.",
        )
        handled = family(
            CounterMetricFamily,
            "streamodel_worker_changes_handled",
            "Changes handled (or dead-lettered) per shard by this worker.",
        )
        retries = family(
            CounterMetricFamily,
            "streamodel_worker_handler_retries",
            "Handler attempts beyond the first.",
        )
        dead = family(
            CounterMetricFamily,
            "streamodel_worker_dead_letters",
            "Changes sent to the dead letters after max_attempts failures.",
        )
        checkpoints = family(
            CounterMetricFamily,
            "streamodel_worker_checkpoint_writes",
            "Checkpoint writes sent (not those inside transactional handlers' commits).",
        )
        held = family(
            GaugeMetricFamily,
            "streamodel_worker_leases_held",
            "1 for each open shard or snapshot segment whose lease this worker holds, "
            "0 for the others it knows of.",
        )
        caught_up = family(
            GaugeMetricFamily,
            "streamodel_worker_caught_up",
            "1 when a held shard is read to its current end.",
        )
        shards: dict[tuple[str, str], ShardMetrics] = {}
        for metrics in list(worker.metrics.values()):
            table = shard_table(metrics)
            shards[(table, metrics.shard_id)] = metrics
            labels = [group, table, metrics.shard_id]
            handled.add_metric(labels, metrics.records)
            retries.add_metric(labels, metrics.retries)
            dead.add_metric(labels, metrics.dead_letters)
            checkpoints.add_metric(labels, metrics.checkpoint_writes)
        for source in _sources(worker):
            table = source_table(worker, source)
            leases = source.leases
            mine = set(leases.held)
            stream = getattr(source, "stream", None)
            for shard_id, state in list(leases.states.items()):
                if shard_id.startswith(MARKER_PREFIX) or state.checkpoint == SHARD_END:
                    continue
                labels = [group, table, shard_id]
                held.add_metric(labels, 1.0 if shard_id in mine else 0.0)
                if shard_id not in mine:
                    continue
                metrics = shards.get((table, shard_id))
                created = metrics.last_created_at if metrics is not None else None
                created = created or getattr(state, "last_created_at", None)
                if isinstance(created, datetime):
                    lag.add_metric(labels, max(0.0, (now - created).total_seconds()))
                if stream is not None:
                    at_end = stream.at_end(shard_id, empty_polls=CAUGHT_UP_EMPTY_POLLS)
                    caught_up.add_metric(labels, 1.0 if at_end else 0.0)
        yield from (lag, handled, retries, dead, checkpoints, held, caught_up)

        beat = _heartbeat(worker)
        ready = GaugeMetricFamily(
            "streamodel_worker_ready",
            "1 while the worker is ready (see /readyz).",
            labels=["group"],
        )
        ready.add_metric([group], 1.0 if readiness(worker, self.stopping)[0] else 0.0)
        age = GaugeMetricFamily(
            "streamodel_worker_heartbeat_age_seconds",
            "Seconds since the worker's loop last went round.",
            labels=["group"],
        )
        age.add_metric([group], beat.age())
        info = InfoMetricFamily("streamodel_worker", "This process's worker.", labels=["group"])
        info.add_metric([group], {"worker_id": str(worker.worker_id)})
        yield from (ready, age, info)


class RequestMetrics:
    """Latency, throttles, retries and errors per operation (a request listener)."""

    def __init__(self, registry: CollectorRegistry, group: Callable[[], str]) -> None:
        self.group = group
        labels = ["group", "operation"]
        self.duration = Histogram(
            "streamodel_dynamodb_request_duration_seconds",
            "DynamoDB and DynamoDB Streams operations, retries and their waits included.",
            labels,
            registry=registry,
            buckets=REQUEST_BUCKETS,
        )
        self.throttles = Counter(
            "streamodel_dynamodb_throttles",
            "Throttled requests (each throttled attempt, retried or not).",
            labels,
            registry=registry,
        )
        self.retries = Counter(
            "streamodel_dynamodb_retries",
            "Requests sent again after a throttle, a server error or a lost connection.",
            labels,
            registry=registry,
        )
        self.errors = Counter(
            "streamodel_dynamodb_request_errors",
            "Operations that failed after their retries, by error code.",
            [*labels, "error"],
            registry=registry,
        )

    def request(
        self, operation: str, table: str | None, seconds: float, error: BaseException | None
    ) -> None:
        group = self.group()
        self.duration.labels(group, operation).observe(seconds)
        if error is not None:
            self.errors.labels(group, operation, error_type(error)).inc()
            if isinstance(error, ThrottledError):
                self.throttles.labels(group, operation).inc()

    def retry(self, operation: str, error: BaseException) -> None:
        group = self.group()
        self.retries.labels(group, operation).inc()
        if isinstance(error, ThrottledError):
            self.throttles.labels(group, operation).inc()


def liveness(worker: Any) -> tuple[bool, dict[str, Any]]:
    """Alive unless the loop runs and has not gone round for ``max(30 s, 3 x failover)``
    (setting up before the loop, and shutting down after it, count as alive)."""
    beat = _heartbeat(worker)
    max_age = max(30.0, 3 * float(worker.failover))
    alive = not worker.running or beat.alive(max_age)
    return alive, {
        "alive": alive,
        "running": bool(worker.running),
        "heartbeat_age_seconds": round(beat.age(), 3),
        "max_age_seconds": max_age,
    }


def readiness(worker: Any, stopping: Callable[[], bool]) -> tuple[bool, dict[str, Any]]:
    """Ready from the loop's first lease round until shutdown begins."""
    beat = _heartbeat(worker)
    shutting_down = stopping()
    ready = bool(worker.running) and beat.ready and bool(worker.ready) and not shutting_down
    return ready, {
        "ready": ready,
        "stopping": shutting_down,
        "leases": beat.fields.get("leases", 0),
        "group": worker.group,
        "worker_id": worker.worker_id,
    }


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes every few seconds are not worth a log line each."""


class WorkerExporter:
    """The registry, the request listener and the HTTP server of one worker's run."""

    def __init__(self, worker: Any, *, stopping: Callable[[], bool]) -> None:
        self.worker = worker
        self.stopping = stopping
        self.registry = CollectorRegistry()
        self.registry.register(WorkerCollector(worker, stopping))
        self.requests = RequestMetrics(self.registry, lambda: str(worker.group))
        self._metrics_app = make_wsgi_app(self.registry)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The WSGI application: ``/metrics``, ``/healthz``, ``/readyz``."""
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            body: Iterable[bytes] = self._metrics_app(environ, start_response)
            return body
        if path in ("/healthz", "/readyz"):
            ok, fields = (
                liveness(self.worker)
                if path == "/healthz"
                else readiness(self.worker, self.stopping)
            )
            text = json.dumps(fields, sort_keys=True).encode()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(
                status,
                [("Content-Type", "application/json"), ("Content-Length", str(len(text)))],
            )
            return [text]
        text = b"streamodel worker: /metrics /healthz /readyz\n"
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [text]

    def start(self, port: int, address: str = BIND_ADDRESS) -> int:
        """Listen on ``port`` (0: a free one) and serve from a daemon thread; the bound port."""
        server = make_server(
            address, port, self.app, server_class=_Server, handler_class=_QuietHandler
        )
        self._server = server
        bound = int(server.server_port)
        instrument.add_listener(self.worker.engine, self.requests)
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"streamodel-metrics-{bound}",
            daemon=True,
        )
        self._thread.start()
        logger.info(
            "worker %s: metrics on http://%s:%d/metrics (/healthz, /readyz)",
            self.worker.group,
            address,
            bound,
            extra={"group": self.worker.group, "metrics_port": bound},
        )
        return bound

    def close(self) -> None:
        """Stop serving and stop counting the engine's requests."""
        instrument.remove_listener(self.worker.engine, self.requests)
        server, self._server = self._server, None
        if server is not None:
            started = time.monotonic()
            server.shutdown()
            server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=max(0.0, 5.0 - (time.monotonic() - started)))
