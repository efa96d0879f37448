"""Continuous batching on llama.cpp: the one place that calls `llama_decode`.

Each sequence owns a slot (a llama.cpp sequence id with its own KV stream) and a sampler chain (so every
request keeps its own temperature, seed, penalty and grammar). A step packs the next prompt chunk of newly
admitted sequences and the last sampled token of running ones into one batch; prompt chunks are capped so
a long prompt never stalls the sequences that are already decoding.

A released slot keeps its KV cells (prefix caching): the next request that starts with the same tokens — a
system prompt, the earlier turns of a conversation, a question shared by its answer options — goes to that
slot and decodes only what differs. Logits are read only at the positions that need them: the last prompt
token (to sample), decoded tokens, and the prompt positions a scoring request asks about; a scoring slot
also keeps the logits it read, so the next option of the same question often needs no decode at all.
"""

from __future__ import annotations

import ctypes
import itertools
from dataclasses import dataclass, field

import llama_cpp as C
import numpy as np

from llmworks.engines.types import SamplingParams, SeqRequest, TokenLogprob, shared_prefix
from llmworks.engines.utf8_guard import Utf8Guard
from llmworks.errors import PromptTooLong, UserError

RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a fresh random seed per sampler
KEPT_LOGITS = 32  # logits rows a scoring slot keeps for the next request with the same prefix
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])  # llama_token_data


@dataclass
class Slot:
    """One sequence id of the context and what its KV cells hold."""

    seq_id: int
    cached: list[int] = field(default_factory=list)
    """Tokens whose KV cells are filled, at positions 0, 1, ..."""
    request: SeqRequest | None = None
    sampler: ctypes.c_void_p | None = None
    pending: list[int] = field(default_factory=list)
    """Tokens to feed on the next steps: the rest of the prompt, then the last sampled token."""
    prompt_scores: list[TokenLogprob | None] = field(default_factory=list)
    logits: dict[int, np.ndarray] = field(default_factory=dict)
    """Raw logits a scoring request read, by position (valid while the tokens up to it are cached)."""
    ready: bool = False
    """A scoring request that the cache answered whole: it is output on the next step without a decode."""
    last_used: int = 0
    utf8_state: int = 0
    """Where a UTF-8 decoder of the sampled bytes stands (constrained requests; see utf8_guard)."""

    @property
    def prefilling(self) -> bool:
        """The prompt is not fully read yet."""
        assert self.request is not None
        return len(self.cached) < len(self.request.prompt)


@dataclass
class StepOutput:
    slot: Slot
    token: int | None
    """The sampled token; None for a scoring-only sequence, which is then done."""
    logprob: TokenLogprob | None = None
    prompt_logprobs: list[TokenLogprob | None] | None = None
    """Set once, with the sequence's first output, when the request asked for prompt log-probabilities:
    one entry per prompt token (None before `prompt_logprobs_from`)."""
    error: UserError | None = None
    """The sequence cannot go on (its constraint allows no valid next token); it alone fails."""


