"""The four record shapes people fine-tune on, detected, validated and converted through one form.

- messages   {"messages": [{"role", "content"}, ...], "tools"?}             (OpenAI chat)
- sharegpt   {"conversations": [{"from", "value"}, ...], "system"?, "tools"?}
- alpaca     {"instruction", "input"?, "output", "system"?, "history"?: [[q, a], ...]}
- preference {"prompt", "chosen", "rejected"}: strings or message lists     (TRL's shape)

Everything goes through `Example` (messages, plus a rejected reply for preference data). Tool use survives
the trip: OpenAI `tool_calls` on assistant turns, `tool_call_id`/`name` on tool turns and the record's
`tools` schemas are kept (sharegpt's function_call turns become tool_calls), so the model's own chat
template renders them natively.
`BadRecord` carries the reason a record is malformed; callers add the file:line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal

Format = Literal["messages", "sharegpt", "alpaca", "preference"]
FORMATS: tuple[Format, ...] = ("messages", "sharegpt", "alpaca", "preference")
ROLES = ("system", "user", "assistant", "tool")
_SHAREGPT_ROLE = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
    "function_call": "assistant",
    "observation": "tool",
    "tool": "tool",
}
_TO_SHAREGPT = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}


class BadRecord(ValueError):
    """A record that does not fit its format; the message is the reason."""


@dataclass
class Example:
    messages: list[dict[str, Any]]
    """For preference data: the prompt turns followed by the chosen reply."""
    rejected: str | None = None
    tools: list[dict[str, Any]] | None = None
    """Function schemas offered to the model (OpenAI `tools`)."""


def detect(record: dict[str, Any]) -> Format:
    if "messages" in record:
        return "messages"
    if "conversations" in record:
        return "sharegpt"
    if "chosen" in record and "rejected" in record:
        return "preference"
    if "instruction" in record and "output" in record:
        return "alpaca"
    keys = ", ".join(sorted(record)[:8]) or "none"
    raise BadRecord(
        f"unknown record format (keys: {keys}); expected messages, conversations, "
        "instruction/output or prompt/chosen/rejected"
    )


def parse(record: dict[str, Any], fmt: Format | None = None) -> Example:
    """Validate `record` and read it into an Example. Raises BadRecord."""
    fmt = fmt or detect(record)
    if fmt == "messages":
        ex = Example(_messages(record.get("messages"), "messages"), tools=_tools(record))
    elif fmt == "sharegpt":
        ex = Example(_sharegpt(record), tools=_tools(record))
    elif fmt == "alpaca":
        ex = Example(_alpaca(record))
    else:
        ex = _preference(record)
    _check_turns(ex.messages)
    return ex


def render(ex: Example, fmt: Format) -> dict[str, Any]:
    """Write an Example in `fmt`. Raises BadRecord when `fmt` cannot hold it."""
    msgs = ex.messages
    if fmt == "preference":
        if ex.rejected is None:
            raise BadRecord("has no rejected reply, so it cannot become a preference record")
        return {
            "prompt": msgs[:-1],
            "chosen": [msgs[-1]],
            "rejected": [{"role": "assistant", "content": ex.rejected}],
        }
    tools = {"tools": ex.tools} if ex.tools else {}
    if fmt == "messages":
        return {"messages": msgs, **tools}
    if fmt == "sharegpt":
        out: dict[str, Any] = {}
        body = msgs
        if msgs[0]["role"] == "system":
            out["system"], body = msgs[0]["content"], msgs[1:]
        out["conversations"] = [_to_sharegpt_turns(m) for m in body]
        return {**out, **({"tools": json.dumps(ex.tools, ensure_ascii=False)} if ex.tools else {})}
    # alpaca: the last exchange is instruction/output, earlier exchanges are history
    system = msgs[0]["content"] if msgs[0]["role"] == "system" else None
    body = msgs[1:] if system is not None else msgs
    if any(m["role"] == "tool" or m.get("tool_calls") for m in body):
        raise BadRecord("has tool calls, which alpaca cannot hold")
    pairs = [(body[i]["content"], body[i + 1]["content"]) for i in range(0, len(body), 2)]
    out = {"instruction": pairs[-1][0], "input": "", "output": pairs[-1][1]}
    if system is not None:
        out["system"] = system
    if len(pairs) > 1:
        out["history"] = [list(p) for p in pairs[:-1]]
    return out


def text_of(record: dict[str, Any]) -> str:
    """The text a record carries, for cleaning and statistics: `text`, or its turns joined."""
    if isinstance(record.get("text"), str):
        return record["text"]
    try:
        ex = parse(record)
    except BadRecord:
        return "\n".join(_strings(record))
    parts = [m["content"] for m in ex.messages if m["content"]]
    if ex.rejected is not None:
        parts.append(ex.rejected)
    return "\n".join(parts)


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a value (for records of no known format, like `synth pairs` output)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in ("role", "from"):
                yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


# -- readers ---------------------------------------------------------------------------------------


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadRecord(f"{what} must be a string, got {type(value).__name__}")
    return value


def _messages(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise BadRecord(f"{what} must be a non-empty list of messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise BadRecord(f"{what}[{i}] must be an object with role and content")
        role = m.get("role")
        if role not in ROLES:
            raise BadRecord(f"{what}[{i}].role is {role!r}; expected one of {', '.join(ROLES)}")
        calls = m.get("tool_calls") if role == "assistant" else None
        content = m.get("content")
        if calls and content is None:  # OpenAI sends content null next to tool_calls
            content = ""
        msg: dict[str, Any] = {"role": role, "content": _text(content, f"{what}[{i}].content")}
        if calls:
            msg["tool_calls"] = [_tool_call(c, f"{what}[{i}].tool_calls[{j}]") for j, c in enumerate(calls)]
        for key in ("tool_call_id", "name") if role == "tool" else ():
            if isinstance(m.get(key), str):
                msg[key] = m[key]
        out.append(msg)
    return out


def _tool_call(call: Any, what: str) -> dict[str, Any]:
    """One call in OpenAI's shape, arguments as an object (chat templates format them themselves)."""
    fn = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise BadRecord(f"{what} must have a function name")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args or "{}")
        except json.JSONDecodeError:
            raise BadRecord(f"{what}.arguments is not valid JSON") from None
    if not isinstance(args, dict):
        raise BadRecord(f"{what}.arguments must be an object")
    out: dict[str, Any] = {"type": "function", "function": {"name": fn["name"], "arguments": args}}
    if isinstance(call.get("id"), str):
        out["id"] = call["id"]
    return out


