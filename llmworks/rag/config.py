"""The rag stage's configs: one `StageConfig` per command, shared by the CLI and the Python API.

llmworks rag search --kb manual "how do I decode DER?" --config search.yaml k=8 mode=bm25
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from llmworks.config import StageConfig

__all__ = [
    "AnswerOptions",
    "AskConfig",
    "CalibrateConfig",
    "IngestConfig",
    "ModelOptions",
    "RagEvalConfig",
    "SearchConfig",
    "SearchOptions",
    "SynthConfig",
]

Mode = Literal["hybrid", "dense", "bm25"]


class SearchOptions(StageConfig):
    """How chunks are retrieved (`KnowledgeBase.search` takes these as keyword arguments)."""

    k: int = 5
    """Chunks returned."""
    mode: Mode = "hybrid"
    """hybrid (dense + BM25, fused), dense or bm25."""
    candidates: int = 30
    """Chunks each retriever contributes to the fusion."""
    dense_weight: float = 1.0
    """Weight of the dense ranking in the fusion (lowered by the share of the query's tokens the embedder
    does not know: all-MiniLM-L6-v2 reads Chinese as unknown tokens)."""
    bm25_weight: float = 1.0
    """Weight of the BM25 ranking in the fusion."""
    rrf_k: int = 60
    """Reciprocal rank fusion constant: score = Σ weight / (rrf_k + rank)."""
    rerank: str | None = None
    """Rerank the top chunks: `llm` (the answering model judges relevance) or a local cross-encoder
    directory; none by default."""
    rerank_top: int = 20
    """Chunks the reranker sees."""
    sources: list[str] = Field(default_factory=list)
    """Only chunks of sources matching these globs (e.g. `*.pdf`, `*/handbook/*`)."""
    tags: list[str] = Field(default_factory=list)
    """Only chunks with one of these tags (given at ingest with --tag)."""

    def problems(self) -> list[str]:
        problems = super().problems()
        if self.k < 1:
            problems.append(f"k={self.k} (must be >= 1)")
        if self.candidates < 1:
            problems.append(f"candidates={self.candidates} (must be >= 1)")
        if self.rrf_k < 0:
            problems.append(f"rrf_k={self.rrf_k} (must be >= 0)")
        if self.dense_weight < 0 or self.bm25_weight < 0:
            problems.append("dense_weight and bm25_weight must be >= 0")
        return problems

    def search_options(self) -> SearchOptions:
        return SearchOptions(**{k: getattr(self, k) for k in SearchOptions.model_fields})


class ModelOptions(StageConfig):
    """The model that answers (and rewrites, reranks, judges relevance): any model, through the client."""

    model: str | None = None
    """A local model (default: the embedded one), or the served name with base_url."""
    base_url: str | None = None
    """An OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."""
    api_key: str | None = None
    """Its API key."""
    ctx: int = 4096
    """Context length of a local model (retrieved chunks + question + answer)."""


class AnswerOptions(StageConfig):
    """How answers are written and when they are refused."""

    max_tokens: int = 256
    """Answer length budget."""
    paragraphs: int = 1
    """Stop the answer after this many paragraphs (0: no limit). One suits the embedded model, whose later
    paragraphs wander off; raise it for a larger model."""
    temperature: float = 0.0
    refusal: str = "I can't answer that from the knowledge base."
    """The reply to an out-of-scope question."""
    refuse: bool = True
    """Refuse out-of-scope questions (decided on retrieval scores; see `rag calibrate`)."""
    relevance_check: bool = False
    """Also ask the model whether the best chunk answers the question (one more scored request)."""
    rewrite: Literal["llm", "concat", "off"] = "llm"
    """Follow-up questions: rewritten into a standalone query by the model (llm), joined to the previous
    question (concat), or searched as they are (off)."""
    system: str | None = None
    """Replaces the grounded-answer instructions (the numbered sources still follow)."""


class IngestConfig(StageConfig):
    """`llmworks rag ingest PATH ... --kb NAME`."""

    paths: list[str] = Field(default_factory=list)
    """Files and directories to ingest (directories recursively)."""
    kb: str = ""
    """The knowledge base (created on first ingest)."""
    kb_dir: str | None = None
    """Where knowledge bases live (default: the llmworks home's kb/)."""
    embedder: str | None = None
    """all-minilm-l6-v2 (default), a sentence-transformers directory, or URL[#MODEL] of /v1/embeddings."""
    store: str | None = None
    """lancedb (default), qdrant://HOST:PORT, or qdrant:///PATH (qdrant-client's local mode)."""
    chunk_tokens: int | None = None
    """Chunk size in embedder tokens (default 200; kept per knowledge base)."""
    overlap_tokens: int | None = None
    """Tokens of overlap between neighbouring chunks (default 32)."""
    tags: list[str] = Field(default_factory=list)
    """Tags for the chunks of these files (filter on them at search time)."""

    def problems(self) -> list[str]:
        problems = super().problems()
        if not self.kb:
            problems.append("kb is required (--kb NAME)")
        if not self.paths:
            problems.append("paths: give files or directories to ingest")
        if self.chunk_tokens is not None and self.chunk_tokens < 16:
            problems.append(f"chunk_tokens={self.chunk_tokens} (must be >= 16)")
        if self.overlap_tokens is not None and self.overlap_tokens < 0:
            problems.append(f"overlap_tokens={self.overlap_tokens} (must be >= 0)")
        if self.chunk_tokens and self.overlap_tokens and self.overlap_tokens >= self.chunk_tokens:
            problems.append("overlap_tokens must be smaller than chunk_tokens")
        return problems


class SearchConfig(SearchOptions):
    """`llmworks rag search QUERY --kb NAME [--kb NAME ...]`."""

    query: str = ""
    """The query."""
    kb: list[str] = Field(default_factory=list)
    """Knowledge bases to search (several: one fused ranking)."""
    kb_dir: str | None = None
    """Where knowledge bases live (default: the llmworks home's kb/)."""


class AskConfig(SearchConfig, ModelOptions, AnswerOptions):
    """`llmworks rag ask QUESTION --kb NAME`: retrieval, then a grounded answer with citations."""

    query: str = ""
    """The question."""
    k: int = 4
    """Chunks given to the model as numbered sources."""


class RagEvalConfig(AskConfig):
    """`llmworks rag eval QA.jsonl --kb NAME -o out/rag-eval`."""

    qa: str = ""
    """JSONL of {"question", "sources"/"source", "pages"/"page", "answer", "out_of_scope"}."""
    output_dir: str = "out/rag-eval"
    """The run directory (results.json, report.html, samples.jsonl); rerun to resume."""
    k: int = 5
    """Cut-off of hit@k, recall@k, nDCG@k; chunks given to the model."""
    answers: bool = True
    """Generate answers (faithfulness and citation metrics need them)."""
    judge: str | None = None
    """Grade answers with this model (local) or server URL; without it answers get automatic checks only."""
    judge_api_key: str | None = None
    """The judge server's API key."""
    ablation: bool = True
    """Also score retrieval with BM25 only, dense only and hybrid + rerank (when rerank is set)."""
    limit: int | None = None
    """At most N questions."""


class SynthConfig(ModelOptions):
    """`llmworks rag synth --kb NAME -n 200 -o qa.jsonl`: questions generated from chunks."""

    kb: str = ""
    """The knowledge base."""
    kb_dir: str | None = None
    """Where knowledge bases live (default: the llmworks home's kb/)."""
    n: int = 50
    """Questions to keep."""
    output: str = "qa.jsonl"
    """The eval set (JSONL); the SFT data goes next to it as NAME.sft.jsonl."""
    k: int = 5
    """A question is kept when its own chunk is among the top k retrieved for it."""
    seed: int = 0
    """Which chunks are drawn."""
    answers: bool = True
    """Also write cited answers (messages-format SFT data)."""
    max_tokens: int = 96
    """Tokens per generated question or answer."""


class CalibrateConfig(StageConfig):
    """`llmworks rag calibrate --kb NAME IN_SCOPE.jsonl OUT_OF_SCOPE.jsonl`."""

    kb: list[str] = Field(default_factory=list)
    """Knowledge bases the questions are asked of."""
    kb_dir: str | None = None
    """Where knowledge bases live (default: the llmworks home's kb/)."""
    in_scope: str = ""
    """Questions the knowledge base answers (JSONL with "question", or a text file of lines)."""
    out_of_scope: str = ""
    """Questions it should refuse."""
    relevance_check: bool = False
    """Add the model's relevance judgement as a signal (one scored request per question)."""
    model: str | None = None
    """The model for the relevance check (local; default: the embedded one)."""
    base_url: str | None = None
    """Or a server for it."""
    api_key: str | None = None
    """Its API key."""
    target: Literal["f1", "precision"] = "f1"
    """Pick the threshold that maximizes refusal F1, or the best precision with recall >= 0.5."""
