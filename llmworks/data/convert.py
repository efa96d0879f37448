"""`llmworks data convert`: detect the record format, validate, and write another format."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from llmworks.data import formats, io
from llmworks.data.progress import advance, progress
from llmworks.errors import UserError


@dataclass
class ConvertReport:
    written: int = 0
    skipped: int = 0
    detected: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    """The first few `file:line: reason` messages (all are counted in `skipped`)."""


MAX_PROBLEMS_SHOWN = 20


def convert(
    src: Path | str, out: Path | str, to: formats.Format = "messages", strict: bool = False
) -> ConvertReport:
    """Stream `src` into `out` in format `to`. Malformed records are skipped and counted, or with
    `strict` the first one stops the run (and nothing is written)."""
    src = io.check_exists([src])[0]
    report = ConvertReport()
    with (
        io.JsonlWriter(out, "valid records") as w,
        progress(f"convert {src.name}", io.input_size(src)) as bar,
    ):
        for row in io.read_records(src):
            advance(bar, row.nbytes)
            try:
                if row.record is None:
                    raise formats.BadRecord(row.error)
                fmt = formats.detect(row.record)
                w.write(formats.render(formats.parse(row.record, fmt), to))
                report.detected[fmt] += 1
            except formats.BadRecord as e:
                if strict:
                    raise UserError(
                        f"{row.where}: {e}.", "Fix the record, or drop --strict to skip bad ones."
                    ) from e
                report.skipped += 1
                if len(report.problems) < MAX_PROBLEMS_SHOWN:
                    report.problems.append(f"{row.where}: {e}")
                w.empty_reason = f"{report.skipped} malformed, first: {report.problems[0]}"
    report.written = w.count
    return report
