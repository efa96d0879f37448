"""The Agent: a model (reached only through `llmworks.client`), tools, a loop and a budget.

    from llmworks.agent import Agent, tool

    @tool
    def word_count(text: str) -> int:
        \"\"\"Count the words of a text.

        Args:
            text: The text to count.
        \"\"\"
        return len(text.split())

    agent = Agent([word_count], loop="tools")          # the embedded model, in process
    print(agent.run("How many words are in 'to be or not to be'?").answer)

`run_stream` yields the steps as they happen; `run` returns the whole `RunResult`. A run's tool state (the
python tool's variables) lasts for that run; an Agent runs one task at a time (build one per concurrent
conversation, as `llmworks serve` does).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from llmworks.agent.examples import examples_for
from llmworks.agent.loops import LOOPS
from llmworks.agent.run import Budget, Run, RunResult, Step
from llmworks.agent.tools.base import FunctionTool, Tool, ToolResult
from llmworks.client.base import Client
from llmworks.errors import UserError

__all__ = ["DEFAULT_INSTRUCTIONS", "Agent", "AgentRun", "AgentTool"]

DEFAULT_INSTRUCTIONS = (
    "You are a helpful assistant. Use a tool when the task needs one, then give the final answer. "
    "Keep the answer short."
)


class Agent:
    def __init__(
        self,
        tools: Sequence[Tool | Callable[..., Any]] = (),
        client: Client | None = None,
        *,
        name: str = "agent",
        description: str = "",
        instructions: str = DEFAULT_INSTRUCTIONS,
        loop: str = "tools",
        budget: Budget | None = None,
        constrain: bool = True,
        temperature: float = 0.0,
        seed: int | None = 0,
        trajectory: Path | str | None = None,
        examples: bool = True,
    ) -> None:
        """`client`: None loads the embedded model in this process (on first use). `constrain`: constrain
        each action to the tool registry (a grammar on llama.cpp). `trajectory`: a JSONL file each run
        appends its conversation to (messages + tool_calls, the format `llmworks train` reads).
        `examples`: show worked examples of the loop's format first (llmworks.agent.examples)."""
        if loop not in LOOPS:
            raise UserError(f"unknown loop '{loop}'.", f"Choose one of: {', '.join(LOOPS)}.")
        self.tools = [t if isinstance(t, Tool) else FunctionTool(t) for t in tools]
        for t in self.tools:
            t.check()
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names) or "final_answer" in names:
            raise UserError(f"tool names must be unique and not 'final_answer': {', '.join(names)}.", "")
        self._client = client
        self._owns_client = client is None
        self.name = name
        self.description = description
        self.instructions = instructions
        self.loop = loop
        self.budget = budget or Budget()
        self.constrain = constrain
        self.temperature = temperature
        self.seed = seed
        self.trajectory = Path(trajectory) if trajectory else None
        self.examples = examples
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        if self._client is None:
            from llmworks.client import make_client

            self._client = make_client()
        return self._client

    def run(
        self, task: str, history: Sequence[dict[str, Any]] = (), cancelled: Callable[[], bool] | None = None
    ) -> RunResult:
        stream = self.run_stream(task, history, cancelled)
        for _ in stream:
            pass
        assert stream.result is not None
        return stream.result

    def run_stream(
        self, task: str, history: Sequence[dict[str, Any]] = (), cancelled: Callable[[], bool] | None = None
    ) -> AgentRun:
        """The run's steps as they happen; `.result` once they are all read. `history`: earlier turns of
        the conversation (user and assistant messages)."""
        if not isinstance(task, str) or not task.strip():
            raise UserError("the task is empty.", "Say what the agent should do.")
        return AgentRun(self, task.strip(), list(history), cancelled)

    def messages_for(self, run: Run, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The conversation a run starts from: the loop's system prompt, its worked examples, the earlier
        turns, the task. Sets `run.demo_count` (trajectories leave the examples out)."""
        loop = LOOPS[self.loop]
        system = loop.system(run, self.instructions.strip() or DEFAULT_INSTRUCTIONS)
        demos = loop.demos(examples_for(run.tools, run.task), self.constrain) if self.examples else []
        run.demo_count = len(demos)
        turns = [
            {"role": m["role"], "content": m.get("content") or ""}
            for m in history
            if m.get("role") in ("user", "assistant") and (m.get("content") or "").strip()
        ]
        return [{"role": "system", "content": system}, *demos, *turns, {"role": "user", "content": run.task}]

    def as_tool(self) -> AgentTool:
        """This agent as a tool of another (a manager hands it sub-tasks)."""
        return AgentTool(self)

    def close(self) -> None:
        for t in self.tools:
            t.close()
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None


class AgentRun:
    """An iterator over the steps of one run; `result` holds the RunResult after the last step."""

    def __init__(
        self, agent: Agent, task: str, history: list[dict[str, Any]], cancelled: Callable[[], bool] | None
    ) -> None:
        self.agent = agent
        self.task = task
        self.result: RunResult | None = None
        self._steps = self._generate(history, cancelled)

    def __iter__(self) -> Iterator[Step]:
        return self._steps

    def __next__(self) -> Step:
        return next(self._steps)

    def _generate(
        self, history: list[dict[str, Any]], cancelled: Callable[[], bool] | None
    ) -> Iterator[Step]:
        a = self.agent
        with a._lock:
            run = Run(
                a.client,
                a.tools,
                self.task,
                [],
                a.budget,
                constrain=a.constrain,
                temperature=a.temperature,
                seed=a.seed,
                loop=a.loop,
                cancelled=cancelled,
            )
            run.messages = a.messages_for(run, history)
            try:
                for step in LOOPS[a.loop].run(run):
                    run.steps.append(step)
                    yield step
            finally:
                for t in a.tools:  # tool state (the interpreter) lasts one run
                    t.close()
            self.result = run.result()
            if a.trajectory is not None:
                _append_jsonl(a.trajectory, self.result.trajectory())


class AgentTool(Tool):
    """An agent as a tool: the manager gives a task, the agent's final answer comes back."""

    parameters = {  # noqa: RUF012
        "type": "object",
        "properties": {"task": {"type": "string", "description": "The sub-task, in full sentences."}},
        "required": ["task"],
    }

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.name = re.sub(r"[^A-Za-z0-9_-]", "_", agent.name)[:64] or "agent"
        self.description = agent.description or f"Ask the {agent.name} agent to do a sub-task."

    def __call__(self, task: str) -> ToolResult:  # type: ignore[override]
        result = self.agent.run(task)
        return ToolResult(result.answer or "(no answer)", files=list(result.files))


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:  # one write per line: concurrent runs do not interleave
        f.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
