"""Every operation an engine sends, observed: OpenTelemetry client spans and request metrics.

:class:`InstrumentedTransport` wraps an engine's transport *outside* its retries, so one
call is one logical operation (as a user sees it: its retries and their waits included).
It does two things, each only when asked:

- a ``CLIENT`` span per operation (:mod:`streamodel.tracing`), when the OpenTelemetry API is
  installed: the :class:`~streamodel.Engine` wraps its transport at construction then
  (:func:`instrumented`), and leaves it as it is otherwise;
- :class:`RequestListener` calls (operation, table, seconds, error; and each retry with the
  failure that caused it), for the request metrics of a worker's Prometheus endpoint
  (:func:`add_listener` wraps the engine's transport on first use).

Retries are seen through the engine's :class:`~streamodel.transport.RetryPolicy`
``on_retry`` hook, which this module sets (keeping a hook the program set, called first).
The wrapper forwards every other attribute to the transport it wraps, so
``engine.transport.inner`` and ``engine.transport.policy`` read as before.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from typing import Any, Protocol

from streamodel import tracing
from streamodel.transport.base import Service, Transport
from streamodel.transport.observed import table_of

__all__ = [
    "InstrumentedTransport",
    "RequestListener",
    "add_listener",
    "instrumented",
    "remove_listener",
]


class RequestListener(Protocol):
    """What :class:`InstrumentedTransport` tells about each operation. Called on the thread
    that sent it; must be quick and thread-safe, and must not raise."""

    def request(
        self, operation: str, table: str | None, seconds: float, error: BaseException | None
    ) -> None:
        """One operation ended, after ``seconds`` (retries included), with ``error`` or not."""

    def retry(self, operation: str, error: BaseException) -> None:
        """The operation is about to be tried again after ``error``."""


class _Call:
    """The operation running on this thread or task (for the retry hook)."""

    __slots__ = ("attempt", "listeners", "span")

    def __init__(self, listeners: tuple[RequestListener, ...]) -> None:
        self.listeners = listeners
        self.span: Any = None
        self.attempt = 1


_ACTIVE: ContextVar[_Call | None] = ContextVar("streamodel_instrumented_call", default=None)


class InstrumentedTransport:
    """Wraps a transport (an engine's ``RetryingTransport``): spans and listeners per call."""

    def __init__(self, wrapped: Transport, *, traced: bool = False) -> None:
        self._wrapped = wrapped
        self._traced = traced
        self._lock = threading.Lock()
        self.listeners: tuple[RequestListener, ...] = ()
        self._endpoints: dict[str, str | None] = {}

    def __getattr__(self, name: str) -> Any:
        # Only reached for names this class does not have: read them from the wrapped one.
        if name.startswith("__") or name in ("_wrapped", "_traced", "listeners"):
            raise AttributeError(name)
        return getattr(self._wrapped, name)

    @property
    def wrapped(self) -> Transport:
        return self._wrapped

    def add(self, listener: RequestListener) -> None:
        with self._lock:
            if listener not in self.listeners:
                self.listeners = (*self.listeners, listener)

    def remove(self, listener: RequestListener) -> None:
        with self._lock:
            self.listeners = tuple(x for x in self.listeners if x is not listener)

    def call(self, service: Service, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        tracer = tracing.active_tracer() if self._traced else None
        listeners = self.listeners
        if tracer is None and not listeners:
            return self._wrapped.call(service, operation, params)
        state = _Call(listeners)
        token = _ACTIVE.set(state)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            if tracer is None:
                return self._wrapped.call(service, operation, params)
            return tracing.traced_call(
                tracer,
                lambda: self._wrapped.call(service, operation, params),
                service,
                operation,
                params,
                lambda: self._endpoint(service),
                lambda span: setattr(state, "span", span),
            )
        except BaseException as failure:
            error = failure
            raise
        finally:
            _ACTIVE.reset(token)
            if listeners:
                seconds = time.perf_counter() - started
                table = table_of(params)
                for listener in listeners:
                    listener.request(operation, table, seconds, error)

    def _endpoint(self, service: str) -> str | None:
        """The URL ``service``'s requests go to, found once (for ``server.address``)."""
        if service in self._endpoints:
            return self._endpoints[service]
        url = _endpoint_of(self._wrapped, service)
        self._endpoints[service] = url
        return url


def _endpoint_of(transport: Any, service: str) -> str | None:
    """Walk the ``.inner`` chain to a transport that knows its endpoint (lean or botocore)."""
    seen = 0
    while transport is not None and seen < 10:
        seen += 1
        endpoint = getattr(transport, "endpoint", None)
        if callable(endpoint):
            url = endpoint(service)
            if url:
                return str(url)
        client = getattr(transport, "client", None)
        if callable(client):
            return str(client(service).meta.endpoint_url)
        botocore = getattr(transport, "botocore", None)
        if botocore is not None and callable(getattr(botocore, "client", None)):
            return str(botocore.client(service).meta.endpoint_url)
        transport = getattr(transport, "inner", None)
    return None


def _on_retry(operation: str, error: BaseException) -> None:
    """The retry policy's hook: tell the operation running here (span event, listeners)."""
    state = _ACTIVE.get()
    if state is None:
        return
    state.attempt += 1
    tracing.retry_event(state.span, error, state.attempt)
    for listener in state.listeners:
        listener.retry(operation, error)


def _hook_retries(policy: Any) -> None:
    """Point ``policy.on_retry`` at this module (once), keeping a hook set before."""
    if policy is None or not hasattr(policy, "on_retry"):
        return
    previous = policy.on_retry
    if previous is _on_retry or getattr(previous, "_streamodel_chained", False):
        return
    if previous is None:
        policy.on_retry = _on_retry
        return

    def chained(operation: str, error: BaseException) -> None:
        previous(operation, error)
        _on_retry(operation, error)

    chained._streamodel_chained = True  # type: ignore[attr-defined]
    policy.on_retry = chained


def instrumented(transport: Transport, policy: Any = None) -> Transport:
    """What an :class:`~streamodel.Engine` uses as its transport: ``transport`` wrapped for
    spans when the OpenTelemetry API is installed, else ``transport`` itself (no cost)."""
    if tracing.api() is None:
        return transport
    _hook_retries(policy)
    return InstrumentedTransport(transport, traced=True)


def _instrument(engine: Any) -> InstrumentedTransport:
    transport = engine.transport
    if isinstance(transport, InstrumentedTransport):
        return transport
    wrapper = InstrumentedTransport(transport, traced=tracing.api() is not None)
    engine.transport = wrapper
    _hook_retries(getattr(engine, "retry", None))
    return wrapper


def add_listener(engine: Any, listener: RequestListener) -> None:
    """Tell ``listener`` about every operation ``engine`` sends from now on."""
    _instrument(engine).add(listener)


def remove_listener(engine: Any, listener: RequestListener) -> None:
    transport = engine.transport
    if isinstance(transport, InstrumentedTransport):
        transport.remove(listener)
