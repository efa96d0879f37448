"""Task loading: the shipped smoke set, official layouts, and the errors a user can cause."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmworks.errors import UserError
from llmworks.eval.tasks import GROUPS, resolve_tasks
from llmworks.eval.tasks.base import Env


def _env(can_score: bool = True, chat: bool = False) -> Env:
    return Env(can_score, chat, lambda m: "<user>" + m[0]["content"] + "<assistant>", len, 2048, shots=1)


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
    assert "about elementary mathematics" in reqs[0].prompt and "What is 2 + 2?" in reqs[0].prompt  # 1 shot
    assert reqs[0].prompt.endswith("D. 13\nAnswer:")
    chat = task.requests(sample, _env(chat=True))
    assert chat[0].prompt.startswith("<user>") and chat[0].continuation == "A"
    gen = task.requests(sample, _env(can_score=False, chat=True))
    assert gen[0].kind == "chat" and task.method == "generate"
    assert task.score(sample, ["The answer is C."], _env()).metrics == {"acc": 1.0}


def test_official_layouts(tmp_path: Path) -> None:
    (tmp_path / "cmmlu" / "test").mkdir(parents=True)
    (tmp_path / "cmmlu" / "test" / "arts.csv").write_text(
        ",Question,A,B,C,D,Answer\n0,问题,甲,乙,丙,丁,C\n", "utf-8"
    )
    (tmp_path / "arc.jsonl").write_text(
        '{"id": "q1", "question": {"stem": "Sky?", "choices": [{"text": "blue", "label": "1"}, '
        '{"text": "red", "label": "2"}]}, "answerKey": "1"}\n',
        "utf-8",
    )
    cm, arc = resolve_tasks([f"cmmlu={tmp_path / 'cmmlu'}", f"arc={tmp_path / 'arc.jsonl'}"])
    assert cm.samples()[0]["answer"] == 2
    s = arc.samples()[0]
    assert s["labels"] == ["1", "2"] and s["answer"] == 0
    assert [r.continuation for r in arc.requests(s, _env())] == [" 1", " 2"]


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
