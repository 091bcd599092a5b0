"""Graceful shutdown: SIGTERM and SIGINT ask a running consumer to stop."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["stop_on_signals"]


@contextmanager
def stop_on_signals(stop: Callable[[], Any]) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT call ``stop()`` (main thread only: elsewhere Python
    cannot install handlers, and nothing is changed); the previous handlers come back on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, lambda *_: stop())
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
