"""The demo's evaluation step: base vs fine-tuned model on the smoke set and held-out sentiment, compared."""

from __future__ import annotations

import shlex
from pathlib import Path

from rich.console import Console

from llmworks.console import make_console
from llmworks.eval.config import EvalConfig
from llmworks.eval.report import compare, print_comparison
from llmworks.eval.runner import evaluate

DEMO_TASKS = ["smoke", "sentiment"]


def eval_demo(
    base_model: str | Path,
    tuned_model: str | Path,
    out_dir: str | Path,
    console: Console | None = None,
    engine: str | None = None,
    tasks: list[str] | None = None,
) -> Path:
    """Evaluate both models, write the comparison (baseline: the base model) and print it, each change with
    its paired test (a one-question change on a small task is not significant); return compare.html's path.

    Each run is cached in its directory, so running the demo again only redoes what changed.
    """
    console = console or make_console(stderr=True)
    tasks = tasks or DEMO_TASKS
    out_dir = Path(out_dir)
    runs = []
    for label, model in (("base", base_model), ("tuned", tuned_model)):
        shown = shlex.quote(",".join(tasks))  # a self-cognition identity has spaces
        console.print(f"llmworks eval run --model {model} --tasks {shown} -o {out_dir / label}")
        runs.append(
            evaluate(
                EvalConfig(tasks=tasks, model=str(model), output_dir=str(out_dir / label), engine=engine),
                console,
            )
        )
    path = compare(runs, out_dir / "compare", console)
    print_comparison(path.parent / "compare.json", console)
    console.print(f"comparison report: {path}")
    return path
