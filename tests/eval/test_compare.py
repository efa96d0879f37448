"""Standard errors, paired tests, and `eval compare` on hand-made run directories (no model)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from llmworks.eval import compare
from llmworks.eval.report import describe_row, print_comparison
from llmworks.eval.stats import bootstrap_p, mcnemar, paired_test, stderr


def test_stderr_is_lm_evals_mean_stderr() -> None:
    from lm_eval.api.metrics import mean_stderr

    values = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    assert stderr(values) == pytest.approx(mean_stderr(values))
    assert stderr([1.0]) is None


def test_paired_tests() -> None:
    assert mcnemar(0, 1) == 1.0 and mcnemar(0, 0) == 1.0
    assert mcnemar(0, 6) == pytest.approx(2 / 64)  # six losses, no gains: p = 2 * 0.5**6
    one = paired_test([1, 1, 0, 0, 1, 0, 1, 0], [1, 0, 0, 0, 1, 0, 1, 0])  # mmlu-smoke 0.5 -> 0.375
    assert one.test == "mcnemar" and one.n == 8 and one.changed == 1 and not one.significant
    many = paired_test([1.0] * 30, [0.0] * 10 + [1.0] * 20)
    assert many.significant and many.delta == pytest.approx(-1 / 3)
    cont = paired_test([0.5] * 40, [0.5 + 0.1 * ((i % 3) - 1) for i in range(40)])  # noise around no change
    assert cont.test == "bootstrap" and not cont.significant
    assert bootstrap_p([-0.3 + 0.01 * (i % 5) for i in range(30)]) < 0.01


def _run(root: Path, name: str, scores: list[float], **task: Any) -> Path:
    run = root / name
    (run / "samples").mkdir(parents=True)
    entry = {"kind": "multiple_choice", "method": "loglikelihood", "formulation": "letters", "chat": False}
    entry |= {"shots": 0, "harness": "llmworks", "n": len(scores), "stderr": {"acc": stderr(scores)}}
    entry |= {"metrics": {"acc": sum(scores) / len(scores)}, **task}
    results = {"run": {"model": name}, "tasks": {"mmlu-smoke": entry}}
    (run / "results.json").write_text(json.dumps(results))
    lines = [json.dumps({"id": f"q{i}", "metrics": {"acc": v}}) for i, v in enumerate(scores)]
    (run / "samples" / "mmlu-smoke.jsonl").write_text("\n".join(lines) + "\n")
    return run


def test_compare_marks_only_significant_changes(tmp_path: Path) -> None:
    """The demo's mmlu-smoke 0.250 -> 0.125 (one question of eight) is not forgetting; 30 of 30 lost is."""
    base = _run(tmp_path, "base", [1, 1, 0, 0, 0, 0, 0, 0])
    tuned = _run(tmp_path, "tuned", [1, 0, 0, 0, 0, 0, 0, 0])
    page = compare([base, tuned], tmp_path / "cmp").read_text()
    row = json.loads((tmp_path / "cmp" / "compare.json").read_text())["rows"][0]
    assert row["delta"]["tuned"] == pytest.approx(-0.125) and row["tests"]["tuned"]["n"] == 8
    assert not row["tests"]["tuned"]["significant"] and "class='down'" not in page
    assert "p=1, n=8, 1 changed, mcnemar: not significant" in describe_row(row, "tuned", "base")
    assert "± 0.164" in page  # 0.250 ± its standard error

    lost = compare([_run(tmp_path, "a", [1.0] * 30), _run(tmp_path, "b", [0.0] * 30)], tmp_path / "cmp2")
    row = json.loads((tmp_path / "cmp2" / "compare.json").read_text())["rows"][0]
    assert row["tests"]["b"]["significant"] and "class='down'" in lost.read_text()


def test_compare_warns_when_runs_were_scored_differently(tmp_path: Path) -> None:
    base = _run(tmp_path, "base", [1, 0, 1, 0])
    other = _run(tmp_path, "other", [1, 1, 1, 1], method="generate", formulation="generate")
    buf = io.StringIO()
    console = Console(file=buf, width=300)
    page = compare([base, other], tmp_path / "cmp", console).read_text()
    assert "warning: mmlu-smoke: other was scored differently from base" in buf.getvalue()
    assert "method loglikelihood vs generate" in buf.getvalue() and "Not comparable" in page
    row = json.loads((tmp_path / "cmp" / "compare.json").read_text())["rows"][0]
    assert row["tests"]["other"] is None  # never tested, never painted as a change
    print_comparison(tmp_path / "cmp" / "compare.json", console)
    assert (
        "not comparable: method loglikelihood vs generate; formulation letters vs generate" in buf.getvalue()
    )
