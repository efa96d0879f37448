"""The llama.cpp engine (llama-cpp-python): GGUF models on the CPU.

Generation drives `Llama.generate` (the token loop under `create_completion`) directly, so stop
handling and streaming are ours and identical across engines, at no cost in speed.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from llmworks.engines.base import DEFAULT_MAX_CTX, Delta, Engine, LoglikelihoodResult, SamplingParams
from llmworks.engines.textstream import OutputProcessor
from llmworks.errors import BadModel, UserError
from llmworks.models.gguf_meta import diagnose
from llmworks.models.sources import ModelSource
from llmworks.models.template import ChatTemplate

RANDOM_SEED = 0xFFFFFFFF  # llama.cpp's LLAMA_DEFAULT_SEED: a fresh random seed per sampler


class LlamaCppEngine(Engine):
    def __init__(self, source: ModelSource, n_ctx: int | None = None, n_threads: int | None = None) -> None:
        from llama_cpp import Llama

        if source.adapter is not None:
            raise UserError(
                f"the llamacpp engine cannot apply the HF adapter {source.adapter}.",
                "Use --engine transformers, or merge the adapter and export a GGUF first.",
            )
        self.source = source
        self.name = source.name
        self.n_threads = n_threads or os.cpu_count() or 1
        self._path = str(source.path)
        if not n_ctx:  # the context the model was trained for, capped to keep the KV cache small
            trained = source.spec.context if source.spec else _trained_context(Llama, self._path)
            n_ctx = min(trained, DEFAULT_MAX_CTX)
        self._llm = _load(Llama, self._path, n_ctx, self.n_threads)
        # Free llama.cpp memory before interpreter teardown (Llama.__del__ fails once ctypes is gone).
        self._owned = [self._llm]
        self._finalizer = weakref.finalize(self, _close_all, self._owned)
        self.context_length = self._llm.n_ctx()
        self.vocab_size = self._llm.n_vocab()
        self._scorer = None  # a second context with logits for every position, made on first use
        model = self._llm._model
        self.eos_ids = _end_of_generation_ids(model.model, self.vocab_size)
        meta = self._llm.metadata
        self.add_bos = meta.get("tokenizer.ggml.add_bos_token", "false") == "true"
        bos_id = self._llm.token_bos()
        self.bos_token = self._piece(bos_id) if bos_id >= 0 else ""
        source_template = meta.get("tokenizer.chat_template")
        self.template = (
            ChatTemplate(
                source_template,
                f"GGUF metadata of {Path(self._path).name}",
                self.bos_token,
                self._piece(self._llm.token_eos()),
            )
            if source_template
            else None
        )

    # -- Engine --

    def generate(self, prompt: str | list[int], params: SamplingParams) -> Iterator[Delta]:
        ids = self.encode_prompt(prompt)
        self.check_fits(len(ids), params.max_tokens)
        max_new = min(params.max_tokens, self.context_length - len(ids))
        self._llm.set_seed(params.seed if params.seed is not None else RANDOM_SEED)
        out = OutputProcessor(self._decode, self.eos_ids, params.stop, max_new)
        tokens = self._llm.generate(
            ids,
            temp=0.0 if params.greedy else params.temperature,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=0.0,
            repeat_penalty=params.repetition_penalty,
            reset=True,
        )
        for tok in tokens:
            delta = out.feed(tok)
            yield delta
            if delta.finish_reason:
                return

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def detokenize(self, ids: Sequence[int]) -> str:
        return self._decode(ids)

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[LoglikelihoodResult]:
        return [self._score(ctx, cont) for ctx, cont in requests]

    def close(self) -> None:
        self._finalizer()

    # -- helpers --

    def encode_prompt(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, list):
            return prompt
        ids = self.tokenize(prompt)
        if self.add_bos and not (self.bos_token and prompt.startswith(self.bos_token)):
            ids = [self._llm.token_bos(), *ids]
        return ids

    def _decode(self, ids: Sequence[int]) -> str:
        return self._llm.detokenize(list(ids), special=True).decode("utf-8", errors="replace")

    def _piece(self, token_id: int) -> str:
        return self._decode([token_id])

    def _score(self, context: str, continuation: str) -> LoglikelihoodResult:
        from llama_cpp import Llama

        ctx_ids, cont_ids = self.split_continuation(context, continuation)
        ids = ctx_ids + cont_ids
        if self._scorer is None:
            self._scorer = _load(Llama, self._path, self.context_length, self.n_threads, logits_all=True)
            self._owned.append(self._scorer)
        self._scorer.reset()
        self._scorer.eval(ids)
        logits = np.asarray(self._scorer.scores[len(ctx_ids) - 1 : len(ids) - 1], dtype=np.float64)
        logprobs = log_softmax(logits)
        picked = logprobs[np.arange(len(cont_ids)), cont_ids]
        greedy = bool((logits.argmax(axis=1) == np.asarray(cont_ids)).all())
        return LoglikelihoodResult(float(picked.sum()), greedy, len(cont_ids))


def _end_of_generation_ids(model: object, n_vocab: int) -> set[int]:
    """Every token llama.cpp treats as end of generation (EOS, EOT, and e.g. FIM separators)."""
    import llama_cpp as C

    vocab = C.llama_model_get_vocab(model)
    return {i for i in range(n_vocab) if C.llama_vocab_is_eog(vocab, i)}


def _close_all(llms: list) -> None:  # type: ignore[type-arg]
    for llm in llms:
        llm.close()
    llms.clear()


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis, computed stably."""
    m = logits.max(axis=-1, keepdims=True)
    return logits - (m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True)))


def _load(llama_cls, path: str, n_ctx: int, n_threads: int, **kwargs):  # type: ignore[no-untyped-def]
    try:
        return llama_cls(
            model_path=path,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            n_batch=512,
            verbose=False,
            **kwargs,
        )
    except (ValueError, RuntimeError) as e:
        raise BadModel(
            f"llama.cpp could not load {path} ({diagnose(Path(path)) or e}).",
            "Check the file is a complete GGUF of an architecture llama.cpp supports; re-export it.",
        ) from None


def _trained_context(llama_cls, path: str) -> int:  # type: ignore[no-untyped-def]
    """The model's training context, read from a minimal load (the GGUF reader is slower)."""
    probe = _load(llama_cls, path, 256, 1)
    try:
        return probe._model.n_ctx_train() or 4096
    finally:
        probe.close()
