"""Compiling generated source: the one place where streamodel turns source text into functions.

Generated functions (see :mod:`streamodel._typegen`, :mod:`streamodel._compiled` and
:mod:`streamodel._wire`) are built from fixed templates only, never from data, and their
source is registered with :mod:`linecache` under a name of its own, so tracebacks and
debuggers show the generated lines instead of ``<string>``.
"""

from __future__ import annotations

import itertools
import linecache
from typing import Any

__all__ = ["define"]

_GENERATED = itertools.count(1)


def define(source: str, ns: dict[str, Any], name: str, what: str) -> Any:
    """Compile generated ``source`` into ``ns`` and return its function ``name``.

    The source is registered with :mod:`linecache` under a name of its own (``what`` and a
    serial number).
    """
    filename = f"<streamodel generated: {what} #{next(_GENERATED)}>"
    # mtime None: linecache.checkcache() keeps the entry (there is no file to compare with).
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    exec(compile(source, filename, "exec"), ns)
    return ns[name]
