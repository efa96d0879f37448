"""`data synth tool-calls`: the four kinds, calls valid against their schemas and really run, user tool files,
bad schemas, the manifest, determinism, and that `llmworks train` takes the output."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from data_testing import read_jsonl, run_cli

from llmworks.agent.tools.synth import builtin_specs
from llmworks.client import ChatChunk, Usage
from llmworks.data.synth.tool_calls import (
    KINDS,
    MAX_OFFERED,
    SynthReport,
    ToolSpec,
    near_misses,
    read_tool_file,
    synth_tool_calls,
)
from llmworks.errors import UserError
from llmworks.testing.fake_client import ScriptedClient

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}
SEND = {  # a bare function object, in YAML: also accepted
    "name": "send_message",
    "description": "Send a message to a person.",
    "parameters": {
        "type": "object",
        "properties": {"to": {"type": "string"}, "text": {"type": "string"}, "urgent": {"type": "boolean"}},
        "required": ["to", "text"],
    },
}


class CallWriter(ScriptedClient):
    """Replays `replies` to the requests for new calls; answers anything else with a greeting."""

    def chat_stream(self, messages: Any, **options: Any) -> Iterator[ChatChunk]:
        if messages[-1]["content"].startswith("Examples of requests"):
            return super().chat_stream(messages, **options)
        return iter([ChatChunk("Hello!", [], "stop", Usage(1, 1))])


@pytest.fixture
def user_tools(tmp_path: Path) -> Path:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([WEATHER, SEND]))
    return path


@pytest.fixture(scope="module")
def builtins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[ToolSpec]]:
    with builtin_specs(tmp_path_factory.mktemp("scratch")) as specs:
        yield specs


def synth(
    tools: list[ToolSpec], n: int, client: Any = None, **kw: Any
) -> tuple[list[dict[str, Any]], SynthReport]:
    report = SynthReport()
    client = client or ScriptedClient(["Hello! How can I help you today?"])
    return list(synth_tool_calls(tools, n, client, report, paraphrase=False, **kw)), report


def calls_of(rec: dict[str, Any]) -> list[dict[str, Any]]:
    return [c["function"] for m in rec["messages"] for c in m.get("tool_calls", [])]


def check_record(rec: dict[str, Any]) -> None:
    """Every call names an offered tool, validates against its schema, and is answered by its tool turn."""
    offered = {t["function"]["name"]: t["function"]["parameters"] for t in rec["tools"]}
    msgs = rec["messages"]
    for i, m in enumerate(msgs):
        for c in m.get("tool_calls", []):
            fn = c["function"]
            assert fn["name"] in offered
            jsonschema.validate(json.loads(fn["arguments"]), offered[fn["name"]])
            assert msgs[i + 1]["role"] == "tool" and msgs[i + 1]["tool_call_id"] == c["id"]
    assert msgs[0]["role"] == "user" and msgs[-1]["role"] == "assistant" and msgs[-1]["content"]


def test_templates_make_each_kind_with_real_results(builtins: list[ToolSpec], user_tools: Path) -> None:
    tools = builtins + read_tool_file(user_tools)
    records, report = synth(tools, 30, seed=1)
    assert len(records) == 30 and Counter(r["kind"] for r in records) == dict.fromkeys(KINDS, 6)
    for rec in records:
        check_record(rec)
    by_kind = {k: [r for r in records if r["kind"] == k] for k in KINDS}
    assert all(len(calls_of(r)) == 1 for r in by_kind["single"])
    assert all(len(calls_of(r)) == 2 for r in by_kind["sequence"])
    assert all(not calls_of(r) and r["tools"] for r in by_kind["no_tool"])  # tools offered, none called
    assert all(len(r["tools"]) <= MAX_OFFERED for r in records)
    for r in by_kind["unmatched"]:  # a request for a tool that is not offered: words, no call
        said = r["messages"][-1]["content"]
        assert not calls_of(r) and r["tools"] and said.startswith("I can't do that")
        assert all(t["function"]["name"] in said for t in r["tools"])  # the reason: what is on offer
    assert all(sum(m["role"] == "user" for m in r["messages"]) == 2 for r in by_kind["follow_up"])
    # the tools ran: python's result is the value of its code, speak and chart made files
    results = {}
    for rec in records:
        for m, nxt in zip(rec["messages"], rec["messages"][1:], strict=False):
            for c in m.get("tool_calls", []):
                results.setdefault(c["function"]["name"], []).append(
                    (json.loads(c["function"]["arguments"]), nxt["content"])
                )
    args, out = next(
        (a, o) for a, o in results["python"] if a["code"].startswith("print(") and "\n" not in a["code"]
    )
    assert out.strip() == str(eval(args["code"][6:-1]))  # our own template arithmetic
    assert all(o.endswith(".wav.") for _, o in results.get("speak", []))
    assert all("Saved chart-" in o for _, o in results.get("chart", []))
    synthesized = [o for name in ("get_weather", "send_message") for _, o in results.get(name, [])]
    assert synthesized and all(json.loads(o)["status"] == "ok" for o in synthesized)  # not runnable
    assert report.results == {"python": "run", "calculator": "run", "chart": "run", "speak": "run",
                              "get_weather": "synthesized", "send_message": "synthesized"}  # fmt: skip
    assert report.calls_in_output == sum(len(calls_of(r)) for r in records)


def test_offer_all_offers_the_fixed_set_and_each_tool_gets_its_share(builtins: list[ToolSpec]) -> None:
    tools = [t for name in ("speak", "chart", "python") for t in builtins if t.name == name]
    records, _ = synth(tools, 12, seed=5, kinds=["single", "no_tool"], offer_all=True)
    assert all([t["function"]["name"] for t in r["tools"]] == ["speak", "chart", "python"] for r in records)
    singles = Counter(calls_of(r)[0]["name"] for r in records if r["kind"] == "single")
    assert singles == {"speak": 2, "chart": 2, "python": 2}
    some, _ = synth(builtins, 12, seed=5)  # by default a random few, so the model learns to choose
    assert len({tuple(t["function"]["name"] for t in r["tools"]) for r in some}) > 1


def test_offers_one_to_four_tools_and_near_misses_beside_a_request(builtins: list[ToolSpec]) -> None:
    from llmworks.data.builtin import TOOL_CATALOG

    catalog = read_tool_file(TOOL_CATALOG)
    records, report = synth(catalog, 60, seed=4, kinds=["single", "unmatched", "unmatched"])
    assert report.kinds == {"single": 20, "unmatched": 40}  # a kind named twice: twice the share
    sizes = Counter(len(r["tools"]) for r in records)
    assert set(sizes) == {1, 2, 3, 4}  # BFCL offers one tool to a simple request, more to a multiple one
    by_name = {t.name: t for t in catalog}
    # the tools most like the wanted one, none that shares a noun of its name (it might serve the request)
    alike = near_misses(by_name["calculate_triangle_area"], catalog)
    assert "calculate_circle_area" not in alike and "calculate_triangle_area" not in alike
    assert alike.index("calculate_hypotenuse") < alike.index("send_email")
    assert near_misses(by_name["get_current_weather"], catalog)[0] != "get_weather_forecast"
    # half the time the lookalikes are offered beside the needed tool too: they are no cue to decline
    beside: Counter[bool] = Counter()
    for r in records:
        calls, names = calls_of(r), [t["function"]["name"] for t in r["tools"]]
        if r["kind"] == "single" and len(names) > 1:
            wanted = calls[0]["name"]
            alike = near_misses(by_name[wanted], [t for t in catalog if t.name != wanted])
            beside[set(names) - {wanted} == set(alike[: len(names) - 1])] += 1
    assert beside[True] >= 3 and beside[False] >= 3, beside  # at random: 1 of 13


def test_brief_schemas_keep_every_parameter_and_drop_the_words(builtins: list[ToolSpec]) -> None:
    for full in builtins:
        brief = full.brief()
        assert set(brief.parameters["properties"]) == set(full.parameters["properties"])
        assert brief.parameters.get("required") == full.parameters.get("required")
        assert not any("description" in p for p in brief.parameters["properties"].values())
        assert full.description.startswith(brief.description[:-1]) and brief.run is full.run
    chart = next(t for t in builtins if t.name == "chart")
    assert chart.brief().description == "Draw a chart as a PNG."
    assert "description" in chart.parameters["properties"]["kind"]  # the tool's own schema is untouched
    records, _ = synth([t.brief() for t in builtins], 12, seed=2, kinds=["single"])
    for rec in records:  # the templates' calls are valid under the brief schemas, which the records offer
        check_record(rec)
        assert all("description" not in json.dumps(t["function"]["parameters"]) for t in rec["tools"])


def test_same_seed_same_data_and_duplicates_are_removed(builtins: list[ToolSpec], tmp_path: Path) -> None:
    runs = []
    for scratch in (tmp_path / "a", tmp_path / "b"):  # fresh tools, as each CLI run has
        with builtin_specs(scratch) as specs:
            runs.append(json.dumps(synth(specs, 8, seed=3)[0]))
    assert runs[0] == runs[1]
    speak = [t for t in builtins if t.name == "speak"]
    # one tool, few templates: asking for more than exist ends with duplicates removed, none written
    many, report = synth(speak, 400, seed=0, max_attempts=600)
    assert report.duplicates > 0
    keys = [json.dumps(r["messages"]) + str(sorted(t["function"]["name"] for t in r["tools"])) for r in many]
    assert len(keys) == len(set(keys))


def test_model_written_calls_are_validated_and_rejected_ones_replaced(builtins: list[ToolSpec]) -> None:
    speak = [t for t in builtins if t.name == "speak"]
    replies = [
        'Request: Please say this aloud: Lunch is at noon.\nCall: {"text": "Lunch is at noon."}',  # accepted
        'Request: Read aloud: Good night.\nCall: {"txt": "Good night."}',  # schema: required text missing
        'Request: Read this: Hi.\nCall: {"text": "Something else entirely."}',  # value not in the request
        "Request: Say something nice.",  # unparseable
        'Request: Speak: Go.\nCall: {"text": "Go.", "voice": 7}',  # schema: wrong type
    ]
    client = CallWriter(replies)
    report = SynthReport()
    records = list(synth_tool_calls(speak, 20, client, report, paraphrase=True, seed=0, max_attempts=40))
    singles = [r for r in records if r["kind"] == "single"]
    assert report.model_calls_accepted >= 1
    rejected = report.model_calls_rejected
    assert rejected["schema: required"] >= 1 and rejected["value not in the request"] >= 1
    assert rejected["unparseable reply"] >= 1 and rejected["schema: type"] >= 1
    texts = [json.loads(calls_of(r)[0]["arguments"])["text"] for r in singles]
    assert "Lunch is at noon." in texts and "Something else entirely." not in texts
    assert len(singles) > report.model_calls_accepted  # rejected model calls were replaced by template ones
    for rec in records:
        check_record(rec)


def test_a_user_tools_file_in_openai_format(tmp_path: Path) -> None:
    yml = tmp_path / "tools.yaml"
    yml.write_text("tools:\n  - " + json.dumps(WEATHER) + "\n  - " + json.dumps(SEND) + "\n")
    tools = read_tool_file(yml)
    assert [t.name for t in tools] == ["get_weather", "send_message"] and all(t.run is None for t in tools)
    records, report = synth(tools, 15, seed=2)
    assert Counter(r["kind"] for r in records) == dict.fromkeys(KINDS, 3)
    for rec in records:
        check_record(rec)
    singles = [(r["messages"][0]["content"], calls_of(r)[0]) for r in records if r["kind"] == "single"]
    weather = [(q, json.loads(c["arguments"])) for q, c in singles if c["name"] == "get_weather"]
    assert weather and all(args["city"] in q for q, args in weather)  # the request states the city
    assert report.manifest()["calls"]["acceptance_rate"] == 1.0


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            [
                {
                    "type": "function",
                    "function": {
                        **WEATHER["function"],
                        "parameters": {"type": "object", "properties": {"city": {"type": "strng"}}},
                    },
                }
            ],
            "tool 1 (get_weather): parameters are not valid JSON Schema at properties/city/type",
        ),
        (
            [{"name": "x", "description": "d", "parameters": {"type": "array"}}],
            "parameters must be a JSON Schema with type: object",
        ),
        ([{"description": "no name"}], "tool 1 has no valid name"),
        ([WEATHER, WEATHER], "tool name 'get_weather' appears twice"),
        ("[{not json", "is not valid YAML/JSON"),
        ([], "must hold a non-empty list of tools"),
    ],
)
def test_a_bad_tools_file_is_one_clear_error(tmp_path: Path, content: Any, expected: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    out = tmp_path / "out.jsonl"
    r = run_cli("synth", "tool-calls", "--tools", path, "-o", out, "-n", "4")
    assert r.exit_code == 2 and expected in r.error and str(path) in r.error, r.error
    assert "Traceback" not in r.output + r.error and r.error.count("\n") == 0
    assert not out.exists()


def test_two_bad_tools_are_both_named_in_one_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    bad = {"name": "a", "description": "d", "parameters": {"type": "object", "required": "city"}}
    path.write_text(json.dumps([bad, {"name": "b", "parameters": {"type": "object"}}]))
    r = run_cli("synth", "tool-calls", "--tools", path, "-o", tmp_path / "o.jsonl")
    assert r.exit_code == 2 and "tool 1 (a)" in r.error and "tool 2 (b) has no description" in r.error


def test_cli_manifest_matches_the_file_and_a_failed_rerun_keeps_it(
    tmp_path: Path, user_tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import llmworks.client

    monkeypatch.setattr(
        llmworks.client, "make_client", lambda *a, **k: ScriptedClient(["Hi! Nice to meet you."])
    )
    out = tmp_path / "tc.jsonl"
    r = run_cli(
        "synth", "tool-calls", "--tools", f"builtin,{user_tools}", "-o", out, "-n", "12", "--no-paraphrase"
    )
    assert r.exit_code == 0, r.output
    assert (
        "wrote 12 examples" in r.output
        and "examples/s" in r.output
        and "synthesized from the call" in r.output
    )
    records = read_jsonl(out)
    manifest = json.loads(out.with_name("tc.jsonl.manifest.json").read_text())
    assert manifest["examples"] == len(records) == 12
    assert manifest["kinds"] == dict(Counter(r["kind"] for r in records))
    assert manifest["tool_calls_in_output"] == sum(len(calls_of(r)) for r in records)
    assert manifest["calls"]["accepted"] >= manifest["tool_calls_in_output"]
    assert (
        manifest["tool_results"]["get_weather"] == "synthesized"
        and manifest["tool_results"]["python"] == "run"
    )
    assert out.with_name("tc.jsonl.config.yaml").is_file()
    before = out.read_text()
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    assert run_cli("synth", "tool-calls", "--tools", bad, "-o", out).exit_code == 2
    r = run_cli("synth", "tool-calls", "--kinds", "single,lots", "-o", out)
    assert r.exit_code == 2 and "kinds: unknown lots" in r.error
    assert out.read_text() == before


def test_the_output_trains_two_steps_with_the_sft_recipe(
    tmp_path: Path, builtins: list[ToolSpec], user_tools: Path, tiny_hf_dir: Path
) -> None:
    from typer.testing import CliRunner

    from llmworks.data.io import write_jsonl
    from llmworks.train.cli import app

    records, _ = synth(builtins + read_tool_file(user_tools), 8, seed=4)
    data = write_jsonl(tmp_path / "tc.jsonl", records)
    recipe = Path(__file__).parents[2] / "configs" / "tool-agent-sft.yaml"
    out = tmp_path / "run"
    args = ["sft", str(recipe), f"data=[{tmp_path / 'tc.jsonl'}]", f"model={tiny_hf_dir}", "max_steps=2",
            f"output_dir={out}", "batch_size=2", "max_seq_len=1024", "check_after=false", "threads=1"]  # fmt: skip
    assert data == 8
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output[-2000:], result.exception)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["data"]["records"] == 8 and summary["data"]["truncated"] == 0


@pytest.mark.slow
def test_a_short_real_run_with_paraphrase_through_the_embedded_model(tmp_path: Path) -> None:
    out = tmp_path / "tc.jsonl"
    r = run_cli(
        "synth", "tool-calls", "-o", out, "-n", "2", "--max-attempts", "4", "--seed", "0", "--paraphrase"
    )
    assert r.exit_code == 0, r.output + r.error
    manifest = json.loads(out.with_name("tc.jsonl.manifest.json").read_text())
    model = manifest["model_calls"]
    assert model["accepted"] + model["rejected"] >= 1  # the model was asked to write calls
    for rec in read_jsonl(out):
        check_record(rec)


def test_request_templates_fill_slots_and_bad_ones_are_refused(tmp_path: Path) -> None:
    entry = {
        "type": "function",
        "function": {
            "name": "convert_currency",
            "description": "Convert an amount of money from one currency to another.",
            "parameters": {
                "type": "object",
                "properties": {
                    "amount": {"type": "number"},
                    "source": {"type": "string"},
                    "target": {"type": "string"},
                    "rounded": {"type": "boolean"},
                },
                "required": ["amount", "source", "target"],
            },
        },
        "requests": ["How much is {amount} {source} in {target}?", "Convert {amount} {source} to {target}."],
        "values": {"amount": [12.5, 100], "source": ["USD", "EUR"], "target": ["JPY", "CHF"]},
    }
    path = tmp_path / "tools.yaml"
    path.write_text(json.dumps([entry]))
    records, _ = synth(read_tool_file(path), 6, seed=2)
    singles = [r for r in records if r["kind"] == "single"]
    assert singles
    for r in singles:
        request, (call,) = r["messages"][0]["content"], calls_of(r)
        args = json.loads(call["arguments"])
        assert set(args) == {"amount", "source", "target"}  # the slots, not the unstated optional one
        assert all(str(v) in request for v in args.values())
        assert not request.startswith("Can you use")  # the tool's own words, not a generic template
    bad = {**entry, "requests": ["Convert {amount} {currency}."]}
    path.write_text(json.dumps([bad]))
    with pytest.raises(UserError, match=r"slot \{currency\} is not a parameter with values"):
        read_tool_file(path)


def test_shipped_catalog_loads_and_makes_valid_calls() -> None:
    from llmworks.data.builtin import TOOL_CATALOG

    specs = read_tool_file(TOOL_CATALOG)
    assert len(specs) >= 80 and all(s.requests for s in specs)
    records, report = synth(specs, 100, seed=0)
    assert len(records) == 100 and report.calls_accepted >= 40
    for rec in records:
        check_record(rec)
    # a catalog request states its values; the answer's call uses exactly those
    rejected = sum(report.calls_rejected.values())
    assert rejected <= 0.05 * (report.calls_accepted + rejected), report.calls_rejected


def test_an_unmatched_request_is_declined_without_its_tool_on_offer(user_tools: Path) -> None:
    # Two tools: a request for one offers only the other, and the answer names that one, not what the
    # missing tool would do (words a model would copy from a matching tool's description).
    tools = read_tool_file(user_tools)
    records, _ = synth(tools, 12, seed=3, kinds=["unmatched"])
    assert len(records) == 12
    for r in records:
        (offered,) = [t["function"]["name"] for t in r["tools"]]
        request, said = r["messages"][0]["content"], r["messages"][-1]["content"]
        serves = (
            "send_message" if "send" in request.lower() or "message" in request.lower() else "get_weather"
        )
        assert offered != serves and not calls_of(r)
        assert said == f"I can't do that with the tools I have here: {offered} is for something else."


def test_half_the_records_end_every_description_in_one_note(builtins: list[ToolSpec]) -> None:
    # BFCL ends every tool's description in "Note that the provided function is in Python 3 syntax.": a
    # model that saw only bare descriptions declined requests for such tools.
    from llmworks.data.builtin import TOOL_CATALOG
    from llmworks.data.synth.notes import NOTES

    catalog = read_tool_file(TOOL_CATALOG)
    bare = {t.name: t.openai()["function"]["description"] for t in catalog}
    records, _ = synth(catalog, 60, seed=2)
    noted = 0
    for r in records:
        tails = {t["function"]["description"].removeprefix(bare[t["function"]["name"]]) for t in r["tools"]}
        assert len(tails) == 1  # the same note on every tool, or none
        (tail,) = tails
        assert tail == "" or tail.strip() in NOTES
        noted += tail != ""
    assert 15 <= noted <= 45, noted
    fixed = [t for name in ("speak", "chart", "python") for t in builtins if t.name == name]
    as_written = [t.openai() for t in fixed]
    records, _ = synth(fixed, 12, seed=2, kinds=["single", "no_tool"], offer_all=True)  # as it is written
    assert all(r["tools"] == as_written for r in records)


def test_an_unmatched_request_asks_a_called_one_again_without_its_tool() -> None:
    from llmworks.data.builtin import TOOL_CATALOG

    catalog = read_tool_file(TOOL_CATALOG)
    records, _ = synth(catalog, 40, seed=6, kinds=["single", "unmatched"])
    called = {r["messages"][0]["content"]: calls_of(r)[0]["name"] for r in records if r["kind"] == "single"}
    again = [r for r in records if r["kind"] == "unmatched" and r["messages"][0]["content"] in called]
    assert len(again) >= 10  # the same words called once and declined once: only the tools differ
    for r in again:
        assert called[r["messages"][0]["content"]] not in {t["function"]["name"] for t in r["tools"]}
        assert not calls_of(r)
