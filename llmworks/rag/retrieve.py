"""Hybrid retrieval over one or several knowledge bases: dense (the store's vector search) and BM25, fused by
weighted reciprocal rank, optionally reranked; metadata filters on sources (globs) and tags.

Every row comes back through the store's filter, BM25 hits included (they are fetched by id with the same
filter), so a knowledge base a reader may not see never contributes a chunk.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from llmworks.rag.config import SearchOptions
from llmworks.rag.store import Filter

if TYPE_CHECKING:
    from llmworks.rag.kb import KnowledgeBase
    from llmworks.rag.rerank import Reranker

__all__ = ["Hit", "Retrieval", "retrieve"]

_BM25_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="bm25")
"""BM25 and the fetch of its candidates run beside the vector search (both release the GIL, the search
keeps about one core busy): on two cores a hybrid query costs the query embedding plus the slower of the
two, not the sum of all three."""


@dataclass
class Hit:
    """A retrieved chunk."""

    text: str
    source: str
    page: int | None
    heading: str
    score: float
    """What it was ranked by: the fused score (hybrid), the one retriever's score, or the reranker's."""
    scores: dict[str, float] = field(default_factory=dict)
    """Each retriever's own score for it: `dense` (cosine), `bm25`, `fused`, `rerank` (where it ran)."""
    kb: str = ""
    id: str = ""
    start: int = 0
    end: int = 0
    row: int | None = None
    kind: str = "text"
    tags: list[str] = field(default_factory=list)

    @property
    def where(self) -> str:
        """`file p.N › heading`, for citations."""
        from pathlib import Path

        s = Path(self.source).name or self.source
        if self.page is not None:
            s += f" p.{self.page}"
        elif self.row is not None:
            s += f" row {self.row}"
        return f"{s} › {self.heading}" if self.heading else s

    def to_json(self, with_text: bool = True) -> dict[str, Any]:
        d = {
            "kb": self.kb,
            "id": self.id,
            "source": self.source,
            "page": self.page,
            "heading": self.heading,
            "row": self.row,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 6),
            "scores": {k: round(v, 6) for k, v in self.scores.items()},
        }
        if with_text:
            d["text"] = self.text
        return d


@dataclass
class Retrieval:
    query: str
    hits: list[Hit]
    signals: dict[str, float] = field(default_factory=dict)
    """What refusal decides on: `dense_top` (best cosine), `bm25_top` (best BM25 score as a share of the
    query's ceiling), `dense_weight` (after the unknown-token discount); only the retrievers that ran."""


def retrieve(
    kbs: Sequence[KnowledgeBase],
    query: str,
    options: SearchOptions | None = None,
    reranker: Reranker | None = None,
    allowed: Sequence[str] | None = None,
) -> Retrieval:
    """Search `kbs` for `query`. `allowed`: the knowledge bases the caller may read (None: all of `kbs`);
    it becomes every store query's filter.

    Every candidate's payload comes with it through the store's filter: the vector search returns its rows
    and the BM25 thread fetches its own during the vector search, so no store query waits for fusion (a
    LanceDB fetch by id costs about 9 ms however few rows it reads)."""
    o = options or SearchOptions()
    readable = tuple(kb.name for kb in kbs if allowed is None or kb.name in allowed)
    lists: list[tuple[str, float, list[tuple[str, str, float]]]] = []  # (retriever, weight, (kb, id, score))
    signals: dict[str, float] = {}
    vectors: dict[str, np.ndarray] = {}
    payloads: dict[tuple[str, str], dict[str, Any]] = {}  # by (kb, chunk id), fetched through the filter
    for kb in kbs:
        kb.refresh()
        if kb.name not in readable or not kb.current:
            continue
        flt, mask = _filter(kb, o, readable)
        dense = o.mode in ("hybrid", "dense")
        if dense and kb.meta.embedder not in vectors:
            vectors[kb.meta.embedder] = kb.embedder.embed([query])[0]
        # BM25 starts after the embedding (which uses both cores) and runs beside the vector search (one).
        bm25 = _BM25_POOL.submit(_bm25, kb, query, o.candidates, mask, flt) if o.mode != "dense" else None
        if dense:
            found = kb.store.search(vectors[kb.meta.embedder], o.candidates, flt)
            weight = o.dense_weight * (1.0 - kb.embedder.counter.unknown_share(query))
            signals["dense_weight"] = max(signals.get("dense_weight", 0.0), weight)
            signals["dense_top"] = max(signals.get("dense_top", 0.0), found[0].score if found else 0.0)
            lists.append(("dense", weight, [(kb.name, h.id, h.score) for h in found]))
            payloads.update({(kb.name, h.id): h.payload for h in found})
        if bm25 is not None:
            ranked, share, got = bm25.result()
            signals["bm25_top"] = max(signals.get("bm25_top", 0.0), share)
            lists.append(("bm25", o.bm25_weight, [(kb.name, i, sc) for i, sc in ranked]))
            payloads.update({(kb.name, i): p for i, p in got.items()})
    order = _fuse(lists, o.rrf_k) if o.mode == "hybrid" else _single(lists)
    want = max(o.k, o.rerank_top) if reranker is not None else o.k
    # A candidate without a payload is a BM25 hit the store's filter did not let through.
    hits = [_hit(c, payloads[c[0], c[1]]) for c in order if (c[0], c[1]) in payloads][:want]
    if reranker is not None and hits:
        hits = reranker.rerank(query, hits)
    return Retrieval(query, hits[: o.k], signals)


