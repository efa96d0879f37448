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
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from llmworks.engines import Engine, SamplingParams, load_engine
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
    with load_engine(model, engine, n_ctx=N_CTX, n_threads=n_threads) as eng:
        prompts = reference.prompts if reference else [_prompt_ids(eng, p) for p in PROMPTS]
        outputs, tok_s = _greedy(eng, prompts)
        m = Measurement(
            str(model),
            type(eng).__name__.removesuffix("Engine").lower(),
            model_size(eng.source),  # type: ignore[attr-defined]
            perplexity(eng, _general_text()),
            tok_s,
            outputs=outputs,
            prompts=prompts,
        )
        if reference is not None:
            m.greedy_agreement = _teacher_forced_agreement(eng, prompts, reference.outputs)
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


def perplexity(eng: Engine, texts: Sequence[str]) -> float:
    """exp(mean negative log-likelihood) of every token after the first, over all texts."""
    nll, n = 0.0, 0
    for t in texts:
        ids = eng.encode_prompt(t)[:N_CTX]
        if len(ids) < 2:
            continue
        scores = [s for s in eng.prompt_logprobs(ids) if s is not None]
        nll -= sum(s.logprob for s in scores)
        n += len(scores)
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


def _teacher_forced_agreement(eng: Engine, prompts: list[list[int]], answers: list[list[int]]) -> float:
    """How often the model's likeliest next token is the reference's, reading the reference's answers."""
    same = total = 0
    for p, a in zip(prompts, answers, strict=True):
        if not a:
            continue
        scores = eng.prompt_logprobs(p + a, start=len(p))[len(p) :]
        same += sum(bool(s and s.is_argmax) for s in scores)
        total += len(a)
    return same / total if total else 1.0


def _general_text() -> list[str]:
    """The held-out paragraphs the training stage's forgetting guard uses too."""
    text = resources.files("llmworks.train").joinpath("general.txt").read_text(encoding="utf-8")
    return [t.strip() for t in text.split("\n\n") if t.strip()]
