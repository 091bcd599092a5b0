"""An emulator of AWS Lambda's DynamoDB Streams event source mapping, for tests.

:class:`LocalEventSourceMapping` reads real streams (DynamoDB Local's, through an engine) and
calls a Lambda handler the way the managed mapping does, so a function built with
:func:`streamodel.stream.lambda_handler` can be tested end to end without AWS: batches of one
shard, partial batch responses (``ReportBatchItemFailures``), retries from the reported record,
and redelivery of a whole batch.
"""

from __future__ import annotations

import copy
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from streamodel.models import BaseModel
from streamodel.stream.aws_lambda import lambda_event, lambda_record
from streamodel.stream.coordinator import Coordinator, Position

if TYPE_CHECKING:
    from streamodel.engine import Engine

__all__ = ["Invocation", "LambdaFunction", "LocalEventSourceMapping"]

LambdaFunction = Callable[[dict[str, Any], Any], Any]
"""A Lambda handler: ``function(event, context) -> response``."""


@dataclass
class Invocation:
    """One call of the function by :class:`LocalEventSourceMapping`."""

    event: dict[str, Any]
    response: Any = None
    error: BaseException | None = None

    @property
    def sequence_numbers(self) -> list[str]:
        return [str(r["dynamodb"]["SequenceNumber"]) for r in self.event["Records"]]


class LocalEventSourceMapping:
    """Emulates Lambda's DynamoDB Streams event source mapping over real streams (for tests).

    It reads ``models``' streams (DynamoDB Local's, through the engine) from ``start``, turns
    records into Lambda's JSON shape and calls ``function(event, context)`` with batches of
    at most ``batch_size`` records of one shard, oldest shard first, as the real mapping
    does with ``FunctionResponseTypes=["ReportBatchItemFailures"]``: a batch whose response
    lists failures is retried from the lowest reported sequence number (that record and the
    ones after it; those before count as done); a response naming a record not in the batch,
    or a function that raises, retries the whole batch. Unlike the real mapping it calls the
    function for one shard at a time and never gives up on a batch (no
    ``MaximumRetryAttempts``): the function's own dead letters must end a poison record.
    """

    def __init__(
        self,
        engine: Engine,
        models: type[BaseModel] | Sequence[type[BaseModel]],
        function: LambdaFunction,
        *,
        batch_size: int = 100,
        start: Position = "trim_horizon",
        region: str = "us-east-1",
    ) -> None:
        if not 1 <= batch_size <= 10_000:
            raise ValueError("batch_size must be 1 to 10000 (Lambda's limit)")
        self.engine = engine
        self.function = function
        self.batch_size = batch_size
        self.region = region
        chosen = [models] if isinstance(models, type) else list(models)
        self._readers = [Coordinator(engine.transport, engine.stream_arn(m), start) for m in chosen]
        self._pending: dict[tuple[str, str], deque[dict[str, Any]]] = {}
        self.invocations: list[Invocation] = []

    def poll(self, *, timeout: float = 30.0) -> None:
        """Read every stream to its current end into the pending batches."""
        deadline = time.monotonic() + timeout
        for reader in self._readers:
            while True:
                raw = reader.next_record()
                if raw is not None:
                    queue = self._pending.setdefault((reader.stream_arn, raw.shard_id), deque())
                    queue.append(
                        lambda_record(
                            raw.record, event_source_arn=reader.stream_arn, aws_region=self.region
                        )
                    )
                    continue
                if _caught_up(reader) or time.monotonic() > deadline:
                    break

    def invoke_next(self) -> Invocation | None:
        """Call the function once with the oldest pending batch; None when nothing is pending."""
        for queue in self._pending.values():
            if queue:
                break
        else:
            return None
        batch = [queue[i] for i in range(min(self.batch_size, len(queue)))]
        invocation = self._invoke(batch)
        done = _done_count(batch, invocation)
        for _ in range(done):
            queue.popleft()
        return invocation

    def run(self, *, max_invocations: int = 1000) -> list[Invocation]:
        """Poll, then invoke until nothing is pending; return this run's invocations."""
        self.poll()
        made: list[Invocation] = []
        while True:
            if len(made) >= max_invocations:
                raise RuntimeError(f"still failing after {max_invocations} invocations")
            invocation = self.invoke_next()
            if invocation is None:
                return made
            made.append(invocation)

    def redeliver(self, invocation: Invocation) -> Invocation:
        """Call the function again with the same event (Lambda may deliver a batch twice,
        e.g. after a timeout); the pending batches are not changed."""
        return self._invoke(invocation.event["Records"])

    def _invoke(self, records: Sequence[Mapping[str, Any]]) -> Invocation:
        invocation = Invocation(lambda_event(records))
        try:
            invocation.response = self.function(copy.deepcopy(invocation.event), None)
        except Exception as error:  # the real mapping retries the batch; so do we
            invocation.error = error
        self.invocations.append(invocation)
        return invocation


def _caught_up(reader: Coordinator) -> bool:
    shards = reader.shards
    for shard in shards.values():
        if shard.buffer:
            return False
        if not (shard.done or shard.closed) and shard.empty_streak < 2:
            return False
    return bool(shards)


def _done_count(batch: Sequence[Mapping[str, Any]], invocation: Invocation) -> int:
    """How many records of ``batch`` the mapping counts as done after ``invocation``."""
    if invocation.error is not None:
        return 0
    response = invocation.response
    failures = response.get("batchItemFailures") if isinstance(response, Mapping) else None
    if not failures:
        return len(batch)
    sequences = [str(r["dynamodb"]["SequenceNumber"]) for r in batch]
    reported = [str(f.get("itemIdentifier", "")) for f in failures if isinstance(f, Mapping)]
    if not reported or any(s not in sequences for s in reported):
        return 0  # an unknown identifier: Lambda retries the whole batch
    return min(sequences.index(s) for s in reported)
