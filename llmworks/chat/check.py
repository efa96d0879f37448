"""`llmworks models check`: does the chat template agree with the tokens that stop generation?

A model whose template ends assistant turns with a token that is not among its EOS ids never stops in
llama.cpp, vLLM or Ollama: the classic "fine-tuned model rambles forever" bug. This finds it two ways:
statically (the template's end-of-turn token vs the declared EOS ids) and by running greedy answers.

One greedy answer that runs into max_tokens proves little: a small model loops on some prompts. What the
bug looks like is a model that gives its end-of-turn token almost no probability anywhere. So an answer
that does not stop is scored: the end-of-turn token's probability after every prefix of it. The check
fails only when no answer stopped and that probability stays negligible everywhere; a prompt that loops
while the model could have stopped is a warning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from llmworks.engines.base import Engine
from llmworks.engines.types import SamplingParams

PROMPTS = (
    "Hi!",
    "What is 2 + 2?",
    "Name a colour.",
    "Say hello in French.",
)

NEGLIGIBLE = 1e-3
"""End-of-turn probability below which a model is taken never to stop. Measured: a random tiny model peaks
at ~1e-6 along its answers; the embedded model gives it > 50% after a finished answer, and still ~2e-3 at
best while counting to 200 (a prompt that loops)."""


@dataclass
class Finding:
    ok: bool
    what: str
    fix: str = ""
    warning: bool = False
    """Worth a look, not a failure (`ok` stays True)."""

    @property
    def label(self) -> str:
        return "FAIL" if not self.ok else "warn" if self.warning else "ok"


@dataclass
class CheckReport:
    model: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def add(self, ok: bool, what: str, fix: str = "", warning: bool = False) -> None:
        self.findings.append(Finding(ok, what, fix, warning))


def check_model(engine: Engine, max_tokens: int = 128, prompts: tuple[str, ...] = PROMPTS) -> CheckReport:
    report = CheckReport(engine.name)
    template = engine.template
    if template is None:
        report.add(
            False, "no chat template", "Add chat_template to tokenizer_config.json (or the GGUF metadata)."
        )
        return report
    report.add(True, f"chat template from {template.origin}")

    for name, convo in _shapes().items():
        try:
            template.render(convo)
            report.add(True, f"template renders {name}")
        except Exception as e:  # any failure here is a finding, not a crash
            report.add(False, f"template cannot render {name}: {e}", "Fix or replace the chat template.")

    eot = template.end_of_turn
    eos_text = sorted(engine.detokenize([i]) for i in engine.eos_ids)
    if eot is None:
        report.add(True, f"template writes no end-of-turn token; generation stops on EOS {eos_text}")
    else:
        ids = engine.tokenize(eot)
        if len(ids) != 1:
            report.add(
                False,
                f"end-of-turn '{eot}' is not one token (ids {ids})",
                "Add it to the tokenizer as a special token.",
            )
        elif ids[0] not in engine.eos_ids:
            report.add(
                False,
                f"end-of-turn '{eot}' (id {ids[0]}) is not an EOS id {sorted(engine.eos_ids)} {eos_text}",
                f"Add {ids[0]} to eos_token_id in generation_config.json (GGUF: tokenizer.ggml.eos_token_id).",
            )
        else:
            report.add(True, f"end-of-turn '{eot}' (id {ids[0]}) is an EOS id")

    _check_answers(engine, report, max_tokens, prompts, eot)
    return report


def _check_answers(
    engine: Engine, report: CheckReport, max_tokens: int, prompts: tuple[str, ...], eot: str | None
) -> None:
    """Greedy answers must be able to stop: fail when none stops and the end-of-turn token (or, without
    one, the likeliest EOS token) is negligible along all of them; warn about each one that loops."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    stop_ids = engine.tokenize(eot) if eot is not None else []
    if len(stop_ids) != 1:
        stop_ids = sorted(engine.eos_ids)
    looping: list[tuple[str, str, float]] = []  # (prompt, answer, highest stop probability along it)
    for prompt in prompts:
        # generate(), not chat(): only the model's own EOS ids may stop it, as in other runtimes.
        text = engine.render_chat([{"role": "user", "content": prompt}])
        ids: list[int] = []
        reason = "length"
        for d in engine.generate(text, params):
            ids += d.token_ids
            reason = d.finish_reason or reason
        short = engine.detokenize(ids).strip().replace("\n", " ")[:60]
        if reason == "stop":
            report.add(True, f"greedy answer to {prompt!r} stopped on EOS: {short!r}")
        elif eot is not None and len(stop_ids) == 1 and stop_ids[0] in ids:
            report.add(
                False,
                f"greedy answer to {prompt!r} wrote the end-of-turn '{eot}' and went on: {short!r}",
                "Make the end-of-turn token an EOS id (see above).",
            )
        else:
            looping.append((prompt, short, _stop_probability(engine, text, ids, stop_ids)))
    if not looping:
        return
    never = len(looping) == len(prompts) and all(p < NEGLIGIBLE for _, _, p in looping)
    for prompt, short, p in looping:
        what = (
            f"greedy answer to {prompt!r} hit max_tokens={max_tokens} without stopping "
            f"(its end-of-turn probability peaks at {_percent(p)}): {short!r}"
        )
        if never:
            report.add(
                False,
                what,
                "The model never gives its end-of-turn token a chance: train it (llmworks train does) and "
                "make it an EOS id.",
            )
        else:
            report.add(True, what + "; a prompt that loops, not a stop-token bug", warning=True)


def _stop_probability(engine: Engine, prompt: str, answer: list[int], stop_ids: list[int]) -> float:
    """The highest probability of a stop token after the prompt and each prefix of the answer. One scoring
    pair per position and stop token: consecutive pairs share their prefix, so the engine reads each
    answer token about once."""
    contexts = [prompt + engine.detokenize(answer[:k]) for k in range(len(answer) + 1)]
    stops = [engine.detokenize([i]) for i in stop_ids]
    results = engine.loglikelihood([(c, s) for c in contexts for s in stops])
    return max((math.exp(r.logprob) for r in results), default=0.0)


def _percent(p: float) -> str:
    return f"{100 * p:.2g}%"


def _shapes() -> dict[str, list[dict[str, str]]]:
    return {
        "a system prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "multi-turn": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "How are you?"},
        ],
    }
