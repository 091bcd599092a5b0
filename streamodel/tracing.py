"""OpenTelemetry spans for requests and handled changes, when ``opentelemetry-api`` is there.

Install ``streamodel[otel]`` (the API) and configure an SDK as usual (a ``TracerProvider``
with an exporter); nothing else is needed:

- **Every request an engine sends** is a ``CLIENT`` span following OpenTelemetry's database
  semantic conventions for AWS DynamoDB: named ``"<operation> <table>"`` (``"UpdateItem
  orders"``), with ``db.system.name = "aws.dynamodb"``, ``db.operation.name``,
  ``db.collection.name`` (the one table of the request), ``aws.dynamodb.table_names``,
  ``rpc.system = "aws-api"``, ``rpc.service``, ``rpc.method``, ``server.address`` /
  ``server.port``, ``db.operation.batch.size`` for batches and transactions of two or more,
  ``aws.dynamodb.consumed_capacity`` when the request asked for it
  (``ReturnConsumedCapacity``), and on failure ``error.type`` (DynamoDB's error code, else
  the exception's class) with the span's status set to error. As the conventions ask, one
  span covers the whole operation, its retries included: each retry is a ``"retry"`` event
  on the span (with the ``error.type`` that caused it).
- **Every change a** :class:`~streamodel.stream.Worker` **hands to its handlers** is a
  ``CONSUMER`` span ``"process <table>"`` (messaging conventions: ``messaging.operation.type
  = "process"``, ``messaging.destination.name`` the table, ``messaging.destination.partition.id``
  the shard, ``messaging.consumer.group.name`` the group, ``messaging.message.id`` the
  change's event id) with ``streamodel.change.lag_seconds`` (now minus the change's creation
  time, as ``streamodel status`` counts lag), ``streamodel.change.event``, ``.model``,
  ``.sequence_number``. It is the root of its own trace (stream records carry no trace
  context) and is linked to one span per shard (``"shard <table>"``, made the first time the
  process handles a change of that shard), so every change of a shard can be found from it.
  The handlers' own requests are its children. A change that goes to the dead letters gets a
  ``"dead_letter"`` event and an error status.

Nothing here costs anything when the API is not installed: :func:`api` looks for it once
(without importing anything when it is absent), and every entry point returns at once.
``STREAMODEL_TRACING=off`` switches spans off even when the API is installed.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from streamodel.stream.dispatch import DeadLetterInfo
    from streamodel.stream.records import Change

__all__ = [
    "INSTRUMENTATION_NAME",
    "active_tracer",
    "api",
    "configured",
    "error_type",
    "request_tracer",
    "set_tracer_provider",
    "traced_call",
    "traced_dead_letter",
    "traced_dispatch",
]

INSTRUMENTATION_NAME = "streamodel"
_OFF = {"0", "off", "false", "no"}
_SERVICES = {"dynamodb": "DynamoDB", "dynamodbstreams": "DynamoDBStreams"}
# How many shards' link targets a process remembers (shards come and go over days).
_SHARD_LINKS = 4096

F = TypeVar("F", bound=Callable[..., Any])


@functools.cache
def api() -> Any:
    """``opentelemetry.trace`` if the API is installed (and not switched off), else ``None``.

    Looked up once per process; when the package is absent nothing is imported.
    """
    if os.environ.get("STREAMODEL_TRACING", "").strip().lower() in _OFF:
        return None
    try:
        if importlib.util.find_spec("opentelemetry") is None:
            return None
        from opentelemetry import trace
    except (ImportError, ValueError):
        return None
    return trace


def request_tracer() -> Any:
    """The global tracer of streamodel's spans, or ``None`` without the API.

    A proxy until the program sets its tracer provider: an engine made before the SDK is
    configured traces all the same once it is.
    """
    trace = api()
    if trace is None:
        return None
    return _global_tracer()


@functools.cache
def _global_tracer() -> Any:
    from streamodel import __version__

    return api().get_tracer(INSTRUMENTATION_NAME, __version__)


_override: Any = None


def set_tracer_provider(provider: Any) -> None:
    """Make streamodel's spans with ``provider`` instead of the global tracer provider
    (``None``: the global one again). For tests, and programs that keep providers apart."""
    global _override
    if provider is None:
        _override = None
        return
    from streamodel import __version__

    _override = provider.get_tracer(INSTRUMENTATION_NAME, __version__)


def active_tracer() -> Any:
    """The tracer to make a span with now, or ``None`` when no span should be made: no API,
    or no tracer provider set yet (then even no-op spans are skipped)."""
    if _override is not None:
        return _override
    if not configured():
        return None
    return _global_tracer()


_MISSING = object()


@functools.cache
def _provider_from_environment() -> bool:
    # The API makes the provider named here on the first get_tracer_provider().
    return "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


def configured() -> bool:
    """Whether the program set a tracer provider (an SDK). Until it does, spans are skipped
    outright rather than made as no-op spans, so a request pays about 0.1 microsecond.

    The API keeps the provider in ``opentelemetry.trace._TRACER_PROVIDER`` (``None`` until
    one is set); if a later API stops doing so, the public ``get_tracer_provider()`` answers
    instead (about a microsecond).
    """
    trace = api()
    if trace is None:
        return False
    provider = getattr(trace, "_TRACER_PROVIDER", _MISSING)
    if provider is None and not _provider_from_environment():
        return False
    if provider is _MISSING or provider is None:
        provider = trace.get_tracer_provider()
    return not isinstance(provider, trace.ProxyTracerProvider)


def error_type(error: BaseException) -> str:
    """``error.type``: DynamoDB's error code when there is one, else the exception's class."""
    code = getattr(error, "code", "")
    return str(code) if code else type(error).__qualname__


# -- client spans --------------------------------------------------------------------------


def traced_call(
    tracer: Any,
    call: Callable[[], dict[str, Any]],
    service: str,
    operation: str,
    params: Mapping[str, Any],
    endpoint: Callable[[], str | None],
    on_span: Callable[[Any], None],
) -> dict[str, Any]:
    """Run ``call`` (one operation, retries included) inside its ``CLIENT`` span.

    ``endpoint()`` gives the URL the request went to (looked up after the call, only for a
    recorded span); ``on_span(span)`` hands the span to the caller before the call (retries
    add events to it).
    """
    trace = api()
    tables = _table_names(params)
    attributes: dict[str, Any] = {
        "db.system.name": "aws.dynamodb",
        "db.operation.name": operation,
        "rpc.system": "aws-api",
        "rpc.service": _SERVICES.get(service, service),
        "rpc.method": operation,
    }
    if len(tables) == 1:
        attributes["db.collection.name"] = tables[0]
    name = f"{operation} {tables[0]}" if len(tables) == 1 else operation
    span = tracer.start_span(name, kind=trace.SpanKind.CLIENT, attributes=attributes)
    recording = span.is_recording()
    if recording:
        if tables:
            span.set_attribute("aws.dynamodb.table_names", tables)
        size = _batch_size(params)
        if size >= 2:
            span.set_attribute("db.operation.batch.size", size)
    on_span(span)
    token = _attach(trace, span)
    try:
        result = call()
    except BaseException as error:
        if recording:
            span.set_attribute("error.type", error_type(error))
            span.record_exception(error)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
        raise
    else:
        if recording:
            consumed = result.get("ConsumedCapacity")
            if consumed:
                items = consumed if isinstance(consumed, list) else [consumed]
                span.set_attribute(
                    "aws.dynamodb.consumed_capacity",
                    [json.dumps(item, sort_keys=True, default=str) for item in items],
                )
        return result
    finally:
        _detach(token)
        if recording:
            _set_server(span, endpoint)
        span.end()


def retry_event(span: Any, error: BaseException, attempt: int) -> None:
    """Add a ``retry`` event to a request's span: ``attempt`` is the one about to start."""
    if span is not None and span.is_recording():
        span.add_event("retry", {"error.type": error_type(error), "streamodel.attempt": attempt})


