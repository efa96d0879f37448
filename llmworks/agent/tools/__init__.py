"""The built-in tools, all offline, and how a config's tool list becomes tool objects.

`BUILTIN` maps each name to its class; `build_tools(names, context)` makes fresh instances for one agent
(a python tool's interpreter, a memory store, the directories a tool may read come from the context).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmworks.agent.knowledge import KnowledgeBase
from llmworks.agent.tools.base import FunctionTool, Tool, ToolError, ToolResult, check_schema, run_tool, tool
from llmworks.agent.tools.calculator import Calculator
from llmworks.agent.tools.defined import DefinedTool
from llmworks.agent.tools.files import ReadFile
from llmworks.agent.tools.kb import KBSearch
from llmworks.agent.tools.media import Chart, Speak
from llmworks.agent.tools.memory import MemoryStore, Recall, Remember
from llmworks.agent.tools.python import PythonTool
from llmworks.agent.tools.web import HttpGet
from llmworks.errors import UserError

__all__ = [
    "BUILTIN",
    "FunctionTool",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "build_tools",
    "check_schema",
    "run_tool",
    "tool",
]


@dataclass
class ToolContext:
    """What built-in tools are made from, for one agent."""

    files_dir: Path
    """Where tools write files (the python tool's scratch directory, charts, speech)."""
    kbs: Sequence[KnowledgeBase] = ()
    read_dirs: Sequence[Path] = ()
    http_allow: Sequence[str] = ()
    memory_path: Path | None = None
    embed: Callable[[Sequence[str]], list[list[float]]] | None = None
    _memory: MemoryStore | None = field(default=None, repr=False)

    def memory(self) -> MemoryStore:
        if self._memory is None:
            if self.memory_path is None or self.embed is None:
                raise UserError("remember/recall need a memory file and an embedding model.", "")
            self._memory = MemoryStore(self.memory_path, self.embed)
        return self._memory


BUILTIN: dict[str, Callable[[ToolContext], Tool]] = {
    "python": lambda c: PythonTool(c.files_dir),
    "calculator": lambda c: Calculator(),
    "kb_search": lambda c: KBSearch(c.kbs),
    "read_file": lambda c: ReadFile(c.read_dirs),
    "chart": lambda c: Chart(c.files_dir),
    "speak": lambda c: Speak(c.files_dir),
    "remember": lambda c: Remember(c.memory()),
    "recall": lambda c: Recall(c.memory()),
    "http_get": lambda c: HttpGet(c.http_allow),
}

CLASSES: dict[str, type[Tool]] = {
    "python": PythonTool,
    "calculator": Calculator,
    "kb_search": KBSearch,
    "read_file": ReadFile,
    "chart": Chart,
    "speak": Speak,
    "remember": Remember,
    "recall": Recall,
    "http_get": HttpGet,
}
"""For listing: each built-in's class (its parameters; descriptions of some depend on the config)."""

GENERIC_DESCRIPTIONS = {
    "kb_search": "Search the agent's knowledge bases (kbs) for a query; cited chunks.",
    "read_file": "Read a text file, or list a directory, inside the configured read_dirs only.",
    "http_get": "Fetch a web page as text, from the allow-listed hosts (http_allow) only; off by default.",
}


def builtin_specs() -> list[dict[str, Any]]:
    """Every built-in tool as an OpenAI `tools` entry (for `llmworks agent tools`)."""
    out = []
    for name, cls in CLASSES.items():
        desc = GENERIC_DESCRIPTIONS.get(name) or cls.description
        out.append(
            {
                "type": "function",
                "function": {"name": name, "description": desc, "parameters": cls.parameters},
            }
        )
    return out


def build_tools(entries: Sequence[str | Mapping[str, Any]], context: ToolContext) -> list[Tool]:
    """Tool objects for a config's `tools` list: built-in names, or tools defined in the config."""
    tools: list[Tool] = []
    for entry in entries:
        if isinstance(entry, Mapping):
            tools.append(DefinedTool(entry, context.files_dir))
        elif entry in BUILTIN:
            tools.append(BUILTIN[entry](context))
        else:
            raise UserError(f"unknown tool '{entry}'.", f"Built-in tools: {', '.join(BUILTIN)}.")
    names = [t.name for t in tools]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"tool names must be unique: {', '.join(dup)} appear twice.", "")
    return tools
