"""Run a :class:`~streamodel.stream.Worker`'s subscribers on AWS Lambda's DynamoDB Streams
event source mapping.

``worker.lambda_handler`` (or :func:`lambda_handler`) is a function ``(event, context)`` to use
as the Lambda handler. For each record of the event it:

1. finds the subscribed model by table: the table name in ``eventSourceARN``
   (``arn:aws:dynamodb:REGION:ACCOUNT:table/NAME/stream/LABEL``) is compared with
   ``worker.engine.table_name(model)``; in a table of several entities, the record's image
   names its entity (:mod:`streamodel.entities`), and a record of an entity nobody
   subscribed to is passed over, as the self-hosted worker does;
2. turns Lambda's JSON (binary values as base64 text, the creation time as epoch seconds) into
   the shape botocore gives the self-hosted reader (:func:`botocore_record`, which copies
   nothing that needs no conversion) and decodes it with
   the one decoder, :func:`~streamodel.stream.records.decode_record`, so the :class:`Change` is
   identical, type for type, to what ``engine.stream`` yields; sends ``change_received``;
3. hands it to the worker's :class:`~streamodel.stream.dispatch.Dispatcher` (the same
   subscriptions, retry rule and dead letters as the self-hosted worker), with one attempt per
   invocation (``attempts_per_invocation``): Lambda retries the batch, so retrying inside the
   invocation mostly burns billed time;
4. stops at the first record that fails and returns ``{"batchItemFailures":
   [{"itemIdentifier": <its SequenceNumber>}]}``: Lambda then retries from that record and
   nothing after it was handled, so order is kept (unlike Powertools' batch processor, which
   handles the rest of the batch anyway). A batch that went through returns
   ``{"batchItemFailures": []}``.

Where the shard is: Lambda's event does not name the shard. Every record of one invocation
comes from one shard, and Lambda keeps the records of one item (partition and sort key) in
order even with ``ParallelizationFactor`` > 1, but sequence numbers are comparable only within
a shard, and several shards of one stream are processed concurrently. So the state this module
keeps is scoped by ``eventSourceARN`` and keyed by what Lambda orders:

- exactly-once tracking (transactional subscribers) is one item per *item key* and model,
  holding the last applied sequence number, zero-padded to 40 digits;
- the failure counter is one item per record (``eventID``).

``Change.shard_id`` of a change delivered by Lambda is the ``eventSourceARN``.

Delivery guarantees:

- Plain subscribers ``fn(change)``: at-least-once, in order per item. A retried batch
  (after a failure, a timeout or a crash) delivers again the records from Lambda's checkpoint.
- Transactional subscribers ``fn(change, tx)``: exactly-once effects for what they write through
  ``tx``. The transaction also writes the item's tracking item, conditioned on it not existing
  or holding an older sequence number; a record whose sequence number is already recorded is
  skipped without calling the transactional handlers. This relies on the records of one item
  reaching the function in stream order, which Lambda guarantees per item for every
  ``ParallelizationFactor``, and on DynamoDB numbering the records of one item in the order it
  publishes them (across a shard's end and its child shard too).
- A record that fails is counted in the state table (one version-conditioned read-modify-write
  per failed invocation, through :meth:`Engine.update <streamodel.Engine.update>`); when
  ``worker.max_attempts`` invocations failed on it, the whole change goes to the worker's
  dead-letter destination and the batch moves on. With
  ``Worker(on_failure="stop")`` it is never skipped: the batch fails at it until it succeeds.
  A record that does not fit its model (:class:`UndecodableRecordError`) is dead-lettered at
  once, as the worker does.

:class:`streamodel.testing.LocalEventSourceMapping` emulates the event source mapping over a
(DynamoDB Local) stream for tests: batches of one shard, partial batch responses, retries from
the reported record, and redelivery of a whole batch.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from streamodel import signals
from streamodel.columns import Column
from streamodel.entities import Collection
from streamodel.exceptions import (
    InvalidModelError,
    MissingObjectsError,
    StaleVersionError,
    TransactionCanceledError,
)
from streamodel.models import BaseModel
from streamodel.stream.checkpoints import raw_record_json, state_model
from streamodel.stream.dispatch import DeadLetterInfo, Dispatcher
from streamodel.stream.records import (
    Change,
    UndecodableRecordError,
    decode_record,
    record_image,
)
from streamodel.stream.shards import pad_sequence, parse_sequence
from streamodel.stream.worker import Worker
from streamodel.transport.json_shape import datetime_from_json, item_from_json
from streamodel.types import DateTime, Integer, String, Timestamp

if TYPE_CHECKING:
    from streamodel.engine import Engine
    from streamodel.transactions import WriteTransaction

__all__ = [
    "STATE_LIFETIME",
    "LambdaHandler",
    "botocore_record",
    "lambda_event",
    "lambda_handler",
    "lambda_record",
    "table_name_from_arn",
]

logger = logging.getLogger("streamodel.lambda")

LambdaEvent = Mapping[str, Any]
LambdaResponse = dict[str, Any]
# How many more times a counter write is tried when another invocation moved it meanwhile.
_COUNTER_RETRIES = 10


# -- Lambda JSON <-> botocore shapes -----------------------------------------------------------
def table_name_from_arn(arn: str) -> str:
    """The table name in a stream ARN ``arn:aws:dynamodb:R:A:table/NAME/stream/LABEL``."""
    parts = arn.split(":", 5)
    resource = parts[5] if len(parts) == 6 else ""
    pieces = resource.split("/")
    if parts[0] != "arn" or len(pieces) < 2 or pieces[0] != "table" or not pieces[1]:
        raise ValueError(f"not a DynamoDB table or stream ARN: {arn!r}")
    return pieces[1]


def botocore_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A record of a Lambda DynamoDB Streams event in the shape GetRecords gives through botocore.

    Binary values (``B``, ``BS``, inside ``M`` and ``L`` too) become ``bytes``; numbers stay
    strings; ``ApproximateCreationDateTime`` (epoch seconds) becomes an aware UTC datetime
    (:func:`~streamodel.transport.json_shape.datetime_from_json`). A record without it (AWS's
    documented sample event has none) gets the time it was converted. The other fields
    (``eventSourceARN``, ``userIdentity``, ...) are kept as they are.

    ``record`` is not modified, and what needs no conversion is shared with it rather than
    copied (:func:`~streamodel.transport.json_shape.item_from_json`): an image without
    binary values is the event's own dict.
    """
    data = record.get("dynamodb") or {}
    converted = dict(data)
    for name in ("Keys", "NewImage", "OldImage"):
        image = data.get(name)
        if image is not None:
            converted[name] = item_from_json(image)
    created = data.get("ApproximateCreationDateTime")
    converted["ApproximateCreationDateTime"] = (
        datetime.datetime.now(datetime.UTC).replace(microsecond=0)
        if created is None
        else datetime_from_json(created)
    )
    return {**record, "dynamodb": converted}


