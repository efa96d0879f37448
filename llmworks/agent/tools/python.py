"""`python`: a sandboxed interpreter (llmworks.sandbox.PythonSandbox) whose variables last for one run.

The code runs in a separate `python -I` process: no inherited environment, an empty network namespace,
rlimits, no new processes, the run's scratch directory as its only writable place (Landlock). A timeout,
a crash, a memory or output limit is reported to the model, and the run goes on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from llmworks.agent.tools.base import Tool, ToolResult
from llmworks.sandbox import Limits, PythonSandbox

__all__ = ["PythonTool", "clean_code"]


class PythonTool(Tool):
    name = "python"
    description = (
        "Run Python code in a sandbox and see what it prints; the value of the last line is shown too. "
        "Variables persist between calls. numpy and matplotlib are available; no network; save files in "
        "the current directory."
    )
    parameters = {  # noqa: RUF012
        "type": "object",
        "properties": {"code": {"type": "string", "description": "The Python code to run."}},
        "required": ["code"],
    }

    def __init__(self, scratch: Path | None = None, limits: Limits | None = None) -> None:
        self._scratch = scratch
        self._limits = limits
        self._box: PythonSandbox | None = None

    def __call__(self, code: str) -> ToolResult:  # type: ignore[override]
        if self._box is None:
            self._box = PythonSandbox(self._scratch, self._limits)
        r = self._box.run(clean_code(code))
        return ToolResult(r.text(), files=list(r.files), error=not r.ok)

    def close(self) -> None:
        if self._box is not None:
            self._box.close()
            self._box = None

    def describe(self) -> dict[str, Any]:
        return {"confinement": self._box.confinement if self._box else None}


def clean_code(code: str) -> str:
    """The code without what small models wrap it in: a Markdown fence, or the `}` of the JSON call they
    meant to close (a trailing brace that opens nowhere), or parentheses left open on a one-line call."""
    m = re.fullmatch(r"\s*```(?:python|py)?\s*\n(.*?)\n?```\s*", code, re.S)
    code = m.group(1) if m else code
    while code.rstrip().endswith("}") and code.count("}") > code.count("{"):
        code = code.rstrip()[:-1]
    if "\n" not in code.strip() and code.count("(") > code.count(")"):  # print(sum(x) <- one line left open
        code = code.rstrip() + ")" * (code.count("(") - code.count(")"))
    return code
