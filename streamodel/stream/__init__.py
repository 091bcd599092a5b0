"""Change streams: read a model's DynamoDB stream as :class:`Change` objects.

``engine.stream(Model, position)`` gives a :class:`Stream`; :class:`Worker` runs
subscribers over several models with checkpoints, retries and dead letters.
"""

from streamodel.stream.reader import Stream
from streamodel.stream.records import Change, UndecodableRecordError
from streamodel.stream.worker import DeadLetterInfo, ShardMetrics, Worker

__all__ = ["Change", "DeadLetterInfo", "ShardMetrics", "Stream", "UndecodableRecordError", "Worker"]
