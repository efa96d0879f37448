"""The ReAct loop (Yao et al., 2022): a plain-text protocol that needs no `tools` support from the server.

    Thought: what to do next
    Action: calculator
    Action Input: {"expression": "0.17 * 2340"}
    Observation: 397.8                      <- written by us, not the model
    Thought: I know the answer.
    Final Answer: 397.8

With `constrain` each step's reply is constrained (response_format json_schema, a grammar on llama.cpp) to
`{"thought", "action", "action_input"}` where the action is a tool name or "Final Answer" and the input
matches that tool's schema (the thought comes first and is capped, so the model reasons before it acts,
and the step always completes); the conversation keeps those JSON steps. Without it the text protocol
above is parsed, and a reply that does not follow it is reported back to the model.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from llmworks.agent.examples import Example
from llmworks.agent.run import Run, Step, bounded_spec

__all__ = ["demo_messages", "react_schema", "react_system", "run_react"]

THOUGHT_CHARS = 120

FINAL = "Final Answer"
_ACTION = re.compile(r"Action\s*:\s*(.+?)\s*\n\s*Action\s*Input\s*:\s*(.*)", re.S)
_FINAL = re.compile(r"Final\s*Answer\s*:\s*(.*)", re.S)
_THOUGHT = re.compile(r"Thought\s*:\s*(.*?)(?=\n\s*(?:Action|Final\s*Answer)\s*:|\Z)", re.S)


def react_system(run: Run, instructions: str) -> str:
    if run.constrain:
        fmt = (
            'Answer with one JSON step: {"thought": what to do next, "action": the tool to use, one of '
            f'[{", ".join(run.tools)}], "action_input": the tool\'s input}}. Then you get an Observation '
            f'with the result. When you know the answer: {{"thought": "I know the answer.", "action": "{FINAL}", '
            '"action_input": the answer}.'
        )
        return f"{instructions}\n\nYou can use these tools:\n{_tool_lines(run)}\n\n{fmt}".strip()
    names = ", ".join(run.tools)
    return (
        f"{instructions}\n\nYou can use these tools:\n{_tool_lines(run)}\n\n"
        "Answer in this format:\n"
        "Thought: what to do next\n"
        f"Action: the tool to use, one of [{names}]\n"
        "Action Input: the tool's input as JSON\n"
        "Then you get an Observation with the result. When you know the answer, write:\n"
        "Thought: I know the answer.\n"
        f"{FINAL}: the answer"
    ).strip()


def _tool_lines(run: Run) -> str:
    return "\n".join(
        f"- {s['function']['name']}: {s['function']['description']} Input: "
        f"{json.dumps(s['function']['parameters'].get('properties', {}), ensure_ascii=False)}"
        for s in run.tool_specs
    )


def demo_messages(examples: Sequence[Example], constrain: bool) -> list[dict[str, Any]]:
    """The examples as earlier turns, in the step format the model must write."""
    msgs: list[dict[str, Any]] = []
    for ex in examples:
        msgs.append({"role": "user", "content": ex.task})
        for name, args, result in ex.calls:
            msgs.append(
                {"role": "assistant", "content": _step_text(constrain, f"I will use {name}.", name, args)}
            )
            msgs.append({"role": "user", "content": f"Observation: {result}"})
        thought = "I know the answer." if ex.calls else "I can answer this directly."
        msgs.append({"role": "assistant", "content": _step_text(constrain, thought, FINAL, ex.answer)})
    return msgs


def _step_text(constrain: bool, thought: str, action: str, action_input: Any) -> str:
    if constrain:
        return json.dumps(
            {"thought": thought, "action": action, "action_input": action_input}, ensure_ascii=False
        )
    if action == FINAL:
        return f"Thought: {thought}\n{FINAL}: {action_input}"
    shown = action_input if isinstance(action_input, str) else json.dumps(action_input, ensure_ascii=False)
    return f"Thought: {thought}\nAction: {action}\nAction Input: {shown}"


def react_schema(run: Run) -> dict[str, Any]:
    options = [
        {
            "type": "object",
            "properties": {
                "thought": {"type": "string", "maxLength": THOUGHT_CHARS},
                "action": {"const": s["function"]["name"]},
                "action_input": s["function"]["parameters"],
            },
            "required": ["thought", "action", "action_input"],
        }
        for s in (bounded_spec(t, run.budget.step_tokens - THOUGHT_CHARS) for t in run.tool_specs)
    ]
    options.append(
        {
            "type": "object",
            "properties": {
                "thought": {"type": "string", "maxLength": THOUGHT_CHARS},
                "action": {"const": FINAL},
                "action_input": {
                    "type": "string",
                    "maxLength": max(16, run.budget.step_tokens - 48 - THOUGHT_CHARS),
                },
            },
            "required": ["thought", "action", "action_input"],
        }
    )
    return {"anyOf": options} if len(options) > 1 else options[0]


def run_react(run: Run) -> Iterator[Step]:
    options: dict[str, Any] = {}
    if run.constrain:
        options["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "react_step", "schema": react_schema(run)},
        }
    else:
        options["stop"] = ["\nObservation:", "Observation:"]
    while True:
        why = run.over_budget()
        if why:
            yield from run.force_answer(why)
            return
        r = run.chat(run.messages, **options)
        text = r.content or ""
        step = _from_json(text) if run.constrain else _from_text(text)
        if step is None:
            run.malformed += 1
            run.messages += [
                {"role": "assistant", "content": text.strip()},
                {
                    "role": "user",
                    "content": "Observation: error: follow the format: Thought, then Action and Action Input, "
                    f"or {FINAL}.",
                },
            ]
            yield Step("notice", "The reply did not follow the ReAct format.", error=True)
            continue
        thought, action, action_input = step
        if thought:
            yield Step("thought", thought)
        if action == FINAL:
            answer = action_input if isinstance(action_input, str) else json.dumps(action_input)
            run.messages.append(
                {"role": "assistant", "content": _step_text(run.constrain, thought, FINAL, answer)}
            )
            yield run.finish(answer)
            return
        args = action_input if isinstance(action_input, (dict, str)) else {}
        run.messages.append(
            {"role": "assistant", "content": _step_text(run.constrain, thought, action, args)}
        )
        call, obs = run.execute(action, args)
        yield call
        yield obs
        run.messages.append({"role": "user", "content": f"Observation: {obs.text}"})
        if run.repeats >= 2:
            yield from run.force_answer("the model repeated the same call")
            return


def _from_json(text: str) -> tuple[str, str, Any] | None:
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("action"), str):
        return None
    return str(obj.get("thought", "")).strip(), obj["action"], obj.get("action_input", {})


def _from_text(text: str) -> tuple[str, str, Any] | None:
    thought_m = _THOUGHT.search(text)
    thought = thought_m.group(1).strip() if thought_m else ""
    final = _FINAL.search(text)
    action = _ACTION.search(text)
    if final and (not action or final.start() < action.start()):
        return thought, FINAL, final.group(1).strip()
    if not action:
        return None
    raw = action.group(2).strip()
    raw = re.sub(r"^```(?:json)?\s*|\s*```$", "", raw)
    try:
        args: Any = json.loads(raw)
    except json.JSONDecodeError:
        m = re.search(r"\{.*\}", raw, re.S)
        try:
            args = json.loads(m.group(0)) if m else raw
        except json.JSONDecodeError:
            args = raw
    return thought, action.group(1).strip().strip("`'\""), args
