"""`llmworks data mix`: sample and weight several sources into one shuffled train/val split.

Specs: `path` (all records), `path#N` (N records: a sample, or repeats when N exceeds the file),
`path:W` (W times the file's records: 0.1 keeps a tenth, 2 repeats it). Mixing general data into
task data this way is the usual remedy against catastrophic forgetting.

Each source is spooled once to a temporary JSONL file; only byte offsets are kept in memory (8 bytes a
record), shuffled with the seed, and read back in that order, so any size mixes in flat memory.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from array import array
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmworks.atomic import atomic_open
from llmworks.data import io
from llmworks.data.progress import advance, progress
from llmworks.errors import UserError

_SPEC = re.compile(r"^(?P<path>.+?)(?:#(?P<n>\d+)|:(?P<w>\d+(?:\.\d+)?))?$")


@dataclass
class Source:
    spec: str
    path: str
    count: int | None = None
    """Records wanted (path#N)."""
    weight: float | None = None
    """Multiple of the file's records (path:W)."""
    available: int = 0
    taken: int = 0
    malformed: int = 0
    sha256: str = ""


def parse_spec(spec: str) -> Source:
    m = _SPEC.match(spec)
    path = Path(spec)
    if path.exists() or not m:  # a real path that happens to contain ':' or '#'
        return Source(spec, str(path))
    src = Source(spec, m["path"])
    if m["n"] is not None:
        src.count = int(m["n"])
    if m["w"] is not None:
        src.weight = float(m["w"])
    return src


@dataclass
class MixReport:
    train: int
    val: int
    sources: list[Source]
    out_dir: str


def mix(specs: list[str], out_dir: Path | str, val: float = 0.0, seed: int = 42) -> MixReport:
    """Write out_dir/train.jsonl, out_dir/val.jsonl (when val > 0) and out_dir/manifest.json.

    `val` below 1 is a share of the mixed records; 1 or more is a count."""
    if not specs:
        raise UserError("no sources to mix.", "Give one or more PATH, PATH#N or PATH:WEIGHT.")
    sources = [parse_spec(s) for s in specs]
    io.check_exists([s.path for s in sources])
    if val < 0:
        raise UserError(f"--val must be >= 0 (got {val}).", "Use a share like 0.05 or a count like 200.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".mix-") as tmp:
        spools, picks = [], []
        for i, src in enumerate(sources):
            spool = Path(tmp) / f"{i}.jsonl"
            offsets = _spool(src, spool)
            spools.append(spool)
            chosen = _choose(len(offsets), src, rng)
            src.taken = len(chosen)
            picks.append(np.stack([np.full(len(chosen), i, np.int64), offsets[chosen]], axis=1))
        order = np.concatenate(picks) if picks else np.zeros((0, 2), np.int64)
        if not len(order):
            raise UserError(
                "the mix is empty: every source gave 0 records.", "Check the sources and their #N / :W."
            )
        order = order[rng.permutation(len(order))]
        n_val = round(val * len(order)) if val < 1 else int(val)
        if n_val >= len(order):
            raise UserError(f"--val {val} leaves no training records (mix has {len(order)}).", "Lower --val.")
        outputs = {"train.jsonl": order[n_val:]}
        if n_val:
            outputs["val.jsonl"] = order[:n_val]
        hashes = {name: _write(out_dir / name, rows, spools) for name, rows in outputs.items()}
    report = MixReport(len(order) - n_val, n_val, sources, str(out_dir))
    manifest = {
        "seed": seed,
        "val": val,
        "outputs": {name: {"records": len(rows), "sha256": hashes[name]} for name, rows in outputs.items()},
        "sources": [asdict(s) for s in sources],
    }
    with atomic_open(out_dir / "manifest.json") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
    if not n_val:
        (out_dir / "val.jsonl").unlink(missing_ok=True)  # a stale split from an earlier run would mislead
    return report


def _spool(src: Source, spool: Path) -> np.ndarray:
    """Copy the source's valid records to `spool` as JSONL; return their byte offsets."""
    path = Path(src.path)
    digest = hashlib.sha256()
    offsets = array("q")
    pos = 0
    with open(spool, "wb") as out, progress(f"read {path.name}", io.input_size(path)) as bar:
        for row in io.read_records(path):
            advance(bar, row.nbytes)
            if row.record is None:
                src.malformed += 1
                continue
            line = (io.dumps(row.record) + "\n").encode()
            digest.update(line)
            out.write(line)
            offsets.append(pos)
            pos += len(line)
    src.available = len(offsets)
    src.sha256 = digest.hexdigest()  # of the records as read, so any input type hashes the same way
    return np.frombuffer(offsets, dtype=np.int64) if offsets else np.zeros(0, np.int64)


def _choose(n: int, src: Source, rng: np.random.Generator) -> np.ndarray:
    want = (
        n
        if src.count is None and src.weight is None
        else src.count
        if src.count is not None
        else round(n * src.weight)
    )  # type: ignore[operator]
    if n == 0 or want == 0:
        return np.zeros(0, np.int64)
    whole, rest = divmod(want, n)  # every record `whole` times, plus a sample for the remainder
    return np.concatenate([np.tile(np.arange(n), whole), rng.choice(n, rest, replace=False)]).astype(np.int64)


def _write(path: Path, rows: np.ndarray, spools: list[Path]) -> str:
    digest = hashlib.sha256()
    files = [open(s, "rb") for s in spools]  # noqa: SIM115 - closed below
    try:
        with (
            atomic_open(path, "wb") as out,
            progress(f"write {path.name}", len(rows), unit="items") as bar,
        ):
            for src_i, offset in rows:
                f = files[src_i]
                f.seek(offset)
                line = f.readline()
                digest.update(line)
                out.write(line)
                advance(bar)
    finally:
        for f in files:
            f.close()
    return digest.hexdigest()


def manifest(out_dir: Path | str) -> dict[str, Any]:
    return json.loads((Path(out_dir) / "manifest.json").read_text())
