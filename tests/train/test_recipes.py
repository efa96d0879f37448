"""Every shipped recipe runs for 2 steps on the tiny model; DPO and pretrain outputs load back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmworks.engines import load_engine
from llmworks.train.cli import app
from llmworks.train.config import DPOConfig, PretrainConfig
from llmworks.train.dpo import main as dpo_main
from llmworks.train.pretrain import main as pretrain_main

from .test_config import CONFIGS, mode_of, recipes


@pytest.mark.parametrize("path", recipes(), ids=lambda p: p.name)
def test_recipe_runs_two_steps_on_the_tiny_model(
    path: Path, tiny_hf_dir: Path, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(CONFIGS.parent)  # recipes name their data relative to the repository root
    out = tmp_path / "run"
    args = [
        mode_of(path),
        str(path),
        f"model={tiny_hf_dir}",
        "max_steps=2",
        f"output_dir={out}",
        "batch_size=2",
        "max_seq_len=128",
        "check_after=false",
        "threads=1",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output[-2000:], result.exception)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["train_loss"] == summary["train_loss"]
    assert (out / "adapter_config.json").is_file() or (out / "model.safetensors").is_file()


def test_dpo_moves_the_policy_towards_chosen(make_cfg, quiet) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(
        DPOConfig, data=[str(CONFIGS / "data/preferences.jsonl")], max_steps=4, lr=5e-3, batch_size=4
    )
    s = dpo_main(cfg, quiet)
    rows = [json.loads(x) for x in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at step 1: -log σ(0)
    assert s.train_loss < rows[0]["loss"]
    assert load_engine(cfg.output_dir).template is not None


def test_pretrain_packs_text_and_trains_every_token(make_cfg, quiet) -> None:  # type: ignore[no-untyped-def]
    cfg = make_cfg(PretrainConfig, data=[str(CONFIGS / "data/corpus.txt")], max_seq_len=64, val_ratio=0.2)
    s = pretrain_main(cfg, quiet)
    # every token is a target except the first of each document (nothing precedes it within the document)
    assert s.data["target_tokens"] == s.data["tokens"] - s.data["records"] and s.eval_loss is not None
