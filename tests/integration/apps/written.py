"""Reading the lines the test apps append to ``STREAMODEL_TEST_OUT`` while they run."""

from __future__ import annotations

from pathlib import Path


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
