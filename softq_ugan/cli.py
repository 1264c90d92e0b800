"""What every command line of the project shares: one-line errors on bad input."""

from __future__ import annotations

import sys


def fail(message: str, code: int = 2) -> None:
    """Print ``error: message`` on stderr and exit with ``code`` (2: bad command-line input)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)
