"""What an export is worth next to its source: size on disk, perplexity on held-out text, decode speed and
greedy agreement on fixed prompts.

Agreement is teacher-forced, as llama.cpp's `llama-perplexity --kl-divergence` reports "same top": along
the reference's greedy answer to each prompt, the share of positions where this model's top token is the
reference's. Free-running outputs diverge for good after one flipped near-tie, which says little about
the other tokens, so the count of prompts answered identically is reported next to it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from llmworks.engines import Engine, SamplingParams, load_engine
from llmworks.engines.llamacpp import log_softmax
from llmworks.export.files import model_size

PROMPTS = (
    "What is the capital of France? Answer in one word.",
    "Write a haiku about autumn.",
    "Explain what a CPU does in two sentences.",
    "List three fruits.",
    "How do I boil an egg?",
    "Give me one tip for learning Python.",
)
MAX_TOKENS = 32
"""Greedy tokens per prompt."""
N_CTX = 512
"""Enough for a prompt and its answer, and for each held-out paragraph."""

Logits = Callable[[list[int]], np.ndarray]


@dataclass
class Measurement:
    model: str
    engine: str
    size_bytes: int
    perplexity: float
    """On held-out general text (llmworks/train/general.txt)."""
    decode_tok_s: float
    """Greedy decode speed after the first token, over all prompts."""
    greedy_agreement: float | None = None
    """Teacher-forced share of the reference's greedy tokens this model also ranks first (None = is the reference)."""
    identical_outputs: str | None = None
    """Prompts whose free-running greedy answer equals the reference's, as "k/n"."""
    outputs: list[list[int]] = field(default_factory=list, repr=False)
    """Greedy token ids per prompt (what others are compared against)."""
    prompts: list[list[int]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "engine": self.engine,
            "size_bytes": self.size_bytes,
            "perplexity": round(self.perplexity, 4),
            "decode_tok_s": round(self.decode_tok_s, 2),
            "greedy_agreement": None if self.greedy_agreement is None else round(self.greedy_agreement, 4),
            "identical_outputs": self.identical_outputs,
        }


def measure(
    model: str | os.PathLike[str],
    engine: str | None = None,
    reference: Measurement | None = None,
    n_threads: int | None = None,
) -> Measurement:
    """Load `model` on `engine` (default: by kind) and measure it, against `reference` when given."""
    with load_engine(model, engine, n_ctx=N_CTX, n_threads=n_threads) as eng, ExitStack() as stack:
        logits = _logits_fn(eng, n_threads, stack)
        prompts = reference.prompts if reference else [_prompt_ids(eng, p) for p in PROMPTS]
        outputs, tok_s = _greedy(eng, prompts)
        m = Measurement(
            str(model),
            type(eng).__name__.removesuffix("Engine").lower(),
            model_size(eng.source),  # type: ignore[attr-defined]
            perplexity(eng, logits, _general_text()),
            tok_s,
            outputs=outputs,
            prompts=prompts,
        )
        if reference is not None:
            m.greedy_agreement = _teacher_forced_agreement(logits, prompts, reference.outputs)
            same = sum(a == b for a, b in zip(outputs, reference.outputs, strict=True))
            m.identical_outputs = f"{same}/{len(prompts)}"
        return m


def measure_export(
    source: str | os.PathLike[str], built: Path, final: Path, n_threads: int | None = None
) -> list[Measurement]:
    """[source, export] on the transformers engine; the export is measured where it is being built (before
    the rename into place) and reported under its final name."""
    ref = measure(source, "transformers", n_threads=n_threads)
    got = measure(built, "transformers", reference=ref, n_threads=n_threads)
    got.model = str(final)
    return [ref, got]


def perplexity(eng: Engine, logits: Logits, texts: Sequence[str]) -> float:
    """exp(mean negative log-likelihood) of every token after the first, over all texts."""
    nll, n = 0.0, 0
    for t in texts:
        ids = eng.encode_prompt(t)[:N_CTX]
        if len(ids) < 2:
            continue
        lp = log_softmax(logits(ids)[:-1].astype(np.float64))
        nll -= float(lp[np.arange(len(ids) - 1), ids[1:]].sum())
        n += len(ids) - 1
    return math.exp(nll / n)


def _prompt_ids(eng: Engine, question: str) -> list[int]:
    messages = [{"role": "user", "content": question}]
    return eng.encode_prompt(eng.template.render(messages) if eng.template else question)


def _greedy(eng: Engine, prompts: list[list[int]]) -> tuple[list[list[int]], float]:
    outputs, n_after_first, seconds = [], 0, 0.0
    for ids in prompts:
        out: list[int] = []
        first = 0.0
        for d in eng.generate(ids, SamplingParams(max_tokens=MAX_TOKENS)):
            if d.token_ids and not out:
                first = time.perf_counter()
            out += d.token_ids
        if len(out) > 1:
            n_after_first += len(out) - 1
            seconds += time.perf_counter() - first
        outputs.append(out)
    return outputs, n_after_first / seconds if seconds else 0.0


def _teacher_forced_agreement(logits: Logits, prompts: list[list[int]], answers: list[list[int]]) -> float:
    same = total = 0
    for p, a in zip(prompts, answers, strict=True):
        if not a:
            continue
        top = logits(p + a)[len(p) - 1 : len(p) + len(a) - 1].argmax(axis=-1)
        same += int((top == np.asarray(a)).sum())
        total += len(a)
    return same / total if total else 1.0


def _logits_fn(eng: Engine, n_threads: int | None, stack: ExitStack) -> Logits:
    """Logits at every position of a token sequence, from the model the engine loaded."""
    from llmworks.engines.transformers import TransformersEngine

    if isinstance(eng, TransformersEngine):
        import torch

        def hf(ids: list[int]) -> np.ndarray:
            with torch.inference_mode():
                return eng.model(input_ids=torch.tensor([ids])).logits[0].float().numpy()

        return hf

    from llama_cpp import Llama

    # A second context that keeps every position's logits; the engine's own keeps only the last.
    llm = Llama(
        model_path=str(eng.source.path),  # type: ignore[attr-defined]
        n_ctx=N_CTX,
        n_threads=n_threads or os.cpu_count() or 1,
        logits_all=True,
        verbose=False,
    )
    stack.callback(llm.close)

    def gguf(ids: list[int]) -> np.ndarray:
        llm.reset()
        llm.eval(ids)
        return np.asarray(llm.scores[: len(ids)])

    return gguf


def _general_text() -> list[str]:
    """The held-out paragraphs the training stage's forgetting guard uses too."""
    text = resources.files("llmworks.train").joinpath("general.txt").read_text(encoding="utf-8")
    return [t.strip() for t in text.split("\n\n") if t.strip()]
