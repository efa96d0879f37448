"""The three loops, by the name a config gives them, with how each one prompts: its system prompt (the
instructions plus what the loop needs said) and its worked examples."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from llmworks.agent.examples import Example
from llmworks.agent.loops import function_calling, plan_execute, react
from llmworks.agent.loops.function_calling import FINAL_ANSWER
from llmworks.agent.run import Run, Step

__all__ = ["FINAL_ANSWER", "LOOPS", "Loop"]


@dataclass(frozen=True)
class Loop:
    run: Callable[[Run], Iterator[Step]]
    system: Callable[[Run, str], str]
    demos: Callable[[Sequence[Example], bool], list[dict[str, Any]]]


LOOPS: dict[str, Loop] = {
    "tools": Loop(
        function_calling.run_function_calling, lambda run, text: text, function_calling.demo_messages
    ),
    "react": Loop(react.run_react, react.react_system, react.demo_messages),
    "plan": Loop(plan_execute.run_plan_execute, plan_execute.plan_system, plan_execute.demo_messages),
}
"""tools: native function calling; react: Thought/Action/Observation; plan: plan-and-execute (ReWOO)."""
