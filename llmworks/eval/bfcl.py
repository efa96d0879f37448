"""The Berkeley Function Calling Leaderboard (BFCL v4), its single-turn categories, offline.

- Data: the files inside the installed `bfcl-eval` wheel (`bfcl_eval/data/BFCL_v4_<category>.json` and
  `possible_answer/`), read as files. `bfcl-eval` pins numpy 1.26 and a dozen cloud SDKs and its model
  registry imports all of them, so it is installed with `--no-deps` and none of it is imported but the checker.
- Tools: each entry's functions become OpenAI `tools` the way BFCL's own OpenAI function-calling handler sends
  them (`convert_to_tool` with `GORILLA_TO_OPENAPI`: dots in names become underscores, Python types become
  JSON Schema types, the "Python 3 syntax" hint on each description).
- Verdicts: BFCL's own AST checker (`bfcl_eval.eval_checker.ast_eval.ast_checker`), imported in this process
  with a stub in place of its model registry (see `bfcl_checker`). Irrelevance and relevance follow BFCL's
  relevance runner: right when the reply makes no call (irrelevance) or at least one (relevance).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
import types
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from llmworks.errors import UserError

__all__ = [
    "CATEGORIES",
    "Verdict",
    "bfcl_checker",
    "data_dir",
    "decode",
    "load_category",
    "to_tools",
    "verdict",
]

PIN = "2026.3.23"
INSTALL = f"pip install --no-deps bfcl-eval=={PIN}"
VERSION = "BFCL_v4"
CATEGORIES = {
    # our name: BFCL's category (its file name)
    "simple": "simple_python",
    "multiple": "multiple",
    "parallel": "parallel",
    "parallel_multiple": "parallel_multiple",
    "irrelevance": "irrelevance",
    "live_simple": "live_simple",
    "live_multiple": "live_multiple",
    "live_parallel": "live_parallel",
    "live_parallel_multiple": "live_parallel_multiple",
    "live_irrelevance": "live_irrelevance",
    "live_relevance": "live_relevance",
}
NON_LIVE = ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance")
LIVE = tuple(c for c in CATEGORIES if c.startswith("live_"))
NETWORK = ("web_search", "web_search_base", "web_search_no_snippet")
"""Categories whose tools search the web: they need the network, which llmworks never uses."""
NOT_HERE = {
    "multi_turn": "multi-turn (BFCL's stateful API simulators)",
    "memory": "agentic memory",
    "format_sensitivity": "prompt-format variations (not a scoring category)",
    "simple_java": "Java",
    "simple_javascript": "JavaScript",
}
GORILLA_TO_OPENAPI = {
    "integer": "integer",
    "number": "number",
    "float": "number",
    "string": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "dict": "object",
    "object": "object",
    "tuple": "array",
    "any": "string",
}
"""BFCL's `constants/type_mappings.GORILLA_TO_OPENAPI`, the part Python functions use."""
PYTHON_HINT = " Note that the provided function is in Python 3 syntax."
CALL_ATTEMPT = re.compile(r'<tool_call>|\A\s*\{\s*"name"\s*:')
"""Text that began a call the server could not parse: a `<tool_call>` tag, or a bare JSON call (what a
grammar-constrained call cut short by max_tokens leaves)."""

Verdict = dict[str, Any]
"""{"valid": bool, "error": [...], "error_type": str} as BFCL's checker returns it."""


# -- data ------------------------------------------------------------------------------------------