def _tools(record: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The record's function schemas: a list, or a JSON string of one (LLaMA-Factory's sharegpt)."""
    tools = record.get("tools")
    if tools in (None, "", []):
        return None
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError:
            raise BadRecord("tools is not valid JSON") from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
        raise BadRecord("tools must be a list of function schemas")
    return [t if "function" in t else {"type": "function", "function": t} for t in tools]


def _to_sharegpt_turns(m: dict[str, Any]) -> dict[str, str]:
    if m.get("tool_calls"):
        calls = [c["function"] for c in m["tool_calls"]]
        return {"from": "function_call", "value": json.dumps(calls[0] if len(calls) == 1 else calls)}
    return {"from": _TO_SHAREGPT[m["role"]], "value": m["content"]}


def _sharegpt(record: dict[str, Any]) -> list[dict[str, str]]:
    conv = record.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise BadRecord("conversations must be a non-empty list")
    out = []
    if record.get("system"):
        out.append({"role": "system", "content": _text(record["system"], "system")})
    for i, turn in enumerate(conv):
        if not isinstance(turn, dict):
            raise BadRecord(f"conversations[{i}] must be an object with from and value")
        role = _SHAREGPT_ROLE.get(turn.get("from"))  # type: ignore[arg-type]
        if role is None:
            raise BadRecord(f"conversations[{i}].from is {turn.get('from')!r}; expected human, gpt or system")
        value = _text(turn.get("value"), f"conversations[{i}].value")
        if turn.get("from") == "function_call":  # a JSON call (or list of calls) -> OpenAI tool_calls
            try:
                calls = json.loads(value)
            except json.JSONDecodeError:
                raise BadRecord(f"conversations[{i}] is a function_call whose value is not JSON") from None
            calls = calls if isinstance(calls, list) else [calls]
            where = f"conversations[{i}]"
            out.append({"role": role, "content": "", "tool_calls": [_tool_call(c, where) for c in calls]})
            continue
        out.append({"role": role, "content": value})
    return out


def _alpaca(record: dict[str, Any]) -> list[dict[str, str]]:
    out = []
    if record.get("system"):
        out.append({"role": "system", "content": _text(record["system"], "system")})
    history = record.get("history") or []
    if not isinstance(history, list):
        raise BadRecord("history must be a list of [instruction, response] pairs")
    for i, pair in enumerate(history):
        if not (isinstance(pair, list | tuple) and len(pair) == 2):
            raise BadRecord(f"history[{i}] must be an [instruction, response] pair")
        out += [
            {"role": "user", "content": _text(pair[0], f"history[{i}][0]")},
            {"role": "assistant", "content": _text(pair[1], f"history[{i}][1]")},
        ]
    instruction = _text(record.get("instruction"), "instruction")
    extra = record.get("input") or ""
    prompt = f"{instruction}\n\n{_text(extra, 'input')}" if extra else instruction
    out += [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": _text(record.get("output"), "output")},
    ]
    return out


def _reply(value: Any, what: str) -> str:
    if isinstance(value, str):
        return value
    msgs = _messages(value, what)
    if msgs[-1]["role"] != "assistant":
        raise BadRecord(f"{what} must end with an assistant message")
    return msgs[-1]["content"]


def _preference(record: dict[str, Any]) -> Example:
    prompt = record.get("prompt")
    if prompt is None and isinstance(record.get("chosen"), list):
        turns = _messages(record["chosen"], "chosen")  # implicit prompt: chosen holds the whole chat
        prompt = turns[:-1]
    msgs = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else _messages(prompt, "prompt")
    chosen, rejected = _reply(record.get("chosen"), "chosen"), _reply(record.get("rejected"), "rejected")
    if chosen.strip() == rejected.strip():
        raise BadRecord("chosen and rejected are the same reply")
    return Example([*msgs, {"role": "assistant", "content": chosen}], rejected)


def _check_turns(msgs: list[dict[str, str]]) -> None:
    body = msgs[1:] if msgs and msgs[0]["role"] == "system" else msgs
    if not body:
        raise BadRecord("has no user or assistant turns")
    if any(m["role"] == "system" for m in body):
        raise BadRecord("a system message may only come first")
    if body[0]["role"] != "user":
        raise BadRecord(f"the first turn must be from the user, not {body[0]['role']}")
    if body[-1]["role"] != "assistant":
        raise BadRecord("the last turn must be the assistant's reply")
    for a, b in pairwise(body):
        if a["role"] == b["role"] and a["role"] != "tool":
            raise BadRecord(f"two {a['role']} turns in a row; turns must alternate user/assistant")
    for m in body:
        if m["role"] != "tool" and not m["content"].strip() and not m.get("tool_calls"):
            raise BadRecord(f"a {m['role']} turn is empty")
