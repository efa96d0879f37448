"""The function-calling loop: native `tools` through the client.

Every request offers the tools plus `final_answer`. With `constrain` the request says
`tool_choice="required"`, which the llama.cpp engine (in process or behind `llmworks serve`) enforces
with a grammar compiled from the tool registry: a tool name from the list and arguments that match that
tool's schema, or the final answer. A tiny model then cannot emit a malformed call. Without it the model
may also answer in plain text, and what it writes is checked like any untrusted input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from llmworks.agent.examples import Example
from llmworks.agent.run import Run, Step, bounded_spec, tool_message
from llmworks.client.base import RequestFailed
from llmworks.errors import UserError

__all__ = ["FINAL_ANSWER", "demo_messages", "run_function_calling"]

FINAL_ANSWER = {
    "type": "function",
    "function": {
        "name": "final_answer",
        "description": "Give the final answer to the user's task. Call it once you know the answer.",
        "parameters": {
            "type": "object",
            "properties": {"answer": {"type": "string", "description": "The answer, in full."}},
            "required": ["answer"],
        },
    },
}


def run_function_calling(run: Run) -> Iterator[Step]:
    if run.constrain:
        specs = [*run.bounded_specs, bounded_spec(FINAL_ANSWER, run.budget.step_tokens)]
    else:
        specs = [*run.tool_specs, FINAL_ANSWER]
    choice = "required" if run.constrain else "auto"
    while True:
        why = run.over_budget()
        if why:
            yield from run.force_answer(why)
            return
        try:
            r = run.chat(run.messages, tools=specs, tool_choice=choice)
        except RequestFailed as e:
            if run.requests == 0 and not e.fatal:
                raise no_tool_support(run, e) from None
            raise
        if not r.tool_calls:
            text = (r.content or "").strip()
            if "<tool_call>" in text or text.startswith('{"name"'):
                feedback = "error: that tool call could not be read. Write valid JSON."
            elif (
                "<tool_response>" in text
            ):  # the model wrote a tool's result itself, as the template shows one
                feedback = "error: only a tool writes a tool response. Call a tool, or give the final answer."
            else:
                feedback = ""
            if feedback:
                run.malformed += 1
                run.messages += [
                    {"role": "assistant", "content": text},
                    {"role": "user", "content": feedback},
                ]
                yield Step("notice", "The model wrote a tool call that does not parse.", error=True)
                continue
            yield run.finish(text)
            run.messages.append({"role": "assistant", "content": run.answer})
            return
        calls = [c for c in r.tool_calls if c.name != "final_answer"]
        final = next((c for c in r.tool_calls if c.name == "final_answer"), None)
        if calls:
            run.messages.append({**r.message(), "tool_calls": [c.to_openai() for c in calls]})
        for c in calls:
            call, obs = run.execute(c.name, c.arguments)
            yield call
            yield obs
            run.messages.append(tool_message(c.id, c.name, obs))
        if final is not None:
            answer = _final_text(final.arguments)
            if answer is None:
                run.malformed += 1
            else:
                yield run.finish(answer)
                run.messages.append({"role": "assistant", "content": run.answer})
                return
        if run.repeats >= 2:
            yield from run.force_answer("the model repeated the same call")
            return


def demo_messages(examples: Sequence[Example], constrain: bool) -> list[dict[str, Any]]:
    """The examples as earlier turns: calls, results, then the answer (a final_answer call when the
    answer must be a call, as with constrain)."""
    msgs: list[dict[str, Any]] = []
    for i, ex in enumerate(examples):
        msgs.append({"role": "user", "content": ex.task})
        calls = [*ex.calls, *([("final_answer", {"answer": ex.answer}, None)] if constrain else [])]
        for j, (name, args, result) in enumerate(calls):
            cid = f"call_example_{i}_{j}"
            fn = {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}
            msgs.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": cid, "type": "function", "function": fn}],
                }
            )
            if result is not None:
                msgs.append({"role": "tool", "tool_call_id": cid, "name": name, "content": result})
        if not constrain:
            msgs.append({"role": "assistant", "content": ex.answer})
    return msgs


def _final_text(arguments: str) -> str | None:
    try:
        obj = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return None
    answer = obj.get("answer") if isinstance(obj, dict) else None
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    return answer if isinstance(answer, str) else None


def no_tool_support(run: Run, e: RequestFailed) -> UserError:
    return UserError(
        f"model '{run.client.name}' cannot make tool calls for the function-calling loop ({e.message}).",
        "Use loop: react (plain text), or plan, or set constrain: false; or serve the model as a GGUF on "
        "the llamacpp engine.",
    )
