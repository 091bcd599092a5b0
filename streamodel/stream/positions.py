"""Where reading starts: the accepted start positions, checked once, with clear errors.

A stream reader (``engine.stream(Model, position)``) starts at ``"trim_horizon"``,
``"latest"``, an aware datetime or a token (``stream.token``). A worker group with no
checkpoints (``Worker(start=...)``) takes the same, plus ``"snapshot"``. Anything else is
refused with :class:`~streamodel.exceptions.InvalidPositionError` (a ``ValueError``) naming
what was given, where, and the accepted values: a typo such as ``"trim-horizon"`` or
``"TRIM_HORIZON"`` must never quietly mean "latest" and skip a day of history.

Pure: no I/O. The coordinator checks a token's contents against its stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from streamodel.exceptions import InvalidPositionError

__all__ = [
    "STREAM_POSITIONS",
    "WORKER_STARTS",
    "check_stream_position",
    "check_worker_start",
]

STREAM_POSITIONS: tuple[str, ...] = ("trim_horizon", "latest")
WORKER_STARTS: tuple[str, ...] = ("trim_horizon", "latest", "snapshot")


def _accepted(names: tuple[str, ...]) -> str:
    return ", ".join(repr(n) for n in names) + ", an aware datetime or a token (stream.token)"


def _hint(value: str, names: tuple[str, ...]) -> str:
    """' (did you mean 'trim_horizon'?)' for a near miss in case or separators."""
    folded = value.strip().lower().replace("-", "_").replace(" ", "_")
    return f" (did you mean {folded!r}?)" if folded in names and folded != value else ""


def _check(value: object, where: str, names: tuple[str, ...]) -> Any:
    if isinstance(value, str):
        if value in names:
            return value
        raise InvalidPositionError(
            f"{where}={value!r} is not a start position{_hint(value, names)}; "
            f"expected {_accepted(names)}"
        )
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidPositionError(
                f"{where}={value.isoformat()!r} is a naive datetime; give it a timezone "
                f"(expected {_accepted(names)})"
            )
        return value
    if isinstance(value, Mapping):
        if not isinstance(value.get("shards"), Mapping) or "stream_arn" not in value:
            raise InvalidPositionError(
                f"{where}: the dict {dict(value)!r} is not a stream token "
                f"(expected {_accepted(names)})"
            )
        return value
    raise InvalidPositionError(
        f"{where}={value!r} (a {type(value).__name__}) is not a start position; "
        f"expected {_accepted(names)}"
    )


def check_worker_start(start: object) -> Any:
    """``start`` if ``Worker(start=...)`` accepts it; else InvalidPositionError."""
    return _check(start, "Worker(start=...)", WORKER_STARTS)


def check_stream_position(position: object, where: str = "engine.stream(model, position)") -> Any:
    """``position`` if a stream reader accepts it; else InvalidPositionError."""
    return _check(position, where, STREAM_POSITIONS)
