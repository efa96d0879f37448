"""Helpers for the data stage's tests: a CLI runner that behaves like `llmworks`, JSONL files."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from llmworks.cli import app
from llmworks.errors import UserError


class Result:
    def __init__(self, exit_code: int, output: str, error: str) -> None:
        self.exit_code, self.output, self.error = exit_code, output, error


def run_cli(*args: str) -> Result:
    """Invoke `llmworks data ...`; a UserError becomes exit 2 with its one-line message, as in the root CLI."""
    r = CliRunner().invoke(app, ["data", *(str(a) for a in args)])
    if isinstance(r.exception, UserError):
        return Result(2, r.output, f"error: {r.exception}")
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(r.exit_code, r.output, "")


def write_jsonl(path: Path, records: Iterable[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records)
    )
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
