"""`accelerate launch` with the shipped configs: a real 2-process CPU (gloo) DDP run on the tiny model gives
the single-process loss curve, and every shipped accelerate config parses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llmworks.train import sft

from .test_sft import losses

ROOT = Path(__file__).parents[2]
ACCELERATE = sorted((ROOT / "configs" / "accelerate").glob("*.yaml"))


@pytest.mark.parametrize("launch_cfg", ["ddp.yaml", "fsdp.yaml"])
def test_two_process_ddp_matches_one_process(
    launch_cfg: str, make_cfg, chat_data, quiet, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """fsdp.yaml on a machine without GPUs falls back to DDP, and says so."""
    kw = dict(data=[str(chat_data)], max_steps=4, batch_size=4, grad_accum=2, lr=1e-3, val_ratio=0.2)
    single = make_cfg(**kw, output_dir=str(tmp_path / "single"))
    sft.main(single, quiet)
    ddp_dir = tmp_path / "ddp"
    cfg_file = tmp_path / "ddp.yaml"
    cfg_file.write_text(yaml.safe_dump({**single.__dict__, "output_dir": str(ddp_dir)}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        *(sys.executable, "-m", "accelerate.commands.launch"),
        *("--config_file", str(ROOT / "configs" / "accelerate" / launch_cfg)),
        *("--mixed_precision", "no"),  # bf16 is ~300x slower than fp32 on this CPU
        *("--main_process_port", "0"),
        *("-m", "llmworks", "train", "sft", str(cfg_file)),
    ]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert losses(ddp_dir) == pytest.approx(losses(tmp_path / "single"), rel=1e-4)
    summary = json.loads((ddp_dir / "summary.json").read_text())
    assert summary["steps"] == 4 and (ddp_dir / "adapter_model.safetensors").is_file()
    assert run.stderr.count("llmworks train sft") == 1  # only the main process speaks
    assert ("FSDP needs GPUs" in run.stderr) == (launch_cfg == "fsdp.yaml")


@pytest.mark.parametrize("path", ACCELERATE, ids=[p.stem for p in ACCELERATE])
def test_shipped_accelerate_configs_parse(path: Path) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(path))
    assert cfg.num_processes >= 2 and cfg.distributed_type.value in path.read_text()
