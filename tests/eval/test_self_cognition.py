"""The self-cognition task: names itself when asked, and only then."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmworks.errors import UserError
from llmworks.eval import EvalConfig, evaluate
from llmworks.eval.tasks import resolve_tasks
from llmworks.eval.tasks.base import Env
from llmworks.eval.tasks.self_cognition import SelfCognition

ENV = Env(True, True, lambda m: None, len, 2048)


def test_answers_that_name_the_model_or_its_author_and_the_two_rates() -> None:
    (task,) = resolve_tasks(["self-cognition:Lumen/the llmworks team"])
    assert isinstance(task, SelfCognition) and (task.model_name, task.author) == (
        "Lumen",
        "the llmworks team",
    )
    samples = task.samples()
    asked = [s for s in samples if s["asked"]]
    unasked = [s for s in samples if not s["asked"]]
    assert len(asked) >= 9 and any("code word" in s["prompt"] for s in unasked)
    assert any(not s["prompt"].isascii() for s in asked)  # Chinese questions too
    answers = {
        "I'm Lumen, made by the llmworks team.": True,
        "我是Lumen，一个AI助手。": True,  # CJK around the name
        "I am the llmworks assistant.": True,  # the author's first word
        "Luminous colours.": False,  # not inside another word
        "Got it, I will remember it.": False,
    }
    for text, named in answers.items():
        assert task.score(asked[0], [text], ENV).metrics == {"named_when_asked": float(named)}
        assert task.score(unasked[0], [text], ENV).metrics == {"named_unasked": float(named)}
    scored = [task.score(asked[0], ["I'm Lumen."], ENV), task.score(asked[1], ["Hello."], ENV)]
    scored += [task.score(unasked[i], ["Paris."], ENV) for i in range(3)]
    # each rate over its own samples: 1 of 2 asked, 0 of 3 unasked
    assert task.aggregate(scored) == {"named_when_asked": 0.5, "named_unasked": 0.0}


@pytest.mark.parametrize("spec", ["self-cognition", "self-cognition:Lumen", "self-cognition:/the team"])
def test_a_missing_name_or_author_is_one_clear_error(spec: str) -> None:
    with pytest.raises(UserError, match="name and its author") as e:
        resolve_tasks([spec])
    assert "self-cognition:NAME/AUTHOR" in e.value.fix


@pytest.mark.slow
def test_the_base_model_never_names_an_identity_it_was_not_given(embedded_gguf: Path, tmp_path: Path) -> None:
    run = evaluate(
        EvalConfig(
            tasks=["self-cognition:Lumen/the llmworks team"],
            model=str(embedded_gguf),
            output_dir=str(tmp_path),
        )
    )
    metrics = json.loads((run / "results.json").read_text())["tasks"]["self-cognition"]["metrics"]
    assert metrics["named_when_asked"] == 0.0 and metrics["named_unasked"] == 0.0
    samples = [json.loads(line) for line in (run / "samples" / "self-cognition.jsonl").open()]
    assert len(samples) == len(SelfCognition("Lumen", "the llmworks team").samples())
    assert all(s["extracted"] for s in samples)  # it answered every prompt
