"""The one way llmworks makes a rich Console, so output stays readable in a log as well as on a terminal.

rich wraps at 80 columns when it does not write to a terminal (a pipe, a file, a test), which breaks paths
and commands across lines. Off a terminal, text lines are kept whole (soft wrapping) and tables and rules
get `WIDE` columns, unless $COLUMNS says otherwise.
"""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console

WIDE = 120


def make_console(stderr: bool = False, width: int = WIDE, **options: Any) -> Console:
    """A Console on stdout (or stderr); off a terminal, soft-wrapped and `width` columns wide."""
    console = Console(stderr=stderr, **options)
    if console.is_terminal:
        return console
    return Console(
        stderr=stderr,
        soft_wrap=True,
        width=None if os.environ.get("COLUMNS") else width,
        **options,
    )
