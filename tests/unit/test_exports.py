"""The public names of ``streamodel`` and its error hierarchy."""

from __future__ import annotations

import blinker
import marshmallow
import pytest

import streamodel
from streamodel import signals

API_NAMES = [
    "Engine",
    "Column",
    "new_base",
    "BaseModel",
    "GlobalSecondaryIndex",
    "LocalSecondaryIndex",
    "String",
    "Integer",
    "Number",
    "Float",
    "Boolean",
    "Binary",
    "UUID",
    "DateTime",
    "Timestamp",
    "Enum",
    "Set",
    "List",
    "Map",
    "JSON",
    "StreamodelError",
    "ConditionFailedError",
    "StaleVersionError",
    "MissingObjectsError",
    "TableMismatchError",
    "InvalidModelError",
    "InvalidConditionError",
    "TransactionCanceledError",
    "ValidationError",
    "signals",
]
TYPES = API_NAMES[6:20]
ERRORS = API_NAMES[20:29]
SIGNALS = [
    "model_bound",
    "before_save",
    "object_saved",
    "before_delete",
    "object_deleted",
    "object_loaded",
    "object_modified",
    "change_received",
]


def test_all_is_sorted_and_resolves() -> None:
    """streamodel.__all__ is in plain sorted() order and every name exists."""
    assert streamodel.__all__ == sorted(streamodel.__all__)
    assert len(set(streamodel.__all__)) == len(streamodel.__all__)
    for name in streamodel.__all__:
        assert hasattr(streamodel, name), name


@pytest.mark.parametrize("name", API_NAMES)
def test_api_names_importable_and_exported(name: str) -> None:
    """Every name API.md section 2 lists is importable from streamodel and in __all__."""
    assert getattr(streamodel, name) is not None
    assert name in streamodel.__all__


@pytest.mark.parametrize("name", TYPES)
def test_types_are_marshmallow_fields(name: str) -> None:
    """Each of the 14 types is a marshmallow field class."""
    assert len(TYPES) == 14
    assert issubclass(getattr(streamodel, name), marshmallow.fields.Field)


@pytest.mark.parametrize("name", ERRORS)
def test_errors_subclass_root(name: str) -> None:
    """Every error class subclasses StreamodelError and ends in Error."""
    error = getattr(streamodel, name)
    assert issubclass(error, streamodel.StreamodelError)
    assert name.endswith("Error")


def test_error_hierarchy() -> None:
    """StaleVersion < ConditionFailed, Validation < marshmallow's, definitions < ValueError."""
    assert issubclass(streamodel.StaleVersionError, streamodel.ConditionFailedError)
    assert issubclass(streamodel.ValidationError, marshmallow.ValidationError)
    assert issubclass(streamodel.InvalidModelError, ValueError)
    assert issubclass(streamodel.InvalidConditionError, ValueError)
    assert not issubclass(streamodel.ConditionFailedError, ValueError)


def test_validation_error_keeps_messages_per_field() -> None:
    """streamodel.ValidationError carries per-field messages like marshmallow's."""
    error = streamodel.ValidationError({"name": ["bad"]})
    assert error.messages == {"name": ["bad"]}


def test_signals_module_has_exactly_the_eight_signals() -> None:
    """streamodel.signals defines exactly the 8 blinker signals of API.md section 3."""
    assert streamodel.signals is signals
    assert sorted(signals.__all__) == sorted(SIGNALS)
    found = sorted(n for n, v in vars(signals).items() if isinstance(v, blinker.Signal))
    assert found == sorted(SIGNALS)
    for name in SIGNALS:
        assert getattr(signals, name).name == name


def test_every_error_lives_in_exceptions_and_is_exported() -> None:
    """Every StreamodelError subclass of the package is defined in streamodel.exceptions and
    exported from streamodel, so users catch them from one place."""
    import importlib
    import pkgutil
    import warnings

    import streamodel.exceptions

    # Modules of an optional extra import it at their top; without the extra installed (the
    # lowest-versions venv has none) they cannot be imported, and may define no error.
    extras = {"prometheus_client": "streamodel.stream.prometheus"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the old, moved module paths
        for module in pkgutil.walk_packages(streamodel.__path__, "streamodel."):
            if module.name == "streamodel.__main__":
                continue
            try:
                importlib.import_module(module.name)
            except ModuleNotFoundError as missing:
                assert extras.get(str(missing.name)) == module.name, missing

    def subclasses(cls: type) -> set[type]:
        found = set(cls.__subclasses__())
        for sub in list(found):
            found |= subclasses(sub)
        return found

    errors = {
        cls
        for cls in subclasses(streamodel.StreamodelError)
        if cls.__module__.startswith("streamodel")
    }
    assert {cls.__module__ for cls in errors} == {"streamodel.exceptions"}
    assert sorted(cls.__name__ for cls in errors) == sorted(
        name for name in streamodel.exceptions.__all__ if name != "StreamodelError"
    )
    assert set(streamodel.exceptions.__all__) <= set(streamodel.__all__)
