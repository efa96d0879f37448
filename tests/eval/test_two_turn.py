"""The two-turn task: the held-out code-word conversations, correct when the second answer has the word."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmworks.eval import EvalConfig, evaluate
from llmworks.eval.tasks import resolve_tasks
from llmworks.eval.tasks.base import Env
from llmworks.eval.tasks.two_turn import TwoTurn

ENV = Env(True, True, lambda m: None, len, 2048)


def test_the_held_out_conversations_and_the_verdicts() -> None:
    (task,) = resolve_tasks(["two-turn"])
    assert isinstance(task, TwoTurn)
    samples = task.samples()
    assert len(samples) == 30 and all(len(s["messages"]) == 3 for s in samples)
    first = samples[0]
    assert first["word"] in first["messages"][0]["content"] and first["messages"][1]["role"] == "assistant"
    (request,) = task.requests(first, ENV)
    assert request.messages == first["messages"]  # the conversation's own first reply, then the question
    word = first["word"]
    assert task.score(first, [f"The code word is {word.capitalize()}."], ENV).metrics == {"acc": 1.0}
    assert task.score(first, ["I'm Lumen, made by the llmworks team."], ENV).metrics == {"acc": 0.0}
    (plain,) = task.requests(first, Env(True, False, lambda m: None, len, 2048))  # a base model's prompt
    assert plain.kind == "complete" and plain.prompt.endswith("\nAssistant:") and word in plain.prompt


@pytest.mark.slow
def test_the_base_model_recalls_a_word_it_was_told(embedded_gguf: Path, tmp_path: Path) -> None:
    run = evaluate(EvalConfig(tasks=["two-turn"], model=str(embedded_gguf), output_dir=str(tmp_path)))
    result = json.loads((run / "results.json").read_text())["tasks"]["two-turn"]
    assert result["n"] == 30
    samples = [json.loads(line) for line in (run / "samples" / "two-turn.jsonl").open()]
    assert sum(s["metrics"]["acc"] for s in samples) == round(result["metrics"]["acc"] * 30)
    assert result["metrics"]["acc"] > 0  # it is in the context: a model that never says it is broken
