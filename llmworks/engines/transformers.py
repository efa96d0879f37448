"""The transformers engine: HF directories (optionally with a PEFT/LoRA adapter), fp32 on the CPU.

The decode loop is our own short loop over the model's forward with a KV cache and transformers'
logits processors: it streams without a helper thread and stops exactly like the llama.cpp engine.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from llmworks.engines.base import DEFAULT_MAX_CTX, Delta, Engine, LoglikelihoodResult, SamplingParams
from llmworks.engines.textstream import OutputProcessor
from llmworks.errors import BadModel
from llmworks.models.hf_weights import hf_dir_for
from llmworks.models.sources import ModelSource
from llmworks.models.template import template_from_tokenizer


class TransformersEngine(Engine):
    def __init__(self, source: ModelSource, n_ctx: int | None = None, n_threads: int | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(n_threads or os.cpu_count() or 1)
        self.source = source
        self.name = source.name
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
        bos = self.tokenizer.bos_token_id
        self._bos_id = bos if bos is not None and self.tokenizer("a").input_ids[:1] == [bos] else None

    # -- Engine --

    def generate(self, prompt: str | list[int], params: SamplingParams) -> Iterator[Delta]:
        import torch
        from transformers import DynamicCache

        ids = self.encode_prompt(prompt)
        self.check_fits(len(ids), params.max_tokens)
        max_new = min(params.max_tokens, self.context_length - len(ids))
        processors = _processors(params)
        generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
        out = OutputProcessor(self.detokenize, self.eos_ids, params.stop, max_new)
        seen = torch.tensor([ids])
        with torch.inference_mode():
            cache = DynamicCache(config=self.model.config)
            logits = self.model(
                input_ids=seen, past_key_values=cache, use_cache=True, logits_to_keep=1
            ).logits
            while True:
                scores = processors(seen, logits[:, -1, :])
                if params.greedy:
                    nxt = scores.argmax(dim=-1, keepdim=True)
                else:
                    nxt = torch.multinomial(torch.softmax(scores, dim=-1), 1, generator=generator)
                delta = out.feed(int(nxt))
                yield delta
                if delta.finish_reason:
                    return
                if params.repetition_penalty != 1.0:  # the only processor that looks back at tokens
                    seen = torch.cat([seen, nxt], dim=1)
                logits = self.model(input_ids=nxt, past_key_values=cache, use_cache=True).logits

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False, split_special_tokens=not special).input_ids

    def detokenize(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False)

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[LoglikelihoodResult]:
        import torch

        results = []
        with torch.inference_mode():
            for context, continuation in requests:
                ctx_ids, cont_ids = self.split_continuation(context, continuation)
                ids = ctx_ids + cont_ids
                logits = self.model(input_ids=torch.tensor([ids])).logits[0, len(ctx_ids) - 1 : len(ids) - 1]
                logprobs = torch.log_softmax(logits.double(), dim=-1)
                target = torch.tensor(cont_ids)
                picked = logprobs.gather(1, target[:, None]).sum()
                greedy = bool((logits.argmax(dim=-1) == target).all())
                results.append(LoglikelihoodResult(float(picked), greedy, len(cont_ids)))
        return results

    def close(self) -> None:
        del self.model

    # -- helpers --

    def encode_prompt(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, list):
            return prompt
        ids = self.tokenize(prompt)
        bos = self.tokenizer.bos_token
        if self._bos_id is not None and not (bos and prompt.startswith(bos)):
            ids = [self._bos_id, *ids]
        return ids


def _processors(params: SamplingParams) -> Any:
    from transformers import (
        LogitsProcessorList,
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
            procs.append(TopKLogitsWarper(params.top_k))
        if params.top_p < 1.0:
            procs.append(TopPLogitsWarper(params.top_p))
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
