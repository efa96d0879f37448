"""The built-in tools as `data synth tool-calls` takes them: those that are offline and safe to run while
making data (python in the sandbox, calculator, chart, speak), writing their files to a scratch directory."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from llmworks.agent.tools import BUILTIN, CLASSES, ToolContext, run_tool
from llmworks.agent.tools.base import Tool
from llmworks.data.builtin import DEMO_TOOLS
from llmworks.data.synth.tool_calls import ToolSpec
from llmworks.errors import UserError

__all__ = ["SYNTH_TOOLS", "builtin_specs", "demo_specs"]

SYNTH_TOOLS = ("python", "calculator", "chart", "speak")


@contextmanager
def builtin_specs(scratch: Path) -> Iterator[list[ToolSpec]]:
    """Specs with runners for the synth tools; one that cannot start here (speak without espeak-ng) keeps
    its schema and gets synthesized results."""
    context = ToolContext(files_dir=scratch)
    made: list[Tool] = []
    specs = []
    for name in SYNTH_TOOLS:
        cls = CLASSES[name]
        try:
            tool = BUILTIN[name](context)
        except UserError:
            specs.append(ToolSpec(name, cls.description, cls.parameters, None, builtin=True))
            continue
        made.append(tool)
        specs.append(ToolSpec(name, tool.description, tool.parameters, _runner(tool), builtin=True))
    try:
        yield specs
    finally:
        for tool in made:
            tool.close()


@contextmanager
def demo_specs() -> Iterator[list[ToolSpec]]:
    """The demo's tools (DEMO_TOOLS, in that order) with brief schemas, writing their files to a temporary
    directory: the demo trains on them and offers the same schemas when it asks the tuned model."""
    with (
        tempfile.TemporaryDirectory(prefix="llmworks-toolsynth-") as scratch,
        builtin_specs(Path(scratch)) as specs,
    ):
        yield [s.brief() for name in DEMO_TOOLS for s in specs if s.name == name]


def _runner(tool: Tool) -> Any:
    def run(arguments: dict[str, Any]) -> tuple[str, bool]:
        r = run_tool(tool, arguments)
        return r.text, not r.error

    return run
