"""`llmworks export card MODEL --eval RUN_DIR ... [--bench FILE ...]`: put a model's evaluation runs in its
model card.

The card an export wrote (FILE.gguf.md, or README.md in an export directory) gets an "Evaluation" section:
one row per task metric of each run, with its standard error and sample count, and how each run was asked
(tool_choice and grammar for function calling); `--bench` adds the agent stage's tool-use task set as
`bench/agent.py --only tasks` measured it (a JSON record per loop). Running it again replaces the section,
so the card carries the latest measurements; the rest of the card is left as the export wrote it.
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


def add_evaluation(model: Path, runs: Sequence[Path], benches: Sequence[Path] = ()) -> Path:
    """Write the runs' results (and the agent benchmarks' records) into the model's card; returns its path."""
    card = card_path(model)
    section = evaluation_section([(Path(r), _results(Path(r))) for r in runs])
    section += agent_section([(Path(b), _agent_records(Path(b))) for b in benches])
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


def agent_section(benches: Sequence[tuple[Path, list[dict[str, Any]]]]) -> str:
    if not benches:
        return ""
    lines = [
        "Tool-use task set (the agent stage's 62 tasks, `python bench/agent.py --only tasks --model MODEL`):",
        "",
        "| file | model | loop | constrained | success | malformed a request | by kind |",
        "|---|---|---|---|---|---|---|",
    ]
    for path, records in benches:
        for r in records:
            kinds = ", ".join(f"{k} {v:.2f}" for k, v in r.get("by_kind", {}).items())
            lines.append(
                f"| {path.name} | {Path(str(r.get('model', '?'))).name} | {r.get('loop')} "
                f"| {'yes' if r.get('constrain') else 'no'} | {r.get('success')}/{r.get('tasks')} "
                f"| {r.get('malformed_per_request')} | {kinds} |"
            )
    return "\n".join(lines) + "\n\n"


def _agent_records(path: Path) -> list[dict[str, Any]]:
    """The task-set records of a file `bench/agent.py` wrote (one JSON object a line)."""
    fix = "Give the output of `python bench/agent.py --only tasks > FILE`."
    if not path.is_file():
        raise UserError(f"no such benchmark file: {path}.", fix)
    records = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise UserError(f"{path}:{i} is not a JSON record ({e.msg}).", fix) from None
    tasks = [r for r in records if isinstance(r, dict) and r.get("bench") == "agent.tasks"]
    if not tasks:
        raise UserError(f"{path} holds no tool-use task-set record.", fix)
    return tasks


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
