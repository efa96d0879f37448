"""The three loops, by the name a config gives them."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from llmworks.agent.loops.function_calling import FINAL_ANSWER, run_function_calling
from llmworks.agent.loops.plan_execute import run_plan_execute
from llmworks.agent.loops.react import react_system, run_react
from llmworks.agent.run import Run, Step

__all__ = ["FINAL_ANSWER", "LOOPS", "react_system"]

LOOPS: dict[str, Callable[[Run], Iterator[Step]]] = {
    "tools": run_function_calling,
    "react": run_react,
    "plan": run_plan_execute,
}
"""tools: native function calling; react: Thought/Action/Observation text; plan: plan-and-execute (ReWOO)."""
