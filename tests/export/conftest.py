"""Real training runs on the tiny model (a few seconds each), shared by the export tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from llmworks.train import sft
from llmworks.train.config import SFTConfig, load_config

RECORDS = [
    {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
        ]
    },
    {"messages": [{"role": "user", "content": "Name a color."}, {"role": "assistant", "content": "Blue."}]},
]


def train(tmp: Path, model: Path, method: str = "lora", **overrides: object) -> Path:
    """A few SFT steps with a high learning rate, so the adapter visibly moves the outputs."""
    data = tmp / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS * 4))
    kw = (
        dict(
            model=str(model),
            output_dir=str(tmp / f"run-{method}"),
            data=json.dumps([str(data)]),
            method=method,
            max_steps=3,
            batch_size=2,
            max_seq_len=64,
            lr=1e-2,
            check_after="false",
            threads=1,
        )
        | overrides
    )
    cfg = load_config(SFTConfig, None, [f"{k}={v}" for k, v in kw.items()])
    sft.main(cfg, Console(stderr=True, quiet=True))
    return Path(cfg.output_dir)


@pytest.fixture(scope="session")
def lora_run(tmp_path_factory: pytest.TempPathFactory, tiny_hf_dir: Path) -> Path:
    return train(tmp_path_factory.mktemp("lora"), tiny_hf_dir)


@pytest.fixture(scope="session")
def merged(tmp_path_factory: pytest.TempPathFactory, lora_run: Path) -> Path:
    from llmworks.export import merge

    out = tmp_path_factory.mktemp("merged") / "merged"
    merge(lora_run, out, evaluate=False, console=Console(stderr=True, quiet=True))
    return out


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """`llmworks ARGS` as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "llmworks.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )


def assert_one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
