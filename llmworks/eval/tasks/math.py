"""GSM8K-style math word problems: strict and flexible answer extraction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmworks.errors import UserError
from llmworks.eval import datasets as ds
from llmworks.eval import metrics as M
from llmworks.eval.tasks.base import Env, Request, Scored, Task
from llmworks.eval.tasks.stops import GEN_STOP


@dataclass
class Math(Task):
    """GSM8K layout ({"question", "answer": "... #### n"}); strict and flexible extraction, both reported."""

    name: str
    test: Path
    train: Path | None = None
    max_tokens: int = 256
    kind: str = "math"
    formulation = "generate"
    reference = "lm-eval gsm8k (without --chat; with it, the chat template and an answer-format line)"

    def samples(self) -> list[dict[str, Any]]:
        rows = ds.read_records(self.test)
        for i, r in enumerate(rows):
            ds.require_fields(r, ("question", "answer"), f"{self.test}:{i + 1}")
            r.setdefault("id", str(i))
        self._shots = ds.read_records(self.train) if self.train else []
        return rows

    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]:
        shots = "".join(
            f"Question: {s['question']}\nAnswer: {s['answer']}\n\n" for s in self._shots[: env.shots]
        )
        text = f"{shots}Question: {sample['question']}\nAnswer:"
        if env.chat:
            instruction = (
                "Solve it step by step, then give the final answer on its own line as '#### <number>'."
            )
            return [
                Request.chat(
                    [{"role": "user", "content": f"{text}\n\n{instruction}"}], max_tokens=self.max_tokens
                )
            ]
        return [Request("complete", text, max_tokens=self.max_tokens, stop=("Question:", *GEN_STOP))]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        out = outputs[0] or ""
        target = sample["answer"].split("####")[-1].strip()
        strict, flexible = M.extract_strict(out), M.extract_flexible(out)
        return Scored(
            {
                "strict_match": float(M.math_equal(strict, target)),
                "flexible_extract": float(M.math_equal(flexible, target)),
            },
            target,
            {"strict": strict, "flexible": flexible},
        )

    def info(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens}


def gsm8k(path: Path | None, name: str = "gsm8k", max_tokens: int = 256) -> Math:
    layout = "test.jsonl (and train.jsonl for few-shot) with question, answer ending '#### n'"
    if path is None:
        raise ds.missing_data(name, layout, None)
    test = path if path.is_file() else path / "test.jsonl"
    if not test.is_file():
        raise UserError(f"{name}: no {test}.", f"Expected {layout}.")
    train = test.with_name("train.jsonl")
    return Math(name, test, train if train.is_file() else None, max_tokens)
