"""Task loading: the shipped smoke set, official layouts, and the errors a user can cause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llmworks.errors import UserError
from llmworks.eval.tasks import GROUPS, resolve_tasks
from llmworks.eval.tasks.base import Env


def _env(can_score: bool = True, chat: bool = False, shots: int = 1, **kw: Any) -> Env:
    return Env(can_score, chat, lambda m: "<user>" + m[0]["content"] + "<assistant>", len, 2048, shots, **kw)


def test_smoke_set_loads_and_builds_requests() -> None:
    tasks = resolve_tasks(["smoke", "sentiment"])
    assert [t.name for t in tasks] == [*GROUPS["smoke"], "sentiment"]
    for t in tasks:
        samples = t.samples()
        assert samples and len({s["id"] for s in samples}) == len(samples)
        if t.kind != "niah":  # needs a tokenizer; covered by the runner tests
            assert t.requests(samples[0], _env())


def test_mmlu_prompt_few_shot_and_method() -> None:
    (task,) = resolve_tasks(["mmlu-smoke"])
    sample = task.samples()[0]
    reqs = task.requests(sample, _env())
    assert [r.continuation for r in reqs] == [" A", " B", " C", " D"]
    assert reqs[0].kind == "loglikelihood" and task.method == "loglikelihood"
    assert reqs[0].prompt == (  # lm-eval mmlu, one shot from dev
        "The following are multiple choice questions (with answers) about elementary mathematics.\n\n"
        "What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer: B\n\n"
        "What is 7 + 5?\nA. 10\nB. 11\nC. 12\nD. 13\nAnswer:"
    )
    plain = task.requests(sample, _env(chat=True))  # a chat model: log-likelihood prompts stay plain text
    assert plain == reqs
    chat = task.requests(sample, _env(chat=True, chat_scoring=True))  # --chat
    assert chat[0].prompt.startswith("<user>") and chat[0].continuation == "A"
    gen = task.requests(sample, _env(can_score=False, chat=True))
    assert gen[0].kind == "chat" and task.method == "generate"
    assert task.score(sample, ["The answer is C."], _env(can_score=False)).metrics == {"acc": 1.0}
    forced = task.requests(sample, _env(force="generate"))
    assert forced[0].kind == "complete" and forced[0].prompt.endswith("D. 13\nAnswer:")
    with pytest.raises(UserError, match="cannot score text"):
        _env(can_score=False, force="loglikelihood").method()


def test_arc_is_cloze_and_letters_is_an_option() -> None:
    """ARC scores the answer text after "Question: ...\nAnswer:" (lm-eval arc_easy); arc:letters lists the
    options and scores the letter, with no empty-subject header."""
    cloze, letters = resolve_tasks(["arc-smoke", "arc-smoke:letters"])
    sample = cloze.samples()[0]
    reqs = cloze.requests(sample, _env(shots=0))
    assert reqs[0].prompt == "Question: Which of these is needed for a fire to keep burning?\nAnswer:"
    assert [r.continuation for r in reqs] == [" oxygen", " sand", " ice", " salt water"]
    assert cloze.formulation == "cloze" and "arc_easy" in cloze.reference
    shot = cloze.requests(sample, _env())[0].prompt  # one shot from train.jsonl
    assert shot.startswith(
        "Question: What do people use an umbrella for?\nAnswer: to keep dry in the rain\n\n"
    )
    # acc: the likeliest option; acc_norm: the likeliest per character (lm-eval's)
    scored = cloze.score(sample, [-6.0, -3.0, -9.0, -8.0], _env())
    assert scored.metrics == {"acc": 0.0, "acc_norm": 0.0} and scored.extracted == "sand"
    scored = cloze.score(sample, [-4.0, -3.5, -9.0, -9.5], _env())  # per character oxygen wins: -4/6 > -3.5/4
    assert scored.metrics == {"acc": 0.0, "acc_norm": 1.0}
    assert cloze.score(sample, [-3.0, -3.0, -9.0, -30.0], _env()).metrics == {"acc": 1.0, "acc_norm": 1.0}
    letters.samples()
    lreqs = letters.requests(sample, _env(shots=0))
    assert lreqs[0].prompt == (
        "Question: Which of these is needed for a fire to keep burning?\n"
        "A. oxygen\nB. sand\nC. ice\nD. salt water\nAnswer:"
    )
    assert [r.continuation for r in lreqs] == [" A", " B", " C", " D"] and "about" not in lreqs[0].prompt
    gen = cloze.requests(sample, _env(can_score=False, shots=0))  # generation lists the options with letters
    assert gen[0].prompt == lreqs[0].prompt.removeprefix("Question: ")
    assert cloze.score(sample, ["B"], _env(can_score=False)).metrics == {"acc": 0.0}


def test_cloze_benchmarks_in_their_reference_formulations(tmp_path: Path) -> None:
    """HellaSwag, Winogrande, PIQA, BoolQ and TruthfulQA from local files, prompted as lm-eval prompts them."""
    import json

    def jsonl(name: str, rows: list[dict]) -> Path:
        path = tmp_path / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
        return path

    hs = jsonl(
        "hs.jsonl",
        [
            {
                "ind": 7,
                "activity_label": "Baking",
                "ctx_a": "She mixes flour.",
                "ctx_b": "then she",
                "endings": ["bakes it [title] now.", "sings."],
                "label": "0",
            }
        ],
    )
    wg = jsonl(
        "wg.jsonl",
        [
            {
                "sentence": "The cup fell off the table because _ was tilted.",
                "option1": "the cup",
                "option2": "the table",
                "answer": "2",
            }
        ],
    )
    (tmp_path / "piqa").mkdir()
    pq = jsonl("piqa/valid.jsonl", [{"goal": "Open a jar", "sol1": "Twist the lid.", "sol2": "Freeze it."}])
    (tmp_path / "piqa" / "valid-labels.lst").write_text("0\n", "utf-8")
    bq = jsonl("bq.jsonl", [{"question": "is the sky blue", "passage": "The sky is blue.", "answer": True}])
    tq = jsonl(
        "tq.jsonl",
        [
            {
                "question": "Can pigs fly?",
                "mc1_targets": {"choices": ["No.", "Yes."], "labels": [1, 0]},
                "mc2_targets": {"choices": ["No.", "Never.", "Yes."], "labels": [1, 1, 0]},
            }
        ],
    )
    h, w, p, b, t = resolve_tasks(
        [f"hellaswag={hs}", f"winogrande={wg}", f"piqa={pq.parent}", f"boolq={bq}", f"truthfulqa={tq}"]
    )
    env = _env(shots=0)
    r = h.requests(h.samples()[0], env)
    assert r[0].prompt == "Baking: She mixes flour. Then she" and [x.continuation for x in r] == [
        " bakes it. now.",
        " sings.",
    ]
    s = w.samples()[0]
    r = w.requests(s, env)
    assert [(x.prompt, x.continuation) for x in r] == [
        ("The cup fell off the table because the cup", " was tilted."),
        ("The cup fell off the table because the table", " was tilted."),
    ]
    assert w.score(s, [-5.0, -2.0], env).metrics == {"acc": 1.0}
    s = p.samples()[0]
    assert s["answer"] == 0 and p.requests(s, env)[0].prompt == "Question: Open a jar\nAnswer:"
    s = b.samples()[0]
    r = b.requests(s, env)
    assert r[0].prompt == "The sky is blue.\nQuestion: is the sky blue?\nAnswer:" and [
        x.continuation for x in r
    ] == [" no", " yes"]
    assert s["answer"] == 1 and b.score(s, ["yes, it is"], _env(can_score=False)).metrics == {"acc": 1.0}
    s = t.samples()[0]
    r = t.requests(s, env)
    assert r[0].prompt.startswith("Q: What is human life expectancy") and r[0].prompt.endswith(
        "\n\nQ: Can pigs fly?\nA:"
    )
    assert [x.continuation for x in r] == [" No.", " Yes.", " No.", " Never.", " Yes."]
    import math

    m = t.score(s, [-1.0, -2.0, math.log(0.5), math.log(0.25), math.log(0.25)], env).metrics
    assert m["mc1"] == 1.0 and m["mc2"] == pytest.approx(0.75)
    for task in (h, w, p, b, t):
        assert task.reference.startswith("lm-eval"), task.name


def test_official_layouts(tmp_path: Path) -> None:
    (tmp_path / "cmmlu" / "test").mkdir(parents=True)
    (tmp_path / "cmmlu" / "test" / "agronomy.csv").write_text(
        ",Question,A,B,C,D,Answer\n0,问题,甲,乙,丙,丁,C\n", "utf-8"
    )
    (tmp_path / "arc.jsonl").write_text(
        '{"id": "q1", "question": {"stem": "Sky?", "choices": [{"text": "blue", "label": "1"}, '
        '{"text": "red", "label": "2"}]}, "answerKey": "1"}\n',
        "utf-8",
    )
    cm, arc = resolve_tasks([f"cmmlu={tmp_path / 'cmmlu'}", f"arc={tmp_path / 'arc.jsonl'}"])
    s = cm.samples()[0]
    assert s["answer"] == 2
    r = cm.requests(s, _env())
    assert (
        r[0].prompt
        == "以下是关于农学的单项选择题，请直接给出正确答案的选项。\n\n问题\nA. 甲\nB. 乙\nC. 丙\nD. 丁\n答案："
    )
    assert r[0].continuation == " A"  # lm-eval cmmlu: the letter after one space
    s = arc.samples()[0]
    assert s["answer"] == 0
    assert [r.continuation for r in arc.requests(s, _env())] == [" blue", " red"]


def test_malformed_data_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "gsm"
    bad.mkdir()
    (bad / "test.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{not json\n', "utf-8")
    (task,) = resolve_tasks([f"gsm8k={bad}"])
    with pytest.raises(UserError, match=r"test\.jsonl:2: not valid JSON"):
        task.samples()
    (bad / "test.jsonl").write_text('{"question": "q"}\n', "utf-8")
    with pytest.raises(UserError, match=r"test\.jsonl:1: missing field\(s\) answer"):
        task.samples()
    mm = tmp_path / "mmlu" / "test"
    mm.mkdir(parents=True)
    (mm / "x_test.csv").write_text("q,a,b,c,d,A\nq2,a,b,c,d,Z\n", "utf-8")
    (task,) = resolve_tasks([f"mmlu={tmp_path / 'mmlu'}"])
    with pytest.raises(UserError, match=r"x_test\.csv:2: answer 'Z'"):
        task.samples()


def test_unknown_task_missing_data_and_bad_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UserError, match="unknown task 'nope'"):
        resolve_tasks(["nope"])
    monkeypatch.setenv("LLMWORKS_EVAL_DATA", str(tmp_path))
    with pytest.raises(UserError, match=r"no data for task 'gsm8k'.*Put the official files there"):
        resolve_tasks(["gsm8k"])
    y = tmp_path / "t.yaml"
    y.write_text("data: d.jsonl\nprompt: '{q}'\nmetrics: [exact_match, bleurt]\ncolour: red\n", "utf-8")
    with pytest.raises(UserError, match="unknown key 'colour'; unknown metric 'bleurt'"):
        resolve_tasks([str(y)])


def test_cli_unknown_task_exits_2() -> None:
    import subprocess
    import sys

    r = subprocess.run(
        [sys.executable, "-m", "llmworks.cli", "eval", "run", "--tasks", "nope"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "unknown task 'nope'" in r.stderr and "Traceback" not in r.stderr
