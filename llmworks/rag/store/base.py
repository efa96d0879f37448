"""The store seam: where a knowledge base's chunks and vectors live, one small interface for LanceDB
(embedded, the default) and Qdrant (a server or cluster; its local mode for tests).

Versions are kept by two columns on every row, so a reader never sees an ingest in progress: `added`, the
version that wrote the row, and `removed`, the version that removes it (0: none). A reader of committed
version v sees `added <= v AND (removed = 0 OR removed > v)`; an ingest writes version v+1 (new rows,
removal marks), commits it in the knowledge base's own files, then purges the rows it removed.
Every query carries a `Filter` whose knowledge-base list is the reader's permission: a store never returns
a row of a knowledge base the filter does not name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["PAYLOAD", "Filter", "Store", "StoredHit", "batches"]

PAYLOAD = ("id", "kb", "text", "source", "page", "heading", "start", "end", "row", "kind", "hash", "tags")
"""The fields of a row besides its vector and version columns."""


@dataclass(frozen=True)
class Filter:
    kbs: tuple[str, ...]
    """The knowledge bases the reader may see (always given: it is the permission check)."""
    version: int
    """The reader's committed version."""
    sources: tuple[str, ...] | None = None
    """Only these sources (exact paths; globs are resolved by the knowledge base)."""
    tags: tuple[str, ...] | None = None
    """Only rows with at least one of these tags."""


@dataclass
class StoredHit:
    id: str
    score: float
    """Cosine similarity to the query vector."""
    payload: dict[str, Any]


class Store(ABC):
    url: str
    """How the store was named (`lancedb`, `qdrant://host:6333`, ...)."""

    @abstractmethod
    def add(self, rows: Sequence[Mapping[str, Any]], vectors: np.ndarray) -> None:
        """New rows (the PAYLOAD fields plus `added` and `removed`) with their vectors."""

    @abstractmethod
    def mark(self, ids: Iterable[str], **columns: int) -> None:
        """Set `added` and/or `removed` on these rows."""

    @abstractmethod
    def delete(self, ids: Iterable[str]) -> None:
        """Remove these rows for good."""

    @abstractmethod
    def purge(self, version: int) -> int:
        """Remove for good the rows removed by `version` or earlier; returns how many."""

    @abstractmethod
    def states(self) -> dict[str, tuple[int, int]]:
        """Every row's (added, removed), by id: what an ingest reconciles against."""

    @abstractmethod
    def search(self, vector: np.ndarray, k: int, flt: Filter) -> list[StoredHit]:
        """The `k` rows nearest to `vector` that `flt` lets through, nearest first, with their payloads."""

    @abstractmethod
    def fetch(self, ids: Sequence[str], flt: Filter) -> dict[str, dict[str, Any]]:
        """Payloads of these rows, by id, for those `flt` lets through."""

    @abstractmethod
    def count(self, flt: Filter) -> int: ...

    def optimize(self) -> None:  # noqa: B027 - optional hook
        """After an ingest: refresh indexes."""

    def refresh(self) -> None:  # noqa: B027 - optional hook
        """See what other processes wrote since this store was opened."""

    @abstractmethod
    def drop(self) -> None:
        """Delete everything this store holds for its knowledge base."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


def batches(ids: Iterable[str], size: int) -> Iterable[list[str]]:
    """`ids` in lists of at most `size` (each store's limit per request); itertools.batched is 3.12+."""
    part: list[str] = []
    for i in ids:
        part.append(i)
        if len(part) == size:
            yield part
            part = []
    if part:
        yield part
