"""The Tool seam: a name, a description, a JSON schema of parameters, and a call that returns text (and
optionally files). `@tool` builds one from a typed, documented function:

    @tool
    def word_count(text: str) -> int:
        \"\"\"Count the words of a text.

        Args:
            text: The text to count.
        \"\"\"
        return len(text.split())

`run_tool` is how loops call tools: a bad argument or an exception inside the tool becomes an error
result (the model reads it as its observation and can try again), never a crash.
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmworks.errors import UserError

__all__ = ["FunctionTool", "Tool", "ToolError", "ToolResult", "check_schema", "run_tool", "tool"]

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


class ToolError(Exception):
    """Raised by a tool for a problem the model caused (a bad path, a bad expression): its message is the
    observation, without a traceback."""


@dataclass
class ToolResult:
    text: str
    files: list[Path] = field(default_factory=list)
    """Files the call made (a PNG, a WAV): shown as links, listed in the trajectory."""
    error: bool = False


class Tool:
    """A tool. Subclass it and write `__call__(**arguments)`, or use `@tool` on a function."""

    name: str
    description: str
    parameters: dict[str, Any] = {"type": "object", "properties": {}}  # noqa: RUF012 - read-only default

    def __call__(self, **arguments: Any) -> ToolResult | str:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """The tool as an OpenAI `tools` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    def close(self) -> None:
        """Release what the tool holds (a sandboxed interpreter)."""

    def check(self) -> None:
        """UserError when the definition is not usable (a bad name, an invalid parameter schema)."""
        if not isinstance(getattr(self, "name", None), str) or not NAME.match(self.name):
            raise UserError(
                f"tool name {getattr(self, 'name', None)!r} is not valid.",
                "Use letters, digits, _ and - (at most 64 characters), starting with a letter or _.",
            )
        if not isinstance(getattr(self, "description", None), str) or not self.description.strip():
            raise UserError(f"tool {self.name} has no description.", "Describe what it does in one line.")
        check_schema(self.parameters, f"tool {self.name}")


def check_schema(schema: Any, what: str) -> None:
    """UserError unless `schema` is a valid JSON Schema of an object (the arguments of a call)."""
    import jsonschema

    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        raise UserError(
            f"{what}: parameters must be a JSON Schema with type: object.",
            "Write parameters as {type: object, properties: {...}, required: [...]}.",
        )
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as e:
        where = "/".join(str(p) for p in e.path) or "(top)"
        raise UserError(
            f"{what}: parameters are not valid JSON Schema at {where}: {e.message}.",
            "Fix the schema (https://json-schema.org).",
        ) from None


def run_tool(tool: Tool, arguments: str | Mapping[str, Any]) -> ToolResult:
    """Call `tool` with arguments from the model (a JSON text or an object); never raises for what the
    model or the tool did wrong: that comes back as an error result."""
    import jsonschema

    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError as e:
            return ToolResult(f"error: the arguments are not valid JSON ({e.msg}).", error=True)
    if not isinstance(arguments, Mapping):
        return ToolResult("error: the arguments must be a JSON object.", error=True)
    errors = sorted(
        jsonschema.validators.validator_for(tool.parameters)(tool.parameters).iter_errors(arguments),
        key=lambda e: list(e.path),
    )
    if errors:
        shown = "; ".join(_arg_error(e) for e in errors[:3])
        return ToolResult(
            f"error: bad arguments for {tool.name}: {shown}. Its parameters: "
            f"{json.dumps(tool.parameters, ensure_ascii=False)}",
            error=True,
        )
    try:
        out = tool(**arguments)
    except ToolError as e:
        return ToolResult(f"error: {e}", error=True)
    except UserError as e:
        return ToolResult(f"error: {e.problem} {e.fix}".strip(), error=True)
    except Exception as e:  # a bug or a failure inside the tool: the model hears of it, the run goes on
        return ToolResult(f"error: {tool.name} failed: {type(e).__name__}: {e}", error=True)
    if isinstance(out, ToolResult):
        return out
    return ToolResult(out if isinstance(out, str) else json.dumps(out, ensure_ascii=False, default=str))


def _arg_error(e: Any) -> str:
    where = ".".join(str(p) for p in e.path)
    return f"{where}: {e.message}" if where else e.message


# -- @tool --


class FunctionTool(Tool):
    """A tool made from a typed, documented function by `@tool`."""

    def __init__(
        self, fn: Callable[..., Any], name: str | None = None, description: str | None = None
    ) -> None:
        doc = inspect.getdoc(fn) or ""
        summary, arg_docs = _parse_docstring(doc)
        self.fn = fn
        self.name = name or fn.__name__
        self.description = description or summary
        self.parameters = _schema_of(fn, arg_docs)
        self.__doc__ = doc
        self.check()

    def __call__(self, **arguments: Any) -> ToolResult | str:
        return self.fn(**arguments)


def tool(
    fn: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None
) -> Any:
    """Make a tool from a function: its type hints give the parameters' JSON schema, its docstring the
    description (the first paragraph) and each parameter's (a Google-style `Args:` section)."""
    if fn is None:
        return lambda f: FunctionTool(f, name, description)
    return FunctionTool(fn, name, description)


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    parts = re.split(r"\n\s*(?:Args|Arguments|Parameters):\s*\n", doc, maxsplit=1)
    summary = " ".join(parts[0].split("\n\n")[0].split())
    args: dict[str, str] = {}
    if len(parts) > 1:
        current = None
        for line in parts[1].splitlines():
            if re.match(r"^\s*(Returns|Raises|Yields|Examples?):", line):
                break
            m = re.match(r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$", line)
            if m:
                current = m.group(1)
                args[current] = m.group(2).strip()
            elif current and line.strip():
                args[current] += " " + line.strip()
    return summary, args


def _schema_of(fn: Callable[..., Any], docs: dict[str, str]) -> dict[str, Any]:
    hints = typing.get_type_hints(fn)
    props: dict[str, Any] = {}
    required = []
    for p in inspect.signature(fn).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.name not in hints:
            raise UserError(
                f"@tool {fn.__name__}: parameter '{p.name}' has no type hint.",
                "Annotate every parameter (str, int, float, bool, list[...], dict, Literal[...]).",
            )
        prop = _json_type(hints[p.name], f"{fn.__name__}.{p.name}")
        if p.name in docs:
            prop["description"] = docs[p.name]
        if p.default is p.empty:
            required.append(p.name)
        elif p.default is not None:
            prop["default"] = p.default
        props[p.name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    return schema


def _json_type(hint: Any, where: str) -> dict[str, Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            return _json_type(rest[0], where)
        return {"anyOf": [_json_type(a, where) for a in rest]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, set, frozenset) or hint in (list, tuple):
        return {"type": "array", **({"items": _json_type(args[0], where)} if args else {})}
    if origin is dict or hint is dict:
        return {"type": "object"}
    simple = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if hint in simple:
        return {"type": simple[hint]}
    raise UserError(
        f"@tool: the type of {where} ({hint!r}) has no JSON schema here.",
        "Use str, int, float, bool, list[...], dict or Literal[...].",
    )
