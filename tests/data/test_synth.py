import json
from pathlib import Path

import pytest
from data_testing import read_jsonl, run_cli, write_jsonl

from llmworks.data.synth.pairs import sample_pairs
from llmworks.data.synth.prompts import read_prompts, read_tasks
from llmworks.data.synth.self_instruct import SelfInstructReport, parse_candidate, self_instruct
from llmworks.data.synth.selfcog import selfcog_records, templates
from llmworks.errors import UserError
from llmworks.testing.fake_client import ScriptedClient


def test_selfcog_templates_and_records() -> None:
    tpl = templates()
    for lang in ("en", "zh"):
        assert len(tpl[lang]["questions"]) >= 40 and len(set(tpl[lang]["questions"])) == len(
            tpl[lang]["questions"]
        )
        assert len(tpl[lang]["answers"]) >= 5
        assert all("{name}" in a and "{author}" in a for a in tpl[lang]["answers"])
    recs = list(selfcog_records("Ada", "Acme Labs", per_question=2))
    assert len(recs) == 2 * (len(tpl["en"]["questions"]) + len(tpl["zh"]["questions"]))
    answers = [r["messages"][1]["content"] for r in recs]
    assert all("Ada" in a and "Acme Labs" in a for a in answers)
    assert not any("{" in r["messages"][0]["content"] for r in recs)
    with pytest.raises(UserError):
        list(selfcog_records("", "x"))


def test_cli_selfcog(tmp_path: Path) -> None:
    r = run_cli(
        "synth", "selfcog", "--name", "Ada", "--author", "Acme", "--lang", "zh", "-o", tmp_path / "s.jsonl"
    )
    assert r.exit_code == 0, r.output
    recs = read_jsonl(tmp_path / "s.jsonl")
    assert len(recs) >= 40 and "Ada" in recs[0]["messages"][1]["content"]


SEEDS = [
    {
        "instruction": "Translate the sentence into French.",
        "input": "I like apples.",
        "output": "J'aime les pommes.",
    },
    {"instruction": "Give three tips for staying healthy.", "input": "", "output": "Eat well, sleep, move."},
    {"instruction": "Summarize the paragraph in one sentence.", "input": "Long text.", "output": "Short."},
]


def test_parse_candidate() -> None:
    t = parse_candidate(
        "Sure!\nInstruction: List two prime numbers.\nOutput: 2 and 3.\n\nTask 5\nInstruction: more"
    )
    assert t == {"instruction": "List two prime numbers.", "input": "", "output": "2 and 3."}
    t = parse_candidate("Instruction: Sort these numbers\nInput: 3, 1, 2\nOutput: 1, 2, 3")
    assert t is not None and t["input"] == "3, 1, 2"
    assert parse_candidate("no idea") is None


def test_self_instruct_filters_like_the_paper() -> None:
    chat = ScriptedClient(
        [
            "Instruction: Translate the sentence into French.\nOutput: copy of a seed",  # ROUGE-L 1.0 with a seed
            "Instruction: Draw a picture of a cat.\nOutput: (drawing)",  # needs an image
            "I cannot do that.",  # unparseable
            "Instruction: Explain why the sky looks blue during the day.\nOutput: Rayleigh scattering.",
            "Instruction: Explain why the sky looks blue during the daytime.\nOutput: Scattering.",  # near copy of the last
            "Instruction: Write a haiku about autumn leaves falling.\nOutput: Red leaves drift down...",
        ]
    )
    report = SelfInstructReport()
    made = list(self_instruct(chat, SEEDS, n=2, report=report, seed=3))
    assert [m["instruction"] for m in made] == [
        "Explain why the sky looks blue during the day.",
        "Write a haiku about autumn leaves falling.",
    ]
    assert report.attempts == 6 and report.accepted == 2
    assert (
        report.rejected["needs non-text input or output"] == 1 and report.rejected["unparseable reply"] == 1
    )
    assert sum(v for k, v in report.rejected.items() if k.startswith("too similar")) == 2
    prompt = chat.calls[-1][0][0]["content"]
    assert "Explain why the sky looks blue" in prompt  # machine-made tasks are shown as examples too
    assert len({c[1].seed for c in chat.calls}) == 6


def test_pairs_and_prompt_files(tmp_path: Path) -> None:
    txt = tmp_path / "p.txt"
    txt.write_text("What is 2+2?\n\nName a color.\n")
    jl = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"prompt": "Hi"},
            {"messages": [{"role": "user", "content": "Yo"}]},
            {"instruction": "Add", "input": "1+1", "output": "2"},
        ],
    )
    assert [p[-1]["content"] for p in read_prompts(jl)] == ["Hi", "Yo", "Add\n\n1+1"]
    chat = ScriptedClient(["a", "b", "c"])
    out = list(sample_pairs(chat, read_prompts(txt), k=3))
    assert out[0] == {"prompt": [{"role": "user", "content": "What is 2+2?"}], "responses": ["a", "b", "c"]}
    assert len({c[1].seed for c in chat.calls}) == 6 and all(c[1].temperature > 0 for c in chat.calls)
    assert read_tasks(txt)[0]["instruction"] == "What is 2+2?"


def test_cli_synth_errors(tmp_path: Path) -> None:
    r = run_cli("synth", "pairs", "--prompts", tmp_path / "none.txt", "-o", tmp_path / "o.jsonl", "-k", "1")
    assert r.exit_code == 2 and "k=1 (at least 2 responses" in r.error
    seeds = write_jsonl(tmp_path / "s.jsonl", SEEDS)
    r = run_cli(
        "synth",
        "self-instruct",
        "--seeds",
        seeds,
        "-o",
        tmp_path / "o.jsonl",
        "-n",
        "1",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--model",
        "m",
    )
    assert r.exit_code == 2 and "cannot reach" in r.error
    assert not (tmp_path / "o.jsonl").exists()


@pytest.mark.slow
def test_synth_pairs_and_self_instruct_with_the_embedded_model(tmp_path: Path) -> None:
    prompts = tmp_path / "p.txt"
    prompts.write_text("What is the capital of France? Answer in one word.\n")
    r = run_cli(
        "synth",
        "pairs",
        "--prompts",
        prompts,
        "-o",
        tmp_path / "pairs.jsonl",
        "-k",
        "2",
        "--max-tokens",
        "24",
    )
    assert r.exit_code == 0, r.output
    rec = read_jsonl(tmp_path / "pairs.jsonl")[0]
    assert len(rec["responses"]) == 2 and all(isinstance(x, str) and x for x in rec["responses"])
    seeds = write_jsonl(tmp_path / "seeds.jsonl", SEEDS)
    r = run_cli(
        "synth",
        "self-instruct",
        "--seeds",
        seeds,
        "-o",
        tmp_path / "si.jsonl",
        "-n",
        "1",
        "--max-attempts",
        "4",
    )
    # the 135M model often fails the format checks; either way the run must end cleanly
    assert r.exit_code in (0, 2), r.output
    if r.exit_code == 0:
        assert json.loads((tmp_path / "si.jsonl").read_text().splitlines()[0])["instruction"]
    else:
        assert "every candidate was rejected" in r.error
