"""The one exception type users see.

Every error caused by the user's input (a bad file, an unknown model name, a missing asset, an
unreachable endpoint) is a :class:`LongloreError` whose message is a single line saying what is
wrong, where (file, line, field) and what to do. The CLI prints it without a traceback.
"""

from __future__ import annotations


class LongloreError(Exception):
    """A user-facing error with a one-line, actionable message."""

    def __init__(self, message: str) -> None:
        # Collapse newlines: the CLI promises one line.
        super().__init__(" ".join(str(message).split()))
