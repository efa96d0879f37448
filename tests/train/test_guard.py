"""The forgetting guard's verdict comes from eval compare's paired test: one question of eight lost is noise,
thirty of thirty is forgetting (hand-made eval runs, no model)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from llmworks.train import run as train_run
from llmworks.train.config import SFTConfig


def _run(path: Path, scores: list[float]) -> Path:
    (path / "samples").mkdir(parents=True)
    entry = {"kind": "custom", "method": "generate", "formulation": "generate", "chat": True, "shots": 0}
    entry |= {"harness": "llmworks", "n": len(scores), "metrics": {"contains": sum(scores) / len(scores)}}
    (path / "results.json").write_text(json.dumps({"run": {"model": "m"}, "tasks": {"general-smoke": entry}}))
    rows = [json.dumps({"id": str(i), "metrics": {"contains": v}}) for i, v in enumerate(scores)]
    (path / "samples" / "general-smoke.jsonl").write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    ("before", "after", "warns"),
    [([1.0] * 2 + [0.0] * 6, [1.0] + [0.0] * 7, False), ([1.0] * 30, [0.0] * 30, True)],
)
def test_guard_warns_only_on_a_significant_drop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, before: list[float], after: list[float], warns: bool
) -> None:
    base = _run(tmp_path / "guard" / "before", before)
    tuned = _run(tmp_path / "guard" / "after", after)
    monkeypatch.setattr(train_run, "guard_eval", lambda *a, **k: tuned)
    cfg = SFTConfig(data=["x.jsonl"], output_dir=str(tmp_path), forgetting_threshold=0.1)
    summary = train_run.RunSummary(str(tmp_path), "sft", "lora", 1, 0.0, None)
    buf = io.StringIO()
    train_run._guard_report(cfg, base, summary, Console(file=buf, width=300))
    text = buf.getvalue()
    assert ("warning:" in text) is warns, text
    assert "a drop the test cannot tell from noise" in text or warns
    assert summary.guard["general-smoke/contains"]["n"] == len(before)