def _bm25(
    kb: KnowledgeBase, query: str, n: int, mask: np.ndarray | None, flt: Filter
) -> tuple[list[tuple[str, float]], float, dict[str, dict[str, Any]]]:
    ranked, share = kb.bm25.search(query, n, mask)
    return ranked, share, kb.store.fetch([i for i, _ in ranked], flt)


Candidate = tuple[str, str, dict[str, float]]
"""(kb, chunk id, its scores by retriever)."""


def _fuse(lists: list[tuple[str, float, list[tuple[str, str, float]]]], rrf_k: int) -> list[Candidate]:
    """Weighted reciprocal rank fusion: Σ weight / (rrf_k + rank) over the lists a chunk appears in.
    Written here (ranx has it) because ranx compiles with numba on first use, seconds per process."""
    by_id: dict[tuple[str, str], Candidate] = {}
    for retriever, weight, ranked in lists:
        for rank, (kb, cid, score) in enumerate(ranked, 1):
            c = by_id.setdefault((kb, cid), (kb, cid, {}))
            c[2][retriever] = score
            c[2]["fused"] = c[2].get("fused", 0.0) + weight / (rrf_k + rank)
    return sorted(by_id.values(), key=lambda c: -c[2]["fused"])


def _single(lists: list[tuple[str, float, list[tuple[str, str, float]]]]) -> list[Candidate]:
    out: list[Candidate] = [(kb, cid, {r: score}) for r, _, ranked in lists for kb, cid, score in ranked]
    return sorted(out, key=lambda c: -next(iter(c[2].values())))


def _hit(c: Candidate, p: dict[str, Any]) -> Hit:
    kb, cid, scores = c
    score = scores["fused"] if "fused" in scores else next(iter(scores.values()))
    return Hit(
        text=p["text"],
        source=p["source"],
        page=p.get("page"),
        heading=p.get("heading") or "",
        score=score,
        scores=dict(scores),
        kb=kb,
        id=cid,
        start=int(p.get("start") or 0),
        end=int(p.get("end") or 0),
        row=p.get("row"),
        kind=p.get("kind") or "text",
        tags=list(p.get("tags") or []),
    )


def _filter(
    kb: KnowledgeBase, o: SearchOptions, readable: tuple[str, ...]
) -> tuple[Filter, np.ndarray | None]:
    """The store filter and the BM25 document mask for the options' source globs and tags."""
    docs = kb.docs
    sources = None
    mask = None
    if o.sources:
        sources = tuple(s for s in docs["sources"] if any(fnmatch.fnmatch(s, g) for g in o.sources))
        allowed = {n for n, s in enumerate(docs["sources"]) if s in set(sources)}
        mask = np.array([i in allowed for i in docs["source_of"]], dtype=np.float32)
    if o.tags:
        want = set(o.tags)
        tag_mask = np.array([bool(want & set(t)) for t in docs["tags"]], dtype=np.float32)
        mask = tag_mask if mask is None else mask * tag_mask
    flt = Filter(kbs=readable, version=kb.current, sources=sources, tags=tuple(o.tags) or None)
    return flt, mask
