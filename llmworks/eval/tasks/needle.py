"""Needle in a haystack: a sentence hidden at each depth of haystacks of each length."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmworks.errors import UserError
from llmworks.eval.tasks.base import Env, Request, Scored, Task
from llmworks.eval.tasks.stops import GEN_STOP

NEEDLE = "The best thing to do in San Francisco is eat a sandwich and sit in Dolores Park on a sunny day."
QUESTION = "What is the best thing to do in San Francisco? Answer in one sentence."
EXPECTED = "eat a sandwich and sit in Dolores Park on a sunny day"


@dataclass
class Needle(Task):
    """A needle sentence hidden at each depth of haystacks of each length; recall of its key words."""

    name: str
    context_lengths: tuple[int, ...]
    depths: tuple[float, ...]
    haystack_path: str | None = None
    kind: str = "niah"
    formulation = "generate"
    reference = "needle in a haystack (gkamradt: the San Francisco needle, key-word recall)"

    def samples(self) -> list[dict[str, Any]]:
        from llmworks.eval.niah import grid, load_haystack

        self._haystack = load_haystack(self.haystack_path)
        return [
            {"id": f"{n}@{d:.0%}", "context_len": n, "depth": d}
            for n, d in grid(self.context_lengths, self.depths)
        ]

    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]:
        from llmworks.eval.niah import build_case

        n = sample["context_len"]
        if env.context_length and n + 128 > env.context_length:
            raise UserError(
                f"{self.name}: a {n}-token haystack does not fit the model's {env.context_length}-token context.",
                "Use smaller context lengths, or load the model with a larger --ctx.",
            )
        prompt = build_case(env.count_tokens, self._haystack, n, sample["depth"], NEEDLE, QUESTION)
        if env.chat:
            return [Request.chat([{"role": "user", "content": prompt}], max_tokens=48)]
        return [Request("complete", prompt + "\nAnswer:", max_tokens=48, stop=("\n\n", *GEN_STOP))]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        from llmworks.eval.niah import score_answer

        answer = outputs[0] or ""
        return Scored({"score": score_answer(answer, EXPECTED)}, EXPECTED, answer.strip())

    def info(self) -> dict[str, Any]:
        return {"context_lengths": list(self.context_lengths), "depths": list(self.depths)}
