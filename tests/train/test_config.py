"""Configs: YAML then key=value, unknown keys listed, values checked, every shipped recipe loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmworks.errors import UserError
from llmworks.train.config import DPOConfig, PretrainConfig, SFTConfig, load_config

CONFIGS = Path(__file__).parents[2] / "configs"
MODES = {"sft": SFTConfig, "dpo": DPOConfig, "pretrain": PretrainConfig}


def recipes() -> list[Path]:
    """Training recipes (the YAMLs whose first line runs `llmworks train`; tests/test_configs.py loads every
    stage's); configs/accelerate/ holds launcher configs (tests/train/test_distributed.py)."""
    return sorted(
        p
        for p in CONFIGS.rglob("*.yaml")
        if p.parent.name != "accelerate" and p.read_text(encoding="utf-8").startswith("# llmworks train ")
    )


def mode_of(path: Path) -> str:
    """The mode named by the command on the recipe's first line: `# llmworks train MODE path`."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    parts = first.split()
    assert parts[:3] == ["#", "llmworks", "train"] and parts[4] == f"configs/{path.relative_to(CONFIGS)}", (
        first
    )
    return parts[3]


def test_yaml_then_overrides(tmp_path: Path) -> None:
    p = tmp_path / "r.yaml"
    p.write_text("data: [a.jsonl]\nlr: 1.0e-4\nmethod: dora\n")
    cfg = load_config(SFTConfig, p, ["lr=3e-4", "target_modules=[q_proj,v_proj]", "packing=true"])
    assert (cfg.lr, cfg.method, cfg.target_modules, cfg.packing) == (3e-4, "dora", ["q_proj", "v_proj"], True)
    assert load_config(SFTConfig, None, ["data=a.jsonl,b.jsonl#5"]).data == ["a.jsonl", "b.jsonl#5"]


def test_unknown_keys_are_one_error_listing_them() -> None:
    with pytest.raises(UserError) as e:
        load_config(SFTConfig, None, ["data=a", "learning_rate=1", "rank=4"])
    assert "unknown key 'learning_rate'; unknown key 'rank'" in e.value.problem and "lora_rank" in e.value.fix


def test_bad_values_and_cross_checks() -> None:
    with pytest.raises(UserError, match="batch_size='x'"):
        load_config(SFTConfig, None, ["data=a", "batch_size=x"])
    with pytest.raises(UserError) as e:
        load_config(SFTConfig, None, ["data=a", "method=qlor", "batch_size=0", "val_ratio=1.5"])
    assert all(k in e.value.problem for k in ("method='qlor'", "batch_size=0", "val_ratio=1.5"))
    with pytest.raises(UserError, match="data is empty"):
        load_config(SFTConfig, None, [])
    with pytest.raises(UserError, match="beta"):
        load_config(DPOConfig, None, ["data=a", "beta=0"])


@pytest.mark.parametrize("path", recipes(), ids=lambda p: p.name)
def test_every_recipe_loads_into_its_mode(path: Path) -> None:
    cfg = load_config(MODES[mode_of(path)], path, [])
    assert cfg.output_dir.startswith("out/")
    for spec in cfg.data:
        assert (
            spec.startswith("builtin:")
            or Path(spec.split("#")[0]).exists()
            or (CONFIGS.parent / spec.split("#")[0]).exists()
        )
    assert set(yaml.safe_load(path.read_text())) <= set(type(cfg).model_fields)


def test_there_are_recipes_for_every_mode() -> None:
    assert {mode_of(p) for p in recipes()} == set(MODES)
