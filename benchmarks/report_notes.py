"""Hand-written notes in a generated benchmark report survive a rerun of the benchmark.

A report marks the place for notes with ``NOTES`` (an empty block); when the file already exists, the block
there, with whatever was written into it by hand, replaces the new report's empty one.
"""

from __future__ import annotations

from pathlib import Path

OPEN, CLOSE = "<!-- notes -->", "<!-- /notes -->"
NOTES = f"{OPEN}\n{CLOSE}"


def notes_block(text: str) -> str | None:
    """The ``<!-- notes -->…<!-- /notes -->`` block of ``text``, or None."""
    if OPEN in text and CLOSE in text.split(OPEN, 1)[1]:
        start = text.index(OPEN)
        return text[start:text.index(CLOSE, start) + len(CLOSE)]
    return None


def write_report(path: str | Path, text: str) -> str:
    """Write ``text`` to ``path``, keeping the notes block of the file already there; returns what was written."""
    path = Path(path)
    old = notes_block(path.read_text()) if path.exists() else None
    new = notes_block(text)
    if old is not None and new is not None:
        text = text.replace(new, old, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text
