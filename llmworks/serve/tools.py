"""Tool calling and structured output on models of any template.

Templates that know tools get them through the template's `tools` variable. For the others the tools are
described in a system block and calls are written as `<tool_call>{"name": ..., "arguments": {...}}</tool_call>`
(the Hermes/Qwen convention). `tool_choice` "required" or a named function, and `response_format`
json_object / json_schema, are enforced with a llama.cpp grammar, so the output always parses.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from typing import Any

from llmworks.errors import UserError
from llmworks.models.template import ChatTemplate

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_CALL = re.compile(re.escape(OPEN) + r"\s*(\{.*?\})\s*" + re.escape(CLOSE), re.S)


def tool_choice_mode(tools: list[dict[str, Any]] | None, choice: str | dict[str, Any] | None) -> str | None:
    """None (no tools), "auto", or the name of the one function / "required" to force."""
    if not tools or choice == "none":
        return None
    if choice is None or choice == "auto":
        return "auto"
    if choice == "required":
        return "required"
    if (
        isinstance(choice, dict)
        and isinstance(choice.get("function"), dict)
        and choice["function"].get("name")
    ):
        name = choice["function"]["name"]
        if name not in {_fn(t)["name"] for t in tools}:
            raise UserError(f"tool_choice names '{name}', which is not among the tools.", "")
        return name
    raise UserError(
        f"tool_choice {choice!r} is not valid.", 'Use "none", "auto", "required" or a named function.'
    )


def template_messages(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, template: ChatTemplate
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """Messages (and tools) as this template can render them."""
    native = "tools" in template.source
    out = []
    for m in messages:
        m = dict(m)
        if m["role"] == "developer":
            m["role"] = "system"
        if m["role"] == "assistant" and m.get("tool_calls") and not native:
            calls = "\n".join(_call_text(c) for c in m["tool_calls"])
            m = {"role": "assistant", "content": ((m.get("content") or "") + "\n" + calls).strip()}
        elif m["role"] == "tool" and not native:
            m = {"role": "user", "content": f"<tool_response>\n{m.get('content') or ''}\n</tool_response>"}
        m["content"] = m.get("content") or ""
        out.append(m)
    if not tools or native:
        return out, tools
    block = _tools_system_block(tools)
    if out and out[0]["role"] == "system":
        out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + block}
    else:
        out.insert(0, {"role": "system", "content": block})
    return out, None


def tool_grammar(tools: list[dict[str, Any]], mode: str) -> str:
    """GBNF forcing one call: of the named function, or of any function for "required"."""
    fns = [_fn(t) for t in tools if mode == "required" or _fn(t)["name"] == mode]
    schema = {"anyOf": [_call_schema(f) for f in fns]} if len(fns) > 1 else _call_schema(fns[0])
    return schema_grammar(schema)


def response_format_grammar(fmt: dict[str, Any] | None) -> str | None:
    if not fmt or fmt.get("type") in (None, "text"):
        return None
    from llama_cpp.llama_grammar import JSON_GBNF

    if fmt["type"] == "json_object":
        return JSON_GBNF
    if fmt["type"] == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise UserError("response_format json_schema needs json_schema.schema (an object).", "")
        return schema_grammar(schema)
    raise UserError(
        f"response_format type '{fmt['type']}' is not supported.", "Use text, json_object or json_schema."
    )


def schema_grammar(schema: dict[str, Any]) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return json_schema_to_gbnf(json.dumps(schema))
    except Exception as e:  # the converter raises plain exceptions on schemas it cannot express
        raise UserError(
            f"the JSON schema cannot be turned into a grammar: {e}", "Simplify the schema."
        ) from None


def parse_tool_calls(text: str, forced: bool) -> tuple[str | None, list[dict[str, Any]]]:
    """(remaining content, tool calls) from a model's output."""
    bodies = [text.strip()] if forced else _CALL.findall(text)
    calls = []
    for body in bodies:
        try:
            obj = json.loads(body)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("name"), str):
            args = obj.get("arguments", {})
            calls.append(
                {
                    "id": f"call_{uuid.uuid4().hex[:24]}",
                    "type": "function",
                    "function": {
                        "name": obj["name"],
                        "arguments": args if isinstance(args, str) else json.dumps(args),
                    },
                }
            )
    if not calls:
        return text, []
    rest = "" if forced else _CALL.sub("", text).strip()
    return rest or None, calls


def may_become_call(text: str) -> bool:
    """True while streamed text could still turn out to be a tool call (so it is held back)."""
    t = text.lstrip()
    return t.startswith(OPEN) or OPEN.startswith(t)


def _fn(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function")
    if tool.get("type") != "function" or not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise UserError('each tool must be {"type": "function", "function": {"name": ..., ...}}.', "")
    return fn


def _call_schema(fn: dict[str, Any]) -> dict[str, Any]:
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {"name": {"const": fn["name"]}, "arguments": params},
        "required": ["name", "arguments"],
    }


def _call_text(call: dict[str, Any]) -> str:
    fn = call.get("function", {})
    args = fn.get("arguments", "{}")
    with contextlib.suppress(json.JSONDecodeError):
        args = json.loads(args) if isinstance(args, str) else args
    return f"{OPEN}\n{json.dumps({'name': fn.get('name'), 'arguments': args})}\n{CLOSE}"


def _tools_system_block(tools: list[dict[str, Any]]) -> str:
    sigs = "\n".join(json.dumps(_fn(t)) for t in tools)
    return (
        "You can call functions. Their signatures:\n<tools>\n" + sigs + "\n</tools>\n"
        f'To call one, answer with {OPEN}{{"name": <function name>, "arguments": <arguments object>}}{CLOSE}.'
    )
