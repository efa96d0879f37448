"""Progress bars on stderr (stdout stays free for tables and JSON)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from llmworks.console import make_console

console = make_console(stderr=True)


@contextmanager
def progress(description: str, total: int | None = None, unit: str = "bytes") -> Iterator[Progress]:
    """A bar over `total` bytes (or items with unit="items"); advance with `bar.advance(task, n)`."""
    amount = (DownloadColumn(), TransferSpeedColumn()) if unit == "bytes" else (MofNCompleteColumn(),)
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        *amount,
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # in logs and pipes a live bar only leaves blank lines
    )
    with bar:
        bar.add_task(description, total=total or None)
        yield bar


def advance(bar: Progress, n: int = 1) -> None:
    bar.advance(bar.task_ids[0], n)
