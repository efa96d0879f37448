"""The real embedded model (SmolLM2-135M via its cached HF weights): one LoRA step, then load base + adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmworks.engines import load_engine
from llmworks.train import sft
from llmworks.train.config import SFTConfig, load_config

from .conftest import ALPACA, SHAREGPT, write_jsonl


@pytest.mark.slow
def test_one_lora_step_on_the_embedded_model(tmp_path: Path, quiet) -> None:  # type: ignore[no-untyped-def]
    data = write_jsonl(tmp_path / "d.jsonl", [ALPACA, SHAREGPT] * 4)
    out = tmp_path / "run"
    overrides = [f"data={data}", f"output_dir={out}", "max_steps=1", "batch_size=2", "max_seq_len=64"]
    cfg = load_config(SFTConfig, None, [*overrides, "check_after=false", "threads=2"])
    s = sft.main(cfg, quiet)
    assert s.steps == 1 and 0 < s.train_loss < 20
    base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert Path(base).is_dir()
    engine = load_engine(out)
    assert engine.template is not None and engine.template.end_of_turn == "<|im_end|>"
