"""Change streams: read a model's DynamoDB stream as :class:`Change` objects.

``engine.stream(Model, position)`` gives a :class:`Stream`; :class:`Worker` runs
subscribers over several models with checkpoints, retries and dead letters;
:func:`lambda_handler` (``worker.lambda_handler``) runs the same subscribers on AWS Lambda's
DynamoDB Streams event source mapping.
"""

from streamodel.stream.aws_lambda import LambdaHandler, LocalEventSourceMapping, lambda_handler
from streamodel.stream.reader import Stream
from streamodel.stream.records import Change, UndecodableRecordError
from streamodel.stream.worker import DeadLetterInfo, ShardMetrics, Worker

__all__ = [
    "Change",
    "DeadLetterInfo",
    "LambdaHandler",
    "LocalEventSourceMapping",
    "ShardMetrics",
    "Stream",
    "UndecodableRecordError",
    "Worker",
    "lambda_handler",
]
