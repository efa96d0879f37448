"""`llmworks export card MODEL --eval RUN_DIR ...`: put a model's evaluation runs in its model card.

The card an export wrote (FILE.gguf.md, or README.md in an export directory) gets an "Evaluation" section:
one row per task metric of each run, with its standard error and sample count, and how each run was asked
(tool_choice and grammar for function calling). Running it again replaces the section, so the card carries
the latest measurements; the rest of the card is left as the export wrote it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from llmworks.atomic import atomic_write
from llmworks.errors import UserError

__all__ = ["add_evaluation", "card_path"]

HEADING = "## Evaluation"


def card_path(model: Path) -> Path:
    card = model / "README.md" if model.is_dir() else model.with_name(model.name + ".md")
    if not card.is_file():
        raise UserError(
            f"{model} has no model card ({card.name}).", "Give a model written by `llmworks export`."
        )
    return card


def add_evaluation(model: Path, runs: Sequence[Path]) -> Path:
    """Write the runs' results into the model's card; returns the card's path."""
    card = card_path(model)
    section = evaluation_section([(Path(r), _results(Path(r))) for r in runs])
    text = card.read_text(encoding="utf-8")
    text = re.sub(rf"(?ms)^{HEADING}\n.*?(?=^## |\Z)", "", text)  # the section an earlier run wrote
    at = text.find("\n## Use\n")
    text = text + "\n" + section if at < 0 else text[: at + 1] + section + text[at + 1 :]
    atomic_write(card, text)
    return card


def evaluation_section(runs: Sequence[tuple[Path, dict[str, Any]]]) -> str:
    lines = [
        HEADING,
        "",
        "| run | task | metric | value | ± stderr | n | asked |",
        "|---|---|---|---|---|---|---|",
    ]
    for path, results in runs:
        for task, t in results.get("tasks", {}).items():
            settings = t.get("settings") or {}
            asked = ", ".join(f"{k} {settings[k]}" for k in ("tool_choice", "tool_grammar") if k in settings)
            for metric, value in (t.get("metrics") or {}).items():
                err = (t.get("stderr") or {}).get(metric)
                shown = f"{value:.3f}" if isinstance(value, float) else str(value)
                lines.append(
                    f"| {path.name} | {task} | {metric} | {shown} | {'' if err is None else f'{err:.3f}'} "
                    f"| {t.get('n', '')} | {asked} |"
                )
    first = runs[0][1].get("run", {}) if runs else {}
    lines += ["", f"Measured with `llmworks eval run` (model {first.get('model', '?')}); runs: "]
    lines[-1] += ", ".join(f"`{p}`" for p, _ in runs) + "."
    return "\n".join(lines) + "\n\n"


def _results(run: Path) -> dict[str, Any]:
    path = run / "results.json"
    if not path.is_file():
        raise UserError(f"{run} has no results.json.", "Give a directory written by `llmworks eval run`.")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UserError(
            f"{path} is not valid JSON ({e.msg}, line {e.lineno}).", "Run the evaluation again."
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), dict):
        raise UserError(f"{path} has no tasks.", "Give a directory written by `llmworks eval run`.")
    return data
