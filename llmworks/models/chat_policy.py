"""The one chat policy: how a conversation (with tools) becomes a prompt, and a reply becomes content and
tool calls. Every path to a model uses it — `llmworks serve`, `llmworks chat`, the in-process client and
training — so the same messages give the same tokens everywhere.

The policy:
- The model's default system prompt (its registry entry's, where it has one) opens a conversation that
  has no system message; a `developer` message is a system message.
- Templates that know tools get them through the template's `tools` variable. For the others the tools
  are described in a system block and calls are written as `<tool_call>{"name": ..., "arguments": {...}}
  </tool_call>` (the Hermes/Qwen convention); tool results come back as `<tool_response>` user turns.
- The template's end-of-turn token also stops generation as text, in case the model's EOS settings miss it.
- `tool_choice` "required" or a named function, and `response_format` json_object / json_schema, become an
  `OutputConstraint` (a JSON schema) that the engine enforces (a llama.cpp grammar), so the output parses.
- `tool_choice` "auto" on an engine with grammars (and `tool_grammar` on, the default): the reply is free
  text or `<tool_call>` blocks whose JSON is a call of one of the tools, so a call the model starts always
  parses (llama.cpp's server does the same with a lazy grammar). Text then cannot write "<t" (the start of
  the tag) outside a call.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmworks.errors import UserError
from llmworks.models.template import ChatTemplate, Message, no_template_error

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_JSON = json.JSONDecoder()
_SPACE = re.compile(r"\s*")


@dataclass(frozen=True)
class OutputConstraint:
    """The output must be JSON matching `schema` (None: any JSON object)."""

    schema: Mapping[str, Any] | None = None
    tagged: bool = False
    """Free text, then any number of `<tool_call>` blocks whose JSON matches `schema` (tool_choice auto)."""


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str
    """The arguments as a JSON text, as the OpenAI API carries them."""

    def to_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass(frozen=True)
class ChatPrompt:
    """A conversation rendered for one model, and what its reply must be checked against."""

    text: str
    stop: tuple[str, ...]
    """Stop strings: the caller's, plus the template's end-of-turn token."""
    tool_mode: str | None = None
    """None (no tools), "auto", "required", or the name of the one function that must be called."""
    constraint: OutputConstraint | None = None

    @property
    def forced_call(self) -> bool:
        return self.tool_mode not in (None, "auto")


def render_chat(
    template: ChatTemplate | None,
    messages: Sequence[Message],
    *,
    model: str = "model",
    default_system: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    response_format: Mapping[str, Any] | None = None,
    stop: Sequence[str] = (),
    tool_grammar: bool = False,
) -> ChatPrompt:
    """The prompt text for `messages` (a generation prompt follows), its stop strings and constraint.
    `tool_grammar`: constrain tool_choice auto too (the caller knows whether the engine has grammars)."""
    if template is None:
        raise no_template_error(model)
    mode = tool_choice_mode(tools, tool_choice)
    msgs, native_tools = conversation(messages, template, default_system, tools if mode else None)
    text = template.render(msgs, add_generation_prompt=True, tools=native_tools)
    eot = template.end_of_turn
    stops = tuple(dict.fromkeys(s for s in stop if s))
    if eot and eot not in stops:
        stops = (*stops, eot)
    constraint = response_format_constraint(response_format)
    if mode not in (None, "auto"):
        constraint = tool_call_constraint(tools or [], mode)  # type: ignore[arg-type]
    elif mode == "auto" and tool_grammar and constraint is None:
        constraint = tool_call_constraint(tools or [], "required", tagged=True)
    return ChatPrompt(text, stops, mode, constraint)


def conversation(
    messages: Sequence[Message],
    template: ChatTemplate,
    default_system: str | None = None,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """Messages (and tools) as this template can render them: the policy above, before the template."""
    if not messages:
        raise UserError("no messages to render.", "Give at least one user message.")
    native = "tools" in template.source
    out: list[dict[str, Any]] = []
    for m in messages:
        m = {**m, "content": _text(m.get("content"))}
        if m.get("role") == "developer":
            m["role"] = "system"
        if m.get("role") == "assistant" and m.get("tool_calls") and not native:
            calls = "\n".join(_call_text(c) for c in m["tool_calls"])
            m = {"role": "assistant", "content": (m["content"] + "\n" + calls).strip()}
        elif m.get("role") == "tool" and not native:
            m = {"role": "user", "content": f"<tool_response>\n{m['content']}\n</tool_response>"}
        out.append(m)
    if default_system and out[0].get("role") != "system":
        out.insert(0, {"role": "system", "content": default_system})
    if not tools or native:
        return out, [dict(t) for t in tools] if tools else None
    block = _tools_system_block(tools)
    if out[0].get("role") == "system":
        out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + block}
    else:
        out.insert(0, {"role": "system", "content": block})
    return out, None


def parse_reply(text: str, tool_mode: str | None) -> tuple[str | None, list[ToolCall]]:
    """(remaining content, tool calls) from a model's reply; plain content when there are no tools."""
    if tool_mode is None:
        return text, []
    if tool_mode != "auto":  # forced: the whole reply is the call's JSON
        with contextlib.suppress(json.JSONDecodeError):
            obj = json.loads(text)
            if _is_call(obj):
                return None, [_call(obj)]
        return text, []
    calls, rest, i = [], [], 0
    while (start := text.find(OPEN, i)) >= 0:
        obj, end = _tagged_call(text, start + len(OPEN))
        if obj is None:  # not a call after all: the text stays content
            rest.append(text[i : start + len(OPEN)])
            i = start + len(OPEN)
            continue
        calls.append(_call(obj))
        rest.append(text[i:start])
        i = end
    if not calls:
        return text, []
    rest.append(text[i:])
    return "".join(rest).strip() or None, calls


