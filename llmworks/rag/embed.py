"""Dense embedders of a knowledge base, and the embedding cache that makes re-ingest cheap.

An embedder is named by a spec: `all-minilm-l6-v2` (the embedded default, from its wheel), a local
sentence-transformers directory, or an OpenAI-compatible server's `/v1/embeddings` as `URL` or
`URL#MODEL` (e.g. `http://127.0.0.1:8000/v1#all-minilm-l6-v2`), reached through `llmworks.client` (with
`$LLMWORKS_API_KEY` as its API key when set).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from llmworks.errors import UserError
from llmworks.rag.tokens import TokenCounter, token_counter

__all__ = ["DEFAULT_EMBEDDER", "DenseEmbedder", "EmbeddingCache", "embedder_name"]

DEFAULT_EMBEDDER = "all-minilm-l6-v2"
BATCH = 64
"""Texts per embedding call during ingest (and per cache append)."""
_LOADED: dict[str, Callable[[list[str]], list[list[float]]]] = {}
_LOCK = threading.Lock()


def embedder_name(spec: str | None) -> str:
    """The identity a knowledge base records for an embedder spec (a directory by its absolute path)."""
    spec = spec or DEFAULT_EMBEDDER
    if _is_url(spec) or spec == DEFAULT_EMBEDDER:
        return spec
    return str(Path(spec).expanduser().resolve())


class DenseEmbedder:
    """Unit-length float32 vectors for texts, from a local model or a server; loads on first use."""

    def __init__(self, spec: str | None = None) -> None:
        self.spec = spec or DEFAULT_EMBEDDER
        self.name = embedder_name(self.spec)
        self._embed: Callable[[list[str]], list[list[float]]] | None = None
        self._dim: int | None = None
        if _is_url(self.spec):
            self.counter = token_counter(None)  # the server's tokenizer is not visible: MiniLM's as a proxy
        else:
            from llmworks.engines.embedder import embedding_model_dir

            local = None if self.spec == DEFAULT_EMBEDDER else self.spec
            self.model_dir = embedding_model_dir(local)  # ModelNotFound, with the fix, if it is not there
            self.counter = TokenCounter(self.model_dir / "tokenizer.json")

    @property
    def dim(self) -> int:
        """From the model's pooling config when it is local (no model load), else one probe request."""
        if self._dim is None:
            pooling = getattr(self, "model_dir", None)
            config = pooling / "1_Pooling" / "config.json" if pooling else None
            if config is not None and config.is_file():
                import json

                self._dim = int(json.loads(config.read_text())["word_embedding_dimension"])
            else:
                self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        if self._embed is None:
            self._embed = self._load()
        vectors = np.asarray(self._embed(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.where(norms > 0, norms, 1.0)  # a server may not normalize
        self._dim = vectors.shape[1]
        return vectors

    def _load(self) -> Callable[[list[str]], list[list[float]]]:
        """One model per spec in a process, shared by every knowledge base that uses it."""
        with _LOCK:
            if self.name not in _LOADED:
                _LOADED[self.name] = self._make()
            return _LOADED[self.name]

    def _make(self) -> Callable[[list[str]], list[list[float]]]:
        if _is_url(self.spec):
            from llmworks.client import make_client

            url, _, model = self.spec.partition("#")
            key = os.environ.get("LLMWORKS_API_KEY")  # the server's key, if it asks for one
            client = make_client("embedder", base_url=url, api_key=key, embedding_model=model or None)
            return client.embed
        from llmworks.engines.embedder import Embedder

        embedder = Embedder(None if self.spec == DEFAULT_EMBEDDER else str(self.model_dir))
        return lambda texts: embedder.embed(texts)[0]


class EmbeddingCache:
    """Vectors by content hash for one embedder: two append-only files (`NAME.keys`, one hash a line, and
    `NAME.f32`, the vectors), so an interrupted ingest keeps every batch it finished. Written by hand: a
    database table would add a second store to keep consistent for what is a flat, append-only list."""

    def __init__(self, directory: Path, embedder: str, dim: int) -> None:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder).strip("_")[-100:] or "embedder"
        self.keys_path = directory / f"{slug}.keys"
        self.vec_path = directory / f"{slug}.f32"
        self.dim = dim
        self._index: dict[str, int] = {}
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        if self.keys_path.is_file() and self.vec_path.is_file():
            keys = self.keys_path.read_text(encoding="ascii").split("\n")
            keys = [k for k in keys if len(k) == 32]
            n = min(len(keys), self.vec_path.stat().st_size // (4 * dim))
            if n:
                self._vectors = np.fromfile(self.vec_path, dtype=np.float32, count=n * dim).reshape(n, dim)
            self._index = {k: i for i, k in enumerate(keys[:n])}
            self._truncate(n)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def get(self, keys: Sequence[str]) -> np.ndarray:
        return self._vectors[[self._index[k] for k in keys]].reshape(len(keys), self.dim)

    def put(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        fresh = [(k, v) for k, v in zip(keys, vectors, strict=True) if k not in self._index]
        if not fresh:
            return
        block = np.stack([v for _, v in fresh]).astype(np.float32)
        self.keys_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.vec_path, "ab") as f:  # vectors first: a key is never written without its vector
            f.write(block.tobytes())
            f.flush()
            os.fsync(f.fileno())
        with open(self.keys_path, "a", encoding="ascii") as f:
            f.write("".join(f"{k}\n" for k, _ in fresh))
            f.flush()
            os.fsync(f.fileno())
        start = len(self._vectors)
        self._vectors = np.concatenate([self._vectors, block])
        for i, (k, _) in enumerate(fresh):
            self._index[k] = start + i

    def _truncate(self, n: int) -> None:
        """Drop a half-written tail (an interrupted append) so new rows line up with their keys."""
        if self.vec_path.stat().st_size != n * 4 * self.dim:
            with open(self.vec_path, "r+b") as f:
                f.truncate(n * 4 * self.dim)
        keys = list(self._index)
        text = "".join(f"{k}\n" for k in keys)
        if self.keys_path.stat().st_size != len(text):
            self.keys_path.write_text(text, encoding="ascii")


def _is_url(spec: str) -> bool:
    return spec.startswith(("http://", "https://"))


def check_embedder_spec(spec: str) -> str:
    """A spec that names no embedder is a UserError before any work starts."""
    if _is_url(spec) or spec == DEFAULT_EMBEDDER:
        return spec
    if not Path(spec).expanduser().is_dir():
        raise UserError(
            f"embedder {spec!r} is neither {DEFAULT_EMBEDDER}, a sentence-transformers directory, nor a URL.",
            "Give a local directory or an OpenAI-compatible base URL (http://HOST:PORT/v1[#MODEL]).",
        )
    return spec
