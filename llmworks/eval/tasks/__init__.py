"""Task kinds (multiple choice, math, custom YAML, code, needle in a haystack, function calling) and the
registry of names.

`--tasks` takes registry names (`mmlu`, `gsm8k`, `smoke`, ...), `NAME:OPTION` for a benchmark's other
formulation (`arc:letters`, `mmlu:cloze`) or part (`bfcl:simple`), `NAME=PATH` to point a benchmark at its
files, `self-cognition:NAME/AUTHOR` (the identity a tuned model should state only when asked), `two-turn`
(a conversation held across turns), or the path of a custom task's YAML.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from llmworks.errors import UserError
from llmworks.eval import bfcl
from llmworks.eval import datasets as ds
from llmworks.eval.tasks.base import Env, Request, Scored, Task
from llmworks.eval.tasks.code import Code
from llmworks.eval.tasks.custom import custom
from llmworks.eval.tasks.function_calling import bfcl_task
from llmworks.eval.tasks.math import gsm8k
from llmworks.eval.tasks.mc_data import (
    arc,
    boolq,
    ceval,
    cmmlu,
    hellaswag,
    mmlu,
    mmlu_cloze,
    piqa,
    sentiment,
    truthfulqa,
    winogrande,
)
from llmworks.eval.tasks.needle import Needle
from llmworks.eval.tasks.self_cognition import USAGE, SelfCognition, parse_identity
from llmworks.eval.tasks.two_turn import TwoTurn

TaskFactory = Callable[[Path | None], Task]

TASKS: dict[str, TaskFactory] = {
    # letters: lm-eval mmlu / ceval-valid / cmmlu
    "mmlu": mmlu,
    "ceval": ceval,
    "cmmlu": cmmlu,
    # cloze: the option's own text scored (lm-eval arc_easy, hellaswag, ...)
    "arc": arc,
    "hellaswag": hellaswag,
    "winogrande": winogrande,
    "piqa": piqa,
    "boolq": boolq,
    "truthfulqa": truthfulqa,
    # the other common formulation of a benchmark
    "arc:letters": lambda p: arc(p, letters=True),
    "mmlu:cloze": mmlu_cloze,
    "gsm8k": gsm8k,
    "humaneval": lambda p: Code("humaneval", str(p) if p else None),
    "niah": lambda p: Needle("niah", (1024, 2048, 4096), (0.0, 0.25, 0.5, 0.75, 1.0), str(p) if p else None),
    "sentiment": lambda p: sentiment(),
    "two-turn": lambda p: TwoTurn(),  # held-out code-word conversations: a tuned model still holds one
    # The smoke set: small, written for this project, shipped for CI and the demo.
    "mmlu-smoke": lambda p: mmlu(p or ds.SMOKE / "mmlu", "mmlu-smoke"),
    "mmlu-smoke:cloze": lambda p: mmlu_cloze(p or ds.SMOKE / "mmlu", "mmlu-smoke:cloze"),
    "ceval-smoke": lambda p: ceval(p or ds.SMOKE / "ceval", "ceval-smoke"),
    "arc-smoke": lambda p: arc(p or ds.SMOKE / "arc", name="arc-smoke"),
    "arc-smoke:letters": lambda p: arc(p or ds.SMOKE / "arc", letters=True, name="arc-smoke"),
    "gsm8k-smoke": lambda p: gsm8k(p or ds.SMOKE / "gsm8k", "gsm8k-smoke", max_tokens=96),
    "custom-smoke": lambda p: custom(p or ds.SMOKE / "custom" / "capitals.yaml"),
    "general-smoke": lambda p: custom(p or ds.SMOKE / "custom" / "general.yaml"),
    "humaneval-smoke": lambda p: Code(
        "humaneval-smoke", None, ("HumanEval/0", "HumanEval/53"), max_tokens=128
    ),
    "niah-smoke": lambda p: Needle("niah-smoke", (256, 512), (0.0, 0.5, 1.0), str(p) if p else None),
    # The Berkeley Function Calling Leaderboard, one task per category (data from the bfcl-eval package).
    **{f"bfcl:{c}": (lambda p, c=c: bfcl_task(c, p)) for c in (*bfcl.CATEGORIES, *bfcl.NETWORK)},
}
GROUPS: dict[str, tuple[str, ...]] = {
    "smoke": (
        "mmlu-smoke",
        "ceval-smoke",
        "arc-smoke",
        "gsm8k-smoke",
        "custom-smoke",
        "general-smoke",
        "humaneval-smoke",
        "niah-smoke",
    ),
    "bfcl": tuple(f"bfcl:{c}" for c in bfcl.NON_LIVE),
    "bfcl-live": tuple(f"bfcl:{c}" for c in bfcl.LIVE),
}


def resolve_tasks(specs: list[str]) -> list[Task]:
    """Tasks for `--tasks` entries: NAME, NAME=PATH, a group (smoke), or a custom task's YAML path."""
    out: list[Task] = []
    for spec in specs:
        name, _, path = spec.strip().partition("=")
        if name in GROUPS and not path:
            out += resolve_tasks(list(GROUPS[name]))
        elif name in TASKS:
            folder = name.partition(":")[0]  # arc:letters reads arc's files
            located = ds.locate(folder, path or None, "Point it at the benchmark's folder or file.")
            out.append(TASKS[name](located))
        elif name.startswith("bfcl:"):  # a category this task cannot run: say which ones it can
            out.append(bfcl_task(name.removeprefix("bfcl:"), Path(path) if path else None))
        elif name == "self-cognition" or name.startswith("self-cognition:"):  # the identity is the option
            if not name.startswith("self-cognition:"):
                raise UserError("self-cognition needs the model's name and its author.", USAGE)
            out.append(SelfCognition(*parse_identity(name.removeprefix("self-cognition:"))))
        elif name.endswith((".yaml", ".yml")) and Path(name).is_file():
            out.append(custom(Path(name)))
        else:
            raise UserError(
                f"unknown task '{name}'.",
                f"Choose from: {', '.join([*TASKS, *GROUPS])}, or give a custom task's YAML file.",
            )
    names = [t.name for t in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"task(s) given twice: {', '.join(dupes)}.", "List each task once.")
    return out


__all__ = ["GROUPS", "TASKS", "Env", "Request", "Scored", "Task", "resolve_tasks"]