def _tagged_call(text: str, at: int) -> tuple[dict[str, Any] | None, int]:
    """The call whose JSON starts after `<tool_call>` at `at`, and where its closing tag ends. The JSON is
    decoded, not matched up to the first closing tag: a string argument may itself hold "</tool_call>"."""
    try:
        obj, end = _JSON.raw_decode(text, _SPACE.match(text, at).end())  # type: ignore[union-attr]
    except json.JSONDecodeError:
        return None, at
    close = _SPACE.match(text, end).end()  # type: ignore[union-attr]
    if not _is_call(obj) or not text.startswith(CLOSE, close):
        return None, at
    return obj, close + len(CLOSE)


def _is_call(obj: Any) -> bool:
    return isinstance(obj, dict) and isinstance(obj.get("name"), str)


def _call(obj: dict[str, Any]) -> ToolCall:
    args = obj.get("arguments", {})
    return ToolCall(
        f"call_{uuid.uuid4().hex[:24]}",
        obj["name"],
        args if isinstance(args, str) else json.dumps(args, ensure_ascii=False),
    )


def may_become_call(text: str) -> bool:
    """True while streamed text could still turn out to be a tool call (so it is held back)."""
    t = text.lstrip()
    return t.startswith(OPEN) or OPEN.startswith(t)


def tool_choice_mode(
    tools: Sequence[Mapping[str, Any]] | None, choice: str | Mapping[str, Any] | None
) -> str | None:
    """None (no tools), "auto", or the name of the one function / "required" to force."""
    if not tools or choice == "none":
        return None
    names = {_fn(t)["name"] for t in tools}  # validates every tool
    if choice is None or choice == "auto":
        return "auto"
    if choice == "required":
        return "required"
    if isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
        if isinstance(name, str) and name:
            if name not in names:
                raise UserError(f"tool_choice names '{name}', which is not among the tools.", "")
            return name
    raise UserError(
        f"tool_choice {choice!r} is not valid.", 'Use "none", "auto", "required" or a named function.'
    )


def tool_call_constraint(
    tools: Sequence[Mapping[str, Any]], mode: str, tagged: bool = False
) -> OutputConstraint:
    """One call: of the named function, or of any of them for "required" (`tagged`: text or tagged calls)."""
    fns = [_fn(t) for t in tools if mode == "required" or _fn(t)["name"] == mode]
    calls = [_call_schema(f) for f in fns]
    return OutputConstraint({"anyOf": calls} if len(calls) > 1 else calls[0], tagged=tagged)


