"""Tools written in a config: a name, a description, a JSON schema of parameters, and a Python body that
runs in the sandbox (never in our process) with the call's arguments in `args`:

    tools:
      - name: word_count
        description: Count the words of a text.
        parameters: {type: object, properties: {text: {type: string}}, required: [text]}
        python: print(len(args["text"].split()))
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from llmworks.agent.tools.base import Tool, ToolResult, check_schema
from llmworks.errors import UserError
from llmworks.sandbox import Limits, PythonSandbox

__all__ = ["DefinedTool"]

KEYS = {"name", "description", "parameters", "python"}


class DefinedTool(Tool):
    def __init__(
        self, spec: Mapping[str, Any], scratch: Path | None = None, limits: Limits | None = None
    ) -> None:
        unknown = sorted(set(spec) - KEYS)
        missing = sorted(k for k in ("name", "description", "python") if not spec.get(k))
        if unknown or missing:
            problems = [f"unknown key {k!r}" for k in unknown] + [f"missing {k}" for k in missing]
            raise UserError(
                f"tool {spec.get('name', '?')!r} in the config: {'; '.join(problems)}.",
                "A config tool has name, description, parameters (JSON Schema) and python (its body).",
            )
        self.name = str(spec["name"])
        self.description = str(spec["description"])
        self.parameters = dict(spec.get("parameters") or {"type": "object", "properties": {}})
        self.body = str(spec["python"])
        self.check()
        check_schema(self.parameters, f"tool {self.name}")
        self._scratch = scratch
        self._limits = limits

    def __call__(self, **arguments: Any) -> ToolResult:
        # A fresh interpreter per call: a config tool is a function, not a session.
        with PythonSandbox(self._scratch, self._limits) as box:
            r = box.run(f"import json\nargs = json.loads({json.dumps(json.dumps(arguments))})\n{self.body}")
        return ToolResult(r.text(), files=list(r.files), error=not r.ok)
