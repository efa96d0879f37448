"""Two agents in one conversation (Camel-style role-playing): the instructor gives the next instruction,
the solver carries it out, until the instructor says the stop phrase or the turn limit is reached.

Each agent sees the conversation from its own side: its partner's messages as the user's, its own as the
assistant's. The transcript (every turn, with the solver's steps) is saved as JSONL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmworks.agent.agent import Agent
from llmworks.atomic import atomic_write

__all__ = ["Transcript", "Turn", "roleplay"]


@dataclass
class Turn:
    speaker: str
    role: str
    """instructor or solver."""
    text: str
    steps: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Transcript:
    task: str
    turns: list[Turn] = field(default_factory=list)
    ended: str = ""
    """"stop phrase" or "turn limit"."""

    def save(self, path: Path) -> Path:
        """The JSONL at `path` (a head line, then one line per turn) and the same as Markdown next to it
        (`.md`), each written whole."""
        head = {"task": self.task, "ended": self.ended}
        lines = [json.dumps(head, ensure_ascii=False)] + [
            json.dumps(asdict(t), ensure_ascii=False) for t in self.turns
        ]
        atomic_write(path, "\n".join(lines) + "\n")
        atomic_write(path.with_suffix(".md"), self.markdown())
        return path

    def markdown(self) -> str:
        out = [
            f"# Role-play: {self.task}",
            "",
            f"Ended by the {self.ended}, after {len(self.turns)} turns.",
            "",
        ]
        for t in self.turns:
            out += [f"**{t.speaker}** ({t.role}): {t.text}", ""]
            for s in t.steps:
                if s["kind"] == "call":
                    out.append(
                        f"- call `{s.get('tool')}` {json.dumps(s.get('arguments'), ensure_ascii=False)}"
                    )
                elif s["kind"] == "observation":
                    out.append(f"- result: {' '.join(str(s.get('text', '')).split())[:300]}")
            if t.steps and any(s["kind"] in ("call", "observation") for s in t.steps):
                out.append("")
        return "\n".join(out)


def roleplay(
    instructor: Agent,
    solver: Agent,
    task: str,
    turns: int = 4,
    stop: str = "TASK_DONE",
    on_turn: Callable[[Turn], None] | None = None,
) -> Transcript:
    """Run the conversation: at most `turns` instructions, each answered by the solver."""
    transcript = Transcript(task)
    opening = (
        f"The task: {task}\nYou instruct an assistant who carries out one instruction at a time. Give the first "
        f"instruction. When the task is done, say {stop}."
    )
    a_history: list[dict[str, Any]] = []  # the instructor's side
    b_history: list[dict[str, Any]] = []  # the solver's side
    prompt = opening
    for _ in range(turns):
        instruction = instructor.run(prompt, a_history).answer
        a_history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": instruction}]
        t = Turn(instructor.name, "instructor", instruction)
        transcript.turns.append(t)
        if on_turn:
            on_turn(t)
        if stop.lower() in instruction.lower():
            transcript.ended = "stop phrase"
            return transcript
        result = solver.run(instruction, b_history)
        b_history += [
            {"role": "user", "content": instruction},
            {"role": "assistant", "content": result.answer},
        ]
        t = Turn(solver.name, "solver", result.answer, [s.to_dict() for s in result.steps])
        transcript.turns.append(t)
        if on_turn:
            on_turn(t)
        prompt = f"The assistant answered: {result.answer}\nGive the next instruction, or say {stop} if the task is done."
    transcript.ended = "turn limit"
    return transcript
