"""A knowledge base on disk: one directory per knowledge base under the llmworks home (or `--kb-dir`).

    NAME/
      kb.json              name, embedder (identity, dimension), store URL, chunking
      CURRENT              the committed version (readers use it; an ingest changes it last)
      versions/000003.json manifest of version 3: each file's hash and chunk ids, and a note
      chunks/*.parquet     every chunk record ever made (text and metadata), written once
      bm25/000003/         the BM25 index of version 3
      cache/               embedding cache (vectors by content hash, per embedder)
      lancedb/             the default store (qdrant:// stores keep vectors on the server)
      refusal.json         the calibrated refusal decision (`llmworks rag calibrate`)

A new knowledge base is built in `.NAME.partial` and renamed when its first version commits; an
interrupted first ingest resumes from it.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmworks.atomic import atomic_write
from llmworks.errors import UserError

__all__ = ["KBMeta", "KBPaths", "Manifest", "default_kb_dir", "list_kbs"]

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
FORMAT = 1


def default_kb_dir() -> Path:
    from llmworks.models.sources import llmworks_home

    return llmworks_home() / "kb"


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise UserError(
            f"bad knowledge base name {name!r}.",
            "Use letters, digits, '-' and '_' (up to 64, starting with a letter or digit).",
        )
    return name


@dataclass
class KBMeta:
    name: str
    embedder: str
    """The embedder's identity (see embed.embedder_name)."""
    dim: int
    store: str = "lancedb"
    chunk_tokens: int = 200
    overlap_tokens: int = 32
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(self.__dict__, indent=2)


@dataclass
class Manifest:
    version: int
    created: str
    note: str
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Source path -> {"sha256", "size", "chunking", "chunks": [ids], "pages", "format"}."""

    @property
    def ids(self) -> list[str]:
        return [i for f in self.files.values() for i in f["chunks"]]

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False)


class KBPaths:
    def __init__(self, root: Path, name: str) -> None:
        self.root = root
        self.name = check_name(name)
        self.dir = root / name
        self.partial = root / f".{name}.partial"

    def at(self, base: Path) -> KBPaths:
        """The same layout rooted at `base` (the partial directory while a new KB is built)."""
        p = KBPaths(self.root, self.name)
        p.dir = base
        return p

    meta = property(lambda self: self.dir / "kb.json")
    current = property(lambda self: self.dir / "CURRENT")
    versions = property(lambda self: self.dir / "versions")
    chunks = property(lambda self: self.dir / "chunks")
    cache = property(lambda self: self.dir / "cache")
    refusal = property(lambda self: self.dir / "refusal.json")

    def manifest_path(self, version: int) -> Path:
        return self.versions / f"{version:06d}.json"

    def bm25(self, version: int) -> Path:
        return self.dir / "bm25" / f"{version:06d}"

    @property
    def exists(self) -> bool:
        return self.meta.is_file()

    def read_meta(self) -> KBMeta:
        try:
            data = json.loads(self.meta.read_text(encoding="utf-8"))
            return KBMeta(**data)
        except (OSError, ValueError, TypeError) as e:
            raise self.corrupt(f"unreadable kb.json ({e})") from None

    def write_meta(self, meta: KBMeta) -> None:
        atomic_write(self.meta, meta.to_json())

    def read_current(self) -> int:
        try:
            return int(self.current.read_text(encoding="ascii").strip())
        except FileNotFoundError:
            return 0
        except (OSError, ValueError) as e:
            raise self.corrupt(f"unreadable CURRENT ({e})") from None

    def write_current(self, version: int) -> None:
        atomic_write(self.current, f"{version}\n")

    def read_manifest(self, version: int) -> Manifest:
        path = self.manifest_path(version)
        try:
            return Manifest(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            known = ", ".join(str(v) for v in self.version_numbers()) or "none"
            raise UserError(
                f"knowledge base {self.name!r} has no version {version}.", f"Versions: {known}."
            ) from None
        except (OSError, ValueError, TypeError) as e:
            raise self.corrupt(f"unreadable {path.name} ({e})") from None

    def write_manifest(self, m: Manifest) -> None:
        atomic_write(self.manifest_path(m.version), m.to_json())

    def version_numbers(self) -> list[int]:
        if not self.versions.is_dir():
            return []
        return sorted(int(p.stem) for p in self.versions.glob("*.json") if p.stem.isdigit())

    def corrupt(self, why: str) -> UserError:
        return UserError(
            f"knowledge base directory {self.dir} is corrupt: {why}.",
            f"Remove it (llmworks rag rm {self.name}) and ingest again.",
        )

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One writer at a time per knowledge base (ingest, rollback, rm)."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f".{self.name}.lock"
        with open(path, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(
                    f"knowledge base {self.name!r} is being written by another process.",
                    "Wait for that ingest to finish.",
                ) from None
            try:
                yield
            finally:
                # No knowledge base (a failed first ingest, rm): no lock file either.
                if not self.exists and not (self.partial / "kb.json").is_file():
                    path.unlink(missing_ok=True)
                fcntl.flock(f, fcntl.LOCK_UN)

    def remove(self) -> None:
        for d in (self.dir, self.partial):
            if d.exists():
                shutil.rmtree(d)
        (self.root / f".{self.name}.lock").unlink(missing_ok=True)


def list_kbs(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / "kb.json").is_file()
    )


def missing_kb(root: Path, name: str) -> UserError:
    known = list_kbs(root)
    return UserError(
        f"no knowledge base {name!r} in {root}.",
        f"Knowledge bases there: {', '.join(known)}."
        if known
        else "Create one: llmworks rag ingest PATH --kb NAME.",
    )
