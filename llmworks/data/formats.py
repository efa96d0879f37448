"""The four record shapes people fine-tune on, detected, validated and converted through one form.

- messages   {"messages": [{"role", "content"}, ...]}                      (OpenAI chat)
- sharegpt   {"conversations": [{"from", "value"}, ...], "system"?}
- alpaca     {"instruction", "input"?, "output", "system"?, "history"?: [[q, a], ...]}
- preference {"prompt", "chosen", "rejected"}: strings or message lists     (TRL's shape)

Everything goes through `Example` (messages, plus a rejected reply for preference data).
`BadRecord` carries the reason a record is malformed; callers add the file:line.
"""

from __future__ import annotations

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
    messages: list[dict[str, str]]
    """For preference data: the prompt turns followed by the chosen reply."""
    rejected: str | None = None


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
        ex = Example(_messages(record.get("messages"), "messages"))
    elif fmt == "sharegpt":
        ex = Example(_sharegpt(record))
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
    if fmt == "messages":
        return {"messages": msgs}
    if fmt == "sharegpt":
        out: dict[str, Any] = {}
        body = msgs
        if msgs[0]["role"] == "system":
            out["system"], body = msgs[0]["content"], msgs[1:]
        out["conversations"] = [{"from": _TO_SHAREGPT[m["role"]], "value": m["content"]} for m in body]
        return out
    # alpaca: the last exchange is instruction/output, earlier exchanges are history
    system = msgs[0]["content"] if msgs[0]["role"] == "system" else None
    body = msgs[1:] if system is not None else msgs
    if any(m["role"] == "tool" for m in body):
        raise BadRecord("has tool turns, which alpaca cannot hold")
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
    parts = [m["content"] for m in ex.messages]
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


def _messages(value: Any, what: str) -> list[dict[str, str]]:
    if not isinstance(value, list) or not value:
        raise BadRecord(f"{what} must be a non-empty list of messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise BadRecord(f"{what}[{i}] must be an object with role and content")
        role = m.get("role")
        if role not in ROLES:
            raise BadRecord(f"{what}[{i}].role is {role!r}; expected one of {', '.join(ROLES)}")
        out.append({"role": role, "content": _text(m.get("content"), f"{what}[{i}].content")})
    return out


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
        out.append({"role": role, "content": _text(turn.get("value"), f"conversations[{i}].value")})
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
        if m["role"] != "tool" and not m["content"].strip():
            raise BadRecord(f"a {m['role']} turn is empty")
