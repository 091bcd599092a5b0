"""Reading the lines the test apps append to ``STREAMODEL_TEST_OUT`` while they run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

TRANSPORT_NAMES = {"LeanTransport": "lean", "BotocoreTransport": "botocore"}


def transport_name(engine: Any) -> str:
    """``"lean"`` or ``"botocore"``: the transport under ``engine``'s retry layer (else the
    class name of whatever transport it is)."""
    inner = type(getattr(engine.transport, "inner", engine.transport)).__name__
    return TRANSPORT_NAMES.get(inner, inner)


def announce_transport(engine: Any) -> None:
    """Append ``<pid> <transport>`` to ``$STREAMODEL_TEST_TRANSPORT_OUT`` (when set), so a
    test can check which transport a child process really used."""
    path = os.environ.get("STREAMODEL_TEST_TRANSPORT_OUT")
    if path:
        with open(path, "a") as out:
            out.write(f"{os.getpid()} {transport_name(engine)}\n")


def complete_lines(path: Path) -> list[str]:
    """The whole lines written so far. An append that crosses a page boundary can be seen
    half done by a concurrent reader, so a last line without its newline is left out: it is
    read in full next time."""
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        lines.pop()
    return lines
