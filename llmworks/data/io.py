"""Reading record files as a stream, and writing outputs atomically.

Readers yield `Row`s: a record (a dict) or the reason a line could not be read, with its location
(`file:line`), so commands can skip and count bad lines or stop at the first one (--strict).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmworks.atomic import atomic_open
from llmworks.errors import UserError

RECORD_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".parquet")


@dataclass
class Row:
    where: str
    """`file:line` (or `file:row N`), for messages."""
    record: dict[str, Any] | None
    error: str | None = None
    nbytes: int = 0
    """Input bytes this row consumed (drives byte-based progress bars)."""


def is_saved_dataset(path: Path) -> bool:
    """A directory written by `datasets.Dataset.save_to_disk` (or DatasetDict.save_to_disk)."""
    return path.is_dir() and ((path / "state.json").exists() or (path / "dataset_dict.json").exists())


def check_exists(paths: Iterable[Path | str]) -> list[Path]:
    out = [Path(p) for p in paths]
    missing = [str(p) for p in out if not p.exists()]
    if missing:
        raise UserError(f"no such file: {', '.join(missing)}.", "Check the path(s).")
    return out


def input_size(path: Path) -> int:
    """Total bytes to read (0 for a saved dataset: progress then counts rows)."""
    return path.stat().st_size if path.is_file() else 0


def read_records(path: Path | str) -> Iterator[Row]:
    """Stream the records of a JSONL/JSON/CSV/Parquet file or a saved `datasets` directory."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"no such file: {path}.", "Check the path.")
    if is_saved_dataset(path):
        yield from _read_saved_dataset(path)
        return
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        yield from _read_jsonl(path)
    elif suffix == ".json":
        yield from _read_json(path)
    elif suffix == ".csv":
        yield from _read_csv(path)
    elif suffix == ".parquet":
        yield from _read_parquet(path)
    else:
        raise UserError(
            f"{path}: unsupported record file type '{suffix or path.name}'.",
            "Use .jsonl, .json, .csv, .parquet or a directory saved with datasets' save_to_disk.",
        )


def _read_jsonl(path: Path) -> Iterator[Row]:
    # Binary lines, decoded one by one: a bad byte spoils one line, not the whole file.
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            where = f"{path}:{n}"
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as e:
                yield Row(where, None, f"not UTF-8 text ({e.reason} at byte {e.start})", len(raw))
                continue
            except json.JSONDecodeError as e:
                yield Row(where, None, f"invalid JSON ({e.msg}, column {e.colno})", len(raw))
                continue
            if not isinstance(obj, dict):
                yield Row(where, None, f"expected a JSON object, got {type(obj).__name__}", len(raw))
                continue
            yield Row(where, obj, None, len(raw))


def _read_json(path: Path) -> Iterator[Row]:
    # A JSON array has to be parsed whole; large data belongs in JSONL, which streams.
    try:
        obj = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path} is not UTF-8 text ({e.reason} at byte {e.start}).", "Re-encode it as UTF-8."
        ) from e
    except json.JSONDecodeError as e:
        # One object per line saved as .json is common: fall back to JSONL.
        if e.msg == "Extra data":
            yield from _read_jsonl(path)
            return
        raise UserError(
            f"{path}:{e.lineno}: invalid JSON ({e.msg}).", "Fix the file or save it as JSONL."
        ) from e
    items = obj if isinstance(obj, list) else [obj]
    size = input_size(path) // max(len(items), 1)
    for i, item in enumerate(items):
        where = f"{path}:item {i}"
        if isinstance(item, dict):
            yield Row(where, item, None, size)
        else:
            yield Row(where, None, f"expected a JSON object, got {type(item).__name__}", size)


def _read_csv(path: Path) -> Iterator[Row]:
    with open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        try:
            reader = csv.DictReader(text)
            last = 0
            for row in reader:
                pos = raw.tell()
                yield Row(f"{path}:{reader.line_num}", dict(row), None, max(pos - last, 0))
                last = pos
        except UnicodeDecodeError as e:
            raise UserError(f"{path} is not UTF-8 text ({e.reason}).", "Re-encode it as UTF-8.") from e


def _read_parquet(path: Path) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:
        raise UserError(f"{path} is not a readable Parquet file ({e}).", "Check the file.") from e
    per_row = input_size(path) // max(pf.metadata.num_rows, 1)
    n = 0
    for batch in pf.iter_batches(batch_size=1024):
        for rec in batch.to_pylist():
            n += 1
            yield Row(f"{path}:row {n}", rec, None, per_row)


def _read_saved_dataset(path: Path) -> Iterator[Row]:
    from datasets import Dataset, load_from_disk

    try:
        ds = load_from_disk(str(path))  # memory-mapped Arrow: iterating does not load it all
    except Exception as e:
        raise UserError(f"{path} is not a readable saved dataset ({e}).", "Save it with save_to_disk.") from e
    splits = {"": ds} if isinstance(ds, Dataset) else dict(ds)
    for split, part in splits.items():
        for i, rec in enumerate(part):
            yield Row(f"{path}:{split + ' ' if split else ''}row {i + 1}", dict(rec), None, 0)


def count_rows(path: Path) -> int | None:
    """Row count when it is cheap to know (Parquet metadata, saved datasets); None otherwise."""
    if is_saved_dataset(path):
        from datasets import Dataset, load_from_disk

        ds = load_from_disk(str(path))
        return len(ds) if isinstance(ds, Dataset) else sum(len(p) for p in ds.values())
    return None


# -- writing ---------------------------------------------------------------------------------------


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, default=str)


class JsonlWriter:
    """An atomic JSONL output that refuses to publish an empty result (nothing useful was made)."""

    def __init__(self, path: Path | str, what: str = "records", allow_empty: bool = False) -> None:
        self.path, self.what, self.allow_empty = Path(path), what, allow_empty
        self.count = 0
        self.empty_reason = ""
        """Set by the caller to say why nothing was written (shown instead of the generic message)."""
        self._ctx = atomic_open(self.path)

    def __enter__(self) -> JsonlWriter:
        self._f = self._ctx.__enter__()
        return self

    def write(self, record: dict[str, Any]) -> None:
        self._f.write(dumps(record) + "\n")
        self.count += 1

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool | None:
        if et is None and self.count == 0 and not self.allow_empty:
            reason = f" ({self.empty_reason})" if self.empty_reason else ""
            err = UserError(
                f"no {self.what} to write to {self.path}{reason}; nothing was written.",
                "Check the input and filters.",
            )
            self._ctx.__exit__(UserError, err, None)
            raise err
        return self._ctx.__exit__(et, ev, tb)


def write_jsonl(path: Path | str, records: Iterable[dict[str, Any]], what: str = "records") -> int:
    with JsonlWriter(path, what) as w:
        for r in records:
            w.write(r)
    return w.count
