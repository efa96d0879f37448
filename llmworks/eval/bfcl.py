"""The Berkeley Function Calling Leaderboard (BFCL v4), its single-turn categories, offline.

- Data: the files inside the installed `bfcl-eval` wheel (`bfcl_eval/data/BFCL_v4_<category>.json` and
  `possible_answer/`), read as files. `bfcl-eval` pins numpy 1.26 and a dozen cloud SDKs and its model
  registry imports all of them, so it is installed with `--no-deps` and none of it is imported but the checker.
- Tools: each entry's functions become OpenAI `tools` the way BFCL's own OpenAI function-calling handler sends
  them (`convert_to_tool` with `GORILLA_TO_OPENAPI`: dots in names become underscores, Python types become
  JSON Schema types, the "Python 3 syntax" hint on each description).
- Verdicts: BFCL's own AST checker (`bfcl_eval.eval_checker.ast_eval.ast_checker`), importable once a stub
  stands in for its model registry (it only reads `underscore_to_dot` there); where it cannot be imported,
  `ast_check` below, a re-implementation of it for Python (tests/eval/test_bfcl.py checks that the two agree).
  Irrelevance and relevance follow BFCL's relevance runner: right when the reply makes no call (irrelevance)
  or at least one (relevance).
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
    "ast_check",
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
CALL_TAG = "<tool_call>"

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
    that decodes (prose, or an attempt that does not parse); malformed: it tried to call (tool calls, or a
    `<tool_call>` tag in its text) and what it wrote is not a call (arguments that are not a JSON object)."""
    if not answer:
        return None, False
    calls = answer.get("tool_calls") or []
    if not calls:
        return None, CALL_TAG in (answer.get("content") or "")
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
    check = checker or default_checker()[1]
    try:
        return check(functions, calls, ground_truth, bfcl)
    except Exception as e:  # a reply shaped in a way the checker does not expect: wrong, with the reason
        return {"valid": False, "error": [f"checker: {type(e).__name__}: {e}"], "error_type": "checker_error"}


# -- checkers ----------------------------------------------------------------------------------------

MODEL_KEY = "llmworks-fc"
"""The model name the checker is given; calls carry the underscored names `to_tools` sent."""


class _UnderscoreNames:
    underscore_to_dot = True
    """The names were sent with dots as underscores (as for OpenAI models): compare them that way."""


@cache
def bfcl_checker() -> Callable[..., Verdict] | None:
    """BFCL's own AST checker for Python, or None when it cannot be imported."""
    name = "bfcl_eval.constants.model_config"
    if name not in sys.modules and importlib.util.find_spec("bfcl_eval") is not None:
        stub = types.ModuleType(name)
        stub.MODEL_CONFIG_MAPPING = {}  # type: ignore[attr-defined]
        stub.__doc__ = "llmworks: a stand-in for BFCL's model registry (which imports every cloud SDK)."
        sys.modules[name] = stub
    try:
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.eval_checker.ast_eval import ast_checker as mod
    except Exception:  # not installed, or a version laid out differently: our re-implementation scores
        return None
    try:
        mod.MODEL_CONFIG_MAPPING[MODEL_KEY] = _UnderscoreNames()
    except TypeError:
        return None

    def check(functions: Any, calls: Any, answers: Any, category: str) -> Verdict:
        return mod.ast_checker(functions, calls, answers, Language.PYTHON, category, MODEL_KEY)

    return check


def default_checker() -> tuple[str, Callable[..., Verdict]]:
    """(name, checker): BFCL's own where it imports, else ours."""
    check = bfcl_checker()
    if check is not None:
        return f"bfcl-eval {_installed_version()} ast_checker", check
    return "llmworks re-implementation of BFCL's ast_checker (bfcl_eval's could not be imported)", ast_check


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bfcl-eval")
    except PackageNotFoundError:
        return "?"


