"""Coordinator: the shard tree and the raw reader over a whole stream, against FakeStreams."""

from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from botocore.session import get_session
from botocore.validate import ParamValidator

from streamodel.exceptions import InvalidPositionError, ResourceNotFoundError
from streamodel.stream.coordinator import Coordinator, RawRecord
from streamodel.testing.fake_streams import FakeStreams
from streamodel.transport import RetryingTransport, RetryPolicy
from streamodel.transport.base import Service

SERVICE_MODEL = get_session().get_service_model("dynamodbstreams")
FAST = RetryPolicy(attempts=8, base=0.0001, max_wait=0.001)


class ValidatingTransport:
    """Checks every request against botocore's service model before passing it on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def call(self, service: Service, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        shape = SERVICE_MODEL.operation_model(operation).input_shape
        report = ParamValidator().validate(params, shape)
        assert not report.has_errors(), report.generate_report()
        self.requests.append((operation, dict(params)))
        result: dict[str, Any] = self.inner.call(service, operation, params)
        return result


class FakeClock:
    """A monotonic clock that moves only when told to, or when slept on."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Harness:
    def __init__(self, fake: FakeStreams, policy: RetryPolicy = FAST, **options: Any) -> None:
        self.fake = fake
        self.clock = FakeClock()
        self.gaps: list[tuple[str, str]] = []
        self.transport = ValidatingTransport(RetryingTransport(fake, policy))
        self.options = options

    def open(self, position: Any = "trim_horizon", **options: Any) -> Coordinator:
        return Coordinator(
            self.transport,
            self.fake.stream_arn,
            position,
            sleep=self.clock.sleep,
            clock=self.clock,
            **{"on_gap": self.record_gap, **self.options, **options},
        )

    def record_gap(self, shard_id: str, detail: str) -> None:
        self.gaps.append((shard_id, detail))

    def drain(self, coordinator: Coordinator, idle: int = 3, step: float = 1.0) -> list[RawRecord]:
        """Reads until `idle` calls in a row, one `step` apart, found nothing."""
        records: list[RawRecord] = []
        nothing = 0
        while nothing < idle:
            record = coordinator.next_record()
            if record is None:
                nothing += 1
                self.clock.advance(step)
            else:
                nothing = 0
                records.append(record)
        return records

    def take(self, coordinator: Coordinator, n: int) -> list[RawRecord]:
        """Reads exactly n records, advancing the clock over empty calls."""
        records: list[RawRecord] = []
        for _ in range(100 * n + 100):
            if len(records) == n:
                return records
            record = coordinator.next_record()
            if record is None:
                self.clock.advance(0.5)
            else:
                records.append(record)
        raise AssertionError(f"only {len(records)} of {n} records came")