def lambda_record(
    record: Mapping[str, Any], *, event_source_arn: str, aws_region: str = "us-east-1"
) -> dict[str, Any]:
    """A botocore-shaped stream record as Lambda puts it in an event (the inverse of
    :func:`botocore_record`): base64 binaries, epoch-second numbers, ``eventSourceARN``."""
    result = raw_record_json(record)
    data = result.setdefault("dynamodb", {})
    created = data.get("ApproximateCreationDateTime")
    if isinstance(created, float) and created.is_integer():
        data["ApproximateCreationDateTime"] = int(created)  # Lambda sends whole seconds as ints
    identity = result.get("userIdentity")
    if isinstance(identity, dict):
        # GetRecords says Type/PrincipalId; Lambda's events say type/principalId.
        result["userIdentity"] = {k[:1].lower() + k[1:]: v for k, v in identity.items()}
    result["eventSourceARN"] = event_source_arn
    result["awsRegion"] = aws_region
    result["eventSource"] = "aws:dynamodb"
    result.setdefault("eventVersion", "1.1")
    return result


def lambda_event(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """A Lambda DynamoDB Streams event holding ``records`` (already in Lambda's JSON shape),
    round-tripped through JSON as Lambda's runtime would deliver it."""
    loaded: dict[str, Any] = json.loads(json.dumps({"Records": list(records)}))
    return loaded


# -- state items -------------------------------------------------------------------------------
# How long tracking and attempt items are kept after their last write. A stream keeps a
# record for 24 hours, and Lambda can deliver it (again) only until then; items past that
# can no longer stop a duplicate or count an attempt, so DynamoDB's TTL deletes them.
STATE_LIFETIME = datetime.timedelta(days=2)


def _tracking_models(table: str) -> tuple[Any, Any]:
    """The two item kinds this module keeps in the worker's state table, both expiring
    :data:`STATE_LIFETIME` after their last write (``expires_at``)."""
    applied = state_model(
        "AppliedChange",  # the last change of one item that transactional subscribers applied
        table,
        range_key="sort",
        ttl="expires_at",
        model=Column(String),
        item_key=Column(String),
        applied=Column(String),  # sequence number, 40 digits: string order = number order
        event_id=Column(String),
        updated_at=Column(DateTime),
        expires_at=Column(Timestamp),
    )
    attempts = state_model(
        "RecordAttempts",  # how many invocations failed on one record (the version column)
        table,
        range_key="sort",
        ttl="expires_at",
        model=Column(String),
        sequence_number=Column(String),
        error=Column(String),
        counter=Column(Integer, version=True),
        updated_at=Column(DateTime),
        expires_at=Column(Timestamp),
    )
    return applied, attempts


def _item_ident(record: Mapping[str, Any]) -> tuple[str, str]:
    """A canonical text of the record's key and a fixed-size digest of it."""
    keys = raw_record_json(record.get("dynamodb", {}).get("Keys") or {})
    text = json.dumps(keys, sort_keys=True, separators=(",", ":"))
    return text, hashlib.sha256(text.encode()).hexdigest()


# -- the handler -------------------------------------------------------------------------------
class LambdaHandler:
    """The Lambda handler ``(event, context) -> {"batchItemFailures": [...]}`` of one worker.

    Made by :func:`lambda_handler` (or ``worker.lambda_handler``, built once per worker); see
    the module docstring. Take it at import time of the function module, so a warm container
    keeps the engine's connections and the state table check. It dispatches to the worker's
    subscriptions as they are at each event: subscribing after it was made is allowed.
    """

    def __init__(
        self,
        worker: Worker,
        *,
        attempts_per_invocation: int = 1,
        time_margin: float = 1.0,
        emf_namespace: str | None = None,
    ) -> None:
        if attempts_per_invocation < 1:
            raise ValueError("attempts_per_invocation must be at least 1")
        self.worker = worker
        self.attempts_per_invocation = attempts_per_invocation
        self.time_margin = time_margin
        # The counters, printed as CloudWatch EMF lines after each invocation, when asked.
        self.emf = None
        if emf_namespace is not None:
            from streamodel.stream.emf import EmfRecorder

            self.emf = EmfRecorder(emf_namespace, lambda: worker.group)
        self.AppliedChange, self.RecordAttempts = _tracking_models(worker.state_table)
        self._ready = False
        # eventSourceARN -> the subscribed models of its table, for this subscriptions_version.
        self._routes: dict[str, Collection] = {}
        self._routes_version = -1
        self.skipped = 0
        """Records of no known entity passed over (see :mod:`streamodel.entities`)."""

    @property
    def engine(self) -> Engine:
        return self.worker.engine

    @property
    def dispatcher(self) -> Dispatcher:
        """The worker's: subscriptions as they are at each event, and the same rules."""
        return self.worker.dispatcher

    def __call__(self, event: LambdaEvent, context: Any = None) -> LambdaResponse:
        if self.emf is not None:
            response: LambdaResponse = self.emf.invocation(
                event, lambda: self._handle_event(event, context)
            )
            return response
        return self._handle_event(event, context)

    def _handle_event(self, event: LambdaEvent, context: Any) -> LambdaResponse:
        records = list(event.get("Records") or [])
        # Route every record first: a table no subscription reads is a deployment error,
        # reported before anything of the batch is handled.
        routed = [(record, self.models_for(record)) for record in records]
        for index, (record, source) in enumerate(routed):
            sequence = str(record.get("dynamodb", {}).get("SequenceNumber", ""))
            if index and self._out_of_time(context):
                logger.warning(
                    "lambda: stopping before %s, the invocation is running out", sequence
                )
                return _failed_at(sequence)
            # One table, one stream: each record goes to the entity its image names.
            model = source.route(record_image(record))
            if model is None:
                if source.unknown(record_image(record), "lambda"):
                    self.skipped += 1
                continue
            try:
                done = self._handle(model, record)
            except Exception:
                logger.exception("lambda: record %s of %s failed", sequence, model.__name__)
                done = False
            if not done:
                return _failed_at(sequence)
        return {"batchItemFailures": []}

    def models_for(self, record: Mapping[str, Any]) -> Collection:
        """The subscribed models of the table the record comes from (by
        ``eventSourceARN``), as a collection that routes its records by entity.

        Worked out once per source ARN, and again after the worker's subscriptions changed.
        """
        arn = str(record.get("eventSourceARN", ""))
        dispatcher = self.dispatcher
        if self._routes_version != dispatcher.version:
            self._routes.clear()
            self._routes_version = dispatcher.version
        source = self._routes.get(arn)
        if source is None:
            table = table_name_from_arn(arn)
            models = [m for m in dispatcher.models if self.engine.table_name(m) == table]
            if not models:
                raise InvalidModelError(
                    f"no subscription of worker {self.worker.group!r} reads table {table!r} "
                    f"(subscribed: {[self.engine.table_name(m) for m in dispatcher.models]})"
                )
            source = self._routes[arn] = Collection(*models)
        return source

    # -- one record --------------------------------------------------------------------------
    def _handle(self, model: type[BaseModel], record: Mapping[str, Any]) -> bool:
        """Dispatch one record to one model's subscribers; False: stop the batch here."""
        dispatcher = self.dispatcher
        arn = str(record.get("eventSourceARN", ""))
        sequence = str(record.get("dynamodb", {}).get("SequenceNumber", ""))
        raw = botocore_record(record)
        try:
            change = decode_record(model, raw, shard_id=arn, sequence_number=sequence)
        except UndecodableRecordError as error:
            self._dead_letter(dispatcher.undecodable(model, error))
            return True
        signals.change_received.send(model, change=change)

        skip_transactional = dispatcher.has_transactional(change) and self._applied(change)
        if skip_transactional:
            logger.info("lambda: %s already applied; transactional handlers skipped", change)
        sealed: list[BaseModel] = []
        result = dispatcher.run(
            dispatcher.plan(change, transactional=not skip_transactional),
            transaction=self._transaction,
            seal=lambda tx: self._seal(change, tx, sealed),
            attempts=self.attempts_per_invocation,
        )
        # Another delivery of this record committed first: the change is applied.
        failures = [f for f in result.failures if not _lost_race(f.error, sealed)]
        if not failures:
            return True
        if dispatcher.on_failure == "stop":
            return False  # strict order: the batch fails here until the record goes through
        attempts = self._count_failure(change, failures[0].error)
        if dispatcher.verdict(attempts) == "retry":
            logger.warning(
                "lambda: %s failed (%d of %d invocations); Lambda retries from it",
                change,
                attempts,
                dispatcher.max_attempts,
            )
            return False
        for info in failures:
            info.attempts = attempts
            self._dead_letter(info)
        return True

    def _transaction(self) -> WriteTransaction:
        from streamodel.transactions import WriteTransaction

        return WriteTransaction(self.engine)

    def _dead_letter(self, info: DeadLetterInfo) -> None:
        self._setup()
        self.worker.send_dead_letter(info)
        if self.emf is not None:
            self.emf.dead_letter(info.shard_id)

    # -- state -------------------------------------------------------------------------------
    def _setup(self) -> None:
        if not self._ready:
            self.worker.store.setup()
            self.engine.bind(self.AppliedChange)
            self.engine.bind(self.RecordAttempts)
            self._ready = True

    def _scope(self, change: Change) -> str:
        return f"lambda|{self.worker.group}|{change.shard_id}"

    def _position(self, change: Change) -> tuple[BaseModel, str]:
        key_text, digest = _item_ident(change.record)
        position = self.AppliedChange(
            scope=self._scope(change), sort=f"applied|{change.model.__name__}|{digest}"
        )
        return position, key_text

    def _applied(self, change: Change) -> bool:
        """Whether the transactional subscribers already applied this change (or a later one)."""
        self._setup()
        position, _ = self._position(change)
        try:
            self.engine.load(position, consistent=True)
        except MissingObjectsError:
            return False
        applied: str | None = getattr(position, "applied", None)
        return applied is not None and applied >= _padded(change.sequence_number)

    def _seal(self, change: Change, tx: WriteTransaction, sealed: list[BaseModel]) -> None:
        """Add the item's tracking item to ``tx``: the commit fails if this change (or a
        later one) was applied already."""
        self._setup()
        position, key_text = self._position(change)
        padded = _padded(change.sequence_number)
        applied: Any = self.AppliedChange.applied
        position.model = change.model.__name__  # type: ignore[attr-defined]
        position.item_key = key_text  # type: ignore[attr-defined]
        position.applied = padded  # type: ignore[attr-defined]
        position.event_id = change.event_id  # type: ignore[attr-defined]
        now = datetime.datetime.now(datetime.UTC)
        position.updated_at = now  # type: ignore[attr-defined]
        position.expires_at = now + STATE_LIFETIME  # type: ignore[attr-defined]
        tx.save(position, condition=applied.is_(None) | (applied < padded))
        sealed.append(position)

    def _count_failure(self, change: Change, error: BaseException) -> int:
        """Count one more failed invocation on this record; return the count.

        The counter is the item's version column, so each count is a version-conditioned
        write: :meth:`Engine.update <streamodel.Engine.update>` (consistent read, change,
        conditioned save, jittered retries when another invocation moved it meanwhile). The
        first count creates the item, conditioned on it not existing; if another invocation
        created it first, the count goes through ``update`` instead.
        """
        self._setup()
        scope, sort = self._scope(change), f"attempts|{change.event_id}"
        text = f"{type(error).__name__}: {error}"[:1000]

        def record(attempts: Any) -> None:
            attempts.model = change.model.__name__
            attempts.sequence_number = change.sequence_number
            attempts.error = text
            attempts.updated_at = datetime.datetime.now(datetime.UTC)
            attempts.expires_at = attempts.updated_at + STATE_LIFETIME

        for _ in range(2):  # update; else create; else (created meanwhile) update
            attempts = self.RecordAttempts(scope=scope, sort=sort)
            try:
                self.engine.update(attempts, record, retries=_COUNTER_RETRIES)
            except MissingObjectsError:
                attempts = self.RecordAttempts(scope=scope, sort=sort)
                record(attempts)
                try:
                    self.engine.save(attempts)  # no version yet: only if the item is missing
                except StaleVersionError:
                    continue
            count: int = attempts.counter
            return count
        raise StaleVersionError(f"attempt counter of {change} kept moving")

    def _out_of_time(self, context: Any) -> bool:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        return callable(remaining) and remaining() < self.time_margin * 1000


def _padded(sequence: str | None) -> str:
    # Lambda's changes are stream records: they always have one (None raises ValueError).
    return pad_sequence(parse_sequence(sequence))


def _failed_at(sequence: str) -> LambdaResponse:
    return {"batchItemFailures": [{"itemIdentifier": sequence}]}


def _lost_race(error: BaseException, sealed: list[BaseModel]) -> bool:
    """Whether a transaction failed only because its tracking item already held this change."""
    if not isinstance(error, TransactionCanceledError) or not sealed:
        return False
    codes = {
        "tracking" if r.get("obj") is sealed[-1] else "other": r.get("code")
        for r in error.reasons
        if r.get("code") not in (None, "None")
    }
    return codes == {"tracking": "ConditionalCheckFailed"}


def lambda_handler(
    worker: Worker,
    *,
    attempts_per_invocation: int = 1,
    time_margin: float = 1.0,
    emf_namespace: str | None = None,
) -> LambdaHandler:
    """The Lambda handler ``(event, context)`` running ``worker``'s subscribers.

    ``attempts_per_invocation`` is how often a failing handler is tried within one invocation
    (Lambda retries the batch anyway; ``worker.max_attempts`` counts failed invocations).
    When ``context.get_remaining_time_in_millis()`` drops below ``time_margin`` seconds, the
    batch stops before the next record and reports it, instead of timing out (a timeout makes
    Lambda retry the whole batch). With ``emf_namespace``, each invocation ends by printing
    the worker's counters (changes handled, retries, dead letters, lag) as CloudWatch
    Embedded Metric Format lines in that namespace (:mod:`streamodel.stream.emf`).
    """
    return LambdaHandler(
        worker,
        attempts_per_invocation=attempts_per_invocation,
        time_margin=time_margin,
        emf_namespace=emf_namespace,
    )


# The emulator moved to streamodel.testing (it is a test helper, not a Lambda runtime piece);
# the old names keep working for a while, with a warning that names the new place.
_MOVED = {"Invocation", "LocalEventSourceMapping"}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import warnings

        from streamodel.testing import event_source_mapping

        warnings.warn(
            f"streamodel.stream.aws_lambda.{name} moved to streamodel.testing.{name}; "
            "import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(event_source_mapping, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
