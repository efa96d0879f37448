"""Batched log-likelihood for local engines: many (context, continuation) pairs, shared work done once.

On llama.cpp, pairs are scored in sorted order on one sequence whose KV cache is kept between pairs: each
pair decodes only the tokens after the longest prefix it shares with the previous one (the system prompt
and instruction of a chat template, a question's text shared by its options, few-shot examples), and the
logits of shared positions are reused, so a question's second option often needs no decode at all.
Only positions that predict continuation tokens ask for logits. One sequence keeps every token in the
same KV cell and batch layout as scoring the pair alone; packing several sequences into one unified-KV
batch gave different scores in llama-cpp-python 0.3.36 (whenever a sequence's rows followed another's).
On transformers, pairs go in right-padded batches. Other engines use their own `Engine.loglikelihood`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from llmworks.engines.base import Engine, LoglikelihoodResult

BATCH_TOKENS = 2048
"""Tokens per forward pass (llama.cpp context size of the scorer; padded tokens on transformers)."""


def batched_loglikelihood(engine: Engine, pairs: Sequence[tuple[str, str]]) -> list[LoglikelihoodResult]:
    """log P(continuation | context) for every pair, batched when the engine allows it."""
    from llmworks.engines.llamacpp import LlamaCppEngine
    from llmworks.engines.transformers import TransformersEngine

    if isinstance(engine, LlamaCppEngine):
        scorer = getattr(engine, "_eval_scorer", None)
        if scorer is None:
            scorer = engine._eval_scorer = LlamaPrefixScorer(engine)  # type: ignore[attr-defined]
        return scorer.score(pairs)
    if isinstance(engine, TransformersEngine):
        return _padded_loglikelihood(engine, pairs)
    return engine.loglikelihood(pairs)


class LlamaPrefixScorer:
    """A llama.cpp context of `BATCH_TOKENS` cells holding one sequence: the last scored pair's tokens."""

    def __init__(self, engine: Any) -> None:
        import llama_cpp as C

        self.engine = engine
        self.n_vocab = engine.vocab_size
        p = C.llama_context_default_params()
        p.n_ctx = p.n_batch = p.n_ubatch = BATCH_TOKENS
        p.n_seq_max = 1
        p.n_threads = p.n_threads_batch = engine.n_threads
        p.no_perf = True
        p.flash_attn_type = engine._llm.context_params.flash_attn_type  # same kernels as the engine
        self._ctx = C.llama_init_from_model(engine._llm._model.model, p)
        if not self._ctx:
            raise RuntimeError(f"llama.cpp could not make a scoring context of {BATCH_TOKENS} tokens")
        self._mem = C.llama_get_memory(self._ctx)
        self._batch = C.llama_batch_init(BATCH_TOKENS, 0, 1)
        self._cached: list[int] = []
        """The tokens in the KV cache, at positions 0, 1, ..."""
        self._logits: dict[int, np.ndarray] = {}
        """Next-token logits computed at cached positions (only those that predict a continuation)."""
        # Freed with the engine, before its model (a context freed after its model crashes llama.cpp).
        engine._owned.insert(0, self)

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[LoglikelihoodResult]:
        results: list[LoglikelihoodResult | None] = [None] * len(pairs)
        encoded = []
        for i, (context, continuation) in enumerate(pairs):
            ctx_ids, cont_ids = self.engine.split_continuation(context, continuation)
            if len(ctx_ids) + len(cont_ids) > BATCH_TOKENS:  # too long for this context: scored alone
                results[i] = self.engine.loglikelihood([(context, continuation)])[0]
            else:
                encoded.append((ctx_ids + cont_ids, len(ctx_ids), i))
        # Sorted, each pair shares the longest possible prefix with the one before it.
        for ids, n_ctx, i in sorted(encoded):
            logits = self._logits_at(ids[:-1], range(n_ctx - 1, len(ids) - 1))
            results[i] = _result(logits, ids[n_ctx:])
        return results  # type: ignore[return-value]

    def close(self) -> None:
        import llama_cpp as C

        if self._ctx:
            C.llama_batch_free(self._batch)
            C.llama_free(self._ctx)
            self._ctx = None

    def _logits_at(self, tokens: list[int], wanted: range) -> np.ndarray:
        """Logits after each position in `wanted` of `tokens`, decoding only what the cache lacks."""
        import llama_cpp as C

        keep = 0
        for a, b in zip(self._cached, tokens, strict=False):
            if a != b:
                break
            keep += 1
        keep = min([keep, *(p for p in wanted if p not in self._logits)])
        C.llama_memory_seq_rm(self._mem, 0, keep, -1)
        del self._cached[keep:]
        self._logits = {p: v for p, v in self._logits.items() if p < keep}
        batch = self._batch
        batch.n_tokens = len(tokens) - keep
        if batch.n_tokens:
            for r, pos in enumerate(range(keep, len(tokens))):
                batch.token[r], batch.pos[r], batch.n_seq_id[r] = tokens[pos], pos, 1
                batch.seq_id[r][0] = 0
                batch.logits[r] = pos in wanted
            rc = C.llama_decode(self._ctx, batch)
            if rc != 0:
                raise RuntimeError(f"llama_decode failed with status {rc}")
            for pos in wanted:
                if pos >= keep:  # copied: llama.cpp reuses the buffer on the next decode
                    row = C.llama_get_logits_ith(self._ctx, pos - keep)
                    self._logits[pos] = np.ctypeslib.as_array(row, shape=(self.n_vocab,)).astype(np.float64)
            self._cached = list(tokens)
        return np.stack([self._logits[p] for p in wanted])


def _result(logits: np.ndarray, cont_ids: list[int]) -> LoglikelihoodResult:
    from llmworks.engines.llamacpp import log_softmax

    picked = log_softmax(logits)[np.arange(len(cont_ids)), cont_ids]
    greedy = bool((logits.argmax(axis=1) == np.asarray(cont_ids)).all())
    return LoglikelihoodResult(float(picked.sum()), greedy, len(cont_ids))


def _padded_loglikelihood(engine: Any, pairs: Sequence[tuple[str, str]]) -> list[LoglikelihoodResult]:
    """Right-padded batches of similar length; each row's continuation logits are read back."""
    import torch

    encoded = [engine.split_continuation(c, x) for c, x in pairs]
    order = sorted(range(len(pairs)), key=lambda i: -sum(map(len, encoded[i])))
    results: list[LoglikelihoodResult | None] = [None] * len(pairs)
    pad = engine.tokenizer.pad_token_id or 0
    start = 0
    while start < len(order):
        width = sum(map(len, encoded[order[start]]))
        rows = order[start : start + max(1, BATCH_TOKENS // width)]
        start += len(rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, i in enumerate(rows):
            seq = encoded[i][0] + encoded[i][1]
            ids[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(seq)] = 1
        with torch.inference_mode():
            logits = engine.model(input_ids=ids, attention_mask=mask).logits
        for r, i in enumerate(rows):
            ctx_ids, cont_ids = encoded[i]
            span = logits[r, len(ctx_ids) - 1 : len(ctx_ids) + len(cont_ids) - 1]
            results[i] = _result(span.double().numpy(), cont_ids)
    return results  # type: ignore[return-value]