def key(i: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{i}"}}


def image(i: int, n: int) -> dict[str, Any]:
    return {"pk": {"S": f"k{i}"}, "n": {"N": str(n)}}


def seq(record: dict[str, Any] | RawRecord) -> str:
    body = record.record["dynamodb"] if isinstance(record, RawRecord) else record["dynamodb"]
    value: str = body["SequenceNumber"]
    return value


def put_many(fake: FakeStreams, count: int, *, keys: int = 1, start: int = 0) -> list[str]:
    return [
        seq(fake.put(key(i % keys), new_image=image(i % keys, i)))
        for i in range(start, start + count)
    ]


def test_describe_pagination_finds_shards_beyond_the_first_page() -> None:
    """Shards listed after short DescribeStream pages are found and read."""
    fake = FakeStreams(shards=5, describe_page_size=2)
    written = [
        seq(fake.put(key(0), new_image=image(0, n), shard_id=s))
        for n, s in enumerate(fake.shard_ids())
    ]
    harness = Harness(fake)
    coordinator = harness.open()
    assert fake.calls["DescribeStream"] == 3
    assert sorted(seq(r) for r in harness.drain(coordinator)) == sorted(written)
    assert set(coordinator.shards) == set(fake.shard_ids())


def test_parent_is_read_to_its_end_before_children() -> None:
    """No child record comes before the parent's last one, including its closing page's."""
    fake = FakeStreams(max_page_size=2)
    (root,) = fake.shard_ids()
    parent = put_many(fake, 5, keys=7)
    children = fake.split(root)
    child = put_many(fake, 40, keys=7, start=5)
    harness = Harness(fake)
    records = harness.drain(harness.open())
    order = [seq(r) for r in records]
    assert order[:5] == parent
    assert sorted(order[5:]) == sorted(child)
    assert {r.shard_id for r in records[5:]} == set(children)
    # The closing page held the parent's fifth record (pages of 2: 2, 2, 1).
    assert all(r.shard_id == root for r in records[:5])


def test_split_mid_stream_children_found_later() -> None:
    """A parent that closes while being read leads to its children, found by re-describing."""
    fake = FakeStreams()
    (root,) = fake.shard_ids()
    first = put_many(fake, 10, keys=5)
    harness = Harness(fake, limit=4)
    coordinator = harness.open()
    got = harness.take(coordinator, 5)
    described = fake.calls["DescribeStream"]
    children = fake.split(root)
    later = put_many(fake, 20, keys=5, start=10)
    order = [seq(r) for r in got + harness.drain(coordinator)]
    assert order[:10] == first
    assert sorted(order[10:]) == sorted(later)
    assert fake.calls["DescribeStream"] > described
    assert set(coordinator.shards) == {root, *children}
    assert coordinator.shards[root].done


def test_per_key_order_over_many_records_and_splits() -> None:
    """Per-key order and exactly-once hold over 10k records across several splits."""
    fake = FakeStreams(max_page_size=200)
    harness = Harness(fake, limit=150)
    coordinator = harness.open()
    records: list[RawRecord] = []
    counters: Counter[int] = Counter()
    for batch in range(20):
        for i in range(500):
            k = (batch * 500 + i) * 7919 % 40
            counters[k] += 1
            fake.put(key(k), new_image=image(k, counters[k]))
        if batch % 4 == 3:
            for shard_id in fake.shard_ids(open_only=True)[:3]:
                fake.split(shard_id)
        for _ in range(300):
            record = coordinator.next_record()
            if record is not None:
                records.append(record)
        harness.clock.advance(1.0)
    records += harness.drain(coordinator)
    assert len(records) == 10_000
    assert len({(r.shard_id, r.sequence_number) for r in records}) == 10_000
    seen: dict[str, list[int]] = defaultdict(list)
    for record in records:
        body = record.record["dynamodb"]
        seen[body["Keys"]["pk"]["S"]].append(int(body["NewImage"]["n"]["N"]))
    for k, ns in seen.items():
        assert ns == list(range(1, len(ns) + 1)), k
    assert len(fake.shard_ids()) > 8


def test_trimmed_data_is_reported_and_reading_continues_from_oldest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Trimmed records raise a loud gap (log, counter, on_gap) and reading resumes at the oldest."""
    fake = FakeStreams()
    (root,) = fake.shard_ids()
    written = put_many(fake, 10)
    harness = Harness(fake, limit=3)
    coordinator = harness.open()
    first = harness.take(coordinator, 3)
    fake.trim(before=written[5])
    with caplog.at_level(logging.ERROR, logger="streamodel.stream"):
        rest = harness.drain(coordinator)
    assert [seq(r) for r in first + rest] == written[:3] + written[5:]
    assert coordinator.stats.trimmed_gaps == 1
    assert [shard for shard, _ in harness.gaps] == [root]
    assert any(r.levelno == logging.ERROR and root in r.getMessage() for r in caplog.records)


def test_token_of_trimmed_shard_resumes_at_descendants_with_gap() -> None:
    """A token naming an unfinished shard that was trimmed resumes at its children, loudly."""
    fake = FakeStreams()
    (root,) = fake.shard_ids()
    put_many(fake, 6, keys=3)
    harness = Harness(fake, limit=2)
    coordinator = harness.open()
    harness.take(coordinator, 2)
    token = json.loads(json.dumps(coordinator.token))
    fake.split(root)
    later = put_many(fake, 12, keys=3, start=6)
    fake.trim(root)
    resumed = harness.open(token)
    records = harness.drain(resumed)
    assert sorted(seq(r) for r in records) == sorted(later)
    assert [shard for shard, _ in harness.gaps] == [root]
    assert resumed.stats.trimmed_gaps == 1


def test_trimmed_finished_shard_is_not_a_gap() -> None:
    """A token's finished shard that has been trimmed since is dropped without a gap."""
    fake = FakeStreams()
    (root,) = fake.shard_ids()
    put_many(fake, 3)
    fake.split(root)
    harness = Harness(fake)
    coordinator = harness.open()
    harness.drain(coordinator)
    token = coordinator.token
    assert token["shards"][root]["done"] is True
    later = put_many(fake, 4, keys=2, start=3)
    fake.trim(root)
    resumed = harness.open(token)
    assert sorted(seq(r) for r in harness.drain(resumed)) == sorted(later)
    assert harness.gaps == [] and resumed.stats.trimmed_gaps == 0


def test_throttling_is_retried_without_loss_or_repeat() -> None:
    """LimitExceededException on every operation is retried and nothing is lost or repeated."""
    fake = FakeStreams(max_page_size=4)
    written = put_many(fake, 20)
    for operation in ("DescribeStream", "GetShardIterator", "GetRecords"):
        fake.fail_next(operation, "LimitExceededException", times=3)
    harness = Harness(fake)
    records = harness.drain(harness.open())
    assert [seq(r) for r in records] == written
    assert fake.calls["GetShardIterator"] == 4


def test_throttling_that_outlives_retries_backs_off_and_counts() -> None:
    """A ThrottledError escaping the transport's retries is counted and retried later."""
    fake = FakeStreams(max_page_size=4)
    written = put_many(fake, 10)
    harness = Harness(fake, policy=RetryPolicy(attempts=2, base=0.0001, max_wait=0.001))
    coordinator = harness.open()
    fake.fail_next("GetRecords", "LimitExceededException", times=5)
    assert coordinator.next_record() is None
    assert coordinator.stats.throttled == 1
    records = harness.drain(coordinator)
    assert [seq(r) for r in records] == written
    assert coordinator.stats.throttled == 2  # 5 failures, 2 attempts per call: 2, 2, 1+ok


def test_expired_iterators_are_renewed_without_loss_or_repeat() -> None:
    """An expired iterator is renewed after the last record handed out: no loss, no repeat."""
    fake = FakeStreams()
    written = put_many(fake, 12)
    harness = Harness(fake, limit=5)
    coordinator = harness.open()
    first = harness.take(coordinator, 5)
    fake.expire_iterators()
    rest = harness.drain(coordinator)
    assert [seq(r) for r in first + rest] == written
    assert coordinator.stats.expired_iterators == 1
    renewal = [p for op, p in harness.transport.requests if op == "GetShardIterator"][-1]
    assert renewal["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
    assert renewal["SequenceNumber"] == written[4]


def test_heartbeat_renews_only_old_iterators_without_reading() -> None:
    """heartbeat() renews iterators older than ten minutes from the position, reading nothing."""
    fake = FakeStreams()
    written = put_many(fake, 10)
    harness = Harness(fake, limit=5)
    coordinator = harness.open()
    first = harness.take(coordinator, 2)
    harness.clock.advance(300)
    assert coordinator.heartbeat() == 0
    harness.clock.advance(301)
    calls = fake.calls["GetRecords"]
    assert coordinator.heartbeat() == 1
    assert fake.calls["GetRecords"] == calls
    assert coordinator.stats.iterators_renewed == 1
    rest = harness.drain(coordinator)
    assert [seq(r) for r in first + rest] == written
    renewal = [p for op, p in harness.transport.requests if op == "GetShardIterator"][1]
    # Renewed after the page already fetched (records 3 to 5 were still to be handed out).
    assert renewal["SequenceNumber"] == written[4]


def test_heartbeat_renewal_survives_expiry() -> None:
    """After a heartbeat, the fresh iterator keeps working when the old ones expire."""
    fake = FakeStreams()
    written = put_many(fake, 10)
    harness = Harness(fake, limit=5)
    coordinator = harness.open()
    first = harness.take(coordinator, 5)
    harness.clock.advance(700)
    fake.expire_iterators()
    assert coordinator.heartbeat() == 1
    rest = harness.drain(coordinator)
    assert [seq(r) for r in first + rest] == written
    assert coordinator.stats.expired_iterators == 0


@pytest.mark.parametrize("taken", [0, 1, 3, 7, 8, 12, 20])
def test_token_round_trip_resumes_exactly(taken: int) -> None:
    """A token through json resumes right after the last record handed out, also mid-page."""
    fake = FakeStreams(shards=2)
    written = put_many(fake, 20, keys=9)
    harness = Harness(fake, limit=4)
    coordinator = harness.open()
    first = harness.take(coordinator, taken)
    token = json.loads(json.dumps(coordinator.token))
    for entry in token["shards"].values():
        assert entry["after"] is None or len(entry["after"]) == 40
    resumed = harness.open(token)
    rest = harness.drain(resumed)
    assert sorted(seq(r) for r in first + rest) == sorted(written)
    assert len(first) + len(rest) == 20
    coordinator.move_to(token)
    assert sorted(seq(r) for r in harness.drain(coordinator)) == sorted(seq(r) for r in rest)


def test_small_sequence_numbers_are_sent_with_21_digits() -> None:
    """Small, zero-padded sequence numbers (DynamoDB Local's) resume with a valid 21-digit form."""
    fake = FakeStreams(first_sequence=1)
    written = put_many(fake, 6)
    assert written[0] == "000000000000000000002"
    harness = Harness(fake, limit=2)
    coordinator = harness.open()
    first = harness.take(coordinator, 3)
    resumed = harness.open(json.loads(json.dumps(coordinator.token)))
    assert [seq(r) for r in first + harness.drain(resumed)] == written
    requests = [p for op, p in harness.transport.requests if op == "GetShardIterator"]
    assert requests[-1]["SequenceNumber"] == written[2]


def test_token_after_split_starts_children_at_trim_horizon() -> None:
    """Resuming after a finished parent reads its children from their first record."""
    fake = FakeStreams()
    (root,) = fake.shard_ids()
    put_many(fake, 3, keys=4)
    fake.split(root)
    later = put_many(fake, 8, keys=4, start=3)
    harness = Harness(fake)
    coordinator = harness.open()
    harness.take(coordinator, 3)
    token = json.loads(json.dumps(coordinator.token))
    assert token["shards"][root]["done"] is True
    resumed = harness.open(token)
    assert sorted(seq(r) for r in harness.drain(resumed)) == sorted(later)
    requests = [p for op, p in harness.transport.requests if op == "GetShardIterator"]
    assert all(p["ShardIteratorType"] != "AFTER_SEQUENCE_NUMBER" for p in requests)


def test_latest_sees_only_records_put_after_opening() -> None:
    """'latest' skips existing records and closed shards, and sees records put after opening."""
    fake = FakeStreams()
    (root,) = fake.shard_ids()
    put_many(fake, 5, keys=4)
    fake.split(root)
    put_many(fake, 5, keys=4, start=5)
    harness = Harness(fake)
    coordinator = harness.open("latest")
    assert coordinator.shards[root].done
    new = put_many(fake, 6, keys=4, start=10)
    assert sorted(seq(r) for r in harness.drain(coordinator)) == sorted(new)


def test_datetime_position_skips_older_records() -> None:
    """An aware datetime position delivers only records created at or after it."""
    base = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    fake = FakeStreams()
    written = [
        seq(fake.put(key(0), new_image=image(0, n), at=base + timedelta(minutes=n)))
        for n in range(10)
    ]
    harness = Harness(fake, limit=3)
    since = (base + timedelta(minutes=6)).astimezone(timezone(timedelta(hours=2)))
    coordinator = harness.open(since)
    assert [seq(r) for r in harness.take(coordinator, 1)] == written[6:7]
    token = json.loads(json.dumps(coordinator.token))
    assert token["since"] is not None
    assert [seq(r) for r in harness.drain(coordinator)] == written[7:]
    assert coordinator.stats.skipped == 6
    with pytest.raises(InvalidPositionError, match="naive"):
        harness.open(datetime(2024, 3, 1, 12, 0))


def test_datetime_position_keeps_records_of_the_same_second() -> None:
    """Records stamped in the same second as the position are delivered, not skipped."""
    base = datetime(2024, 3, 1, 12, 0, 0, tzinfo=UTC)
    fake = FakeStreams()
    fake.put(key(0), new_image=image(0, 0), at=base - timedelta(seconds=1))
    same = seq(fake.put(key(0), new_image=image(0, 1), at=base + timedelta(milliseconds=900)))
    harness = Harness(fake)
    coordinator = harness.open(base + timedelta(milliseconds=500))
    assert [seq(r) for r in harness.drain(coordinator)] == [same]


def _valid_token(fake: FakeStreams) -> dict[str, Any]:
    (root,) = fake.shard_ids()
    return {
        "v": 1,
        "stream_arn": fake.stream_arn,
        "since": None,
        "shards": {root: {"after": None, "done": False, "parent": None, "start": "trim_horizon"}},
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.update(v=2), "'v'"),
        (lambda t: t.update(v=True), "'v'"),
        (lambda t: t.pop("v"), "'v'"),
        (lambda t: t.update(stream_arn="arn:aws:dynamodb:x:1:table/o/stream/1"), "stream_arn"),
        (lambda t: t.update(shards=[]), "'shards'"),
        (lambda t: t.update(since="yesterday"), "'since'"),
        (lambda t: t.update(since="2024-01-01T00:00:00"), "naive"),
        (lambda t: next(iter(t["shards"].values())).update(after="12ab"), "'after'"),
        (lambda t: next(iter(t["shards"].values())).update(after=123), "'after'"),
        (lambda t: next(iter(t["shards"].values())).update(after="1" * 41), "'after'"),
        (lambda t: next(iter(t["shards"].values())).update(done="yes"), "'done'"),
        (lambda t: next(iter(t["shards"].values())).update(parent=5), "'parent'"),
        (lambda t: next(iter(t["shards"].values())).update(start="AT"), "'start'"),
        (lambda t: t["shards"].update({"": {"done": False}}), "shard ids"),
        (lambda t: t["shards"].update({"x": "y"}), "not a dict"),
    ],
)
def test_malformed_tokens_are_rejected(change: Any, message: str) -> None:
    """Tokens with wrong types, another stream's ARN or bad sequence numbers raise, naming it."""
    fake = FakeStreams()
    harness = Harness(fake)
    coordinator = harness.open(_valid_token(fake))
    token = _valid_token(fake)
    change(token)
    with pytest.raises(InvalidPositionError, match=message):
        coordinator.move_to(token)
    with pytest.raises(InvalidPositionError):
        harness.open(token)


