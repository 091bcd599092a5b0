"""Helpers for testing code that uses streamodel, and the streamodel pytest plugin.

- :class:`FakeStreams` (:mod:`streamodel.testing.fake_streams`): an in-memory DynamoDB Streams
  service behind the transport protocol, with splits, trimming and fault injection;
  :class:`FakeStreamsServer` (:mod:`streamodel.testing.http`) serves one over HTTP for tests
  that run workers in other processes.
- :class:`DynamoDBLocal` (:mod:`streamodel.testing.local`, also :mod:`streamodel.local`): AWS's
  DynamoDB Local as a child process.
- :class:`LocalEventSourceMapping` (:mod:`streamodel.testing.event_source_mapping`): Lambda's
  DynamoDB Streams event source mapping, emulated over real streams.
- Fixtures (:mod:`streamodel.testing.plugin`): ``streamodel_local``, ``streamodel_engine`` and
  ``streamodel_engine_factory``, available in every pytest run with no import, because this
  package is a ``pytest11`` entry point.

pytest imports this package in every test run of every project that has streamodel
installed, so importing it must cost nothing: the helpers above are loaded on first access
(PEP 562 ``__getattr__``), and the fixtures module, which needs pytest, is registered from the
``pytest_configure`` hook, so ``from streamodel.testing import FakeStreams`` works where pytest
is not installed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from streamodel.testing.event_source_mapping import Invocation, LocalEventSourceMapping
    from streamodel.testing.fake_streams import FakeStreams
    from streamodel.testing.http import FakeStreamsServer
    from streamodel.testing.local import DynamoDBLocal, DynamoDBLocalError

__all__ = [
    "DynamoDBLocal",
    "DynamoDBLocalError",
    "FakeStreams",
    "FakeStreamsServer",
    "Invocation",
    "LocalEventSourceMapping",
]

# name -> the submodule that defines it, imported the first time the name is read.
_LAZY = {
    "DynamoDBLocal": "streamodel.testing.local",
    "DynamoDBLocalError": "streamodel.testing.local",
    "FakeStreams": "streamodel.testing.fake_streams",
    "FakeStreamsServer": "streamodel.testing.http",
    "Invocation": "streamodel.testing.event_source_mapping",
    "LocalEventSourceMapping": "streamodel.testing.event_source_mapping",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later reads skip this hook
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def pytest_configure(config: pytest.Config) -> None:
    """Register the fixtures (pytest calls this hook of every plugin before collecting)."""
    from streamodel.testing import plugin

    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "streamodel.testing.plugin")
