"""Evaluation: tasks, scorers, judge, runner, reports. `evaluate(EvalConfig(...))`, `compare(runs, out)` and
`run_arena(ArenaConfig(...))`."""

from __future__ import annotations

from llmworks.eval.arena import ArenaConfig, run_arena
from llmworks.eval.report import compare
from llmworks.eval.runner import EvalConfig, evaluate

__all__ = ["ArenaConfig", "EvalConfig", "compare", "evaluate", "run_arena"]
