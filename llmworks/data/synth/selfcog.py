"""Self-cognition data: identity questions answered with the model's new name and author."""

from __future__ import annotations

import random
from collections.abc import Iterator
from importlib import resources
from typing import Any

import yaml

from llmworks.errors import UserError


def templates() -> dict[str, dict[str, list[str]]]:
    text = resources.files("llmworks.data.builtin").joinpath("selfcog.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def selfcog_records(
    name: str, author: str, languages: tuple[str, ...] = ("en", "zh"), per_question: int = 1, seed: int = 0
) -> Iterator[dict[str, Any]]:
    """One messages record per question (times `per_question`), each with a different answer variant."""
    if not name.strip() or not author.strip():
        raise UserError("--name and --author must not be empty.", "Give the model's name and who made it.")
    tpl = templates()
    unknown = [lang for lang in languages if lang not in tpl]
    if unknown:
        raise UserError(f"no self-cognition templates for {', '.join(unknown)}.", f"Use {', '.join(tpl)}.")
    rng = random.Random(seed)
    for lang in languages:
        answers = tpl[lang]["answers"]
        for q in tpl[lang]["questions"]:
            for a in rng.sample(answers, min(per_question, len(answers))):
                yield {
                    "messages": [
                        {"role": "user", "content": q.format(name=name, author=author)},
                        {"role": "assistant", "content": a.format(name=name, author=author)},
                    ]
                }
