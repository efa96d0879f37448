"""`--harness lm-eval` on the tiny model: lm-eval's own numbers land in the run directory next to ours, and
on the same HF weights they are ours, for the cloze and the letters formulation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmworks.eval import EvalConfig, evaluate

DATA = Path(__file__).parent / "data"
MCQ = DATA / "mcq.jsonl"


def lm_eval_tasks(tmp: Path) -> Path:
    """The shipped lm-eval task YAMLs over mcq.jsonl, with the data path made absolute."""
    folder = tmp / "lm_eval_tasks"
    folder.mkdir(exist_ok=True)
    for f in (DATA / "lm_eval_tasks").glob("*.yaml"):
        (folder / f.name).write_text(f.read_text().replace("tests/eval/data/mcq.jsonl", str(MCQ.resolve())))
    return folder


def test_lm_eval_harness_lands_next_to_ours(tiny_hf_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    ours = EvalConfig(
        tasks=[f"arc={MCQ}", f"arc:letters={MCQ}"], model=str(tiny_hf_dir), output_dir=str(out), limit=8
    )
    evaluate(ours)
    ref = EvalConfig(
        tasks=["mcq_cloze", "mcq_letters", f"arc_easy={MCQ}"],
        model=str(tiny_hf_dir),
        output_dir=str(out),
        limit=8,
        harness="lm-eval",
        harness_include=str(lm_eval_tasks(tmp_path)),
    )
    evaluate(ref)
    tasks = json.loads((out / "results.json").read_text())["tasks"]
    assert {"arc", "arc:letters", "lm-eval/mcq_cloze", "lm-eval/mcq_letters", "lm-eval/arc_easy"} <= set(
        tasks
    )
    cloze, letters = tasks["lm-eval/mcq_cloze"], tasks["lm-eval/mcq_letters"]
    assert cloze["harness"].startswith("lm-eval") and cloze["stderr"]["acc"] is not None
    assert cloze["prompt"] == tasks["arc"]["prompt"] == tasks["lm-eval/arc_easy"]["prompt"]  # the same prompt
    assert letters["prompt"] == tasks["arc:letters"]["prompt"]
    for mine, theirs in (("arc", "lm-eval/mcq_cloze"), ("arc:letters", "lm-eval/mcq_letters")):
        assert tasks[mine]["metrics"] == pytest.approx(tasks[theirs]["metrics"]), mine
        a, b = (
            [json.loads(x) for x in (out / "samples" / f).read_text().splitlines()]
            for f in (f"{mine.replace(':', '_')}.jsonl", f"lm-eval_{theirs.split('/')[1]}.jsonl")
        )
        assert [x["id"] for x in a] == [y["id"] for y in b]
        for x, y in zip(a, b, strict=True):
            assert [r["output"] for r in x["requests"]] == pytest.approx(
                [r["output"] for r in y["requests"]], abs=1e-3
            )
    report = (out / "report.html").read_text()
    assert "lm-eval/mcq_cloze" in report and "lm-eval arc_easy / arc_challenge" in report
