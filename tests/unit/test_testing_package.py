"""``streamodel.testing`` as a package: its names, its import cost, and the old import paths
(``streamodel.local`` kept; ``streamodel.testing_http`` and the emulator's old home deprecated)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import pytest

import streamodel.testing
from streamodel.testing import event_source_mapping, fake_streams, http, local
from streamodel.testing.plugin import _tables_named


def _fresh_import(monkeypatch: pytest.MonkeyPatch, name: str) -> object:
    """Import ``name`` again as if for the first time (the original module is restored after)."""
    monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module(name)


def test_helpers_are_names_of_the_package() -> None:
    """Every helper is reachable as streamodel.testing.<name>, the same object as in its module."""
    assert streamodel.testing.FakeStreams is fake_streams.FakeStreams
    assert streamodel.testing.FakeStreamsServer is http.FakeStreamsServer
    assert streamodel.testing.DynamoDBLocal is local.DynamoDBLocal
    assert streamodel.testing.DynamoDBLocalError is local.DynamoDBLocalError
    assert streamodel.testing.LocalEventSourceMapping is (
        event_source_mapping.LocalEventSourceMapping
    )
    assert streamodel.testing.Invocation is event_source_mapping.Invocation
    assert set(streamodel.testing.__all__) <= set(dir(streamodel.testing))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = streamodel.testing.Nope  # type: ignore[attr-defined]


def test_from_streamodel_testing_import_fake_streams_does_not_warn() -> None:
    """``from streamodel.testing import FakeStreams`` (the path users have) works silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from streamodel.testing import FakeStreams
    assert FakeStreams is fake_streams.FakeStreams


def test_importing_the_plugin_package_costs_nothing_beyond_streamodel() -> None:
    """``import streamodel.testing`` (done by pytest in every run) loads no helper module and
    neither pytest nor boto3 beyond what ``import streamodel`` itself loads."""
    script = (
        "import sys, streamodel; before = set(sys.modules); import streamodel.testing; "
        "print(sorted(set(sys.modules) - before))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "['streamodel.testing']"


def test_streamodel_local_reexports_without_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """The documented ``streamodel.local`` still gives DynamoDBLocal and friends, silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        module = _fresh_import(monkeypatch, "streamodel.local")
    assert module.DynamoDBLocal is local.DynamoDBLocal  # type: ignore[attr-defined]
    assert module.install is local.install  # type: ignore[attr-defined]
    assert module.parse_java_major('version "17.0.2"') == 17  # type: ignore[attr-defined]


def test_testing_http_module_works_and_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Importing ``streamodel.testing_http`` warns with the new path and still gives the server."""
    with pytest.warns(DeprecationWarning, match=r"streamodel\.testing\.http"):
        module = _fresh_import(monkeypatch, "streamodel.testing_http")
    assert module.FakeStreamsServer is http.FakeStreamsServer  # type: ignore[attr-defined]


@pytest.mark.parametrize("name", ["LocalEventSourceMapping", "Invocation"])
def test_emulator_from_aws_lambda_works_and_warns(name: str) -> None:
    """The emulator's names still resolve from streamodel.stream.aws_lambda, with a warning
    naming streamodel.testing."""
    from streamodel.stream import aws_lambda

    with pytest.warns(DeprecationWarning, match=rf"streamodel\.testing\.{name}"):
        value = getattr(aws_lambda, name)
    assert value is getattr(event_source_mapping, name)


def test_emulator_from_streamodel_stream_works_and_warns() -> None:
    """``from streamodel.stream import LocalEventSourceMapping`` still works, with a warning."""
    with pytest.warns(DeprecationWarning, match=r"streamodel\.testing\.LocalEventSourceMapping"):
        from streamodel.stream import LocalEventSourceMapping
    assert LocalEventSourceMapping is event_source_mapping.LocalEventSourceMapping


def test_other_missing_names_still_raise_attribute_error() -> None:
    """The deprecation hooks answer only for the moved names."""
    import streamodel.stream
    from streamodel.stream import aws_lambda

    with pytest.raises(AttributeError):
        _ = streamodel.stream.Nope  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        _ = aws_lambda.Nope  # type: ignore[attr-defined]


def test_janitor_finds_the_tables_of_every_request_shape() -> None:
    """The plugin notes tables named by single-item, batch and transaction requests."""
    assert _tables_named({"TableName": "a", "Key": {}}) == {"a"}
    assert _tables_named({"RequestItems": {"b": [], "c": []}}) == {"b", "c"}
    transaction = {
        "TransactItems": [
            {"Put": {"TableName": "d", "Item": {}}},
            {"ConditionCheck": {"TableName": "e", "Key": {}}},
            {"Get": {"TableName": "f", "Key": {}}},
        ]
    }
    assert _tables_named(transaction) == {"d", "e", "f"}
