"""The BFCL function-calling task: our verdicts equal BFCL's own evaluation of the same replies, a run writes
per-category accuracy, malformed-call rate and per-sample records, and bad input is one clear line.

bfcl-eval must be installed (`make install` does: `pip install --no-deps bfcl-eval==<pin>`): without it this
module fails rather than skips, so a CI that lost the install step goes red.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from llmworks.client.base import ChatResult
from llmworks.errors import UserError
from llmworks.eval import EvalConfig, bfcl, evaluate
from llmworks.eval.runner import answer_record
from llmworks.eval.tasks import resolve_tasks
from llmworks.models.chat_policy import ToolCall
from llmworks.testing.fake_client import ScriptedClient

if importlib.util.find_spec("bfcl_eval") is None:
    pytest.fail(f"bfcl-eval is not installed (make install installs it: {bfcl.INSTALL})", pytrace=False)


def call(name: str, arguments: Any) -> ToolCall:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return ToolCall(f"call_{name}", name, text)


def reply(*calls: ToolCall, content: str | None = None) -> dict[str, Any]:
    """A model's reply as the runner caches it."""
    return answer_record(ChatResult(content, list(calls), "tool_calls" if calls else "stop"))


def bfcl_evaluation(category: str, entry: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """BFCL's own evaluation of one reply of an OpenAI function-calling model: its OpenAICompletionsHandler
    (`_parse_query_response_FC`, then `decode_ast` in FC mode) and eval_runner's relevance and AST entry checks,
    transcribed step for step (eval_runner imports tree_sitter and the model handlers, which are not installed),
    around BFCL's own `ast_checker` and format helpers."""
    from bfcl_eval.utils import is_empty_output, is_function_calling_format_output

    checker = bfcl.bfcl_checker()
    name = bfcl.CATEGORIES[category]
    if answer["tool_calls"]:
        result: Any = [{c["name"]: c["arguments"]} for c in answer["tool_calls"]]
    else:
        result = answer["content"]  # message.tool_calls is None: the handler keeps the text
    try:
        decoded = [{k: json.loads(v)} for f in result for k, v in f.items()]  # type: ignore[union-attr]
    except Exception:
        decoded = None
    if "relevance" in name:
        called = decoded is not None and not is_empty_output(decoded)
        return {"valid": not called if "irrelevance" in name else called}
    if decoded is None:
        return {"valid": False, "error_type": "ast_decoder:decoder_failed"}
    if not is_function_calling_format_output(decoded):
        return {"valid": False, "error_type": "ast_decoder:decoder_wrong_output_format"}
    v = checker(entry["function"], decoded, entry["ground_truth"], name)
    return {"valid": v["valid"], **({} if v["valid"] else {"error_type": v["error_type"]})}


def entry(category: str, index: int = 0) -> dict[str, Any]:
    return bfcl.load_category(category, bfcl.data_dir())[index]


def tri(**args: Any) -> ToolCall:
    return call("calculate_triangle_area", args)


# (case, category, entry index, reply, expected verdict): the replies are what a model could send back.
# None: built from the entry's answer (_from_answer). simple 0 is calculate_triangle_area(base=10, height=5).
# fmt: off
CASES = [
    ("right", "simple", 0, reply(tri(base=10, height=5)), True),
    ("right, optional given", "simple", 0, reply(tri(base=10, height=5, unit="units")), True),
    ("wrong type", "simple", 0, reply(tri(base="10", height=5)), False),
    ("wrong value", "simple", 0, reply(tri(base=12, height=5)), False),
    ("missing argument", "simple", 0, reply(tri(base=10)), False),
    ("unknown argument", "simple", 0, reply(tri(base=10, height=5, x=1)), False),
    ("extra call", "simple", 0, reply(tri(base=10, height=5), tri(base=1, height=5)), False),
    ("wrong function name", "simple", 0, reply(call("triangle_area", {"base": 10, "height": 5})), False),
    ("prose, no call", "simple", 0, reply(content="The area is 25 square units."), False),
    ("arguments not JSON", "simple", 0, reply(call("calculate_triangle_area", "{base: 10, height: 5")), False),
    ("call cut short", "simple", 0, reply(content='{"name": "calculate_triangle_area", "arguments": {"ba'), False),
    ("call in a tag that does not parse", "simple", 0, reply(content='<tool_call>{"name": "calcul'), False),
    ("dotted name sent with an underscore", "simple", 1, reply(call("math_factorial", {"number": 5})), True),
    ("dotted name as written", "simple", 1, reply(call("math.factorial", {"number": 5})), False),
    ("optional argument left out", "simple", 2, reply(call("math_hypot", {"x": 4, "y": 5})), True),
    ("multiple: the right one", "multiple", 0, None, True),
    ("multiple: another function", "multiple", 0, None, False),
    ("parallel: both, swapped", "parallel", 0, None, True),
    ("parallel: one of two", "parallel", 0, None, False),
    ("irrelevance: prose", "irrelevance", 0, reply(content="I cannot do that with these tools."), True),
    ("irrelevance: a call", "irrelevance", 0, None, False),
    ("live_simple: right", "live_simple", 0, None, True),
    ("live_relevance: a call", "live_relevance", 0, None, True),
    ("live_relevance: prose", "live_relevance", 0, reply(content="Sure."), False),
]
# fmt: on
MALFORMED = ("arguments not JSON", "call cut short", "call in a tag that does not parse")


def _from_answer(category: str, index: int, right: bool) -> dict[str, Any]:
    """A reply built from the entry's first possible answer (right), or a call of the wrong function or
    too few calls (wrong)."""
    e = entry(category, index)
    if e["ground_truth"] is None:  # relevance categories: call the first function with nothing
        return reply(call(e["function"][0]["name"].replace(".", "_"), {}))
    calls = []
    for expected in e["ground_truth"]:
        name, params = next(iter(expected.items()))
        args = {p: options[0] for p, options in params.items() if options[0] != ""}
        calls.append(call(name.replace(".", "_"), args))
    if right:
        return reply(*calls[::-1])
    if "parallel" in category:
        return reply(*calls[:1])
    other = next(f["name"] for f in e["function"] if f["name"] != next(iter(e["ground_truth"][0])))
    return reply(call(other.replace(".", "_"), {}))


@pytest.mark.parametrize(
    ("case", "category", "index", "answer", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_verdicts_equal_bfcl_evaluation(
    case: str, category: str, index: int, answer: dict[str, Any] | None, expected: bool
) -> None:
    answer = answer or _from_answer(category, index, expected)
    task = resolve_tasks([f"bfcl:{category}"])[0]
    sample = task.samples()[index]
    ours = task.score(sample, [answer], None)  # type: ignore[arg-type]
    theirs = bfcl_evaluation(category, sample, answer)
    assert ours.metrics["acc"] == float(theirs["valid"]) == float(expected), (case, ours.extra, theirs)
    if not theirs["valid"] and "error_type" in theirs:
        assert ours.extra["error_type"] == theirs["error_type"], case
    assert ours.metrics["malformed"] == float(case in MALFORMED)


def test_scored_by_bfcls_own_checker() -> None:
    task = resolve_tasks(["bfcl:simple"])[0]
    assert task.info()["checker"].startswith("bfcl-eval 2026.3.23 ast_checker")


def test_tools_sent_as_bfcl_sends_them() -> None:
    """Dots become underscores, BFCL types JSON Schema types, floats marked, the Python hint appended."""
    tools = bfcl.to_tools(entry("simple", 2)["function"])  # math.hypot(x: integer, y: integer, z: integer)
    fn = tools[0]["function"]
    assert tools[0]["type"] == "function" and fn["name"] == "math_hypot"
    assert fn["parameters"]["type"] == "object"
    assert {p["type"] for p in fn["parameters"]["properties"].values()} == {"integer"}
    assert fn["description"].endswith("Note that the provided function is in Python 3 syntax.")


def test_run_writes_per_category_metrics_samples_and_report(tmp_path: Path) -> None:
    """Two categories, two entries each (--limit is per category), and a category that needs the network."""
    client = ScriptedClient([call("calculate_triangle_area", {"base": 10, "height": 5})], name="scripted")
    out = tmp_path / "run"
    cfg = EvalConfig(
        tasks=["bfcl:simple", "bfcl:irrelevance", "bfcl:web_search"], limit=2, output_dir=str(out)
    )
    console = Console(record=True, width=200)
    evaluate(cfg, console, client)
    assert "skipped bfcl:web_search: needs the network" in console.export_text()
    tasks = json.loads((out / "results.json").read_text())["tasks"]
    assert set(tasks) == {"bfcl:simple", "bfcl:irrelevance"}
    assert tasks["bfcl:simple"]["n"] == 2 and tasks["bfcl:simple"]["metrics"] == {
        "acc": 0.5,
        "malformed": 0.0,
    }
    assert tasks["bfcl:irrelevance"]["metrics"]["acc"] == 0.0  # it called a function both times
    assert tasks["bfcl:simple"]["prompt"]["tools"][0]["function"]["name"] == "calculate_triangle_area"
    sent = client.calls[0][1]
    assert sent.tools and sent.tools[0]["function"]["name"] == "calculate_triangle_area"
    lines = [
        json.loads(x) for x in next((out / "samples").glob("bfcl*simple*.jsonl")).read_text().splitlines()
    ]
    assert [s["metrics"]["acc"] for s in lines] == [1.0, 0.0]
    assert lines[1]["error_type"] == "simple_function_checker:wrong_func_name"
    assert lines[0]["requests"][0]["output"]["tool_calls"][0]["name"] == "calculate_triangle_area"
    html = (out / "report.html").read_text()
    assert "bfcl:simple" in html and "malformed" in html


def test_parameters_reach_the_model_in_bfcls_order(tmp_path: Path) -> None:
    """get_directions lists start_location before end_location: sorted keys would put end first, and a model
    that fills parameters in the order it reads them then swaps the two (the first 100 of simple scored 0.50
    with sorted keys, 0.54 in BFCL's order, on the tuned embedded model)."""
    bfcl_order = list(entry("simple", 33)["function"][0]["parameters"]["properties"])
    assert bfcl_order == ["start_location", "end_location", "route_type"]
    client = ScriptedClient(
        [call("get_directions", {"start_location": "Sydney", "end_location": "Melbourne"})]
    )
    evaluate(
        EvalConfig(tasks=["bfcl:simple"], limit=34, output_dir=str(tmp_path)), Console(quiet=True), client
    )
    sent = client.calls[33][1].tools
    assert sent and list(sent[0]["function"]["parameters"]["properties"]) == bfcl_order


def test_tool_choice_required_is_sent(tmp_path: Path) -> None:
    """tool_choice=required (a grammar-constrained call on llmworks) reaches the client and the results."""
    client = ScriptedClient([call("calculate_triangle_area", {"base": 10, "height": 5})])
    cfg = EvalConfig(tasks=["bfcl:simple"], limit=1, tool_choice="required", output_dir=str(tmp_path))
    evaluate(cfg, Console(quiet=True), client)
    assert client.calls[0][1].tool_choice == "required"
    assert (
        json.loads((tmp_path / "results.json").read_text())["tasks"]["bfcl:simple"]["settings"]["tool_choice"]
        == "required"
    )


def test_bad_input_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="unknown BFCL category 'simplest'"):
        resolve_tasks(["bfcl:simplest"])
    with pytest.raises(UserError, match="multi-turn"):
        resolve_tasks(["bfcl:multi_turn_base"])
    assert resolve_tasks(["bfcl:web_search"])[0].skip_reason.startswith("needs the network")
    monkeypatch.setattr(bfcl.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError) as e:
        resolve_tasks(["bfcl:simple"])[0].samples()
    assert "bfcl-eval" in str(e.value) and "pip install --no-deps bfcl-eval==2026.3.23" in str(e.value)
