"""What a worker tells the outside about itself: per-shard metrics, logs, a heartbeat file.

:class:`ShardMetrics` counts per shard; :class:`Metrics` keeps them for one worker, logs them
(structured fields on ``streamodel.worker``) and copies them onto the shard's lease item for
``streamodel status``; :class:`Heartbeat` rewrites a small JSON file for supervisors.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

__all__ = ["Heartbeat", "Metrics", "ShardMetrics"]

logger = logging.getLogger("streamodel.worker")


@dataclass
class ShardMetrics:
    """Per-shard counters a worker keeps (also logged as structured fields)."""

    model: str
    shard_id: str
    records: int = 0
    retries: int = 0
    dead_letters: int = 0
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


class Metrics:
    """The :class:`ShardMetrics` of one worker, by (model name, shard id)."""

    def __init__(self) -> None:
        self.shards: dict[tuple[str, str], ShardMetrics] = {}

    def shard(self, model: str, shard_id: str) -> ShardMetrics:
        key = (model, shard_id)
        metrics = self.shards.get(key)
        if metrics is None:
            metrics = self.shards[key] = ShardMetrics(model, shard_id)
        return metrics

    def handled(self, model: str, shard_id: str, record: Mapping[str, Any]) -> None:
        """Count one handled record and remember how old it is."""
        data = record.get("dynamodb", {})
        metrics = self.shard(model, shard_id)
        metrics.records += 1
        metrics.last_sequence = str(data.get("SequenceNumber", ""))
        created = data.get("ApproximateCreationDateTime")
        if isinstance(created, datetime):
            metrics.last_created_at = created

    def publish(self, state: Any, model: str, shard_id: str, published: int) -> int:
        """Add the shard's counters to its lease item (``published`` records were added
        before); return how many are added now."""
        metrics = self.shard(model, shard_id)
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
                metrics.model,
                metrics.shard_id,
                metrics.records,
                metrics.retries,
                metrics.dead_letters,
                "n/a" if lag is None else f"{lag:.1f}s",
                extra={
                    "group": group,
                    "model": metrics.model,
                    "shard_id": metrics.shard_id,
                    "records": metrics.records,
                    "retries": metrics.retries,
                    "dead_letters": metrics.dead_letters,
                    "lag_seconds": lag,
                },
            )


class Heartbeat:
    """Liveness and readiness for supervisors: a small JSON file rewritten each second."""

    def __init__(self, path: str | None, *, every: float = 1.0) -> None:
        self.path = path
        self.every = every
        self._last = 0.0

    def beat(self, **fields: Any) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        body = json.dumps({**fields, "at": datetime.now(UTC).isoformat()})
        temporary = f"{self.path}.tmp"
        with open(temporary, "w") as handle:
            handle.write(body)
        os.replace(temporary, self.path)  # readers never see half a file
