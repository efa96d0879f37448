"""`llmworks data stats`: records, turns and token lengths of a data file; and tokenizer comparisons."""

from __future__ import annotations

import json
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmworks.atomic import atomic_open
from llmworks.data import formats, io
from llmworks.data.progress import advance, progress
from llmworks.data.tokenizers import Tokenizer
from llmworks.errors import UserError


@dataclass
class DataStats:
    records: int = 0
    malformed: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    turns_mean: float = 0.0
    tokens_p50: float = 0.0
    tokens_p90: float = 0.0
    tokens_max: int = 0
    tokens_total: int = 0
    max_length: int | None = None
    over_max_length: float | None = None
    """Share of records longer than max_length tokens (they would be truncated or dropped)."""
    plot: str | None = None

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["formats"] = dict(self.formats)
        return d


def data_stats(
    src: Path | str, tok: Tokenizer, max_length: int | None = None, plot: Path | None = None
) -> DataStats:
    """Token lengths per record: the text of every turn (or the `text` field) and, for tool use, the calls and
    the offered tools' schemas (prompt tokens in every record: often most of its length); no chat template."""
    src = io.check_exists([src])[0]
    st = DataStats(max_length=max_length)
    lengths = array("q")  # 8 bytes a record: flat enough for millions of records
    turns = 0
    with progress(f"stats {src.name}", io.input_size(src)) as bar:
        for row in io.read_records(src):
            advance(bar, row.nbytes)
            if row.record is None:
                st.malformed += 1
                continue
            try:
                fmt = formats.detect(row.record)
                ex = formats.parse(row.record, fmt)
                turns += len([m for m in ex.messages if m["role"] != "system"])
            except formats.BadRecord:
                fmt = "text"
                turns += 1
            st.formats[fmt] += 1
            lengths.append(len(tok.encode(formats.text_of(row.record) + _tool_text(row.record))))
    st.records = len(lengths)
    if not st.records:
        raise UserError(f"{src} has no readable records ({st.malformed} malformed).", "Check the file.")
    arr = np.frombuffer(lengths, dtype=np.int64)
    st.turns_mean = round(turns / st.records, 2)
    st.tokens_p50, st.tokens_p90 = (round(float(x), 1) for x in np.percentile(arr, [50, 90]))
    st.tokens_max, st.tokens_total = int(arr.max()), int(arr.sum())
    if max_length:
        st.over_max_length = round(float((arr > max_length).mean()), 4)
    if plot is not None:
        _histogram(arr, plot, tok.name, max_length)
        st.plot = str(plot)
    return st


def _tool_text(record: dict[str, Any]) -> str:
    """The tools a record offers and the calls its turns make, as JSON (text_of leaves them out)."""
    parts = [json.dumps(record["tools"], ensure_ascii=False)] if record.get("tools") else []
    for m in record.get("messages") or ():
        if isinstance(m, dict) and m.get("tool_calls"):
            parts.append(json.dumps(m["tool_calls"], ensure_ascii=False))
    return "".join("\n" + p for p in parts)


def _histogram(lengths: np.ndarray, path: Path, tokenizer: str, max_length: int | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(lengths, bins=min(50, max(5, len(np.unique(lengths)))), color="#4878a8")
    if max_length:
        ax.axvline(max_length, color="#c03030", linestyle="--", label=f"max length {max_length}")
        ax.legend()
    ax.set_xlabel(f"tokens per record ({tokenizer})")
    ax.set_ylabel("records")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)


@dataclass
class TokenizerRow:
    tokenizer: str
    vocab_size: int
    per_file: dict[str, dict[str, float]]
    """file -> {"tokens", "chars_per_token", "bytes_per_token"}"""


def compare_tokenizers(
    toks: list[Tokenizer], files: list[Path | str], chunk_chars: int = 1 << 16
) -> list[TokenizerRow]:
    """Characters and UTF-8 bytes per token of each tokenizer on each text: higher means more compact.

    Texts are read in line-aligned chunks, so any file size works."""
    paths = io.check_exists(files)
    rows = [TokenizerRow(t.name, t.vocab_size, {}) for t in toks]
    for p in paths:
        counts = [0] * len(toks)
        chars = nbytes = 0
        for chunk in _chunks(p, chunk_chars):
            chars += len(chunk)
            nbytes += len(chunk.encode())
            for i, t in enumerate(toks):
                counts[i] += len(t.encode(chunk))
        if not chars:
            raise UserError(f"{p} is empty.", "Give a text file with some text in it.")
        for row, n in zip(rows, counts, strict=True):
            row.per_file[p.name] = {
                "tokens": n,
                "chars_per_token": round(chars / max(n, 1), 3),
                "bytes_per_token": round(nbytes / max(n, 1), 3),
            }
    return rows


def _chunks(path: Path, size: int) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            buf: list[str] = []
            n = 0
            for line in f:
                buf.append(line)
                n += len(line)
                if n >= size:
                    yield "".join(buf)
                    buf, n = [], 0
            if buf:
                yield "".join(buf)
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text ({e.reason}).", "Re-encode it as UTF-8.") from e