@pytest.mark.parametrize("position", ["TRIM_HORIZON", "earliest", 42, None, ["latest"]])
def test_unknown_positions_are_rejected(position: Any) -> None:
    """Anything but the documented positions raises InvalidPositionError."""
    harness = Harness(FakeStreams())
    with pytest.raises(InvalidPositionError):
        harness.open(position)


def test_empty_polls_back_off_while_a_busy_shard_is_read_at_full_speed() -> None:
    """Idle shards are polled less and less often; a shard with records is never held back."""
    fake = FakeStreams(shards=2)
    busy, idle = fake.shard_ids()
    for n in range(3000):
        fake.put(key(0), new_image=image(0, n), shard_id=busy)
    harness = Harness(fake, limit=100)
    coordinator = harness.open()
    records = []
    for _ in range(3000):
        record = coordinator.next_record()
        assert record is not None
        records.append(record)
        harness.clock.advance(0.001)
    assert harness.clock.slept == []
    busy_calls = coordinator.stats.get_records_calls - coordinator.stats.empty_polls
    assert busy_calls == 30
    assert coordinator.stats.empty_polls < 10
    before = coordinator.stats.get_records_calls
    nones = [coordinator.next_record() for _ in range(2000)]
    assert nones == [None] * 2000
    elapsed = sum(harness.clock.slept)
    polls = coordinator.stats.get_records_calls - before
    # Two shards polled at most about once a second each once the backoff has grown.
    assert polls <= 2 * (elapsed / 1.0) + 20, (polls, elapsed)
    assert max(harness.clock.slept) <= 0.05
    fake.put(key(1), new_image=image(1, 1), shard_id=idle)
    harness.clock.advance(1.0)
    assert coordinator.next_record() is not None


