"""Continuous batching on llama.cpp: many sequences advance in one `llama_decode` per step.

Each sequence owns a slot (a llama.cpp sequence id with its own KV stream) and a sampler chain (so
every request keeps its own temperature, seed, penalty and grammar). A step packs the next prompt chunk
of newly admitted sequences and the last sampled token of running ones into one batch; prompt chunks are
capped so a long prompt never stalls the sequences that are already decoding.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

import llama_cpp as C
import numpy as np

from llmworks.engines.llamacpp import RANDOM_SEED, LlamaCppEngine, log_softmax
from llmworks.engines.types import SamplingParams
from llmworks.errors import UserError

PENALTY_LAST_N = 64  # llama.cpp's default window for the repetition penalty


@dataclass
class TokenLogprob:
    token: int
    logprob: float
    top: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class Slot:
    """One sequence in the batch."""

    seq_id: int
    prompt: list[int]
    params: SamplingParams
    logprobs: int | None
    """None: no logprobs; n >= 0: the chosen token's logprob and the n likeliest alternatives."""
    prompt_logprobs: bool
    sampler: ctypes.c_void_p
    n_past: int = 0
    pending: list[int] = field(default_factory=list)
    prompt_scores: list[TokenLogprob | None] = field(default_factory=list)
    prompt_reported: bool = False

    @property
    def prefilling(self) -> bool:
        return self.n_past < len(self.prompt)


@dataclass
class StepOutput:
    slot: Slot
    token: int
    logprob: TokenLogprob | None = None
    prompt_logprobs: list[TokenLogprob | None] | None = None
    """Set on the first token of a sequence that asked for prompt logprobs (echo)."""


