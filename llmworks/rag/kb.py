"""`KnowledgeBase`: the Python API of the rag stage (the CLI and `llmworks serve --kb` use it too).

    from llmworks.rag import KnowledgeBase
    kb = KnowledgeBase("manual")                 # under the llmworks home; kb_dir=... elsewhere
    kb.ingest(["docs/", "manual.pdf"])           # a new version; re-ingest embeds only what changed
    for hit in kb.search("how do I decode DER?", k=5):
        print(hit.score, hit.where, hit.scores)  # fused score; dense/bm25 scores of each retriever
    print(kb.ask("How do I decode DER?").text)   # grounded answer with [1][2] citations

`search` is the seam agents use as a tool: a query in, ranked `Hit`s (text, source, page, heading,
scores) out. A reader always sees the last committed version, and picks up a newer one on its next call.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmworks.errors import UserError
from llmworks.rag.config import SearchOptions
from llmworks.rag.embed import DenseEmbedder, check_embedder_spec, embedder_name
from llmworks.rag.layout import KBMeta, KBPaths, default_kb_dir, list_kbs, missing_kb
from llmworks.rag.retrieve import Hit, retrieve
from llmworks.rag.store import Store, check_store_url, open_store

if TYPE_CHECKING:
    from llmworks.client import Client
    from llmworks.rag.answer import Answer
    from llmworks.rag.bm25 import BM25Index
    from llmworks.rag.ingest import IngestReport

__all__ = ["KnowledgeBase", "list_knowledge_bases"]


class KnowledgeBase:
    def __init__(
        self,
        name: str,
        kb_dir: str | Path | None = None,
        embedder: str | None = None,
        store: str | None = None,
    ) -> None:
        """`embedder` and `store` choose them for a new knowledge base; for an existing one they must match
        what it was built with (None: whatever that was)."""
        self.paths = KBPaths(Path(kb_dir).expanduser() if kb_dir else default_kb_dir(), name)
        self.name = self.paths.name
        self._embedder_spec = check_embedder_spec(embedder) if embedder else None
        self._store_url = check_store_url(store) if store else None
        self._meta: KBMeta | None = None
        self._embedder: DenseEmbedder | None = None
        self._store: Store | None = None
        self._bm25: BM25Index | None = None
        self._docs: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self.current = self.paths.read_current() if self.paths.exists else 0
        """The committed version this reader sees (0: nothing ingested yet)."""

    # -- reading ----------------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return self.paths.exists

    @property
    def meta(self) -> KBMeta:
        if self._meta is None:
            if not self.paths.exists:
                raise missing_kb(self.paths.root, self.name)
            self._meta = self._checked(self.paths.read_meta())
        return self._meta

    @property
    def embedder(self) -> DenseEmbedder:
        if self._embedder is None:
            self._embedder = DenseEmbedder(self.meta.embedder)
        return self._embedder

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.meta.store, self.paths.dir, self.name, self.meta.dim)
        return self._store

    @property
    def bm25(self) -> BM25Index:
        if self._bm25 is None:
            from llmworks.rag.bm25 import BM25Index

            path = self.paths.bm25(self.current)
            try:
                self._bm25 = BM25Index.load(path)
            except (OSError, ValueError) as e:
                raise self.paths.corrupt(f"BM25 index of version {self.current} unreadable ({e})") from None
        return self._bm25

    @property
    def docs(self) -> dict[str, Any]:
        """Per-chunk source and tags of the current version (for filters), in BM25 document order."""
        if self._docs is None:
            try:
                text = (self.paths.bm25(self.current) / "docs.json").read_text(encoding="utf-8")
                self._docs = json.loads(text)
            except (OSError, ValueError) as e:
                raise self.paths.corrupt(f"docs.json of version {self.current} unreadable ({e})") from None
        return self._docs

    def refresh(self) -> None:
        """Pick up a version committed since (another process's ingest): cheap, called before each search."""
        if not self.paths.exists:
            raise missing_kb(self.paths.root, self.name)
        if self.paths.read_current() != self.current:
            with self._lock:
                if self.paths.read_current() != self.current:
                    self.reload()

    def reload(self) -> None:
        """Read the committed version again. The old indexes are dropped, not closed (a search on another
        thread, a server's, may still be using them); the store stays open and sees the new rows."""
        self.current = self.paths.read_current()  # first: what loads from here on loads this version
        self._meta = None
        self._bm25 = None
        self._docs = None
        if self._store is not None:
            self._store.refresh()

    def search(self, query: str, k: int = 5, **options: Any) -> list[Hit]:
        """The `k` best chunks for `query`; options: the fields of `SearchOptions` (mode, sources, tags,
        rerank, weights, ...)."""
        return search([self], query, k=k, **options)

    def ask(self, question: str, history: Sequence[dict[str, Any]] = (), **options: Any) -> Answer:
        """A grounded answer with citations (or the refusal), through the embedded model unless `model` /
        `base_url` name another; options: the fields of `AskConfig`."""
        from llmworks.rag.answer import ask

        return ask([self], question, history, **options)

    # -- writing ----------------------------------------------------------------------------------

    def ingest(
        self,
        paths: Iterable[str | Path],
        tags: Sequence[str] = (),
        chunk_tokens: int | None = None,
        overlap_tokens: int | None = None,
    ) -> IngestReport:
        from llmworks.rag.ingest import ingest

        self._chunking = (chunk_tokens, overlap_tokens)
        return ingest(self, paths, tags)

    def rollback(self, version: int) -> IngestReport:
        from llmworks.rag.ingest import rollback

        if not self.exists:
            raise missing_kb(self.paths.root, self.name)
        return rollback(self, version)

    def remove(self) -> None:
        """Delete the knowledge base: its directory and its store's data."""
        with self.paths.lock():
            if self.paths.exists:
                try:
                    self.store.drop()
                finally:
                    self.close()
            elif not self.paths.partial.exists():
                raise missing_kb(self.paths.root, self.name)
            self.paths.remove()

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def open_for_write(self) -> KBPaths:
        """The directory an ingest writes: this one, or `.NAME.partial` for a new knowledge base (kept
        across an interrupted first ingest, so the next run resumes)."""
        size, overlap = getattr(self, "_chunking", (None, None))
        if self.paths.exists:
            work = self.paths
            meta = self.meta
        else:
            work = self.paths.at(self.paths.partial)
            if work.meta.is_file():
                meta = self._checked(work.read_meta())
            else:
                spec = self._embedder_spec or "all-minilm-l6-v2"
                self._embedder = DenseEmbedder(spec)
                meta = KBMeta(
                    self.name, self._embedder.name, self._embedder.dim, self._store_url or "lancedb"
                )
                work.dir.mkdir(parents=True, exist_ok=True)
            self.current = 0
        changed = False
        if size is not None and size != meta.chunk_tokens:
            meta.chunk_tokens, changed = size, True
        if overlap is not None and overlap != meta.overlap_tokens:
            meta.overlap_tokens, changed = overlap, True
        if meta.overlap_tokens >= meta.chunk_tokens:
            raise UserError(
                f"overlap_tokens={meta.overlap_tokens} must be smaller than chunk_tokens={meta.chunk_tokens}.",
                "Lower the overlap.",
            )
        if changed or not work.meta.is_file():
            work.write_meta(meta)
        self._meta = meta
        return work

    def store_for(self, work: KBPaths) -> Store:
        if work.dir == self.paths.dir:
            return self.store
        return open_store(self.meta.store, work.dir, self.name, self.meta.dim)

    # -- describing -------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        meta = self.meta
        versions = []
        for v in self.paths.version_numbers():
            m = self.paths.read_manifest(v)
            versions.append(
                {
                    "version": v,
                    "created": m.created,
                    "note": m.note,
                    "files": len(m.files),
                    "chunks": len(m.ids),
                    "current": v == self.current,
                }
            )
        files = self.paths.read_manifest(self.current).files if self.current else {}
        return {
            "name": self.name,
            "dir": str(self.paths.dir),
            "embedder": meta.embedder,
            "dim": meta.dim,
            "store": meta.store,
            "chunk_tokens": meta.chunk_tokens,
            "overlap_tokens": meta.overlap_tokens,
            "version": self.current,
            "files": len(files),
            "chunks": sum(len(f["chunks"]) for f in files.values()),
            "pages": sum(f.get("pages", 0) for f in files.values()),
            "disk_bytes": sum(p.stat().st_size for p in self.paths.dir.rglob("*") if p.is_file()),
            "refusal_calibrated": self.paths.refusal.is_file(),
            "versions": versions,
            "sources": sorted(files),
        }

    def _checked(self, meta: KBMeta) -> KBMeta:
        """The stored settings, or an error when the caller asked for another embedder or store."""
        if self._embedder_spec and embedder_name(self._embedder_spec) != meta.embedder:
            raise UserError(
                f"knowledge base {self.name!r} was built with embedder {meta.embedder!r}, not "
                f"{embedder_name(self._embedder_spec)!r}: their vectors do not compare.",
                f"Drop --embedder to use {meta.embedder!r}, or ingest into a new knowledge base.",
            )
        if self._store_url and self._store_url != meta.store:
            raise UserError(
                f"knowledge base {self.name!r} lives in store {meta.store!r}, not {self._store_url!r}.",
                "Drop --store, or ingest into a new knowledge base.",
            )
        return meta


def search(
    kbs: Sequence[KnowledgeBase], query: str, k: int = 5, client: Client | None = None, **options: Any
) -> list[Hit]:
    """One fused ranking over several knowledge bases. `client`: the model of rerank=llm (default: the
    embedded one)."""
    from llmworks.rag.rerank import make_reranker

    o = SearchOptions(k=k, **options)
    reranker = make_reranker(o.rerank, lambda: client or _default_client())
    return retrieve(kbs, query, o, reranker).hits


_DEFAULT: list[Client] = []


def _default_client() -> Client:
    """The embedded model, loaded once per process for rerank=llm without a client."""
    if not _DEFAULT:
        from llmworks.client import make_client

        _DEFAULT.append(make_client())
    return _DEFAULT[0]


def list_knowledge_bases(kb_dir: str | Path | None = None) -> list[str]:
    return list_kbs(Path(kb_dir).expanduser() if kb_dir else default_kb_dir())
