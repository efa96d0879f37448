"""Benchmark data, offline only: local files in each benchmark's official layout, or an HF datasets cache
entry already on disk. Anything else is a clear error that says where to put the files."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from llmworks.errors import UserError

SMOKE = Path(__file__).parent / "data" / "smoke"


def data_root() -> Path:
    """Where `llmworks eval` looks for benchmark folders: $LLMWORKS_EVAL_DATA or ~/.cache/llmworks/eval."""
    return Path(os.environ.get("LLMWORKS_EVAL_DATA") or Path.home() / ".cache" / "llmworks" / "eval")


def read_records(path: Path, header: bool = True) -> list[dict[str, Any]]:
    """Rows of a CSV/JSON/JSONL/Parquet file as dicts; a malformed row is an error naming file:line."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = []
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    rows.append(_json_object(line, f"{path}:{n}"))
            return rows
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
                raise UserError(f"{path}: expected a JSON list of objects.", "Use JSONL, one object a line.")
            return data
        if suffix == ".csv":
            with path.open(encoding="utf-8-sig", newline="") as f:
                rows = list(csv.reader(f))
            if not header:
                return [{str(i): v for i, v in enumerate(r)} for r in rows if r]
            if not rows:
                return []
            names = rows[0]
            out = []
            for n, r in enumerate(rows[1:], 2):
                if r and len(r) != len(names):
                    raise UserError(
                        f"{path}:{n}: {len(r)} fields where the header has {len(names)}.", "Fix the row."
                    )
                if r:
                    out.append(dict(zip(names, r, strict=True)))
            return out
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path).to_pylist()
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e.msg}).", "Fix the file.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read {path} ({e}).", "Check the file.") from None
    raise UserError(f"{path}: unsupported file type '{suffix}'.", "Use .csv, .json, .jsonl or .parquet.")


def require_fields(row: dict[str, Any], fields: tuple[str, ...], where: str) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise UserError(f"{where}: missing field(s) {', '.join(missing)}.", f"Each record needs {fields}.")


def locate(task: str, path: str | None, hint: str) -> Path | None:
    """The task's data folder or file: the given path, else <data root>/<task> if present, else None."""
    if path:
        p = Path(path).expanduser()
        if not p.exists():
            raise UserError(f"{task}: {p} does not exist.", hint)
        return p
    default = data_root() / task
    return default if default.exists() else None


def from_hf_cache(
    name: str, config: str | None, split: str, convert: Callable[[dict], dict]
) -> list[dict] | None:
    """Rows of an HF datasets cache entry already on disk (offline), or None when it is not there."""
    os.environ["HF_DATASETS_OFFLINE"] = "1"  # never reach for the hub
    try:
        import datasets

        ds = datasets.load_dataset(name, config, split=split)
    except Exception:  # any failure here means the data set is not in the cache
        return None
    return [convert(dict(r)) for r in ds]


def missing_data(task: str, layout: str, hf: str | None) -> UserError:
    where = data_root() / task
    cache = f" nor in the HF datasets cache ({hf})" if hf else ""
    return UserError(
        f"no data for task '{task}': nothing at {where}{cache}.",
        f"Put the official files there ({layout}), set LLMWORKS_EVAL_DATA, or pass {task}=PATH in --tasks.",
    )


def _json_object(line: str, where: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not valid JSON ({e.msg}).", "Fix or remove that line.") from None
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object.", "Fix or remove that line.")
    return obj
