"""`llmworks models check`: does the chat template agree with the tokens that stop generation?

A model whose template ends assistant turns with a token that is not among its EOS ids never stops in
llama.cpp, vLLM or Ollama: the classic "fine-tuned model rambles forever" bug. This finds it two ways:
statically (the template's end-of-turn token vs the declared EOS ids) and by running greedy answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmworks.engines.base import Engine
from llmworks.engines.types import SamplingParams

PROMPTS = (
    "Hi!",
    "What is 2 + 2?",
    "Name a colour.",
    "Say hello in French.",
)


@dataclass
class Finding:
    ok: bool
    what: str
    fix: str = ""


@dataclass
class CheckReport:
    model: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def add(self, ok: bool, what: str, fix: str = "") -> None:
        self.findings.append(Finding(ok, what, fix))


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

    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    for prompt in prompts:
        # generate(), not chat(): only the model's own EOS ids may stop it, as in other runtimes.
        text = engine.render_chat([{"role": "user", "content": prompt}])
        answer, reason = engine.complete(text, params)
        short = answer.strip().replace("\n", " ")[:60]
        if reason == "stop":
            report.add(True, f"greedy answer to {prompt!r} stopped on EOS: {short!r}")
        else:
            report.add(
                False,
                f"greedy answer to {prompt!r} hit max_tokens={max_tokens} without stopping: {short!r}",
                "Train the end-of-turn token (llmworks train does) and make it an EOS id.",
            )
    return report


def _shapes() -> dict[str, list[dict[str, str]]]:
    return {
        "a system prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        "multi-turn": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "How are you?"},
        ],
    }