# Our re-implementation of bfcl_eval/eval_checker/ast_eval/ast_checker.py for Python, rule for rule (the same
# checks in the same order, the same error types), for when the package's own cannot be imported.

_PY = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
_NESTED = ("array", "tuple")


def ast_check(
    functions: Any, calls: list[dict[str, Any]], answers: list[dict[str, Any]], category: str
) -> Verdict:
    if "parallel" in category:
        return _parallel(functions, calls, answers)
    if "multiple" in category:
        if len(calls) != len(answers):
            return _bad("Wrong number of functions.", "multiple_function_checker:wrong_count")
        return _simple(_find(functions, next(iter(answers[0]))), calls[0], answers[0])
    if len(calls) != 1:
        return _bad("Wrong number of functions.", "simple_function_checker:wrong_count")
    return _simple(functions[0], calls[0], answers[0])


def _bad(error: str, kind: str) -> Verdict:
    return {"valid": False, "error": [error], "error_type": kind}


def _find(functions: Any, name: str) -> Any:
    if isinstance(functions, list):
        return next((f for f in functions if f["name"] == name), None)
    return functions


def _parallel(functions: Any, calls: list[dict[str, Any]], answers: list[dict[str, Any]]) -> Verdict:
    if len(calls) != len(answers):
        return _bad("Wrong number of functions.", "parallel_function_checker_no_order:wrong_count")
    matched: list[int] = []
    for i, answer in enumerate(answers):
        desc = _find(functions, next(iter(answer)))
        result: Verdict = {"valid": False}
        for j, call in enumerate(calls):
            if j in matched:
                continue
            result = _simple(desc, call, answer)
            if result["valid"]:
                matched.append(j)
                break
        if not result["valid"]:
            return _bad(
                f"Could not find a matching function among index "
                f"{[j for j in range(len(calls)) if j not in matched]} of model output for index {i} of "
                "possible answers.",
                "parallel_function_checker_no_order:cannot_find_match",
            )
    return {"valid": True, "error": []}


def _simple(desc: dict[str, Any], call: dict[str, Any], answer: dict[str, Any]) -> Verdict:
    expected = next(iter(answer.values()))
    name = desc["name"].replace(".", "_")
    props = desc["parameters"]["properties"]
    if name not in call:
        return _bad(
            f"Function name {name!r} not found in model output.", "simple_function_checker:wrong_func_name"
        )
    args = call[name]
    for p in desc["parameters"]["required"]:
        if p not in args:
            return _bad(f"Missing required parameter: {p!r}.", "simple_function_checker:missing_required")
    for p, value in args.items():
        if p not in props or p not in expected:
            return _bad(f"Unexpected parameter: {p!r}.", "simple_function_checker:unexpected_param")
        kind = props[p]["type"]
        want = _PY[kind]
        nested = _PY[props[p]["items"]["type"]] if kind in _NESTED else None
        if kind == "float" and type(value) is int:
            value = float(value)
        typed = _type_check(p, value, expected[p], kind, want, nested)
        if not typed["valid"]:
            return typed
        if not typed["is_variable"]:
            if want is dict:
                result = _dict_check(p, value, expected[p])
            elif want is list and nested is dict:
                result = _list_dict_check(value, expected[p])
            elif want is str:
                result = _string_check(p, value, expected[p])
            elif want is list:
                result = _list_check(p, value, expected[p])
            else:
                result = None
            if result is not None:
                if not result["valid"]:
                    return result
                continue
        if value not in expected[p]:
            return _bad(
                f"Invalid value for parameter {p!r}: {value!r}. Expected one of {expected[p]}.",
                "value_error:others",
            )
    for p in expected:
        if p not in args and "" not in expected[p]:
            return _bad(
                f"Optional parameter {p!r} not provided and not marked as optional.",
                "simple_function_checker:missing_optional",
            )
    return {"valid": True, "error": []}


