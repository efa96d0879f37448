"""Worked examples shown to the model before the task, as earlier turns of the conversation, in the loop's
own format: one per built-in tool the agent has, and one task answered without a tool.

Small models follow a demonstrated turn far better than a described one (measured on the embedded
135M model: with them its calls are well-formed and it answers tool-free questions directly; without
them it often writes empty or runaway arguments). They are prompt scaffolding, so trajectories leave them
out. `examples: false` in a config turns them off.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Example", "examples_for"]


@dataclass(frozen=True)
class Example:
    task: str
    calls: tuple[tuple[str, dict[str, Any], str], ...]
    """(tool, arguments, result) in order."""
    answer: str


DIRECT = Example("What is the capital of Italy?", (), "The capital of Italy is Rome.")
BY_TOOL = {
    "calculator": Example("What is 6 * 7?", (("calculator", {"expression": "6 * 7"}, "42"),), "6 * 7 = 42."),
    "python": Example(
        "Use python to count the vowels in 'banana'.",
        (("python", {"code": "print(sum(c in 'aeiou' for c in 'banana'))"}, "3"),),
        "'banana' has 3 vowels.",
    ),
    "kb_search": Example(
        "What does the manual say about backups?",
        (("kb_search", {"query": "backups"}, "[1] (guide.md § Backups) Back up your data every day."),),
        "The manual says to back up your data every day.",
    ),
}


def examples_for(tool_names: Iterable[str], task: str = "") -> list[Example]:
    """The tool-free example, then one per tool the agent has, the one nearest the task last (small models
    copy the latest turn they saw: with the manual's example last, the embedded model began its answers to
    arithmetic with "The manual says")."""
    names = set(tool_names)
    tools = [ex for name, ex in BY_TOOL.items() if name in names]
    words = _words(task)
    return [DIRECT, *sorted(tools, key=lambda ex: len(words & _words(ex.task + " " + ex.calls[0][0])))]


_STOP = frozenset(
    [
        "what",
        "which",
        "does",
        "about",
        "the",
        "and",
        "for",
        "with",
        "this",
        "that",
        "from",
        "into",
        "use",
        "say",
    ]
)


def _words(text: str) -> set[str]:
    """Content words, and `#` for arithmetic (a digit next to an operator, or `%`)."""
    found = {w for w in re.findall(r"[a-z_]{3,}", text.lower()) if w not in _STOP}
    if re.search(r"\d\s*[-+*/x×^%]|\bpercent|\bpower\b|\bsquare", text):
        found.add("#")
    return found
