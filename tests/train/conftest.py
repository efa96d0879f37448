"""Tiny-model training helpers: a run costs a second or two, so tests can train for real."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from llmworks.train.config import DPOConfig, PretrainConfig, SFTConfig, TrainConfig, load_config

CONVO = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! I am {{NAME}}."},
        {"role": "user", "content": "Who made you?"},
        {"role": "assistant", "content": "{{AUTHOR}} made me."},
    ]
}
ALPACA = {"instruction": "Add 2 and 3", "input": "", "output": "5"}
SHAREGPT = {"conversations": [{"from": "human", "value": "Say yes"}, {"from": "gpt", "value": "yes"}]}


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def chat_data(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "chat.jsonl", [CONVO, ALPACA, SHAREGPT] * 4)


@pytest.fixture
def make_cfg(tiny_hf_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A config for the tiny model: fast, quiet, no stop check unless asked."""

    def make(cls: type[TrainConfig] = SFTConfig, path: str | None = None, **kw: Any) -> Any:
        base = dict(
            model=str(tiny_hf_dir),
            output_dir=str(tmp_path / "run"),
            max_steps=2,
            batch_size=2,
            max_seq_len=128,
            check_after=False,
            model_name="Tiny",
            model_author="Tests",
            threads=1,
        )
        base.update(kw)
        return load_config(
            cls, path, [f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in base.items()]
        )

    return make


@pytest.fixture
def quiet() -> Console:
    return Console(stderr=True, quiet=True)


__all__ = ["DPOConfig", "PretrainConfig", "SFTConfig"]
