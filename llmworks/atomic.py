"""Outputs appear only when complete: write under a temporary name next to the target, then rename.

The one set of helpers every stage uses, so an interrupted run never leaves a half-written file or folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_dir", "atomic_open", "atomic_write", "temp_path"]


@contextmanager
def atomic_open(path: Path | str, mode: str = "w") -> Iterator[IO[Any]]:
    """A file object on a temp file next to `path`, renamed over `path` when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write(path: Path | str, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` all at once."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)


@contextmanager
def atomic_dir(out: Path, keep_existing: bool = False) -> Iterator[Path]:
    """A temp directory next to `out`, renamed to `out` when the block succeeds, removed otherwise.

    An empty `out` is replaced. `keep_existing`: when another process made `out` meanwhile (a shared cache),
    keep theirs instead of failing.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part"))
    try:
        yield tmp
        if out.is_dir() and not keep_existing and not any(out.iterdir()):
            out.rmdir()  # os.replace cannot replace a directory on every OS
        try:
            os.replace(tmp, out)
        except OSError:
            if not (keep_existing and out.is_dir()):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def temp_path(out: Path, tag: str) -> Path:
    """A fresh name next to `out` that still ends in `out`'s suffix (llama.cpp and `resolve` look at it)."""
    fd, name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.{tag}.", suffix=f".part{out.suffix}")
    os.close(fd)
    return Path(name)
