"""Rerankers: a local cross-encoder directory (sentence-transformers `CrossEncoder`), or the answering model
judging relevance through the client (log P(" yes") − log P(" no") after a relevance question)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmworks.errors import UserError

if TYPE_CHECKING:
    from llmworks.client import Client
    from llmworks.rag.retrieve import Hit

__all__ = ["CrossEncoderReranker", "LLMReranker", "Reranker", "make_reranker", "relevance_prompt"]

PASSAGE_CHARS = 1200
"""Characters of a chunk the LLM judge reads (its context is small)."""


class Reranker(ABC):
    name: str

    @abstractmethod
    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """Relevance of each text to the query (higher is more relevant)."""

    def rerank(self, query: str, hits: list[Hit]) -> list[Hit]:
        values = self.scores(query, [h.text for h in hits])
        for h, v in zip(hits, values, strict=True):
            h.scores["rerank"] = float(v)
            h.score = float(v)
        return sorted(hits, key=lambda h: -h.score)


class CrossEncoderReranker(Reranker):
    def __init__(self, directory: str) -> None:
        path = Path(directory).expanduser()
        if not (path / "config.json").is_file():
            raise UserError(
                f"rerank {directory!r} is not a local cross-encoder directory (no config.json).",
                "Give a sentence-transformers CrossEncoder directory, or rerank=llm.",
            )
        self.name = path.name
        self.path = path
        self._model = None

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if self._model is None:
            from sentence_transformers import CrossEncoder

            self._model = CrossEncoder(str(self.path), device="cpu")
        return [float(s) for s in self._model.predict([(query, t) for t in texts])]


def relevance_prompt(query: str, text: str) -> str:
    return (
        f"Passage:\n{text[:PASSAGE_CHARS]}\n\nQuestion: {query}\n"
        "Does the passage contain the answer to the question? Answer yes or no.\nAnswer:"
    )


class LLMReranker(Reranker):
    """The model as a relevance judge, scored by log-likelihood (one batched request); a server that cannot
    score text is asked to answer yes/no instead."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.name = f"llm:{client.name}"

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        prompts = [relevance_prompt(query, t) for t in texts]
        pairs = [(p, c) for p in prompts for c in (" yes", " no")]
        lp = self.client.loglikelihood(pairs)
        if lp is not None:
            return [lp[2 * i] - lp[2 * i + 1] for i in range(len(prompts))]
        out = []
        for p in prompts:
            reply = self.client.chat([{"role": "user", "content": p}], max_tokens=3, temperature=0.0)
            out.append(1.0 if (reply.content or "").strip().lower().startswith("yes") else 0.0)
        return out


def make_reranker(spec: str | None, client_factory: object = None) -> Reranker | None:
    """None, `llm` (needs `client_factory()`: the answering model's client) or a cross-encoder directory."""
    if not spec or spec == "none":
        return None
    if spec == "llm":
        if client_factory is None or not callable(client_factory):
            raise UserError("rerank=llm needs a model.", "Give --model or --base-url, or rerank=none.")
        return LLMReranker(client_factory())
    return CrossEncoderReranker(spec)
