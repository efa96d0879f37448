"""Function calling: the Berkeley Function Calling Leaderboard's single-turn categories (`bfcl:simple`,
`bfcl:multiple`, ..., groups `bfcl` and `bfcl-live`), asked over native `tools` (tool_choice auto, as BFCL asks
function-calling models, unless the run sets `tool_choice=required`), and scored by BFCL's own AST checker (`llmworks.eval.bfcl`).

Metrics per sample: `acc` (BFCL's verdict) and `malformed` (the reply tried to call a function and wrote
something that is not a call: arguments that are not a JSON object, or a `<tool_call>` tag that does not parse).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llmworks.eval import bfcl
from llmworks.eval.tasks.base import Env, Request, Scored, Task

MAX_TOKENS = 256
"""Enough for four calls with arguments (parallel_multiple); a reply in prose is cut there."""


class BFCL(Task):
    kind = "function_calling"
    formulation = "native tools"

    def __init__(self, category: str, path: Path | None = None, max_tokens: int = MAX_TOKENS) -> None:
        self.category = category
        self.bfcl_name = bfcl.check_category(category)
        self.name = f"bfcl:{category}"
        self.reference = f"BFCL v4 {self.bfcl_name}"
        self.path = path
        self.max_tokens = max_tokens
        self.tool_choice = "auto"
        self.tool_grammar: bool | None = True

    def samples(self) -> list[dict[str, Any]]:
        return bfcl.load_category(self.category, bfcl.data_dir(self.path))

    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]:
        self.tool_choice = env.tool_choice  # one per run; info() reports it
        tools = bfcl.to_tools(sample["function"])
        choice = None if env.tool_choice == "auto" else env.tool_choice  # auto: not sent, as BFCL does
        self.tool_grammar = env.tool_grammar
        return [
            Request.chat(
                sample["question"],
                tools=tools,
                tool_choice=choice,
                tool_grammar=env.tool_grammar is not False,
                max_tokens=self.max_tokens,
            )
        ]

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        answer = outputs[0]
        if isinstance(answer, str):  # a client that answered with text only
            answer = {"content": answer, "tool_calls": []}
        calls, malformed = bfcl.decode(answer)
        v = bfcl.verdict(self.category, sample["function"], calls, sample["ground_truth"])
        extra = {} if v["valid"] else {"error": v.get("error"), "error_type": v.get("error_type")}
        return Scored(
            {"acc": float(v["valid"]), "malformed": float(malformed)},
            target=sample["ground_truth"] if sample["ground_truth"] is not None else self._expected(),
            extracted=calls,
            extra=extra,
        )

    def _expected(self) -> str:
        return "no function call" if "irrelevance" in self.bfcl_name else "at least one function call"

    def info(self) -> dict[str, Any]:
        return {
            "category": self.bfcl_name,
            "checker": bfcl.checker_name(),
            "tool_choice": self.tool_choice,
            "tool_grammar": "the server's" if self.tool_grammar is None else self.tool_grammar,
            "max_tokens": self.max_tokens,
            "tools": "BFCL's OpenAI function-calling conversion (convert_to_tool, GORILLA_TO_OPENAPI)",
        }


class Unavailable(Task):
    """A task that cannot run here (it needs the network): the runner names it, says why, and skips it."""

    kind = "unavailable"

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.skip_reason = reason

    def samples(self) -> list[dict[str, Any]]:
        return []

    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]:
        return []

    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        return Scored({})


def bfcl_task(category: str, path: Path | None) -> Task:
    """`bfcl:CATEGORY`: the task, a skipped one for a category that needs the network, or a UserError."""
    if category in bfcl.NETWORK:
        return Unavailable(
            f"bfcl:{category}",
            "needs the network (its tools search the web), and llmworks runs offline",
        )
    return BFCL(category, path)
