"""The transformers engine: HF directories (optionally with a PEFT/LoRA adapter), fp32 on the CPU.

The decode loop is our own short loop over the model's forward with a KV cache and transformers'
logits processors: it streams without a helper thread and stops exactly like the llama.cpp engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from llmworks.engines.base import DEFAULT_MAX_CTX, Engine
from llmworks.engines.scheduler import Scheduler, SerialScheduler
from llmworks.engines.types import SamplingParams, SeqRequest, TokenLogprob
from llmworks.errors import BadModel, UserError
from llmworks.models.hf_weights import hf_dir_for
from llmworks.models.sources import ModelSource
from llmworks.models.template import template_from_tokenizer


class TransformersEngine(Engine):
    def __init__(
        self,
        source: ModelSource,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        max_queue: int | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(n_threads or os.cpu_count() or 1)
        self.source = source
        self.name = source.name
        self.max_queue = max_queue
        hf_dir = hf_dir_for(source)
        tok_dir = (
            source.adapter
            if source.adapter and (source.adapter / "tokenizer_config.json").is_file()
            else hf_dir
        )
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(tok_dir)
            model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
        except (OSError, ValueError, KeyError) as e:
            raise BadModel(
                f"transformers could not load {hf_dir} ({e}).",
                "Check that the directory holds config.json, weights and a tokenizer.",
            ) from None
        if source.adapter is not None:
            model = _with_adapter(model, source)
        self.model = model.eval()
        config = model.config
        trained = getattr(config, "max_position_embeddings", None) or 4096
        self.context_length = n_ctx or min(trained, DEFAULT_MAX_CTX)
        self.vocab_size = int(config.vocab_size)
        self.eos_ids = _eos_ids(model, self.tokenizer)
        self.template = template_from_tokenizer(self.tokenizer, f"tokenizer of {tok_dir.name}")
        self.bos_id = self.tokenizer.bos_token_id
        self.add_bos = self.bos_id is not None and self.tokenizer("a").input_ids[:1] == [self.bos_id]

    # -- Engine --

    def _make_scheduler(self) -> Scheduler:
        return SerialScheduler(self, self._decode, self._score, self.max_queue)

    def _decode(self, ids: list[int], params: SamplingParams) -> Iterator[tuple[int, TokenLogprob | None]]:
        """Sampled tokens (and their log-probabilities when asked), until the caller stops reading."""
        import torch
        from transformers import DynamicCache

        if params.grammar is not None:
            raise UserError("constrained output needs the llamacpp engine.", "Serve a GGUF of the model.")
        processors = _processors(params)
        generator = _generator(params.seed)
        seen = torch.tensor([ids])
        with torch.inference_mode():
            cache = DynamicCache(config=self.model.config)
            logits = self.model(
                input_ids=seen, past_key_values=cache, use_cache=True, logits_to_keep=1
            ).logits
            while True:
                raw = logits[:, -1, :]
                scores = processors(seen, raw)
                if params.greedy:
                    nxt = scores.argmax(dim=-1, keepdim=True)
                else:
                    nxt = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator)
                token = int(nxt)
                yield (
                    token,
                    _token_logprob(raw[0], token, params.logprobs) if params.logprobs is not None else None,
                )
                if params.repetition_penalty != 1.0:  # the only processor that looks back at tokens
                    seen = torch.cat([seen, nxt], dim=1)
                logits = self.model(input_ids=nxt, past_key_values=cache, use_cache=True).logits

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=not special).input_ids

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def _score(self, seqs: list[SeqRequest]) -> list[list[TokenLogprob | None]]:
        """Log-probability of each prompt token from `prompt_logprobs_from` on, in right-padded batches of
        similar length."""
        import torch

        order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i].prompt))
        results: list[list[TokenLogprob | None]] = [[] for _ in seqs]
        pad = self.tokenizer.pad_token_id or 0
        start = 0
        while start < len(order):
            width = len(seqs[order[start]].prompt)
            rows = order[start : start + max(1, SCORE_BATCH_TOKENS // width)]
            start += len(rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, i in enumerate(rows):
                ids[r, : len(seqs[i].prompt)] = torch.tensor(seqs[i].prompt)
                mask[r, : len(seqs[i].prompt)] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits
            for r, i in enumerate(rows):
                seq = seqs[i]
                begin = seq.prompt_logprobs_from or 1
                n_top = seq.params.logprobs or 0
                row: list[TokenLogprob | None] = [None] * begin
                for pos in range(begin, len(seq.prompt)):
                    row.append(_token_logprob(logits[r, pos - 1], seq.prompt[pos], n_top))
                results[i] = row
        return results

    def _free(self) -> None:
        self.model = None


SCORE_BATCH_TOKENS = 2048
"""Padded tokens per scoring forward pass."""


def _generator(seed: int | None) -> Any:
    import torch

    return torch.Generator().manual_seed(seed & 0xFFFF_FFFF_FFFF_FFFF) if seed is not None else None


def _token_logprob(logits: Any, token: int, n_top: int) -> TokenLogprob:
    import torch

    lp = torch.log_softmax(logits.double(), dim=-1)
    top = torch.topk(lp, n_top) if n_top else None
    pairs = [(int(i), float(v)) for v, i in zip(top.values, top.indices, strict=True)] if top else []
    return TokenLogprob(token, float(lp[token]), pairs, int(lp.argmax()) == token)


def _processors(params: SamplingParams) -> Any:
    from transformers import (
        LogitsProcessorList,
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    procs = LogitsProcessorList()
    if params.repetition_penalty != 1.0:
        procs.append(RepetitionPenaltyLogitsProcessor(params.repetition_penalty))
    if not params.greedy:
        procs.append(TemperatureLogitsWarper(params.temperature))
        if params.top_k > 0:
            procs.append(TopKLogitsWarper(min(params.top_k, 1 << 30)))
        if params.top_p < 1.0:
            procs.append(TopPLogitsWarper(params.top_p))
        if params.min_p > 0.0:
            procs.append(MinPLogitsWarper(params.min_p))
    return procs


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    """EOS ids as the model declares them (generation_config, then tokenizer): what other runtimes use too."""
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    declared = getattr(gen, "eos_token_id", None) if gen is not None else None
    if declared is None:
        declared = tokenizer.eos_token_id
    if isinstance(declared, int):
        ids.add(declared)
    elif declared:
        ids.update(int(i) for i in declared)
    return ids


def _with_adapter(model: Any, source: ModelSource) -> Any:
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, str(source.adapter))
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        raise BadModel(
            f"the adapter {source.adapter} does not fit its base {source.path} ({e}).",
            "Check base_model_name_or_path in adapter_config.json.",
        ) from None