def _table_names(params: Mapping[str, Any]) -> list[str]:
    name = params.get("TableName")
    if name is not None:
        return [str(name)]
    tables: set[str] = set()
    if "RequestItems" in params:
        tables.update(str(t) for t in params["RequestItems"])
    for item in params.get("TransactItems", ()):
        for action in item.values():
            if isinstance(action, Mapping) and action.get("TableName"):
                tables.add(str(action["TableName"]))
    if "StreamArn" in params:
        parts = str(params["StreamArn"]).split("/")
        if len(parts) >= 2:
            tables.add(parts[1])
    return sorted(tables)


def _batch_size(params: Mapping[str, Any]) -> int:
    if "TransactItems" in params:
        return len(params["TransactItems"])
    requests = params.get("RequestItems")
    if not isinstance(requests, Mapping):
        return 0
    size = 0
    for entry in requests.values():
        size += len(entry.get("Keys", ())) if isinstance(entry, Mapping) else len(entry)
    return size


def _set_server(span: Any, endpoint: Callable[[], str | None]) -> None:
    try:
        url = endpoint()
    except Exception:  # the address is a nicety: never fail a request over it
        return
    if not url:
        return
    parts = urlsplit(url)
    if parts.hostname:
        span.set_attribute("server.address", parts.hostname)
        default = 443 if parts.scheme == "https" else 80
        port = parts.port or default
        if port != default:
            span.set_attribute("server.port", port)


