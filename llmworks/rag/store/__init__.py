"""Stores of chunks and vectors behind one interface (`Store`): LanceDB (default) and Qdrant."""

from __future__ import annotations

from pathlib import Path

from llmworks.errors import UserError
from llmworks.rag.store.base import PAYLOAD, Filter, Store, StoredHit

__all__ = ["PAYLOAD", "Filter", "Store", "StoredHit", "check_store_url", "open_store"]

SCHEMES = ("lancedb", "qdrant://HOST:PORT", "qdrant:///PATH")


def check_store_url(url: str) -> str:
    """`url` if it names a known store; a UserError naming the choices otherwise."""
    if url == "lancedb" or url.startswith("qdrant://"):
        return url
    raise UserError(
        f"unknown store {url!r}.",
        f"Use one of: {', '.join(SCHEMES)} (lancedb, in the knowledge base's directory, is the default).",
    )


def open_store(url: str, kb_dir: Path, kb: str, dim: int) -> Store:
    """The store for knowledge base `kb` (its files in `kb_dir`), with `dim`-dimensional vectors."""
    check_store_url(url)
    if url == "lancedb":
        from llmworks.rag.store.lance import LanceStore

        return LanceStore(kb_dir / "lancedb", kb, dim)
    from llmworks.rag.store.qdrant import QdrantStore

    return QdrantStore(url, kb_dir / "qdrant", kb, dim)
