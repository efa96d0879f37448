"""Sparse retrieval: BM25 (`bm25s`) over one version of a knowledge base.

One tokenizer at index and at query time: lower-cased words, English stop words dropped and the rest
stemmed (Snowball, from nltk); runs of Chinese (and Japanese kana) segmented by `jieba` in search mode
(words and the shorter words inside them). bm25s cannot add documents to an index, so each version gets
its own, built in a few seconds even at 100k chunks.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BM25Index", "tokenize"]

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+")
_IS_CJK = re.compile(rf"[{_CJK}]")
# A short list of Chinese function words and question words (bm25s ships none for Chinese).
_ZH_STOP_WORDS = (
    "的 了 是 在 和 与 及 或 也 就 都 而 被 把 对 从 到 为 以 之 其 这 那 这个 那个 这些 那些 一个 个 吗 呢 吧 啊 "
    "呀 我 你 他 她 它 我们 你们 他们 怎么 怎样 如何 什么 哪 哪个 哪些 为什么 是否 可以 能 能否 会 要 需要 应该 "
    "有 没有 请问 一下 里 中 上 下 时 时候"
)
_ZH_STOP = frozenset(_ZH_STOP_WORDS.split())


@lru_cache(maxsize=1)
def _english() -> tuple[frozenset[str], Any]:
    from bm25s.stopwords import STOPWORDS_EN_PLUS
    from nltk.stem.snowball import SnowballStemmer

    return frozenset(STOPWORDS_EN_PLUS), SnowballStemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return _english()[1].stem(word)


def _segment(run: str) -> list[str]:
    import jieba

    jieba.setLogLevel(60)  # its dictionary-loading chatter
    return [w for w in jieba.lcut_for_search(run) if w.strip() and w not in _ZH_STOP]


def tokenize(text: str) -> list[str]:
    """BM25 terms of `text` (the same at index and query time)."""
    stop, _ = _english()
    out: list[str] = []
    for m in _TOKEN.finditer(text.lower()):
        word = m.group()
        if _IS_CJK.match(word):
            out += _segment(word)
        elif len(word) > 1 and word not in stop:
            out.append(_stem(word) if word.isalpha() else word)
    return out


class BM25Index:
    """A bm25s index over chunks; documents are addressed by chunk id."""

    def __init__(self, retriever: Any, ids: list[str]) -> None:
        self.retriever = retriever
        self.ids = ids
        self._df: np.ndarray | None = None

    @classmethod
    def build(cls, ids: Sequence[str], texts: Sequence[str]) -> BM25Index:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each index build at DEBUG

        retriever = bm25s.BM25()
        corpus = [tokenize(t) for t in texts]
        if corpus:
            retriever.index(corpus, show_progress=False)
        return cls(retriever, list(ids))

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if self.ids:
            self.retriever.save(str(path), show_progress=False)
        (path / "ids.json").write_text(json.dumps(self.ids), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> BM25Index:
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # it logs each index build at DEBUG

        ids = json.loads((path / "ids.json").read_text(encoding="utf-8"))
        retriever = bm25s.BM25.load(str(path), mmap=True, show_progress=False) if ids else None
        return cls(retriever, ids)

    def __len__(self) -> int:
        return len(self.ids)

    def search(
        self, query: str, k: int, allowed: np.ndarray | None = None
    ) -> tuple[list[tuple[str, float]], float]:
        """The top `k` (chunk id, BM25 score), best first, and the best score as a share of the most this
        query could score (0-1; terms the corpus lacks count against it: an out-of-scope signal).
        `allowed`: a 0/1 weight per document (filters)."""
        terms = tokenize(query)
        if not self.ids or not terms:
            return [], 0.0
        vocab = self.retriever.vocab_dict
        known = [t for t in terms if t in vocab]
        if not known:
            return [], 0.0
        k = min(k, len(self.ids))
        mask = None if allowed is None else allowed.astype(np.float32)
        docs, scores = self.retriever.retrieve(
            [known], k=k, show_progress=False, weight_mask=mask, n_threads=0
        )
        hits = [(self.ids[int(d)], float(s)) for d, s in zip(docs[0], scores[0], strict=True) if s > 0]
        top = hits[0][1] if hits else 0.0
        return hits, top / self._ceiling(terms)

    def _ceiling(self, terms: list[str]) -> float:
        """Σ idf·(k1+1) over the query's terms: above any document's score (BM25's term-frequency factor
        stays below k1+1). A term the corpus lacks gets the largest idf."""
        r = self.retriever
        if self._df is None:
            indptr = np.asarray(r.scores["indptr"])
            self._df = np.diff(indptr)
        n = len(self.ids)
        total = 0.0
        for t in terms:
            tid = r.vocab_dict.get(t)
            df = int(self._df[tid]) if tid is not None and tid < len(self._df) else 0
            total += math.log(1 + (n - df + 0.5) / (df + 0.5)) * (r.k1 + 1)
        return total or 1.0
