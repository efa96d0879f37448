"""The arena: runs' saved answers judged pairwise in both orders, tallies, ratings, report, resume; and
single-answer grading end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmworks.errors import UserError
from llmworks.eval import ArenaConfig, EvalConfig, evaluate, run_arena
from llmworks.eval.judge import _parse_verdict

CAPITALS = {"c/0": ("France", "Paris"), "c/1": ("Italy", "Rome"), "c/2": ("Spain", "Madrid")}


def write_run(root: Path, model: str, answers: dict[str, str]) -> Path:
    """A run directory as `llmworks eval run` writes it: one generation task and one log-likelihood task."""
    (root / "samples").mkdir(parents=True)
    results = {
        "run": {"model": model},
        "tasks": {
            "capitals": {"kind": "custom", "method": "generate", "n": len(answers), "metrics": {}},
            "mc": {"kind": "multiple_choice", "method": "loglikelihood", "n": 1, "metrics": {}},
        },
    }
    (root / "results.json").write_text(json.dumps(results))
    lines = [
        {
            "id": i,
            "requests": [
                {
                    "kind": "chat",
                    "prompt": [
                        {
                            "role": "user",
                            "content": f"What is the capital of {CAPITALS.get(i, ('Peru',))[0]}?",
                        }
                    ],
                    "output": a,
                }
            ],
        }
        for i, a in answers.items()
    ]
    (root / "samples" / "capitals.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    mc = {
        "id": "0",
        "requests": [{"kind": "loglikelihood", "prompt": "Q", "continuation": " A", "output": -1.0}],
    }
    (root / "samples" / "mc.jsonl").write_text(json.dumps(mc) + "\n")
    return root


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    right = {i: f"The capital is {c}." for i, (_, c) in CAPITALS.items()}
    return [
        write_run(tmp_path / "base", "base", {"c/0": "I don't know.", "c/1": "Milan.", "c/2": "Madrid."}),
        write_run(tmp_path / "tuned", "tuned", right),
        write_run(tmp_path / "other", "other", {**right, "c/9": "not shared"}),
    ]


def test_arena_judges_both_orders_tallies_and_resumes(runs: list[Path], tmp_path: Path) -> None:
    asked: list[str] = []

    def judge(messages: list[dict]) -> str:
        """Prefers the answer naming the capital; ties when both or neither do; Spain gets no verdict."""
        user = messages[-1]["content"]
        asked.append(user)
        if "Spain" in user:
            return "Both answers are fine, I cannot decide."
        a = user.split("[The Start of Assistant A's Answer]")[1].split("[The End")[0]
        b = user.split("[The Start of Assistant B's Answer]")[1].split("[The End")[0]
        good = [any(c in x for _, c in CAPITALS.values()) for x in (a, b)]
        return "Verdict: " + ("[[C]]" if good[0] == good[1] else "[[A]]" if good[0] else "[[B]]")

    cfg = ArenaConfig([str(r) for r in runs], judge="scripted", output_dir=str(tmp_path / "arena"))
    out = run_arena(cfg, judge=judge)
    report = json.loads((out / "arena.json").read_text())
    assert report["tasks"] == {"capitals": 9}  # 3 shared samples x 3 pairs; the MC task has no answers
    # Both orders of each of the 9 battles; identical prompts (tuned and other agree) are asked once.
    assert report["replies"] == 18 and len(set(asked)) == 9
    assert report["unparsed"] == 6  # the Spain battles: counted, and ties
    tuned_vs_base = [v for v in report["verdicts"] if {v["model_a"], v["model_b"]} == {"base", "tuned"}]
    assert [v["winner"] for v in tuned_vs_base] == ["tuned", "tuned", "tie"]
    assert report["vs_baseline"]["tuned"] == {"win": 2, "tie": 1, "loss": 0, "win_rate": pytest.approx(5 / 6)}
    bt = report["bradley_terry"]
    assert bt["tuned"]["rating"] == pytest.approx(bt["other"]["rating"])
    assert bt["tuned"]["rating"] > bt["base"]["rating"]
    assert report["elo"]["base"]["rating"] < 1000 and bt["base"]["games"] == 6
    page = (out / "arena.html").read_text()
    assert "Bradley–Terry" in page and "<svg" in page and "id=verdicts" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained

    asked.clear()  # a rerun answers every judge request from the cache
    again = run_arena(cfg, judge=judge)
    assert asked == [] and json.loads((again / "arena.json").read_text())["verdicts"] == report["verdicts"]

    base_only = ArenaConfig(
        [str(r) for r in runs],
        judge="scripted",
        baseline=str(runs[1]),
        pairs="baseline",
        limit=2,
        output_dir=str(tmp_path / "b"),
    )
    report = json.loads((run_arena(base_only, judge=judge) / "arena.json").read_text())
    assert (
        report["baseline"] == "tuned"
        and report["battles"] == 4
        and set(report["vs_baseline"]) == {"base", "other"}
    )


def test_arena_bad_input_is_a_user_error(runs: list[Path], tmp_path: Path) -> None:
    with pytest.raises(UserError, match="two or more runs"):
        ArenaConfig([str(runs[0])], judge="j")
    with pytest.raises(UserError, match="is not one of the runs"):
        ArenaConfig([str(r) for r in runs], judge="j", baseline=str(tmp_path))
    with pytest.raises(UserError, match="not an eval run"):
        run_arena(ArenaConfig([str(runs[0]), str(tmp_path)], judge="j"), judge=lambda m: "")
    with pytest.raises(UserError, match="not in every run"):
        run_arena(ArenaConfig([str(r) for r in runs], judge="j", tasks=["gsm8k"]), judge=lambda m: "")
    with pytest.raises(UserError, match="share no generated answers"):
        run_arena(ArenaConfig([str(r) for r in runs], judge="j", tasks=["mc"]), judge=lambda m: "")


def test_arena_cli_with_a_local_judge(runs: list[Path], tiny_gguf: Path, tmp_path: Path) -> None:
    """The tiny random model as judge: its replies never parse, and are counted as ties."""
    out = tmp_path / "arena"
    args = [sys.executable, "-m", "llmworks.cli", "eval", "arena", str(runs[0]), str(runs[1])]
    args += ["--judge", str(tiny_gguf), "--max-tokens", "8", "--limit", "2", "-o", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "arena.json").read_text())
    assert report["battles"] == 2 and report["judge"]["engine"] == "LlamaCppEngine"
    assert report["unparsed"] == sum(_parse_verdict(r) is None for v in report["verdicts"] for r in v["raw"])
    assert "2 battles" in done.stderr and (out / "arena.html").is_file()

    bad = subprocess.run([*args[:6], "--judge", "x"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2 and "two or more runs" in bad.stderr and "Traceback" not in bad.stderr


def test_single_answer_grading_end_to_end(tiny_gguf: Path, tmp_path: Path) -> None:
    """A custom task graded 1-10 by a local judge: unparsed replies are counted, not crashed."""
    data = tmp_path / "qa.jsonl"
    data.write_text('{"q": "What is 2+2?", "a": "4"}\n{"q": "Name a colour.", "a": "red"}\n')
    task = tmp_path / "qa.yaml"
    task.write_text(
        "data: qa.jsonl\nprompt: '{q}'\ntarget: '{a}'\nmetrics: [judge, contains]\nmax_tokens: 8\n"
    )
    run = evaluate(
        EvalConfig(
            tasks=[str(task)],
            model=str(tiny_gguf),
            judge=str(tiny_gguf),
            output_dir=str(tmp_path / "r"),
            ctx=1024,
        )
    )
    results = json.loads((run / "results.json").read_text())
    metrics = results["tasks"]["qa"]["metrics"]
    lines = [json.loads(x) for x in (run / "samples" / "qa.jsonl").read_text().splitlines()]
    assert metrics["judge_unparsed"] == sum(x["judge"]["score"] is None for x in lines)
    assert all(x["judge"]["raw"] is not None for x in lines) and results["run"]["judge"]
    assert "contains" in metrics


@pytest.mark.slow
def test_arena_with_the_embedded_model_as_judge(
    runs: list[Path], embedded_gguf: Path, tmp_path: Path
) -> None:
    """A real (tiny, unreliable) judge on 2 samples: whatever it replies is parsed or counted."""
    cfg = ArenaConfig(
        [str(runs[0]), str(runs[1])],
        judge=str(embedded_gguf),
        limit=2,
        max_tokens=160,
        output_dir=str(tmp_path),
    )
    report = json.loads((run_arena(cfg) / "arena.json").read_text())
    assert report["battles"] == 2 and report["replies"] == 4
    raw = [r for v in report["verdicts"] for r in v["raw"]]
    assert all(isinstance(r, str) and r for r in raw)
    assert report["unparsed"] == sum(_parse_verdict(r) is None for r in raw)
    assert set(report["bradley_terry"]) == {"base", "tuned"}
    assert "Unparsed judge replies" in (tmp_path / "arena.html").read_text()