def data_dir(path: str | Path | None = None) -> Path:
    """The BFCL data folder: `path` (a folder laid out like `bfcl_eval/data`), else the installed package's."""
    if path is not None:
        p = Path(path)
        if not (p / f"{VERSION}_simple_python.json").is_file():
            raise UserError(
                f"{p} is not a BFCL data folder (no {VERSION}_simple_python.json).",
                "Point bfcl:CATEGORY=PATH at a folder laid out like bfcl_eval/data, or leave PATH out.",
            )
        return p
    spec = importlib.util.find_spec("bfcl_eval")  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise UserError(
            "the BFCL tasks need the bfcl-eval package (its data and checker), which is not installed.",
            f"Install it without its dependencies (they are cloud SDKs llmworks does not use): {INSTALL} "
            "(make install does).",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def check_category(name: str) -> str:
    """BFCL's name of one of our categories; UserError for one this task cannot run."""
    if name in CATEGORIES:
        return CATEGORIES[name]
    for prefix, what in NOT_HERE.items():
        if name.startswith(prefix):
            raise UserError(
                f"BFCL category '{name}' is {what}; llmworks runs the single-turn Python ones.",
                f"Choose from: {', '.join(CATEGORIES)}.",
            )
    raise UserError(f"unknown BFCL category '{name}'.", f"Choose from: {', '.join(CATEGORIES)}.")


def load_category(name: str, folder: Path) -> list[dict[str, Any]]:
    """Entries of a category: {"id", "question" (the messages), "function", "ground_truth" (None for the
    relevance categories, which have no answers)}."""
    bfcl = check_category(name)
    questions = _read_lines(folder / f"{VERSION}_{bfcl}.json")
    answers = {}
    answer_file = folder / "possible_answer" / f"{VERSION}_{bfcl}.json"
    if "relevance" not in bfcl:
        answers = {a["id"]: a["ground_truth"] for a in _read_lines(answer_file)}
    out = []
    for q in questions:
        if "relevance" not in bfcl and q["id"] not in answers:
            raise UserError(f"{answer_file}: no answer for {q['id']}.", "Reinstall bfcl-eval.")
        turns = q.get("question") or [[]]
        out.append(
            {
                "id": q["id"],
                "question": [{"role": m["role"], "content": m["content"]} for m in turns[0]],
                "function": q["function"],
                "ground_truth": answers.get(q["id"]),
            }
        )
    return out


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise UserError(f"BFCL data file {path} is missing.", f"Reinstall it: {INSTALL}.")
    try:
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not JSON lines ({e.msg}).", f"Reinstall it: {INSTALL}.") from None


def to_tools(functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BFCL functions as OpenAI `tools`, as BFCL's OpenAI function-calling handler sends them (its
    `_func_doc_language_specific_pre_processing` for Python, then `convert_to_tool` with GORILLA_TO_OPENAPI)."""
    tools = []
    for fn in copy.deepcopy(functions):
        fn["description"] = fn.get("description", "") + PYTHON_HINT
        fn["name"] = fn["name"].replace(".", "_")  # OpenAI names allow ^[a-zA-Z0-9_-]{1,64}$
        fn["parameters"]["type"] = "object"
        fn["parameters"]["properties"] = _openai_types(fn["parameters"].get("properties", {}))
        tools.append({"type": "function", "function": fn})
    return tools


def _openai_types(properties: dict[str, Any]) -> dict[str, Any]:
    for prop in properties.values():
        kind = prop.get("type")
        if kind is None:
            prop["type"] = "string"
        else:
            if kind == "float":
                prop["format"] = "float"
                prop["description"] = prop.get("description", "") + " This is a float type value."
            prop["type"] = GORILLA_TO_OPENAPI.get(kind, "string")
        if prop["type"] in ("array", "object"):
            if "properties" in prop:
                prop["properties"] = _openai_types(prop["properties"])
            elif "items" in prop:
                items = prop["items"]
                items["type"] = GORILLA_TO_OPENAPI.get(items.get("type"), "string")
                if items["type"] == "array" and "items" in items:
                    items["items"]["type"] = GORILLA_TO_OPENAPI.get(items["items"].get("type"), "string")
                elif items["type"] == "object" and "properties" in items:
                    items["properties"] = _openai_types(items["properties"])
    return properties


# -- the model's reply --------------------------------------------------------------------------------


def decode(answer: dict[str, Any] | None) -> tuple[list[dict[str, Any]] | None, bool]:
    """(calls as [{name: arguments}], malformed) from a reply. Calls are None when the reply made no call
    that decodes (prose, or an attempt that does not parse); malformed: it tried to call (tool calls, or text
    that begins one: CALL_ATTEMPT) and what it wrote is not a call (arguments that are not a JSON object)."""
    if not answer:
        return None, False
    calls = answer.get("tool_calls") or []
    if not calls:
        return None, bool(CALL_ATTEMPT.search(answer.get("content") or ""))
    out = []
    for c in calls:
        try:
            args = json.loads(c.get("arguments") or "{}")
        except (json.JSONDecodeError, TypeError):
            return None, True
        if not isinstance(args, dict) or not isinstance(c.get("name"), str):
            return None, True
        out.append({c["name"]: args})
    return out, False


def verdict(
    category: str,
    functions: list[dict[str, Any]],
    calls: list[dict[str, Any]] | None,
    ground_truth: list[dict[str, Any]] | None,
    checker: Callable[..., Verdict] | None = None,
) -> Verdict:
    """Right or wrong, as BFCL's evaluation runner decides for a function-calling model."""
    bfcl = CATEGORIES.get(category, category)
    if "relevance" in bfcl:  # irrelevance and live_relevance: only whether a call was made counts
        called = bool(calls) and any(len(c) for c in calls)
        ok = not called if "irrelevance" in bfcl else called
        if ok:
            return {"valid": True, "error": []}
        if "irrelevance" in bfcl:
            return {
                "valid": False,
                "error": ["Valid syntax. Successfully decode AST when it should not."],
                "error_type": "irrelevance_error:decoder_success",
            }
        return {
            "valid": False,
            "error": ["Invalid syntax. Failed to decode AST when it should have."],
            "error_type": "relevance_error:decoder_failed",
        }
    if calls is None:
        return {
            "valid": False,
            "error": ["Invalid syntax. Failed to decode AST (the reply made no function call)."],
            "error_type": "ast_decoder:decoder_failed",
        }
    check = checker or bfcl_checker()
    try:
        return check(functions, calls, ground_truth, bfcl)
    except Exception as e:  # a reply shaped in a way the checker does not expect: wrong, with the reason
        return {"valid": False, "error": [f"checker: {type(e).__name__}: {e}"], "error_type": "checker_error"}


# -- checkers ----------------------------------------------------------------------------------------

MODEL_KEY = "llmworks-fc"
"""The model name the checker is given (no underscore: BFCL maps `_` in model names to `/`)."""


class _UnderscoreNames:
    underscore_to_dot = True
    """`to_tools` sent dotted names with underscores, as BFCL does for OpenAI models: compare them that way."""


@cache
def bfcl_checker() -> Callable[..., Verdict]:
    """BFCL's own AST checker for Python.

    The adapter: `ast_checker.py` imports `bfcl_eval.constants.model_config`, whose model registry imports
    every provider SDK bfcl-eval depends on (anthropic, qwen_agent, soundfile, ...), none installed with
    `--no-deps`. The checker reads one thing from it, `MODEL_CONFIG_MAPPING[model].underscore_to_dot`, so a
    stub module holding just that entry stands in for it; the rest of the checker needs only the standard
    library. Checked against bfcl-eval 2026.3.23 (tests/eval/test_bfcl.py)."""
    data_dir()  # the one-line error when bfcl-eval is not installed
    name = "bfcl_eval.constants.model_config"
    if name not in sys.modules:
        stub = types.ModuleType(name, "llmworks: a stand-in for BFCL's model registry (see bfcl_checker).")
        stub.MODEL_CONFIG_MAPPING = {}  # type: ignore[attr-defined]
        sys.modules[name] = stub
    try:
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.eval_checker.ast_eval import ast_checker as mod
    except Exception as e:  # a version laid out differently from the pinned one
        raise UserError(
            f"BFCL's AST checker (bfcl-eval {_installed_version()}) does not import here: {type(e).__name__}: {e}.",
            f"Install the version llmworks is checked against: {INSTALL}.",
        ) from None
    mod.MODEL_CONFIG_MAPPING[MODEL_KEY] = _UnderscoreNames()

    def check(functions: Any, calls: Any, answers: Any, category: str) -> Verdict:
        return mod.ast_checker(functions, calls, answers, Language.PYTHON, category, MODEL_KEY)

    return check


def checker_name() -> str:
    return f"bfcl-eval {_installed_version()} ast_checker"


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bfcl-eval")
    except PackageNotFoundError:
        return "?"
