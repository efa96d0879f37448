"""One agent run: its budget, its steps (streamed as they happen), and what every loop shares.

A loop (function calling, ReAct, plan-and-execute) drives a `Run`: it asks the model through `run.chat`,
calls tools through `run.execute` (which feeds errors back, stops repeated calls and truncates long
observations), and ends with `run.finish(answer)` or, when the budget is spent, `run.force_answer(why)`:
one more request constrained to `{"answer": ...}`, so every run ends with an answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmworks.agent.tools.base import Tool, ToolResult, run_tool
from llmworks.client.base import ChatResult, Client, RequestFailed

__all__ = ["ANSWER_SCHEMA", "Budget", "Run", "RunResult", "Step"]

ANSWER_SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}


@dataclass(frozen=True)
class Budget:
    """When a run must stop and answer with what it has."""

    max_steps: int = 6
    """Model requests of the loop (the forced final answer is one more)."""
    max_tokens: int = 12_000
    """Prompt + completion tokens over the whole run (its cost)."""
    max_seconds: float = 300.0
    """Wall clock of the whole run."""
    step_tokens: int = 256
    """Completion tokens per model request."""
    observation_chars: int = 1500
    """Longer tool results are cut, with a note saying so."""


@dataclass
class Step:
    """One thing that happened, as it streams (to the terminal, to the `llmworks.steps` field of serve).

    kind: "thought", "call", "observation", "notice" (a budget or a repeated call stopped the loop),
    "answer"; the planner adds "graph" and "node"."""

    kind: str
    text: str = ""
    tool: str | None = None
    arguments: Any = None
    files: list[str] = field(default_factory=list)
    error: bool = False
    data: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        for k in ("text", "tool", "arguments", "files", "error", "data"):
            v = getattr(self, k)
            if v not in (None, "", [], False):
                d[k] = v
        return d


@dataclass
class RunResult:
    answer: str
    steps: list[Step]
    messages: list[dict[str, Any]]
    """The conversation as the model saw it, in the messages + tool_calls format `llmworks train` reads."""
    tools: list[dict[str, Any]]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    tool_calls: int = 0
    malformed: int = 0
    """Model outputs that were not a valid action (unparseable, unknown tool, arguments off the schema)."""
    stopped: str | None = None
    """Why the answer was forced (a budget, a repeated call); None when the model answered by itself."""
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    loop: str = ""

    def trajectory(self) -> dict[str, Any]:
        """One line of a trajectory JSONL."""
        meta = {
            "loop": self.loop,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "tool_calls": self.tool_calls,
            "malformed": self.malformed,
            "stopped": self.stopped,
            "seconds": round(self.seconds, 3),
        }
        return {"messages": self.messages, "tools": self.tools, "meta": meta}


class Run:
    """The state of one run, shared by the loops."""

    def __init__(
        self,
        client: Client,
        tools: Sequence[Tool],
        task: str,
        messages: list[dict[str, Any]],
        budget: Budget,
        *,
        constrain: bool = True,
        temperature: float = 0.0,
        seed: int | None = 0,
        loop: str = "",
        cancelled: Any = None,
    ) -> None:
        self.client = client
        self.tools = {t.name: t for t in tools}
        self.task = task
        self.messages = messages
        self.budget = budget
        self.constrain = constrain
        self.temperature = temperature
        self.seed = seed
        self.started = time.monotonic()
        self.answer: str | None = None
        self.stopped: str | None = None
        self.steps: list[Step] = []
        self.files: list[Path] = []
        self.calls_seen: dict[tuple[str, str], str] = {}
        self.repeats = 0
        self.requests = self.prompt_tokens = self.completion_tokens = 0
        self.tool_calls = self.malformed = 0
        self.loop = loop
        self.demo_count = 0
        """Worked examples after the system message (left out of the trajectory)."""
        self._cancelled = cancelled or (lambda: False)
        self.tool_specs: list[dict[str, Any]] = [t.spec() for t in tools]
        self.bounded_specs = [bounded_spec(s, budget.step_tokens) for s in self.tool_specs]
        """The specs a constrained request sends: every string capped so that a call fits in one step's
        tokens (a token is at least one character), so a constrained call always completes."""

    # -- the model --

    def chat(self, messages: Sequence[Mapping[str, Any]], **options: Any) -> ChatResult:
        options.setdefault("max_tokens", self.budget.step_tokens)
        options.setdefault("tool_grammar", self.constrain)  # constrain: false means free text everywhere
        r = self.client.chat(list(messages), temperature=self.temperature, seed=self.seed, **options)
        self.requests += 1
        self.prompt_tokens += r.usage.prompt_tokens
        self.completion_tokens += r.usage.completion_tokens
        return r

    def over_budget(self) -> str | None:
        """Why the loop must stop now, or None."""
        b = self.budget
        if self._cancelled():
            return "the request was cancelled"
        if self.requests >= b.max_steps:
            return f"the step budget ({b.max_steps} model calls) is spent"
        if self.prompt_tokens + self.completion_tokens >= b.max_tokens:
            return f"the token budget ({b.max_tokens} tokens) is spent"
        if time.monotonic() - self.started >= b.max_seconds:
            return f"the time budget ({b.max_seconds:g} s) is spent"
        return None

    # -- tools --

    def execute(self, name: str, arguments: str | Mapping[str, Any]) -> tuple[Step, Step]:
        """Call a tool for the model: (the call step, the observation step). Errors are observations."""
        args_obj = _as_object(arguments)
        call = Step("call", tool=name, arguments=args_obj if args_obj is not None else arguments)
        tool = self.tools.get(name)
        if tool is None:
            self.malformed += 1
            known = ", ".join(self.tools) or "none"
            return call, Step(
                "observation",
                f"error: there is no tool '{name}'. The tools are: {known}.",
                tool=name,
                error=True,
            )
        key = (name, json.dumps(args_obj, sort_keys=True) if args_obj is not None else str(arguments))
        if key in self.calls_seen:
            self.repeats += 1
            text = (
                f"You already called {name} with these arguments; the result was: "
                f"{self.calls_seen[key]}\nDo not repeat a call: use that result."
            )
            return call, Step("observation", text, tool=name, error=True)
        self.tool_calls += 1
        result = run_tool(tool, arguments)
        if result.error and result.text.startswith(("error: the arguments", "error: bad arguments")):
            self.malformed += 1
        text = self.truncate(result.text)
        self.calls_seen[key] = text if len(text) <= 300 else text[:300] + " …"
        self.files += result.files
        return call, Step(
            "observation", text, tool=name, files=[str(p) for p in result.files], error=result.error
        )

    def truncate(self, text: str) -> str:
        """At most `observation_chars` of a tool result: its head and its tail (where an error or a stop
        reason is), with a note of what was cut."""
        n = self.budget.observation_chars
        if len(text) <= n:
            return text
        tail = min(300, n * 3 // 10)
        return (
            text[: n - tail]
            + f"\n[… {len(text) - n:,} more characters cut: ask for less output, or a part of it]\n"
            + text[len(text) - tail :]
        )

    # -- the end --

    def finish(self, answer: str) -> Step:
        self.answer = clean_answer(answer)
        return Step("answer", self.answer)

    def force_answer(self, why: str, messages: list[dict[str, Any]] | None = None) -> Iterator[Step]:
        """The budget is spent (or the loop cannot go on): one last request for the answer."""
        self.stopped = why
        yield Step("notice", f"Stopped: {why}. Answering with what is known.")
        convo = messages if messages is not None else self.messages
        results = [s.text for s in self.steps if s.kind == "observation" and not s.error][-3:]
        known = "".join(f"Tool result: {r if len(r) <= 300 else r[:300] + ' …'}\n" for r in results)
        prompt = {  # the demand last: a small model copies the end of the prompt (it answered "The tool
            # results you have:" when these came after it)
            "role": "user",
            "content": f"{known}Stop using tools now. Give your final answer to the task: {self.task}",
        }
        convo.append(prompt)
        options: dict[str, Any] = {"max_tokens": self.budget.step_tokens}
        if self.constrain:
            options["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "final_answer", "schema": answer_schema(self.budget.step_tokens)},
            }
        try:
            r = self.chat(convo, **options)
            answer = parse_answer(r.content or "") if self.constrain else (r.content or "")
        except RequestFailed as e:
            if e.fatal:
                raise
            answer = ""
        convo.append({"role": "assistant", "content": answer})
        yield self.finish(answer or "I could not find the answer.")

    def result(self) -> RunResult:
        return RunResult(
            answer=self.answer or "",
            steps=self.steps,
            messages=[*self.messages[:1], *self.messages[1 + self.demo_count :]],
            tools=self.tool_specs,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            requests=self.requests,
            tool_calls=self.tool_calls,
            malformed=self.malformed,
            stopped=self.stopped,
            files=self.files,
            seconds=time.monotonic() - self.started,
            loop=self.loop,
        )


def answer_schema(step_tokens: int) -> dict[str, Any]:
    """`{"answer": string}`, the string capped to fit one step."""
    return _bound(ANSWER_SCHEMA, max(16, step_tokens - 16))


def bounded_spec(spec: dict[str, Any], step_tokens: int) -> dict[str, Any]:
    """`spec` with a maxLength on each string parameter (and maxItems on arrays) that lacks one, sharing
    `step_tokens` minus the JSON around them."""
    params = spec["function"].get("parameters") or {"type": "object", "properties": {}}
    n = max(1, _count_strings(params))
    per_string = max(16, (step_tokens - 48) // n)
    fn = {**spec["function"], "parameters": _bound(params, per_string)}
    return {**spec, "function": fn}


def _count_strings(schema: Any) -> int:
    if not isinstance(schema, dict):
        return 0
    own = 1 if schema.get("type") == "string" else 0
    children = [*list((schema.get("properties") or {}).values()), schema.get("items")]
    children += list(schema.get("anyOf") or []) + list(schema.get("oneOf") or [])
    return own + sum(_count_strings(c) for c in children)


def _bound(schema: Any, chars: int) -> Any:
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if out.get("type") == "string" and "enum" not in out and "const" not in out:
        out["maxLength"] = min(int(out.get("maxLength", chars)), chars)
    if out.get("type") == "array":
        out["maxItems"] = min(int(out.get("maxItems", 32)), 32)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _bound(v, chars) for k, v in out["properties"].items()}
    if isinstance(out.get("items"), dict):
        out["items"] = _bound(out["items"], chars)
    for key in ("anyOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [_bound(v, chars) for v in out[key]]
    return out


def clean_answer(text: str) -> str:
    """The answer up to the first `}` that closes nothing in it: inside a constrained JSON string a small
    model writes the braces it means to close the call with, then runs on (`397.8 } } 2000000...`)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return text[:i].strip() or text.strip()
            depth -= 1
    return text.strip()


def parse_answer(text: str) -> str:
    """The answer of a `{"answer": ...}` reply; the text itself when it is not that JSON."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return text.strip()
    if isinstance(obj, dict) and isinstance(obj.get("answer"), str):
        return obj["answer"]
    return text.strip()


def _as_object(arguments: str | Mapping[str, Any]) -> dict[str, Any] | None:
    if isinstance(arguments, Mapping):
        return dict(arguments)
    try:
        obj = json.loads(arguments or "{}")
    except (json.JSONDecodeError, TypeError):
        return None
    return obj if isinstance(obj, dict) else None


def tool_message(call_id: str, name: str, observation: ToolResult | Step) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": observation.text}
