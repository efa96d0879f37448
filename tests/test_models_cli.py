"""`llmworks models list/info/estimate` through Typer's CliRunner on the sub-app (no model loading)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from llmworks.errors import UserError
from llmworks.models.cli import app
from llmworks.models.registry import registry

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_list_shows_every_entry_and_the_embedded_default(embedded_gguf: Path) -> None:
    result = invoke("list")
    assert result.exit_code == 0, result.output
    for name in registry():
        assert name in result.output
    line = next(line for line in result.output.splitlines() if "smollm2-135m-instruct *" in line)
    assert "embedded" in line  # installed wheel -> available locally


def test_info_registry_name() -> None:
    result = invoke("info", "glm-4-9b-chat")
    assert result.exit_code == 0, result.output
    for text in ("ChatGLMModel", "151,552", "<|observation|>", "THUDM/glm-4-9b-chat"):
        assert text in result.output


def test_info_gguf(embedded_gguf: Path) -> None:
    result = invoke("info", str(embedded_gguf))
    assert result.exit_code == 0, result.output
    for text in ("Q4_1", "yes (in GGUF)", "<|im_end|>", "49,152", "9 / 3"):
        assert text in result.output


def test_info_and_estimate_hf_dir(tmp_path: Path) -> None:
    cfg = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
           "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936,
           "max_position_embeddings": 32768, "tie_word_embeddings": True}  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    result = invoke("info", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "Qwen2ForCausalLM" in result.output and "494M" in result.output
    result = invoke("estimate", str(tmp_path), "--mode", "lora", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "total" in result.output and "fp32" in result.output


def test_estimate_prints_rows_and_total() -> None:
    result = invoke("estimate", "llama-2-7b-chat", "--mode", "qlora", "--grad-checkpointing")
    assert result.exit_code == 0, result.output
    for row in ("weights", "kv_cache", "gradients", "optimizer", "activations", "runtime", "total"):
        assert row in result.output
    assert "int4" in result.output


def test_estimate_gguf_uses_file_size(embedded_gguf: Path) -> None:
    result = invoke("estimate", str(embedded_gguf), "--device", "cpu", "--seq-len", "4096")
    assert result.exit_code == 0, result.output
    assert "q4_1" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("info", "no-such-model"), "unknown model name"),
        (("estimate", "qwen3-8b", "--mode", "pretrain"), "unknown mode"),
        (("estimate", "qwen3-8b", "--mode", "qlora", "--dtype", "bf16"), "qlora"),
        (("info", "someone/not-cached"), "local HF cache"),
    ],
)
def test_user_errors(args: tuple[str, ...], message: str) -> None:
    result = invoke(*args)
    assert isinstance(result.exception, UserError), result.output
    assert message in result.exception.problem and result.exception.fix
