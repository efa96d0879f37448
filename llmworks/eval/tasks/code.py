"""HumanEval: completions run against the problem's tests in a sandboxed subprocess; pass@k."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmworks.eval.tasks.base import Env, Request, Scored, Task

HUMANEVAL_STOP = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\n```")


@dataclass
class Code(Task):
    """HumanEval: n completions per problem, run against its tests in a sandboxed subprocess; pass@k."""

    name: str
    path: str | None = None
    ids: tuple[str, ...] = ()
    n: int = 1
    ks: tuple[int, ...] = (1,)
    max_tokens: int = 384
    kind: str = "code"
    formulation = "generate"
    reference = "openai/human-eval (its prompts and checker, pass@k)"

    def samples(self) -> list[dict[str, Any]]:
        from llmworks.eval.code_exec import load_humaneval

        problems = load_humaneval(self.path)
        chosen = [problems[i] for i in self.ids] if self.ids else list(problems.values())
        return [{"id": p["task_id"], **p} for p in chosen]

    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]:
        temperature = 0.0 if self.n == 1 else 0.8  # sampled when pass@k needs distinct samples
        return [
            Request(
                "complete",
                sample["prompt"],
                max_tokens=self.max_tokens,
                temperature=temperature,
                stop=HUMANEVAL_STOP,
                seed=i,
            )
            for i in range(self.n)
        ]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        from llmworks.eval.code_exec import evaluate_samples

        problem = {k: v for k, v in sample.items() if k != "id"}
        done = evaluate_samples(
            {sample["task_id"]: problem},
            [{"task_id": sample["task_id"], "completion": o or ""} for o in outputs],
            self.ks,
        )
        metrics = {f"pass@{k}": v for k, v in done["pass@k"].items()}
        return Scored(metrics, sample["canonical_solution"], [r["result"] for r in done["results"]])

    def info(self) -> dict[str, Any]:
        return {"n": self.n, "ks": list(self.ks), "sandbox": "subprocess, time and memory limits, no network"}