class LlamaBatchRunner:
    """Owns a llama.cpp context with `parallel` sequence slots of `ctx_per_seq` tokens each."""

    def __init__(self, engine: LlamaCppEngine, parallel: int, ctx_per_seq: int, n_batch: int = 512) -> None:
        self.engine = engine
        self.parallel = parallel
        self.ctx_per_seq = ctx_per_seq
        self.n_batch = n_batch
        model = engine._llm._model.model
        self._vocab = C.llama_model_get_vocab(model)
        self.n_vocab = engine.vocab_size
        p = C.llama_context_default_params()
        p.n_ctx = parallel * ctx_per_seq
        p.n_batch = p.n_ubatch = n_batch + parallel  # a prompt chunk plus one token per decoding sequence
        p.n_seq_max = parallel
        p.kv_unified = False  # one KV stream per sequence: attention only spans a sequence's own tokens
        p.n_threads = p.n_threads_batch = engine.n_threads
        p.no_perf = True
        p.flash_attn_type = (
            engine._llm.context_params.flash_attn_type
        )  # same kernels as the engine: same numbers
        self._ctx = C.llama_init_from_model(model, p)
        if not self._ctx:
            raise UserError(
                f"llama.cpp could not make a context of {parallel} x {ctx_per_seq} tokens.",
                "Lower --parallel or --ctx.",
            )
        self._mem = C.llama_get_memory(self._ctx)
        self._batch = C.llama_batch_init(n_batch + parallel, 0, 1)
        self._free = list(range(parallel))
        self.slots: dict[int, Slot] = {}

    # -- admission --

    @property
    def has_room(self) -> bool:
        return bool(self._free)

    def add(
        self,
        prompt: list[int],
        params: SamplingParams,
        grammar: str | None = None,
        logprobs: int | None = None,
        prompt_logprobs: bool = False,
    ) -> Slot:
        if len(prompt) >= self.ctx_per_seq:
            from llmworks.errors import PromptTooLong

            raise PromptTooLong(len(prompt), self.ctx_per_seq, params.max_tokens)
        seq_id = self._free.pop()
        slot = Slot(seq_id, list(prompt), params, logprobs, prompt_logprobs, self._sampler(params, grammar))
        slot.pending = list(prompt)
        self.slots[seq_id] = slot
        return slot

    def release(self, slot: Slot) -> None:
        """Free the slot's KV cells and sampler; the slot takes new work on the next step."""
        if self.slots.pop(slot.seq_id, None) is None:
            return
        C.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
        C.llama_sampler_free(slot.sampler)
        self._free.append(slot.seq_id)

    # -- the step --

    def step(self) -> list[StepOutput]:
        """Decode one batch; return one sampled token for every sequence whose prompt is fully read."""
        batch, entries = self._batch, []  # entries: (slot, batch index of its last token, n tokens fed)
        batch.n_tokens = 0
        budget = self.n_batch
        # Decoding sequences first (one token each), then prompt chunks with what budget is left.
        ordered = sorted(self.slots.values(), key=lambda s: s.prefilling)
        for slot in ordered:
            take = len(slot.pending) if not slot.prefilling else min(len(slot.pending), budget)
            if take == 0 or (slot.prefilling and budget == 0):
                continue
            budget -= take if slot.prefilling else 0
            want_all = slot.prompt_logprobs and slot.prefilling
            for j, tok in enumerate(slot.pending[:take]):
                i = batch.n_tokens
                batch.token[i] = tok
                batch.pos[i] = slot.n_past + j
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = slot.seq_id
                batch.logits[i] = want_all or j == take - 1
                batch.n_tokens += 1
            entries.append((slot, batch.n_tokens - take, take))
        if not entries:
            return []
        rc = C.llama_decode(self._ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with status {rc}")

        outputs = []
        for slot, first, take in entries:
            if slot.prompt_logprobs and slot.prefilling:
                self._score_prompt_chunk(slot, first, take)
            del slot.pending[:take]
            slot.n_past += take
            if slot.pending:  # more prompt to read before sampling
                continue
            last = first + take - 1
            tok = C.llama_sampler_sample(slot.sampler, self._ctx, last)
            slot.pending = [tok]
            out = StepOutput(slot, tok)
            if slot.logprobs is not None:
                out.logprob = _token_logprob(self._logprobs_at(last), tok, slot.logprobs)
            if slot.prompt_logprobs and not slot.prompt_reported:
                out.prompt_logprobs, slot.prompt_reported = slot.prompt_scores, True
            outputs.append(out)
        return outputs

    def close(self) -> None:
        for slot in list(self.slots.values()):
            self.release(slot)
        if self._batch is not None:
            C.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            C.llama_free(self._ctx)
            self._ctx = None

    # -- helpers --

    def _sampler(self, params: SamplingParams, grammar: str | None) -> ctypes.c_void_p:
        chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
        add = lambda s: C.llama_sampler_chain_add(chain, s)  # noqa: E731
        if params.repetition_penalty != 1.0:
            add(C.llama_sampler_init_penalties(PENALTY_LAST_N, params.repetition_penalty, 0.0, 0.0))
        if grammar:
            g = C.llama_sampler_init_grammar(self._vocab, grammar.encode(), b"root")
            if not g:
                C.llama_sampler_free(chain)
                raise UserError(
                    "the grammar for this response_format could not be compiled.", "Simplify the schema."
                )
            add(g)
        if params.greedy:
            add(C.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                add(C.llama_sampler_init_top_k(params.top_k))
            if params.top_p < 1.0:
                add(C.llama_sampler_init_top_p(params.top_p, 1))
            add(C.llama_sampler_init_temp(params.temperature))
            add(C.llama_sampler_init_dist(params.seed if params.seed is not None else RANDOM_SEED))
        return chain

    def _logprobs_at(self, index: int) -> np.ndarray:
        """Log-softmax of the raw logits (before temperature and penalties) at a batch position."""
        ptr = C.llama_get_logits_ith(self._ctx, index)
        return log_softmax(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64))

    def _score_prompt_chunk(self, slot: Slot, first: int, take: int) -> None:
        """Logprob of each prompt token given the ones before it (the first token has none)."""
        if slot.n_past == 0:
            slot.prompt_scores.append(None)
        for j in range(take):
            nxt = slot.n_past + j + 1  # the prompt position this one predicts
            if nxt >= len(slot.prompt):
                break
            slot.prompt_scores.append(
                _token_logprob(self._logprobs_at(first + j), slot.prompt[nxt], slot.logprobs or 0)
            )


def _token_logprob(logprobs: np.ndarray, token: int, n_top: int) -> TokenLogprob:
    top: list[tuple[int, float]] = []
    if n_top > 0:
        ids = np.argpartition(-logprobs, n_top)[:n_top]
        ids = ids[np.argsort(-logprobs[ids])]
        top = [(int(i), float(logprobs[i])) for i in ids]
    return TokenLogprob(token, float(logprobs[token]), top)
