"""The Lambda handler's counters as CloudWatch Embedded Metric Format (EMF) log lines.

``LambdaHandler(worker, emf_namespace="streamodel")`` (or ``lambda_handler(...,
emf_namespace=...)``) prints, at the end of each invocation, one JSON line per table the
event's records came from. Lambda sends what a function prints to CloudWatch Logs, which
turns these lines into metrics: no agent, no API call, no extra dependency. The metrics are
the worker's (:mod:`streamodel.stream.prometheus`), per ``Group`` and ``Table`` dimensions:

- ``ChangesHandled`` (Count): records handled or dead-lettered in this invocation;
- ``HandlerRetries`` (Count): records the invocation failed on, which Lambda delivers again;
- ``DeadLetters`` (Count): changes sent to the dead letters;
- ``LagSeconds`` (Seconds): now minus the creation time of the last record handled (as
  ``streamodel status``), when one was.

An invocation that handled nothing and failed on nothing prints nothing.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["EmfRecorder", "emf_line"]

DIMENSIONS = ("Group", "Table")


@dataclass
class _TableCounts:
    handled: int = 0
    retries: int = 0
    dead_letters: int = 0
    last_created: float | None = None  # epoch seconds of the last handled record


def emf_line(
    namespace: str,
    dimensions: Mapping[str, str],
    metrics: Sequence[tuple[str, float, str]],
    *,
    timestamp_ms: int | None = None,
) -> str:
    """One EMF document: ``metrics`` are ``(name, value, unit)``; every dimension and metric
    is also a top-level member, as the format requires."""
    document: dict[str, Any] = {
        "_aws": {
            "Timestamp": int(time.time() * 1000) if timestamp_ms is None else timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(dimensions)],
                    "Metrics": [{"Name": name, "Unit": unit} for name, _, unit in metrics],
                }
            ],
        },
        **dimensions,
    }
    for name, value, _ in metrics:
        document[name] = value
    return json.dumps(document, separators=(",", ":"))


def _table(arn: str) -> str:
    from streamodel.stream.aws_lambda import table_name_from_arn

    try:
        return table_name_from_arn(arn)
    except ValueError:
        return arn or "unknown"


class EmfRecorder:
    """Counts one invocation and prints its EMF lines (to ``out``, default stdout)."""

    def __init__(self, namespace: str, group: Callable[[], str], out: TextIO | None = None):
        if not namespace or not isinstance(namespace, str):
            raise ValueError("emf_namespace must be a non-empty string")
        self.namespace = namespace
        self.group = group
        self.out = out
        self._counts: dict[str, _TableCounts] = {}

    def invocation(self, event: Mapping[str, Any], invoke: Callable[[], Any]) -> Any:
        """Run ``invoke()`` (the handler's work on ``event``), then print its lines."""
        self._counts = {}
        try:
            response = invoke()
        except BaseException:
            self.flush()  # what was counted (dead letters) still counts
            raise
        self._count_batch(event, response)
        self.flush()
        return response

    def dead_letter(self, shard_id: str) -> None:
        """A change of the stream ``shard_id`` (Lambda's: the eventSourceARN) was
        dead-lettered."""
        self._counts.setdefault(_table(shard_id), _TableCounts()).dead_letters += 1

    def _count_batch(self, event: Mapping[str, Any], response: Any) -> None:
        failures = (response or {}).get("batchItemFailures") or []
        failed = {str(f.get("itemIdentifier")) for f in failures if isinstance(f, Mapping)}
        for record in event.get("Records") or []:
            data = record.get("dynamodb") or {}
            counts = self._counts.setdefault(
                _table(str(record.get("eventSourceARN", ""))), _TableCounts()
            )
            if str(data.get("SequenceNumber", "")) in failed:
                counts.retries += 1
                break  # the batch stopped at this record: nothing after it was handled
            counts.handled += 1
            created = data.get("ApproximateCreationDateTime")
            if isinstance(created, int | float):
                counts.last_created = float(created)

    def lines(self, now: float | None = None) -> list[str]:
        now = time.time() if now is None else now
        group = self.group()
        result = []
        for table, counts in sorted(self._counts.items()):
            if not (counts.handled or counts.retries or counts.dead_letters):
                continue
            metrics: list[tuple[str, float, str]] = [
                ("ChangesHandled", counts.handled, "Count"),
                ("HandlerRetries", counts.retries, "Count"),
                ("DeadLetters", counts.dead_letters, "Count"),
            ]
            if counts.last_created is not None:
                metrics.append(("LagSeconds", max(0.0, now - counts.last_created), "Seconds"))
            dimensions = {"Group": group, "Table": table}
            result.append(emf_line(self.namespace, dimensions, metrics))
        return result

    def flush(self) -> None:
        out = self.out or sys.stdout
        for line in self.lines():
            out.write(line + "\n")
        out.flush()
        self._counts = {}
