"""Read GGUF metadata with the `gguf` package, and check that a file is a complete GGUF model."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

GGUF_MAGIC = b"GGUF"


class GGUFError(Exception):
    """The file is not a complete, readable GGUF model."""


def check_header(path: Path) -> None:
    """The cheap check done on every load: the GGUF magic bytes and a known version."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] != GGUF_MAGIC:
        raise GGUFError("is not a GGUF file (bad magic bytes)")
    if len(head) < 8 or int.from_bytes(head[4:8], "little") not in (1, 2, 3):
        raise GGUFError("has an unknown GGUF version")


def diagnose(path: Path) -> str:
    """Why a GGUF failed to load, in words, when the gguf reader can tell ("" if it reads fine)."""
    try:
        check_gguf(path)
    except GGUFError as e:
        return f"the file {e}"
    return ""


def check_gguf(path: Path) -> None:
    """Raise GGUFError unless `path` has the GGUF header, parses, and holds every tensor's bytes."""
    read_gguf(path)


def read_gguf(path: Path) -> Any:
    """The file's `gguf.GGUFReader`, checked complete (GGUFError otherwise). Parsing a large vocabulary
    takes seconds, so the reader is cached per file version: `models info` and `estimate` share it."""
    path = path.resolve()
    stat = path.stat()
    return _read(path, stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=8)
def _read(path: Path, size: int, _mtime: int) -> Any:
    check_header(path)
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path, "r")
        end = max((t.data_offset + int(t.n_bytes) for t in reader.tensors), default=0)
    except Exception as e:  # the reader fails in many ways on a cut-off or damaged file
        raise GGUFError(f"cannot be parsed ({type(e).__name__}: {e})") from None
    if not reader.tensors:
        raise GGUFError("holds no tensors")
    if end > size:
        raise GGUFError(f"is truncated: tensors need {end:,} bytes, the file has {size:,}")
    return reader
