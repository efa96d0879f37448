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
"""BM25 runs beside the query embedding and the vector search (both release the GIL): on two cores a
hybrid query then costs about the slower of the two, not their sum."""


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

    Both retrievers rank chunk ids; only the chunks that make the final cut are fetched, with the filter."""
    o = options or SearchOptions()
    readable = tuple(kb.name for kb in kbs if allowed is None or kb.name in allowed)
    lists: list[tuple[str, float, list[tuple[str, str, float]]]] = []  # (retriever, weight, (kb, id, score))
    signals: dict[str, float] = {}
    vectors: dict[str, np.ndarray] = {}
    filters: dict[str, Filter] = {}
    by_name = {kb.name: kb for kb in kbs}
    for kb in kbs:
        kb.refresh()
        if kb.name not in readable or not kb.current:
            continue
        flt, mask = _filter(kb, o, readable)
        filters[kb.name] = flt
        bm25 = _BM25_POOL.submit(kb.bm25.search, query, o.candidates, mask) if o.mode != "dense" else None
        if o.mode in ("hybrid", "dense"):
            name = kb.meta.embedder
            if name not in vectors:
                vectors[name] = kb.embedder.embed([query])[0]
            found = kb.store.search(vectors[name], o.candidates, flt, payload=False)
            weight = o.dense_weight * (1.0 - kb.embedder.counter.unknown_share(query))
            signals["dense_weight"] = max(signals.get("dense_weight", 0.0), weight)
            signals["dense_top"] = max(signals.get("dense_top", 0.0), found[0].score if found else 0.0)
            lists.append(("dense", weight, [(kb.name, h.id, h.score) for h in found]))
        if bm25 is not None:
            ranked, share = bm25.result()
            signals["bm25_top"] = max(signals.get("bm25_top", 0.0), share)
            lists.append(("bm25", o.bm25_weight, [(kb.name, i, sc) for i, sc in ranked]))
    order = _fuse(lists, o.rrf_k) if o.mode == "hybrid" else _single(lists)
    want = max(o.k, o.rerank_top) if reranker is not None else o.k
    hits: list[Hit] = []
    start = 0
    while len(hits) < want and start < len(order):  # payloads of the best, through the store's filter
        part = order[start : start + want - len(hits) + 4]
        start += len(part)
        for kb_name in {c[0] for c in part}:
            got = by_name[kb_name].store.fetch([c[1] for c in part if c[0] == kb_name], filters[kb_name])
            for c in part:
                if c[0] == kb_name and c[1] in got:
                    c[3].update(_hit_fields(kb_name, got[c[1]]))
        hits += [_hit(c) for c in part if c[3]]
    hits = hits[:want]
    if reranker is not None and hits:
        hits = reranker.rerank(query, hits)
    return Retrieval(query, hits[: o.k], signals)


Candidate = tuple[str, str, dict[str, float], dict[str, Any]]
"""(kb, chunk id, its scores by retriever, its payload once fetched)."""


def _fuse(lists: list[tuple[str, float, list[tuple[str, str, float]]]], rrf_k: int) -> list[Candidate]:
    """Weighted reciprocal rank fusion: Σ weight / (rrf_k + rank) over the lists a chunk appears in.
    Written here (ranx has it) because ranx compiles with numba on first use, seconds per process."""
    by_id: dict[tuple[str, str], Candidate] = {}
    for retriever, weight, ranked in lists:
        for rank, (kb, cid, score) in enumerate(ranked, 1):
            c = by_id.setdefault((kb, cid), (kb, cid, {}, {}))
            c[2][retriever] = score
            c[2]["fused"] = c[2].get("fused", 0.0) + weight / (rrf_k + rank)
    return sorted(by_id.values(), key=lambda c: -c[2]["fused"])


def _single(lists: list[tuple[str, float, list[tuple[str, str, float]]]]) -> list[Candidate]:
    out: list[Candidate] = [(kb, cid, {r: score}, {}) for r, _, ranked in lists for kb, cid, score in ranked]
    return sorted(out, key=lambda c: -next(iter(c[2].values())))


def _hit_fields(kb: str, p: dict[str, Any]) -> dict[str, Any]:
    return {"kb": kb, **p}


def _hit(c: Candidate) -> Hit:
    kb, cid, scores, p = c
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
