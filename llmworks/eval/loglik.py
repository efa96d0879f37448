"""Batched log-likelihood for local engines: many (context, continuation) pairs per forward pass.

On llama.cpp, pairs that share a context (the options of one multiple-choice question) share its tokens:
each context token is tagged with the sequence ids of all its options, so it is computed once in one
`llama_decode`, and only the positions that predict continuation tokens ask for logits (llama.cpp's own
hellaswag scorer does the same). On transformers, pairs go in right-padded batches.
Other engines fall back to their own `Engine.loglikelihood`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from llmworks.engines.base import Engine, LoglikelihoodResult

BATCH_TOKENS = 2048
"""Tokens per forward pass (llama.cpp context size of the scorer; padded tokens on transformers)."""
MAX_SEQS = 64
"""Sequences per llama.cpp decode (llama.cpp allows up to 256; 64 keeps the attention mask small)."""


def batched_loglikelihood(engine: Engine, pairs: Sequence[tuple[str, str]]) -> list[LoglikelihoodResult]:
    """log P(continuation | context) for every pair, batched when the engine allows it."""
    from llmworks.engines.llamacpp import LlamaCppEngine
    from llmworks.engines.transformers import TransformersEngine

    if isinstance(engine, LlamaCppEngine):
        scorer = getattr(engine, "_eval_scorer", None)
        if scorer is None:
            scorer = engine._eval_scorer = LlamaSharedPrefixScorer(engine)  # type: ignore[attr-defined]
        return scorer.score(pairs)
    if isinstance(engine, TransformersEngine):
        return _padded_loglikelihood(engine, pairs)
    return engine.loglikelihood(pairs)


class LlamaSharedPrefixScorer:
    """A llama.cpp context of `BATCH_TOKENS` cells with a unified KV cache shared by `MAX_SEQS` sequences."""

    def __init__(self, engine: Any) -> None:
        import llama_cpp as C

        self.engine = engine
        self.n_vocab = engine.vocab_size
        p = C.llama_context_default_params()
        p.n_ctx = p.n_batch = p.n_ubatch = BATCH_TOKENS
        p.n_seq_max = MAX_SEQS
        p.kv_unified = True  # a context token tagged with several sequence ids is stored once
        p.n_threads = p.n_threads_batch = engine.n_threads
        p.no_perf = True
        p.flash_attn_type = engine._llm.context_params.flash_attn_type  # same kernels as the engine
        self._ctx = C.llama_init_from_model(engine._llm._model.model, p)
        if not self._ctx:
            raise RuntimeError(f"llama.cpp could not make a scoring context of {BATCH_TOKENS} tokens")
        self._mem = C.llama_get_memory(self._ctx)
        self._batch = C.llama_batch_init(BATCH_TOKENS, 0, MAX_SEQS)
        # Freed with the engine, before its model (a context freed after its model crashes llama.cpp).
        engine._owned.insert(0, self)

    def score(self, pairs: Sequence[tuple[str, str]]) -> list[LoglikelihoodResult]:
        results: list[LoglikelihoodResult | None] = [None] * len(pairs)
        groups: dict[tuple[int, ...], list[tuple[int, list[int]]]] = {}
        for i, (context, continuation) in enumerate(pairs):
            ctx_ids, cont_ids = self.engine.split_continuation(context, continuation)
            if len(ctx_ids) + len(cont_ids) > BATCH_TOKENS:  # too long to pack: the engine scores it alone
                results[i] = self.engine.loglikelihood([(context, continuation)])[0]
                continue
            groups.setdefault(tuple(ctx_ids), []).append((i, cont_ids))

        for ctx_ids, conts in groups.items():
            chunk: list[tuple[int, list[int]]] = []
            used = len(ctx_ids)
            for i, cont_ids in conts:
                if chunk and (used + len(cont_ids) - 1 > BATCH_TOKENS or len(chunk) == MAX_SEQS):
                    self._decode(ctx_ids, chunk, results)
                    chunk, used = [], len(ctx_ids)
                chunk.append((i, cont_ids))
                used += len(cont_ids) - 1
            self._decode(ctx_ids, chunk, results)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        import llama_cpp as C

        if self._ctx:
            C.llama_batch_free(self._batch)
            C.llama_free(self._ctx)
            self._ctx = None

    def _decode(
        self, ctx_ids: tuple[int, ...], conts: list[tuple[int, list[int]]], results: list[Any]
    ) -> None:
        """One forward pass: the shared context once, then each continuation on its own sequence.

        One context per pass: packing unrelated contexts into one unified-KV batch gave scores that differ
        from scoring them alone (llama-cpp-python 0.3.36), so independent questions are not mixed.
        """
        import llama_cpp as C

        C.llama_memory_clear(self._mem, True)
        batch = self._batch
        batch.n_tokens = 0

        def put(token: int, pos: int, seqs: range | list[int], logits: bool) -> int:
            i = batch.n_tokens
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, pos, len(seqs)
            for k, s in enumerate(seqs):
                batch.seq_id[i][k] = s
            batch.logits[i] = logits
            batch.n_tokens += 1
            return i

        seqs = range(len(conts))
        for pos, tok in enumerate(ctx_ids):
            last = put(tok, pos, seqs, pos == len(ctx_ids) - 1)
        # For each continuation, the batch rows whose logits predict its tokens, in order.
        rows = [
            (i, cont_ids, [last, *(put(t, len(ctx_ids) + k, [s], True) for k, t in enumerate(cont_ids[:-1]))])
            for s, (i, cont_ids) in zip(seqs, conts, strict=True)
        ]
        rc = C.llama_decode(self._ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with status {rc}")
        for i, cont_ids, at in rows:
            logits = np.stack(
                [
                    np.ctypeslib.as_array(C.llama_get_logits_ith(self._ctx, r), shape=(self.n_vocab,))
                    for r in at
                ]
            ).astype(np.float64)
            results[i] = _result(logits, cont_ids)


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