def test_missing_shard_answer_leads_to_a_new_description() -> None:
    """ResourceNotFound for a still-listed shard re-describes and reads on, losing nothing."""
    fake = FakeStreams()
    written = put_many(fake, 5)
    harness = Harness(fake)
    coordinator = harness.open()
    fake.fail_next("GetShardIterator", "ResourceNotFoundException")
    harness.clock.advance(2.0)
    assert coordinator.next_record() is None
    assert fake.calls["DescribeStream"] == 2
    assert [seq(r) for r in harness.drain(coordinator)] == written
    assert harness.gaps == []


def test_failing_gap_handler_leaves_the_position() -> None:
    """An on_gap that raises stops reading; the next read reports the same gap again."""
    fake = FakeStreams()
    written = put_many(fake, 6)
    harness = Harness(fake, limit=2)
    calls: list[str] = []

    def stop(shard_id: str, detail: str) -> None:
        calls.append(detail)
        raise RuntimeError("stop")

    coordinator = harness.open(on_gap=stop)
    harness.take(coordinator, 2)
    fake.trim(before=written[4])
    for _ in range(2):
        with pytest.raises(RuntimeError):
            coordinator.next_record()
    assert len(calls) == 2
    assert coordinator.token["shards"][fake.shard_ids()[0]]["after"] == written[1].zfill(40)


def test_missing_stream_raises() -> None:
    """A stream that does not exist raises ResourceNotFoundError, for the caller to re-describe."""
    fake = FakeStreams()
    harness = Harness(fake)
    with pytest.raises(ResourceNotFoundError):
        Coordinator(harness.transport, fake.stream_arn + "-other", "trim_horizon")
    coordinator = harness.open()
    fake.stream_arn += "-moved"
    harness.clock.advance(20)
    with pytest.raises(ResourceNotFoundError):
        coordinator.next_record()


def test_limit_is_sent_and_validated() -> None:
    """GetRecords carries the configured Limit; limits outside 1..1000 are refused."""
    fake = FakeStreams()
    put_many(fake, 3)
    harness = Harness(fake, limit=7)
    harness.drain(harness.open())
    limits = {p["Limit"] for op, p in harness.transport.requests if op == "GetRecords"}
    assert limits == {7}
    with pytest.raises(ValueError):
        harness.open(limit=0)
    with pytest.raises(ValueError):
        harness.open(limit=1001)
