"""Plan-and-execute (ReWOO, Xu et al., 2023): one plan, the tools run, one solve step.

1. Plan: one request for the whole plan, a list of tool calls whose string arguments may refer to the
   result of an earlier step as #E1, #E2, ... (an empty plan: no tool is needed). With `constrain` the plan
   is constrained to a JSON schema built from the tool registry; without it, lines `#E1 = tool[{json}]`.
2. Execute: each step in order, placeholders replaced by the evidence so far.
3. Solve: one request with the task and the evidence, for the answer.
Two model requests whatever the task, so its cost is known before it starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from llmworks.agent.examples import Example
from llmworks.agent.run import Run, Step, answer_schema, parse_answer

__all__ = ["demo_messages", "plan_schema", "plan_system", "run_plan_execute"]

MAX_PLAN_STEPS = 4
_LINE = re.compile(r"#E(\d+)\s*=\s*([\w-]+)\s*\[(.*)\]\s*$")


def plan_schema(run: Run) -> dict[str, Any]:
    items = [
        {
            "type": "object",
            "properties": {
                "tool": {"const": s["function"]["name"]},
                "arguments": s["function"]["parameters"],
            },
            "required": ["tool", "arguments"],
        }
        for s in run.bounded_specs
    ]
    return {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "items": {"anyOf": items} if len(items) > 1 else items[0],
                "maxItems": MAX_PLAN_STEPS,
            }
        },
        "required": ["steps"],
    }


def plan_system(run: Run, instructions: str) -> str:
    tools = "\n".join(
        f"- {s['function']['name']}: {s['function']['description']} Arguments: "
        f"{json.dumps(s['function']['parameters'].get('properties', {}), ensure_ascii=False)}"
        for s in run.tool_specs
    )
    fmt = (
        'Write the plan as JSON: {"steps": [{"tool": ..., "arguments": {...}}, ...]}.'
        if run.constrain
        else 'Write one line per step: #E1 = tool[{"argument": "value"}].'
    )
    return (
        f"{instructions}\n\nFor each task, make a plan that solves it with these tools:\n{tools}\n\n"
        f"Use at most {MAX_PLAN_STEPS} steps, as few as needed; no steps if no tool is needed. In an "
        "argument, #E1 stands for the result of step 1, #E2 for step 2. " + fmt
    )


def demo_messages(examples: Sequence[Example], constrain: bool) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    for ex in examples:
        steps = [(name, args) for name, args, _ in ex.calls]
        msgs += [
            {"role": "user", "content": f"Task: {ex.task}"},
            {"role": "assistant", "content": _plan_text(steps, constrain)},
        ]
    return msgs


def run_plan_execute(run: Run) -> Iterator[Step]:
    run.messages[-1] = {"role": "user", "content": f"Task: {run.task}"}
    options: dict[str, Any] = {"max_tokens": run.budget.step_tokens * 2}
    if run.constrain:
        options["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "plan", "schema": plan_schema(run)},
        }
    r = run.chat(run.messages, **options)
    plan_text = r.content or ""
    steps = _plan_from_json(plan_text) if run.constrain else _plan_from_text(plan_text)
    if steps is None:
        run.malformed += 1
        steps = []
        yield Step("notice", "The plan could not be read; answering without tools.", error=True)
    run.messages.append({"role": "assistant", "content": plan_text})
    yield Step(
        "thought", "Plan:\n" + _show(steps) if steps else "Plan: no tool is needed.", data={"plan": steps}
    )
    evidence: list[str] = []
    for name, args in steps:
        if run.over_budget():
            break
        call, obs = run.execute(name, _fill(args, evidence))
        yield call
        yield obs
        evidence.append(obs.text)
    solve = _solve_prompt(run, steps, evidence)
    run.messages.append({"role": "user", "content": solve})
    answer_opts: dict[str, Any] = {}
    if run.constrain:
        answer_opts["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "final_answer", "schema": answer_schema(run.budget.step_tokens)},
        }
    system = run.messages[0]["content"].split("\n\nFor each task, make a plan")[0]
    history = [m for m in run.messages[1 + run.demo_count : -3] if m["role"] in ("user", "assistant")]
    r = run.chat(
        [{"role": "system", "content": system}, *history, {"role": "user", "content": solve}], **answer_opts
    )
    answer = parse_answer(r.content or "") if run.constrain else (r.content or "")
    run.messages.append({"role": "assistant", "content": answer})
    yield run.finish(answer)


def _solve_prompt(run: Run, steps: list[tuple[str, Any]], evidence: list[str]) -> str:
    if not evidence:
        return run.task
    lines = [
        f"#E{i} = {name}[{json.dumps(args, ensure_ascii=False)}]\nResult: {ev}"
        for i, ((name, args), ev) in enumerate(zip(steps, evidence, strict=False), 1)
    ]
    return f"Task: {run.task}\n\nEvidence:\n" + "\n".join(lines) + "\n\nAnswer the task using the evidence."


def _fill(args: Any, evidence: list[str]) -> Any:
    """#En in string arguments replaced by the result of step n."""
    if isinstance(args, str):
        return re.sub(
            r"#E(\d+)",
            lambda m: evidence[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(evidence) else m.group(0),
            args,
        )
    if isinstance(args, dict):
        return {k: _fill(v, evidence) for k, v in args.items()}
    if isinstance(args, list):
        return [_fill(v, evidence) for v in args]
    return args


def _plan_text(steps: list[tuple[str, Any]], constrain: bool) -> str:
    if constrain:
        return json.dumps({"steps": [{"tool": n, "arguments": a} for n, a in steps]}, ensure_ascii=False)
    return _show(steps) or "No steps."


def _show(steps: list[tuple[str, Any]]) -> str:
    return "\n".join(f"#E{i} = {n}[{json.dumps(a, ensure_ascii=False)}]" for i, (n, a) in enumerate(steps, 1))


def _plan_from_json(text: str) -> list[tuple[str, Any]] | None:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("steps"), list):
        return None
    out = []
    for s in obj["steps"][:MAX_PLAN_STEPS]:
        if not isinstance(s, dict) or not isinstance(s.get("tool"), str):
            return None
        out.append((s["tool"], s.get("arguments", {})))
    return out


def _plan_from_text(text: str) -> list[tuple[str, Any]] | None:
    out = []
    for line in text.splitlines():
        m = _LINE.search(line.strip())
        if not m:
            continue
        raw = m.group(3).strip()
        try:
            args: Any = json.loads(raw)
        except json.JSONDecodeError:
            args = raw  # run_tool reports it: not valid JSON
        out.append((m.group(2), args))
    if not out and "#E" in text:
        return None
    return out[:MAX_PLAN_STEPS]
