"""Merge: a real LoRA/DoRA run → a standalone HF directory that matches the unmerged model and converts to GGUF."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from llmworks.engines import SamplingParams, load_engine
from llmworks.errors import UserError
from llmworks.export import export_gguf, merge

from .conftest import assert_one_line_error, cli, train

QUIET = Console(stderr=True, quiet=True)
PROMPTS = ["Hi", "Name a color.", "What is 2+2?", "Tell me a joke."]


def greedy(model: Path, engine: str) -> list[list[int]]:
    with load_engine(model, engine, n_threads=2) as eng:
        assert eng.template is not None
        return [
            [
                t
                for d in eng.chat([{"role": "user", "content": p}], SamplingParams(max_tokens=16))
                for t in d.token_ids
            ]
            for p in PROMPTS
        ]


def test_round_trip_train_merge_gguf_f16_same_greedy_tokens(lora_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "merged"
    report = merge(lora_run, out, console=QUIET)
    for name in ("model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja", "README.md"):
        assert (out / name).is_file(), name
    assert (out / "train_config.yaml").is_file() and (out / "train_summary.json").is_file()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp dir left
    assert report.max_abs_logit_diff is not None and report.max_abs_logit_diff < 1e-3
    src, got = report.measurements
    assert got.greedy_agreement == 1.0 and got.identical_outputs == f"{len(got.outputs)}/{len(got.outputs)}"
    assert abs(got.perplexity / src.perplexity - 1) < 1e-4

    saved = json.loads((out / "report.json").read_text())
    assert saved["kind"] == "merge" and saved["method"] == "lora" and len(saved["measurements"]) == 2
    card = (out / "README.md").read_text()
    for needle in (
        "Base model:",
        "method lora",
        "lora_rank=8",
        "sha256",
        "Training results",
        "Export report",
        "| perplexity |",
        "Intended use and limits",
        f"llmworks chat {out}",
    ):
        assert needle in card, needle

    gguf = export_gguf(out, tmp_path / "m.gguf", "f16", evaluate=False, console=QUIET)
    assert Path(gguf.output).is_file() and (tmp_path / "m.gguf.md").is_file()
    hf_tokens = greedy(out, "transformers")
    assert greedy(Path(gguf.output), "llamacpp") == hf_tokens
    assert greedy(lora_run, "transformers") == hf_tokens  # and the merge changed nothing a user sees


def test_dora_merges_too(tmp_path: Path, tiny_hf_dir: Path) -> None:
    run = train(tmp_path, tiny_hf_dir, method="dora")
    report = merge(run, tmp_path / "merged", evaluate=False, console=QUIET)
    assert (
        report.method == "dora" and report.max_abs_logit_diff is not None and report.max_abs_logit_diff < 1e-3
    )
    assert "Not evaluated" in (tmp_path / "merged" / "README.md").read_text()


def test_full_weights_run_has_no_adapter(tmp_path: Path, tiny_hf_dir: Path) -> None:
    run = train(tmp_path, tiny_hf_dir, method="full", max_steps=1)
    with pytest.raises(UserError, match="no adapter to merge: it holds full weights"):
        merge(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_errors_are_one_line(tmp_path: Path, lora_run: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert_one_line_error(
        cli("export", "merge", str(tmp_path / "empty"), "-o", str(tmp_path / "o")),
        "adapter_config.json is missing",
    )
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    assert_one_line_error(
        cli("export", "merge", str(lora_run), "-o", str(tmp_path / "taken")), "already exists"
    )
