"""Evaluation: tasks, scorers, judge, runner, reports. `evaluate(EvalConfig(...))` and `compare(runs, out)`."""

from __future__ import annotations

from llmworks.eval.report import compare
from llmworks.eval.runner import EvalConfig, evaluate

__all__ = ["EvalConfig", "compare", "evaluate"]
