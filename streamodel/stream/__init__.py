"""Change streams: read a model's DynamoDB stream as :class:`Change` objects.

``engine.stream(Model, position)`` gives a :class:`Stream`; :class:`Worker` runs
subscribers over several models with checkpoints, retries and dead letters;
:func:`lambda_handler` (``worker.lambda_handler``) runs the same subscribers on AWS Lambda's
DynamoDB Streams event source mapping.
"""

from typing import Any

from streamodel.stream.aws_lambda import LambdaHandler, lambda_handler
from streamodel.stream.reader import Stream
from streamodel.stream.records import Change, UndecodableRecordError
from streamodel.stream.worker import DeadLetterInfo, ShardMetrics, Worker

__all__ = [
    "Change",
    "DeadLetterInfo",
    "LambdaHandler",
    "ShardMetrics",
    "Stream",
    "UndecodableRecordError",
    "Worker",
    "lambda_handler",
]


def __getattr__(name: str) -> Any:
    # The event source mapping emulator moved to streamodel.testing; the old name still
    # resolves (with a DeprecationWarning naming the new place) so existing tests keep running.
    if name == "LocalEventSourceMapping":
        import warnings

        from streamodel.testing.event_source_mapping import LocalEventSourceMapping

        warnings.warn(
            "streamodel.stream.LocalEventSourceMapping moved to "
            "streamodel.testing.LocalEventSourceMapping; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return LocalEventSourceMapping
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