def _attach(trace: Any, span: Any) -> Any:
    from opentelemetry import context

    return context.attach(trace.set_span_in_context(span))


def _detach(token: Any) -> None:
    from opentelemetry import context

    context.detach(token)


# -- consumer spans ------------------------------------------------------------------------


def traced_dispatch(dispatch: F) -> F:
    """Decorate ``Worker.dispatch(change, ...)``: each call is the change's ``CONSUMER`` span.

    Without the API this returns ``dispatch`` itself: no wrapper, no cost.
    """
    if api() is None:
        return dispatch

    @functools.wraps(dispatch)
    def traced(worker: Any, change: Change, *args: Any, **kwargs: Any) -> Any:
        tracer = active_tracer()
        if tracer is None:
            return dispatch(worker, change, *args, **kwargs)
        span = _consumer_span(tracer, worker, change)
        trace = api()
        token = _attach(trace, span)
        try:
            delivered = dispatch(worker, change, *args, **kwargs)
        except BaseException as error:
            if span.is_recording():
                span.set_attribute("error.type", error_type(error))
                span.record_exception(error)
                span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))
            raise
        else:
            if span.is_recording():
                span.set_attribute("streamodel.change.delivered", bool(delivered))
            return delivered
        finally:
            _detach(token)
            span.end()

    return traced  # type: ignore[return-value]


def traced_dead_letter(send: F) -> F:
    """Decorate ``Worker.send_dead_letter(info)``: the change's span (the current one) gets a
    ``dead_letter`` event and an error status. Without the API: ``send`` itself."""
    if api() is None:
        return send

    @functools.wraps(send)
    def traced(worker: Any, info: DeadLetterInfo, *args: Any, **kwargs: Any) -> Any:
        trace = api()
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(
                "dead_letter",
                {
                    "error.type": error_type(info.error),
                    "exception.message": str(info.error)[:1000],
                    "streamodel.attempts": info.attempts,
                },
            )
            span.set_attribute("error.type", error_type(info.error))
            span.set_status(trace.Status(trace.StatusCode.ERROR, "dead letter"))
        return send(worker, info, *args, **kwargs)

    return traced  # type: ignore[return-value]


def _consumer_span(tracer: Any, worker: Any, change: Change) -> Any:
    from opentelemetry.context import Context

    trace = api()
    table = _table_of(worker, change)
    attributes: dict[str, Any] = {
        "messaging.system": "aws_dynamodb_streams",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": table,
        "messaging.destination.partition.id": change.shard_id,
        "messaging.consumer.group.name": worker.group,
        "messaging.message.id": change.event_id,
        "streamodel.change.event": change.event,
        "streamodel.change.model": change.model.__name__,
        "streamodel.change.lag_seconds": change_lag(change),
        "streamodel.change.snapshot": bool(getattr(change, "snapshot", False)),
    }
    if change.sequence_number:
        attributes["streamodel.change.sequence_number"] = change.sequence_number
    link = _shard_link(tracer, worker.group, table, change.shard_id)
    return tracer.start_span(
        f"process {table}",
        context=Context(),  # a root: records carry no trace context to continue
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
        links=[link] if link is not None else None,
    )


def change_lag(change: Change) -> float:
    """Seconds between the change's creation and now (``streamodel status``'s lag)."""
    return (datetime.now(UTC) - change.created_at).total_seconds()


def _table_of(worker: Any, change: Change) -> str:
    try:
        return str(worker.engine.table_name(change.model))
    except Exception:
        return change.model.__name__


_links: OrderedDict[tuple[int, str, str, str], Any] = OrderedDict()
_links_lock = threading.Lock()


def _shard_link(tracer: Any, group: str, table: str, shard_id: str) -> Any:
    """The link to the shard's span, made (and ended at once) on first use in this process."""
    from opentelemetry.context import Context

    trace = api()
    key = (id(tracer), group, table, shard_id)
    with _links_lock:
        link = _links.get(key)
        if link is not None:
            _links.move_to_end(key)
            return link
    span = tracer.start_span(
        f"shard {table}",
        context=Context(),
        kind=trace.SpanKind.INTERNAL,
        attributes={
            "messaging.system": "aws_dynamodb_streams",
            "messaging.destination.name": table,
            "messaging.destination.partition.id": shard_id,
            "messaging.consumer.group.name": group,
        },
    )
    span.end()
    context = span.get_span_context()
    if not context.is_valid:
        return None  # no SDK yet: try again with the next change
    link = trace.Link(context, {"messaging.destination.partition.id": shard_id})
    with _links_lock:
        _links[key] = link
        while len(_links) > _SHARD_LINKS:
            _links.popitem(last=False)
    return link