def _answer_type(options: list[Any]) -> type | None:
    return next((type(o) for o in options if o != ""), None)


def _type_check(
    p: str, value: Any, options: list[Any], kind: str, want: type, nested: type | None
) -> Verdict:
    result: Verdict = {"valid": True, "error": [], "is_variable": False, "error_type": "type_error:simple"}
    answer_type = _answer_type(options)
    is_variable = answer_type is not None and answer_type != want
    if type(value) is want:
        if nested is None:
            result["is_variable"] = is_variable
            return result
        for option in options:
            ok = True
            if type(option) is list:
                for item in value:
                    if not _type_check(p, item, option, str(nested), nested, None)["valid"]:
                        ok = False
                        break
            if ok:
                return {"valid": True, "error": [], "is_variable": is_variable}
        result["valid"] = False
        result["error"] = [
            f"Nested type checking failed for parameter {p!r}. Expected outer type {kind} with inner type "
            f"{nested}. Parameter value: {value!r}."
        ]
        result["error_type"] = "type_error:nested"
    if answer_type is not None and type(value) is answer_type:
        result["is_variable"] = True
        return result
    result["valid"] = False
    result["error"].append(
        f"Incorrect type for parameter {p!r}. Expected type {kind}, got {type(value).__name__}. "
        f"Parameter value: {value!r}."
    )
    result["error_type"] = "type_error:simple"
    return result


def _standard(text: str) -> str:
    return re.sub(r"[ \,\.\/\-\_\*\^]", "", text).lower().replace("'", '"')


def _string_check(p: str, value: str, options: list[Any]) -> Verdict:
    if _standard(value) not in [_standard(o) for o in options if type(o) is str]:
        return _bad(
            f"Invalid value for parameter {p!r}: {value!r}. Expected one of {options}. Case insensitive.",
            "value_error:string",
        )
    return {"valid": True, "error": []}


def _list_check(p: str, value: list[Any], options: list[Any]) -> Verdict:
    got = [_standard(v) if type(v) is str else v for v in value]
    allowed = [[_standard(x) if type(x) is str else x for x in o] for o in options]
    if got not in allowed:
        return _bad(
            f"Invalid value for parameter {p!r}: {value!r}. Expected one of {options}.",
            "value_error:list/tuple",
        )
    return {"valid": True, "error": []}


def _dict_check(p: str, value: dict[str, Any], options: list[Any]) -> Verdict:
    result: Verdict = {"valid": False, "error": [], "error_type": "dict_checker:unclear"}
    for option in options:
        if option == "":
            continue
        result = {"valid": False, "error": [], "error_type": "dict_checker:unclear"}
        ok = True
        for key, v in value.items():
            if key not in option:
                result = _bad(f"Unexpected dict key parameter: '{key}'.", "value_error:dict_key")
                ok = False
                break
            std = _standard(v) if type(v) is str else v
            allowed = [_standard(o) if type(o) is str else o for o in option[key]]
            if std not in allowed:
                result = _bad(
                    f"Invalid value for parameter {key!r}: {v!r}. Expected one of {allowed}.",
                    "value_error:dict_value",
                )
                ok = False
                break
        for key, v in option.items():
            if key not in value and "" not in v:
                result = _bad(f"Missing dict key parameter: '{key}'.", "value_error:dict_key")
                ok = False
                break
        if ok:
            return {"valid": True, "error": []}
    return result


def _list_dict_check(value: list[Any], options: list[Any]) -> Verdict:
    result: Verdict = {"valid": False, "error": [], "error_type": "list_dict_checker:unclear"}
    for option in options:
        if len(value) != len(option):
            result = _bad("Wrong number of dictionaries in the list.", "value_error:list_dict_count")
            continue
        ok = True
        for i, item in enumerate(value):
            result = _dict_check("", item, [option[i]])
            if not result["valid"]:
                ok = False
                break
        if ok:
            return {"valid": True, "error": []}
    return result