class LlamaBatchRunner:
    """Owns the llama.cpp context of a model: `parallel` sequence slots of `ctx_per_seq` tokens each.

    Driven by one thread at a time: the engine's own `generate`/`loglikelihood`, or a scheduler.
    """

    def __init__(
        self,
        model: ctypes.c_void_p,
        n_vocab: int,
        parallel: int,
        ctx_per_seq: int,
        n_threads: int,
        n_batch: int = 512,
        prefix_cache: bool = True,
    ) -> None:
        self.parallel = parallel
        self.ctx_per_seq = ctx_per_seq
        self.n_batch = n_batch
        self.n_vocab = n_vocab
        self.prefix_cache = prefix_cache
        self._vocab = C.llama_model_get_vocab(model)
        p = C.llama_context_default_params()
        p.n_ctx = parallel * ctx_per_seq
        p.n_batch = p.n_ubatch = n_batch + parallel  # a prompt chunk plus one token per decoding sequence
        p.n_seq_max = parallel
        p.kv_unified = False  # one KV stream per sequence: attention only spans a sequence's own tokens
        p.n_threads = p.n_threads_batch = n_threads
        p.no_perf = True
        p.flash_attn_type = (
            C.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )  # batch-invariant: a sequence scores the same alone or batched
        self._ctx = C.llama_init_from_model(model, p)
        if not self._ctx:
            raise UserError(
                f"llama.cpp could not make a context of {parallel} x {ctx_per_seq} tokens.",
                "Lower --parallel or --ctx.",
            )
        self._mem = C.llama_get_memory(self._ctx)
        self._batch = C.llama_batch_init(n_batch + parallel, 0, 1)
        self._slots = [Slot(i) for i in range(parallel)]
        self.active: dict[int, Slot] = {}
        self._clock = itertools.count(1)
        self._guard: Utf8Guard | None = None  # built on the first constrained request
        self._candidates = np.zeros(0, dtype=_TOKEN_DATA)
        self._token_ids = np.zeros(0, dtype=np.int32)

    # -- admission --

    @property
    def has_room(self) -> bool:
        return len(self.active) < self.parallel

    def free_slots(self) -> list[Slot]:
        return [s for s in self._slots if s.seq_id not in self.active]

    def add(self, req: SeqRequest) -> Slot:
        """Start a sequence in a free slot, reusing the longest cached prefix; raises UserError (and takes
        nothing) when the request cannot run."""
        if not self.has_room:
            raise RuntimeError("no free slot: check has_room before add")
        if not req.prompt:
            raise UserError("the prompt is empty.", "Send some text or token ids.")
        if len(req.prompt) >= self.ctx_per_seq:
            raise PromptTooLong(len(req.prompt), self.ctx_per_seq, req.params.max_tokens)
        start = req.prompt_logprobs_from
        if start is not None and not 1 <= start <= len(req.prompt):
            raise ValueError(f"prompt_logprobs_from must be in [1, {len(req.prompt)}], got {start}")
        sampler = self._sampler(req.params, req.prompt) if req.generate else None
        prompt = req.prompt
        slot = max(self.free_slots(), key=lambda s: (shared_prefix(s.cached, prompt), -s.last_used))
        shared = shared_prefix(slot.cached, prompt) if self.prefix_cache else 0
        slot.logits = {
            p: row for p, row in slot.logits.items() if p < shared
        }  # rows whose tokens still match
        # Logits are needed at the last prompt token (to sample) or at every scored position; the ones the
        # slot kept need no decode. A scoring request feeds nothing past its last scored position.
        needed = range(len(prompt) - 1, len(prompt)) if start is None else range(start - 1, len(prompt) - 1)
        missing = next((p for p in needed if p not in slot.logits), None)
        keep = min(shared, missing) if missing is not None else shared
        end = len(prompt) if req.generate else max(keep, len(prompt) - 1)
        if not C.llama_memory_seq_rm(self._mem, slot.seq_id, keep, -1):
            C.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
            keep, slot.logits = 0, {}
        slot.cached = slot.cached[:keep]
        slot.request, slot.sampler, slot.utf8_state = req, sampler, 0
        slot.pending = list(prompt[keep:end])
        # prompt_scores[i] is the log-probability of prompt token i; none before `start` (nor for token 0).
        slot.prompt_scores = [None] * (keep + 1) if start is not None else []
        n_top = req.params.logprobs or 0
        for p in range(start - 1, min(keep, len(prompt) - 1)) if start is not None else ():
            lp = log_softmax(slot.logits[p].astype(np.float64))
            slot.prompt_scores[p + 1] = _token_logprob(lp, prompt[p + 1], n_top)
        slot.ready = not slot.pending
        slot.last_used = next(self._clock)
        self.active[slot.seq_id] = slot
        return slot

    def release(self, slot: Slot) -> None:
        """End the slot's sequence; its KV cells stay for a later request with the same prefix."""
        if self.active.pop(slot.seq_id, None) is None:
            return
        if slot.sampler is not None:
            C.llama_sampler_free(slot.sampler)
        slot.request, slot.sampler, slot.pending, slot.prompt_scores, slot.ready = None, None, [], [], False

    def forget(self, slot: Slot) -> None:
        """Release the slot and drop its KV cells (after a failed step, their contents are unknown)."""
        self.release(slot)
        C.llama_memory_seq_rm(self._mem, slot.seq_id, -1, -1)
        slot.cached, slot.logits = [], {}

    # -- the step --

    def step(self) -> list[StepOutput]:
        """Decode one batch; return an output for every sequence whose prompt is fully read."""
        ready = [s for s in self.active.values() if s.ready]
        outputs = [StepOutput(s, None, None, s.prompt_scores) for s in ready]
        for s in ready:
            s.ready = False
        batch, entries = self._batch, []  # (slot, batch index of its first token, tokens fed)
        batch.n_tokens = 0
        budget = self.n_batch
        # Decoding sequences first (one token each), then prompt chunks with what budget is left. A prompt is
        # cut only where it must be (longer than a whole step): one that does not fit what is left waits for
        # the next step, so how a prompt is read never depends on what else runs (and neither do its numbers).
        for slot in sorted(self.active.values(), key=lambda s: s.prefilling):
            if not slot.pending:
                continue
            prefilling = slot.prefilling
            if prefilling and len(slot.pending) > budget and budget < self.n_batch:
                continue
            take = min(len(slot.pending), budget) if prefilling else len(slot.pending)
            if take == 0:
                continue
            if prefilling:
                budget -= take
            req = slot.request
            assert req is not None
            n_prompt, start = len(req.prompt), req.prompt_logprobs_from
            first_pos = len(slot.cached)
            for j, tok in enumerate(slot.pending[:take]):
                i, pos = batch.n_tokens, first_pos + j
                batch.token[i] = tok
                batch.pos[i] = pos
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = slot.seq_id
                batch.logits[i] = (req.generate and pos >= n_prompt - 1) or (
                    start is not None and start - 1 <= pos <= n_prompt - 2
                )
                batch.n_tokens += 1
            entries.append((slot, batch.n_tokens - take, take))
        if not entries:
            return outputs
        rc = C.llama_decode(self._ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with status {rc}")

        for slot, first, take in entries:
            req = slot.request
            assert req is not None
            first_pos = len(slot.cached)
            had_prompt = first_pos < len(req.prompt)
            if had_prompt and req.prompt_logprobs_from is not None:
                self._score_prompt(slot, first, first_pos, take)
            slot.cached.extend(slot.pending[:take])
            del slot.pending[:take]
            if slot.pending:  # more prompt to read before sampling
                continue
            # The prompt's scores go out once, with the output of the step that finished reading it.
            scores = slot.prompt_scores if had_prompt and req.prompt_logprobs_from is not None else None
            if not req.generate:
                outputs.append(StepOutput(slot, None, None, scores))
                continue
            last = first + take - 1
            assert slot.sampler is not None
            if req.params.grammar is None:
                tok = C.llama_sampler_sample(slot.sampler, self._ctx, last)
            else:
                try:
                    tok = self._sample_valid_utf8(slot, last)
                except UserError as e:
                    outputs.append(StepOutput(slot, None, error=e))
                    continue
            slot.pending = [tok]
            out = StepOutput(slot, tok, prompt_logprobs=scores)
            if req.params.logprobs is not None:
                out.logprob = _token_logprob(self._logprobs_at(last), tok, req.params.logprobs)
            outputs.append(out)
        return outputs

    def close(self) -> None:
        for slot in list(self.active.values()):
            self.release(slot)
        if self._batch is not None:
            C.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            C.llama_free(self._ctx)
            self._ctx = None

    # -- helpers --

    def check_grammar(self, gbnf: str) -> None:
        """Raise UserError when llama.cpp cannot compile `gbnf` (checked before a request is queued)."""
        g = C.llama_sampler_init_grammar(self._vocab, gbnf.encode(), b"root")
        if not g:
            raise UserError(
                "the output constraint (response_format or forced tool call) could not be compiled to a "
                "grammar.",
                "Simplify the JSON schema.",
            )
        C.llama_sampler_free(g)

    def _sampler(self, params: SamplingParams, prompt: list[int]) -> ctypes.c_void_p:
        chain = C.llama_sampler_chain_init(C.llama_sampler_chain_default_params())
        add = lambda s: C.llama_sampler_chain_add(chain, s)  # noqa: E731
        if params.repetition_penalty != 1.0:
            # (n_vocab, last_n, repeat, freq, present): the window is the whole sequence, prompt included,
            # as in transformers.
            pen = C.llama_sampler_init_penalties(
                self.n_vocab, self.ctx_per_seq, params.repetition_penalty, 0.0, 0.0
            )
            for tok in prompt:
                C.llama_sampler_accept(pen, tok)
            add(pen)
        if params.grammar is not None:
            g = C.llama_sampler_init_grammar(self._vocab, params.grammar.gbnf.encode(), b"root")
            if not g:
                C.llama_sampler_free(chain)
                raise UserError("the output constraint could not be compiled.", "Simplify the JSON schema.")
            add(g)
        if params.greedy:
            add(C.llama_sampler_init_greedy())
        else:
            if params.top_k > 0:
                add(C.llama_sampler_init_top_k(min(params.top_k, self.n_vocab)))
            if params.top_p < 1.0:
                add(C.llama_sampler_init_top_p(params.top_p, 1))
            if params.min_p > 0.0:
                add(C.llama_sampler_init_min_p(params.min_p, 1))
            add(C.llama_sampler_init_temp(params.temperature))
            seed = RANDOM_SEED if params.seed is None else params.seed & 0xFFFFFFFF
            add(C.llama_sampler_init_dist(seed))
        return chain

    def _sample_valid_utf8(self, slot: Slot, index: int) -> int:
        """`llama_sampler_sample` (apply the chain, take its pick, accept it) over logits in which the
        tokens that would break UTF-8 are masked first."""
        if self._guard is None:
            self._guard = Utf8Guard([self._piece(t) for t in range(self.n_vocab)])
            self._candidates = np.zeros(self.n_vocab, dtype=_TOKEN_DATA)
            self._token_ids = np.arange(self.n_vocab, dtype=np.int32)
            self._one = np.zeros(1, dtype=_TOKEN_DATA)
            self._candidates["id"] = self._token_ids
        logits = np.ctypeslib.as_array(C.llama_get_logits_ith(self._ctx, index), shape=(self.n_vocab,))
        masked = np.where(self._guard.allowed[slot.utf8_state], logits, -np.inf)
        assert slot.sampler is not None and slot.request is not None
        params = slot.request.params
        if params.greedy and params.repetition_penalty == 1.0:  # the chain is [grammar, greedy]
            # As llama.cpp's common sampler does: try the best token first, and run the grammar over the
            # whole vocabulary only when it rejects that one (free text under the auto tool grammar is
            # otherwise ~50k grammar checks a token).
            tok = int(np.argmax(masked))
            if np.isfinite(masked[tok]) and self._grammar_allows(
                C.llama_sampler_chain_get(slot.sampler, 0), tok
            ):
                C.llama_sampler_accept(slot.sampler, tok)
                slot.utf8_state = int(self._guard.next_state[slot.utf8_state, tok])
                return tok
        cand = self._candidates
        cand["logit"] = masked
        cand["p"] = 0.0
        cur = C.llama_token_data_array(
            data=cand.ctypes.data_as(C.llama_token_data_p), size=self.n_vocab, selected=-1, sorted=False
        )
        C.llama_sampler_apply(slot.sampler, ctypes.byref(cur))
        picked = cur.data[cur.selected]
        if picked.logit == -np.inf:  # accepting a token the grammar rejected would abort the process
            raise UserError(
                "the output constraint allows no valid UTF-8 text at this point.",
                "Check the grammar's character ranges (surrogates and overlong forms are not text).",
            )
        tok = int(picked.id)
        C.llama_sampler_accept(slot.sampler, tok)
        cand["id"] = self._token_ids  # samplers sort the array in place
        slot.utf8_state = int(self._guard.next_state[slot.utf8_state, tok])
        return tok

    def _grammar_allows(self, grammar: ctypes.c_void_p, token: int) -> bool:
        one = self._one
        one["id"], one["logit"], one["p"] = token, 0.0, 0.0
        cur = C.llama_token_data_array(
            data=one.ctypes.data_as(C.llama_token_data_p), size=1, selected=-1, sorted=False
        )
        C.llama_sampler_apply(grammar, ctypes.byref(cur))
        return bool(np.isfinite(one["logit"][0]))

    def _piece(self, token: int) -> bytes:
        """The token's bytes as it adds them to text (empty for control tokens)."""
        buf = ctypes.create_string_buffer(256)
        n = C.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, False)
        return buf.raw[: max(n, 0)]

    def _logits_at(self, index: int) -> np.ndarray:
        """The raw logits (before temperature and penalties) at a batch position, copied."""
        ptr = C.llama_get_logits_ith(self._ctx, index)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def _logprobs_at(self, index: int) -> np.ndarray:
        return log_softmax(self._logits_at(index).astype(np.float64))

    def _score_prompt(self, slot: Slot, first: int, first_pos: int, take: int) -> None:
        """Log-probability of each prompt token that this chunk's logits predict."""
        req = slot.request
        assert req is not None and req.prompt_logprobs_from is not None
        n_top = req.params.logprobs or 0
        for j in range(take):
            nxt = first_pos + j + 1  # the prompt position this one predicts
            if nxt >= len(req.prompt):
                break
            assert len(slot.prompt_scores) == nxt
            if nxt < req.prompt_logprobs_from:
                slot.prompt_scores.append(None)
                continue
            row = self._logits_at(first + j)
            if len(slot.logits) < KEPT_LOGITS:
                slot.logits[first_pos + j] = row
            slot.prompt_scores.append(
                _token_logprob(log_softmax(row.astype(np.float64)), req.prompt[nxt], n_top)
            )


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis, computed stably."""
    m = logits.max(axis=-1, keepdims=True)
    return logits - (m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True)))


def _token_logprob(logprobs: np.ndarray, token: int, n_top: int) -> TokenLogprob:
    top: list[tuple[int, float]] = []
    if n_top > 0:
        ids = np.argpartition(-logprobs, n_top)[:n_top]
        ids = ids[np.argsort(-logprobs[ids])]
        top = [(int(i), float(logprobs[i])) for i in ids]
    best = int(logprobs.argmax())
    return TokenLogprob(token, float(logprobs[token]), top, best == token)
