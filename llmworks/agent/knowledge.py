"""What agents search: the small interface of a knowledge base, and how a config names one.

A knowledge base is anything with `name` and `search(query, k) -> hits`, each hit with `text`, `source`,
`page`, `heading` and a `score` (the RAG stage's `llmworks.rag.KnowledgeBase` is one). In a config, an
entry is either the name of a knowledge base built with the RAG stage, or a folder of .md/.txt files,
searched by `FolderKB`: BM25 over heading-sized chunks, built in memory when it is opened. FolderKB is the
stand-in that runs without an index on disk (tests, the shipped configs); the RAG stage is the real thing.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from llmworks.errors import UserError

__all__ = ["FolderKB", "Hit", "KnowledgeBase", "cite", "hit_fields", "open_kb"]


@runtime_checkable
class KnowledgeBase(Protocol):
    name: str

    def search(self, query: str, k: int = 5) -> Sequence[Any]:
        """The k best hits for `query`, best first."""
        ...


@dataclass(frozen=True)
class Hit:
    text: str
    source: str
    page: int | None = None
    heading: str | None = None
    score: float = 0.0


def hit_fields(hit: Any) -> Hit:
    """Any knowledge base's hit as a `Hit` (fields it lacks are empty)."""
    score = getattr(hit, "score", None)
    if score is None:
        scores = getattr(hit, "scores", None)
        score = max(scores.values()) if isinstance(scores, dict) and scores else 0.0
    return Hit(
        str(getattr(hit, "text", "")),
        str(getattr(hit, "source", "")),
        getattr(hit, "page", None),
        getattr(hit, "heading", None),
        float(score or 0.0),
    )


def cite(hit: Hit) -> str:
    """Where a hit comes from, as a citation: `guide.md § Install, p. 3`."""
    where = Path(hit.source).name or hit.source
    if hit.heading:
        where += f" § {hit.heading}"
    if hit.page is not None:
        where += f", p. {hit.page}"
    return where


def open_kb(entry: str, base: Path | None = None) -> KnowledgeBase:
    """The knowledge base a config entry names: a folder (relative to `base`), or a RAG knowledge base."""
    path = Path(entry).expanduser()
    if not path.is_absolute() and base is not None:
        path = base / path
    if path.is_dir():
        return FolderKB(path)
    if "/" in entry or entry.startswith("."):
        raise UserError(f"knowledge base folder {path} does not exist.", "Fix the path in kbs.")
    from llmworks.rag import KnowledgeBase as RagKB

    kb = RagKB(entry)
    kb.meta  # noqa: B018  (a name that is not there is the RAG stage's error, listing those that are)
    return kb


_WORD = re.compile(r"[A-Za-z0-9]+(?:[-_.][A-Za-z0-9]+)*")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "of",
        "on",
        "or",
        "the",
        "this",
        "to",
        "what",
        "which",
        "with",
    ]
)


def _terms(text: str) -> list[str]:
    """Words, and the parts of a compound (`default_encoder`, `e-mail`) too: small models write queries
    in snake_case (the embedded one searched `license_description` and found nothing)."""
    out = []
    for m in _WORD.finditer(text):
        word = m.group(0).lower()
        parts = re.split(r"[-_.]", word)
        out += [w for w in ([word, *parts] if len(parts) > 1 else [word]) if w not in _STOP]
    return out


class FolderKB:
    """BM25 (k1=1.5, b=0.75) over the heading sections of the .md and .txt files under a folder."""

    def __init__(self, folder: Path, max_chars: int = 800) -> None:
        self.folder = Path(folder)
        self.name = self.folder.name
        self.chunks: list[Hit] = []
        for file in sorted(p for p in self.folder.rglob("*") if p.suffix in (".md", ".txt") and p.is_file()):
            self.chunks += _sections(file, self.folder, max_chars)
        if not self.chunks:
            raise UserError(
                f"knowledge base folder {folder} has no .md or .txt files.", "Add documents to it."
            )
        self._tf = [Counter(_terms(f"{c.heading or ''} {c.text}")) for c in self.chunks]
        self._len = [sum(tf.values()) for tf in self._tf]
        self._avg = sum(self._len) / len(self._len)
        df = Counter(t for tf in self._tf for t in tf)
        n = len(self.chunks)
        self._idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def search(self, query: str, k: int = 5) -> list[Hit]:
        q = _terms(query)
        scored = []
        for i, tf in enumerate(self._tf):
            s = 0.0
            for t in q:
                f = tf.get(t, 0)
                if f:
                    s += self._idf[t] * f * 2.5 / (f + 1.5 * (0.25 + 0.75 * self._len[i] / self._avg))
            if s > 0:
                scored.append((s, i))
        scored.sort(key=lambda p: (-p[0], p[1]))
        return [Hit(**{**self.chunks[i].__dict__, "score": round(s, 4)}) for s, i in scored[:k]]


def _sections(file: Path, root: Path, max_chars: int) -> list[Hit]:
    text = file.read_text(encoding="utf-8", errors="replace")
    source = str(file.relative_to(root))
    out: list[Hit] = []
    heading: str | None = None
    buf: list[str] = []

    def flush() -> None:
        body = "\n".join(buf).strip()
        while body:
            cut = body[:max_chars]
            if len(body) > max_chars and "\n" in cut:
                cut = cut[: cut.rindex("\n")]
            out.append(Hit(cut.strip(), source, None, heading))
            body = body[len(cut) :].strip()
        buf.clear()

    for line in text.splitlines():
        m = re.match(r"^#{1,6}\s+(.*)", line)
        if m:
            flush()
            heading = m.group(1).strip()
        else:
            buf.append(line)
    flush()
    return out