def response_format_constraint(fmt: Mapping[str, Any] | None) -> OutputConstraint | None:
    if not fmt or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return OutputConstraint(None)
    if fmt["type"] == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise UserError("response_format json_schema needs json_schema.schema (an object).", "")
        return OutputConstraint(schema)
    raise UserError(
        f"response_format type {fmt['type']!r} is not supported.", "Use text, json_object or json_schema."
    )


def with_default_system(template_source: str, system: str) -> str:
    """The template with `system` as its default system prompt (used where a conversation has none), so a
    fine-tuned model carries the prompt it was trained with to every runtime (llama.cpp, Ollama, vLLM)."""
    prelude = (
        "{%- if messages and messages[0]['role'] != 'system' -%}"
        f"{{%- set messages = [{{'role': 'system', 'content': {json.dumps(system)}}}] + messages -%}}"
        "{%- endif -%}"
    )
    return prelude + template_source


# -- helpers --


def _text(content: Any) -> str:
    """Content as text; OpenAI list-of-parts content keeps its text parts."""
    if isinstance(content, list):
        return "".join(
            p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return content if isinstance(content, str) else ""


def _fn(tool: Mapping[str, Any]) -> Mapping[str, Any]:
    fn = tool.get("function") if isinstance(tool, Mapping) else None
    if tool.get("type") != "function" or not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise UserError('each tool must be {"type": "function", "function": {"name": ..., ...}}.', "")
    params = fn.get("parameters")
    if params is not None and not isinstance(params, Mapping):
        raise UserError(f"tool {fn['name']}: parameters must be a JSON schema object.", "")
    return fn


def _call_schema(fn: Mapping[str, Any]) -> dict[str, Any]:
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {"name": {"const": fn["name"]}, "arguments": params},
        "required": ["name", "arguments"],
    }


def _call_text(call: Mapping[str, Any]) -> str:
    fn = call.get("function", {})
    args = fn.get("arguments", "{}")
    with contextlib.suppress(json.JSONDecodeError, TypeError):
        args = json.loads(args) if isinstance(args, str) else args
    return f"{OPEN}\n{json.dumps({'name': fn.get('name'), 'arguments': args}, ensure_ascii=False)}\n{CLOSE}"


def _tools_system_block(tools: Sequence[Mapping[str, Any]]) -> str:
    sigs = "\n".join(json.dumps(_fn(t), ensure_ascii=False) for t in tools)
    return (
        "You can call functions. Their signatures:\n<tools>\n" + sigs + "\n</tools>\n"
        f'To call one, answer with {OPEN}{{"name": <function name>, "arguments": <arguments object>}}{CLOSE}.'
    )


class ReplyStream:
    """A streamed reply under the policy: content is released as it comes, except text that may still turn
    out to be a tool call, which is held back until the reply ends and then parsed."""

    def __init__(self, prompt: ChatPrompt) -> None:
        self._mode = prompt.tool_mode
        self._held = ""
        self._streaming = prompt.tool_mode is None
        self.text = ""
        """The whole reply so far."""

    def feed(self, text: str) -> str:
        """Add generated text; return the content that is safe to show now (may be "")."""
        self.text += text
        if self._streaming:
            return text
        self._held += text
        if self._mode == "auto" and not may_become_call(self._held):
            self._streaming, out, self._held = True, self._held, ""
            return out
        return ""

    def finish(self) -> tuple[str, list[ToolCall]]:
        """At the end: (content still to show, the tool calls the reply made)."""
        if self._streaming:
            return "", []
        content, calls = parse_reply(self._held, self._mode)
        return content or "", calls


__all__ = [
    "ChatPrompt",
    "OutputConstraint",
    "ReplyStream",
    "ToolCall",
    "conversation",
    "may_become_call",
    "parse_reply",
    "render_chat",
    "response_format_constraint",
    "tool_call_constraint",
    "tool_choice_mode",
    "with_default_system",
]
