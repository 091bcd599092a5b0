"""FakeStreams: an in-memory DynamoDB Streams service behind the
:class:`~streamodel.transport.Transport` protocol, with splits, trimming and fault injection.

DynamoDB Local keeps one shard per table and never splits it, so shard lineage, splits,
trimmed data and throttling can only be tested against this fake.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import threading
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, NoReturn

from streamodel.transport.base import Service, Transport
from streamodel.transport.errors import error_from_response

__all__ = ["FakeStreams"]

EventName = Literal["INSERT", "MODIFY", "REMOVE"]
ViewType = Literal["KEYS_ONLY", "NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES"]

_HASH_SPACE = 2**64
# 21 digits, like real sequence numbers, with room to grow past 2**64 untouched.
_FIRST_SEQUENCE = 10**20 + 4_100_000_000
_SERVER_ERROR_CODES = frozenset(
    {"InternalServerError", "ServiceUnavailable", "ServiceUnavailableException"}
)
_MAX_ITERATORS = 100_000
# As GetRecords through botocore spells it (Lambda's events spell it type/principalId).
_TTL_IDENTITY = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}


@dataclass
class _FakeShard:
    shard_id: str
    parent_id: str | None
    lo: int
    hi: int
    starting: int
    ending: int | None = None
    # Absolute positions: records[i] sits at position offset + i; trimming raises offset.
    records: list[dict[str, Any]] = field(default_factory=list)
    sequences: list[int] = field(default_factory=list)
    offset: int = 0
    gone: bool = False
    empty_pages: int = 0
    # The newest sequence number trimmed away: iterators at or before it are invalid.
    trimmed_last: int | None = None

    @property
    def end(self) -> int:
        return self.offset + len(self.records)


@dataclass
class _Iterator:
    shard_id: str
    position: int
    generation: int


class FakeStreams:
    """An in-memory DynamoDB Streams service that speaks the transport protocol.

    Serves ``DescribeStream`` (paginated, ``describe_page_size`` shards per page at most),
    ``GetShardIterator`` (all four iterator types) and ``GetRecords`` (``max_page_size``
    records per page at most) for ``service="dynamodbstreams"``; ``"dynamodb"`` calls go to
    ``inner`` when given and fail otherwise. Records look exactly like what boto3 returns:
    low-level attribute values, ``ApproximateCreationDateTime`` as an aware datetime,
    sequence numbers of 21 digits or more (``first_sequence=1`` gives DynamoDB Local's
    zero-padded small numbers), ``SizeBytes`` as DynamoDB counts the keys and images.
    ``DescribeStream``'s ``KeySchema`` is ``key_schema`` when given, else the key attributes
    of the first record put (in the order given: hash key, then range key).

    Keys are routed to shards by a hash of the key, each shard owning a hash range that its
    children split between them, so one key's records stay in one lineage across splits.
    Failures are raised through :func:`streamodel.transport.errors.error_from_response`,
    exactly as :class:`~streamodel.transport.BotocoreTransport` would raise them.

    ``fake.calls`` counts the calls per operation (failed ones included).
    """

    def __init__(
        self,
        stream_arn: str = (
            "arn:aws:dynamodb:us-east-1:123456789012:table/fake/stream/2024-01-01T00:00:00.000"
        ),
        *,
        shards: int = 1,
        view_type: ViewType = "NEW_AND_OLD_IMAGES",
        region: str = "us-east-1",
        describe_page_size: int = 100,
        max_page_size: int = 1000,
        now: Callable[[], datetime] | None = None,
        first_sequence: int = _FIRST_SEQUENCE,
        inner: Transport | None = None,
        key_schema: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        if shards < 1:
            raise ValueError("FakeStreams: shards must be at least 1")
        self.stream_arn = stream_arn
        self.view_type: ViewType = view_type
        self.region = region
        self.describe_page_size = describe_page_size
        self.max_page_size = max_page_size
        self.inner = inner
        self.key_schema = [dict(k) for k in key_schema] if key_schema is not None else None
        self.calls: Counter[str] = Counter()
        self._now = now or (lambda: datetime.now(UTC))
        self._lock = threading.RLock()
        self._sequence = itertools.count(first_sequence)
        self._shard_serial = itertools.count(1_700_000_000_000)
        self._shards: dict[str, _FakeShard] = {}
        self._iterators: dict[str, _Iterator] = {}
        self._generation = 0
        self._failures: deque[tuple[str, str, str]] = deque()
        self._created = self._now()
        width = _HASH_SPACE // shards
        for i in range(shards):
            hi = _HASH_SPACE if i == shards - 1 else (i + 1) * width
            self._new_shard(None, i * width, hi)

    # -- building the stream -----------------------------------------------------------------

    def put(
        self,
        keys: Mapping[str, Any],
        new_image: Mapping[str, Any] | None = None,
        old_image: Mapping[str, Any] | None = None,
        event: EventName | None = None,
        *,
        shard_id: str | None = None,
        ttl: bool = False,
        at: datetime | None = None,
    ) -> dict[str, Any]:
        """Append one change record and return it (as GetRecords will return it).

        ``keys`` and the images are low-level items (``{"pk": {"S": "a"}}``). ``event``
        defaults to INSERT, MODIFY or REMOVE from which images are given; ``ttl=True`` marks
        a REMOVE as a TTL delete. The record goes to ``shard_id`` when given, else to the open
        shard owning the key's hash. ``at`` overrides the creation time (rounded down to the
        second, as DynamoDB does).
        """
        if event is None:
            if new_image is not None and old_image is not None:
                event = "MODIFY"
            elif new_image is not None:
                event = "INSERT"
            elif old_image is not None:
                event = "REMOVE"
            else:
                raise ValueError("FakeStreams.put: give an image or an event")
        if ttl and event != "REMOVE":
            raise ValueError("FakeStreams.put: only a REMOVE can be a TTL delete")
        with self._lock:
            shard = self._shard_for(keys) if shard_id is None else self._shards[shard_id]
            if shard.ending is not None or shard.gone:
                raise ValueError(f"FakeStreams.put: shard {shard.shard_id} is closed")
            sequence = next(self._sequence)
            created = (at or self._now()).replace(microsecond=0)
            if created.tzinfo is None:
                raise ValueError("FakeStreams.put: `at` must be an aware datetime")
            body: dict[str, Any] = {
                "ApproximateCreationDateTime": created,
                "Keys": copy.deepcopy(dict(keys)),
            }
            if new_image is not None and self.view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
                body["NewImage"] = copy.deepcopy(dict(new_image))
            if old_image is not None and self.view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
                body["OldImage"] = copy.deepcopy(dict(old_image))
            body["SequenceNumber"] = _sequence_text(sequence)
            body["SizeBytes"] = _size(body)
            body["StreamViewType"] = self.view_type
            record: dict[str, Any] = {
                "eventID": uuid.uuid4().hex,
                "eventName": event,
                "eventVersion": "1.1",
                "eventSource": "aws:dynamodb",
                "awsRegion": self.region,
                "dynamodb": body,
            }
            if ttl:
                record["userIdentity"] = dict(_TTL_IDENTITY)
            if self.key_schema is None:
                self.key_schema = [
                    {"AttributeName": name, "KeyType": kind}
                    for name, kind in zip(keys, ("HASH", "RANGE"), strict=False)
                ]
            shard.records.append(record)
            shard.sequences.append(sequence)
            return copy.deepcopy(record)

    def split(self, shard_id: str, n: int = 2) -> list[str]:
        """Close ``shard_id`` and open ``n`` children sharing its hash range; return their ids.

        ``n=1`` is the periodic roll-over of a shard into a single successor.
        """
        if n < 1:
            raise ValueError("FakeStreams.split: n must be at least 1")
        with self._lock:
            parent = self._shards[shard_id]
            self.close(shard_id)
            width = (parent.hi - parent.lo) // n
            children = []
            for i in range(n):
                lo = parent.lo + i * width
                hi = parent.hi if i == n - 1 else lo + width
                children.append(self._new_shard(shard_id, lo, hi).shard_id)
            return children

    def close(self, shard_id: str) -> None:
        """Close ``shard_id`` without successors (as when the stream is disabled)."""
        with self._lock:
            shard = self._shards[shard_id]
            if shard.ending is None:
                shard.ending = shard.sequences[-1] if shard.sequences else next(self._sequence)

    def trim(self, shard_id: str | None = None, *, before: int | str | None = None) -> None:
        """Make records unavailable, as the 24 hour retention does.

        ``trim(shard_id)`` removes a whole shard (it disappears from DescribeStream);
        ``before=seq`` removes the records older than ``seq`` (of ``shard_id`` only, when
        given); closed shards left without records disappear. Iterators pointing at trimmed
        records fail with TrimmedDataAccessException.
        """
        with self._lock:
            targets = list(self._shards.values()) if shard_id is None else [self._shards[shard_id]]
            for shard in targets:
                if before is None:
                    shard.gone = True
                    continue
                limit = int(before)
                cut = 0
                while cut < len(shard.sequences) and shard.sequences[cut] < limit:
                    cut += 1
                if cut:
                    shard.trimmed_last = shard.sequences[cut - 1]
                del shard.records[:cut]
                del shard.sequences[:cut]
                shard.offset += cut
                if shard.ending is not None and shard.ending < limit:
                    shard.gone = True

    def fail_next(
        self, operation: str, error_code: str, times: int = 1, *, message: str = "injected"
    ) -> None:
        """Make the next ``times`` calls of ``operation`` fail with AWS error ``error_code``."""
        with self._lock:
            for _ in range(times):
                self._failures.append((operation, error_code, message))

    def expire_iterators(self) -> None:
        """Expire every iterator issued so far (as 15 minutes passing would)."""
        with self._lock:
            self._generation += 1

    def inject_empty_pages(self, shard_id: str, pages: int) -> None:
        """Make the next ``pages`` GetRecords calls on ``shard_id`` return no records.

        The iterator does not move: the records are still there, as when GetRecords crosses
        a sparse part of a shard.
        """
        with self._lock:
            self._shards[shard_id].empty_pages += pages

    # -- looking at the stream -------------------------------------------------------------

    def shard_ids(self, *, open_only: bool = False) -> list[str]:
        """Ids of the shards DescribeStream would list, in creation order."""
        with self._lock:
            return [
                s.shard_id
                for s in self._shards.values()
                if not s.gone and not (open_only and s.ending is not None)
            ]

    def shard_of(self, keys: Mapping[str, Any]) -> str:
        """The open shard the next record for ``keys`` goes to."""
        with self._lock:
            return self._shard_for(keys).shard_id

    def records(self, shard_id: str) -> list[dict[str, Any]]:
        """The available records of ``shard_id``, oldest first."""
        with self._lock:
            return copy.deepcopy(self._shards[shard_id].records)

    # -- the transport protocol ------------------------------------------------------------

    def call(self, service: Service, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        if service != "dynamodbstreams":
            if self.inner is None:
                raise ValueError(f"FakeStreams serves dynamodbstreams only, not {service}")
            return self.inner.call(service, operation, params)
        with self._lock:
            self.calls[operation] += 1
            self._raise_injected(operation)
            handler = _OPERATIONS.get(operation)
            if handler is None:
                self._fail(operation, "UnknownOperationException", f"{operation} is not served")
            return handler(self, params)

    # -- operations --------------------------------------------------------------------------

    def _describe_stream(self, params: dict[str, Any]) -> dict[str, Any]:
        self._check_arn("DescribeStream", params)
        limit = int(params.get("Limit", 100))
        if not 1 <= limit <= 100:
            self._fail("DescribeStream", "ValidationException", "Limit must be 1 to 100")
        visible = [s for s in self._shards.values() if not s.gone]
        start = 0
        exclusive = params.get("ExclusiveStartShardId")
        if exclusive is not None:
            ids = [s.shard_id for s in visible]
            start = ids.index(exclusive) + 1 if exclusive in ids else len(ids)
            if exclusive not in ids and exclusive in self._shards:
                # The start shard was trimmed meanwhile: continue with the shards created
                # after it, as a listing by shard id would.
                order = list(self._shards)
                later = set(order[order.index(exclusive) + 1 :])
                start = next((i for i, s in enumerate(visible) if s.shard_id in later), start)
        page = visible[start : start + min(limit, self.describe_page_size)]
        description: dict[str, Any] = {
            "StreamArn": self.stream_arn,
            "StreamLabel": self.stream_arn.rsplit("/", 1)[-1],
            "StreamStatus": "ENABLED",
            "StreamViewType": self.view_type,
            "CreationRequestDateTime": self._created,
            "TableName": self.stream_arn.split("/")[1] if "/" in self.stream_arn else "fake",
            "KeySchema": copy.deepcopy(
                self.key_schema or [{"AttributeName": "pk", "KeyType": "HASH"}]
            ),
            "Shards": [_shard_description(s) for s in page],
        }
        if start + len(page) < len(visible):
            description["LastEvaluatedShardId"] = page[-1].shard_id
        return {"StreamDescription": description}

    def _get_shard_iterator(self, params: dict[str, Any]) -> dict[str, Any]:
        op = "GetShardIterator"
        self._check_arn(op, params)
        shard = self._shards.get(params["ShardId"])
        if shard is None or shard.gone:
            self._fail(op, "ResourceNotFoundException", f"Shard {params['ShardId']} not found")
        kind = params["ShardIteratorType"]
        if kind == "TRIM_HORIZON":
            position = shard.offset
        elif kind == "LATEST":
            position = shard.end
        elif kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
            raw = params.get("SequenceNumber")
            if not isinstance(raw, str) or not raw.isdigit() or not 21 <= len(raw) <= 40:
                self._fail(op, "ValidationException", f"Invalid SequenceNumber {raw!r}")
            sequence = int(raw)
            if sequence < shard.starting or (shard.ending is not None and sequence > shard.ending):
                self._fail(op, "ValidationException", f"{raw} is not in shard {shard.shard_id}")
            trimmed = shard.trimmed_last
            if trimmed is not None and (
                sequence < trimmed or (sequence == trimmed and kind == "AT_SEQUENCE_NUMBER")
            ):
                self._fail(op, "TrimmedDataAccessException", f"{raw} is beyond the trim horizon")
            position = shard.offset
            for seq in shard.sequences:
                if seq > sequence or (seq == sequence and kind == "AT_SEQUENCE_NUMBER"):
                    break
                position += 1
        else:
            self._fail(op, "ValidationException", f"Invalid ShardIteratorType {kind!r}")
        return {"ShardIterator": self._issue(shard.shard_id, position)}

    def _get_records(self, params: dict[str, Any]) -> dict[str, Any]:
        op = "GetRecords"
        iterator = self._iterators.get(params.get("ShardIterator", ""))
        if iterator is None:
            self._fail(op, "ValidationException", "Invalid ShardIterator")
        if iterator.generation != self._generation:
            self._fail(op, "ExpiredIteratorException", "Iterator expired")
        limit = int(params.get("Limit", 1000))
        if not 1 <= limit <= 1000:
            self._fail(op, "ValidationException", "Limit must be 1 to 1000")
        shard = self._shards[iterator.shard_id]
        if shard.gone or iterator.position < shard.offset:
            self._fail(op, "TrimmedDataAccessException", "Records were trimmed")
        if shard.empty_pages:
            shard.empty_pages -= 1
            return {
                "Records": [],
                "NextShardIterator": self._issue(shard.shard_id, iterator.position),
            }
        start = iterator.position - shard.offset
        page = shard.records[start : start + min(limit, self.max_page_size)]
        position = iterator.position + len(page)
        response: dict[str, Any] = {"Records": copy.deepcopy(page)}
        if shard.ending is None or position < shard.end:
            response["NextShardIterator"] = self._issue(shard.shard_id, position)
        return response

    # -- internals ---------------------------------------------------------------------------

    def _new_shard(self, parent_id: str | None, lo: int, hi: int) -> _FakeShard:
        serial = next(self._shard_serial)
        suffix = hashlib.sha256(f"{self.stream_arn}/{serial}".encode()).hexdigest()[:8]
        shard_id = f"shardId-{serial:020d}-{suffix}"
        shard = _FakeShard(shard_id, parent_id, lo, hi, starting=next(self._sequence))
        self._shards[shard_id] = shard
        return shard

    def _shard_for(self, keys: Mapping[str, Any]) -> _FakeShard:
        canonical = json.dumps(keys, sort_keys=True, default=repr).encode()
        point = int.from_bytes(hashlib.sha256(canonical).digest()[:8], "big")
        for shard in self._shards.values():
            if shard.ending is None and not shard.gone and shard.lo <= point < shard.hi:
                return shard
        raise ValueError(f"FakeStreams.put: no open shard for key {dict(keys)!r}")

    def _issue(self, shard_id: str, position: int) -> str:
        token = f"{self.stream_arn}|{shard_id}|{uuid.uuid4().hex}"
        self._iterators[token] = _Iterator(shard_id, position, self._generation)
        if len(self._iterators) > _MAX_ITERATORS:
            # Forget the oldest iterators: they would have expired long ago on AWS.
            del self._iterators[next(iter(self._iterators))]
        return token

    def _check_arn(self, operation: str, params: dict[str, Any]) -> None:
        if params.get("StreamArn") != self.stream_arn:
            self._fail(
                operation,
                "ResourceNotFoundException",
                f"Requested resource not found: Stream: {params.get('StreamArn')} not found",
            )

    def _raise_injected(self, operation: str) -> None:
        for i, (op, code, message) in enumerate(self._failures):
            if op == operation:
                del self._failures[i]
                self._fail(operation, code, message)

    def _fail(self, operation: str, code: str, message: str) -> NoReturn:
        status = 500 if code in _SERVER_ERROR_CODES else 400
        body = {"Error": {"Code": code, "Message": message}}
        raise error_from_response(operation, status, code, message, body)


def _shard_description(shard: _FakeShard) -> dict[str, Any]:
    numbers = {"StartingSequenceNumber": _sequence_text(shard.starting)}
    if shard.ending is not None:
        numbers["EndingSequenceNumber"] = _sequence_text(shard.ending)
    description: dict[str, Any] = {"ShardId": shard.shard_id, "SequenceNumberRange": numbers}
    if shard.parent_id is not None:
        description["ParentShardId"] = shard.parent_id
    return description


def _sequence_text(sequence: int) -> str:
    # At least 21 digits, as the API requires; DynamoDB Local zero-pads small numbers to that.
    return str(sequence).zfill(21)


def _size(body: Mapping[str, Any]) -> int:
    # As DynamoDB (and DynamoDB Local) count it: the item size of the keys and each image.
    from streamodel.types import wire_size

    parts = (body.get("Keys"), body.get("NewImage"), body.get("OldImage"))
    return sum(wire_size(p) for p in parts if p is not None)


_OPERATIONS: dict[str, Callable[[FakeStreams, dict[str, Any]], dict[str, Any]]] = {
    "DescribeStream": FakeStreams._describe_stream,
    "GetShardIterator": FakeStreams._get_shard_iterator,
    "GetRecords": FakeStreams._get_records,
}
