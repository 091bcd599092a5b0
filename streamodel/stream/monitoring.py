"""What a worker tells the outside about itself: per-shard metrics, logs, a heartbeat file.

:class:`ShardMetrics` counts per shard; :class:`Metrics` keeps them for one worker, logs them
(structured fields on ``streamodel.worker``) and copies them onto the shard's lease item for
``streamodel status``; :class:`Heartbeat` keeps the loop's liveness and readiness (and
rewrites a small JSON file for supervisors); :func:`serve_metrics` serves all of it over
HTTP for Prometheus and probes when ``Worker(metrics_port=...)`` is set
(:mod:`streamodel.stream.prometheus`, loaded only then).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["Heartbeat", "Metrics", "ShardMetrics", "serve_metrics", "shard_table"]

logger = logging.getLogger("streamodel.worker")


@dataclass
class ShardMetrics:
    """Per-shard counters a worker keeps (also logged as structured fields). ``table`` is
    the table whose stream the shard is of (one stream per table, whatever entities of it
    are subscribed)."""

    table: str
    shard_id: str
    records: int = 0
    retries: int = 0
    dead_letters: int = 0
    # Checkpoint writes sent for the shard (those a transactional handler's commit carries
    # are part of its transaction and not counted here).
    checkpoint_writes: int = 0
    last_sequence: str | None = None
    last_created_at: datetime | None = None
    # Records per second over the last window (between two checkpoints of the shard).
    rate: float = 0.0
    _window: tuple[float, int] = (0.0, 0)

    def measure_rate(self, now: float) -> float:
        """Update and return the rate since the previous call."""
        started, records = self._window
        if started and now > started:
            self.rate = (self.records - records) / (now - started)
        self._window = (now, self.records)
        return self.rate

    @property
    def lag_seconds(self) -> float | None:
        """now - ApproximateCreationDateTime of the last record handled."""
        if self.last_created_at is None:
            return None
        return (datetime.now(UTC) - self.last_created_at).total_seconds()


def shard_table(metrics: ShardMetrics) -> str:
    """The ``table`` label of a shard's series (Prometheus, EMF): what the worker keys its
    :class:`ShardMetrics` by."""
    return metrics.table


class Metrics:
    """The :class:`ShardMetrics` of one worker, by (table name, shard id)."""

    def __init__(self) -> None:
        self.shards: dict[tuple[str, str], ShardMetrics] = {}

    def shard(self, table: str, shard_id: str) -> ShardMetrics:
        key = (table, shard_id)
        metrics = self.shards.get(key)
        if metrics is None:
            metrics = self.shards[key] = ShardMetrics(table, shard_id)
        return metrics

    def handled(self, table: str, shard_id: str, record: Mapping[str, Any]) -> None:
        """Count one handled record and remember how old it is."""
        data = record.get("dynamodb", {})
        metrics = self.shard(table, shard_id)
        metrics.records += 1
        metrics.last_sequence = str(data.get("SequenceNumber", ""))
        created = data.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            metrics.last_created_at = created

    def publish(self, state: Any, table: str, shard_id: str, published: int) -> int:
        """Add the shard's counters to its lease item (``published`` records were added
        before); return how many are added now."""
        metrics = self.shard(table, shard_id)
        metrics.checkpoint_writes += 1  # called right before the checkpoint is written
        state.records = (state.records or 0) + metrics.records - published
        state.rate = round(metrics.measure_rate(time.monotonic()), 3)
        if metrics.last_created_at is not None:
            state.last_created_at = metrics.last_created_at
        return metrics.records

    def log(self, group: str, on_metrics: Callable[[list[ShardMetrics]], Any] | None) -> None:
        if on_metrics is not None:
            on_metrics(list(self.shards.values()))
        for metrics in self.shards.values():
            lag = metrics.lag_seconds
            logger.info(
                "worker %s: %s %s handled %d (retries %d, dead letters %d, lag %s)",
                group,
                metrics.table,
                metrics.shard_id,
                metrics.records,
                metrics.retries,
                metrics.dead_letters,
                "n/a" if lag is None else f"{lag:.1f}s",
                extra={
                    "group": group,
                    "table": metrics.table,
                    "shard_id": metrics.shard_id,
                    "records": metrics.records,
                    "retries": metrics.retries,
                    "dead_letters": metrics.dead_letters,
                    "lag_seconds": lag,
                },
            )


class Heartbeat:
    """Liveness and readiness of a worker's loop, for supervisors and probes.

    The loop calls :meth:`beat` every round; the last fields and when they came are kept
    (``/healthz`` and ``/readyz`` of the metrics endpoint read them), and, with a ``path``,
    a small JSON file is rewritten at most every ``every`` seconds.
    """

    def __init__(self, path: str | None, *, every: float = 1.0) -> None:
        self.path = path
        self.every = every
        self._last = 0.0
        self.started = time.monotonic()
        self.last_beat: float | None = None  # monotonic time of the last round
        self.fields: dict[str, Any] = {}

    def beat(self, **fields: Any) -> None:
        now = time.monotonic()
        self.fields = fields
        self.last_beat = now
        if self.path is None:
            return
        if now - self._last < self.every:
            return
        self._last = now
        body = json.dumps({**fields, "at": datetime.now(UTC).isoformat()})
        temporary = f"{self.path}.tmp"
        with open(temporary, "w") as handle:
            handle.write(body)
        os.replace(temporary, self.path)  # readers never see half a file

    @property
    def ready(self) -> bool:
        """What the loop last said (``Worker.ready``: its first lease round ran)."""
        return bool(self.fields.get("ready"))

    def age(self, now: float | None = None) -> float:
        """Seconds since the last round (since the start, before the first)."""
        now = time.monotonic() if now is None else now
        return now - (self.last_beat if self.last_beat is not None else self.started)

    def alive(self, max_age: float, now: float | None = None) -> bool:
        """The loop went round within ``max_age`` seconds. Before its first round (setting
        up, pinning a snapshot's position) it counts as alive: that takes what it takes."""
        return self.last_beat is None or self.age(now) <= max_age


@contextmanager
def serve_metrics(worker: Any, *, stopping: Callable[[], bool]) -> Iterator[None]:
    """While inside, ``worker.metrics_port`` (when set) serves ``/metrics`` (Prometheus),
    ``/healthz`` and ``/readyz``; ``stopping()`` tells that shutdown began (unready).

    Without a port nothing is imported or started. Port 0 binds a free port, which is
    written back to ``worker.metrics_port`` once listening.
    """
    port = getattr(worker, "metrics_port", None)
    if port is None:
        yield
        return
    try:
        from streamodel.stream.prometheus import WorkerExporter
    except ImportError as error:
        raise ImportError(
            f"Worker(metrics_port=...) needs prometheus_client ({error}): "
            "pip install 'streamodel[metrics]'"
        ) from error

    exporter = WorkerExporter(worker, stopping=stopping)
    worker.metrics_port = exporter.start(port)
    try:
        yield
    finally:
        try:
            exporter.close()
        except Exception as error:  # never mask how the run ended
            logger.warning("worker: closing the metrics endpoint: %s", error)
