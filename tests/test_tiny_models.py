"""The tiny test models: real SmolLM2 tokenizer, clear greedy maxima, built once per parameter set."""

from __future__ import annotations

import json
import time
from pathlib import Path

import llama_cpp
import numpy as np
import pytest

from llmworks.errors import UserError
from llmworks.testing import tiny


@pytest.mark.parametrize(
    "text",
    ["Version 3.14 of 2024: 1,000,000", "<|im_start|>user\n你好 😀<|im_end|>", "It's  they're\r\n\r\nok"],
)
def test_tokenizer_matches_the_embedded_gguf(
    tiny_tokenizer_dir: Path, embedded_gguf: Path, text: str
) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    vocab = llama_cpp.Llama(model_path=str(embedded_gguf), vocab_only=True, verbose=False)
    try:
        assert tok(text).input_ids == vocab.tokenize(text.encode(), add_bos=False, special=True)
    finally:
        vocab.close()


def test_tokenizer_has_chatml(tiny_tokenizer_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    assert (
        len(tok) == 49152 and tok.eos_token == "<|im_end|>" and tok.convert_tokens_to_ids("<|im_end|>") == 2
    )
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n")


def test_tiny_hf_shape(tiny_hf_dir: Path) -> None:
    cfg = json.loads((tiny_hf_dir / "config.json").read_text())
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["vocab_size"], cfg["tie_word_embeddings"]) == (
        2,
        64,
        49152,
        True,
    )
    assert json.loads((tiny_hf_dir / "generation_config.json").read_text())["eos_token_id"] == 2
    assert (tiny_hf_dir / "model.safetensors").is_file() and (tiny_hf_dir / "chat_template.jinja").is_file()


def test_logits_have_clear_maxima(tiny_hf_dir: Path) -> None:
    """With init std 0.3 the top-1/top-2 gap is far above engine noise (~5e-5 f32), so greedy is stable."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_hf_dir, dtype=torch.float32).eval()
    ids = torch.arange(3, 49152, 769)[None]
    with torch.no_grad():
        top2 = model(ids).logits[0].topk(2).values
    gaps = (top2[:, 0] - top2[:, 1]).numpy()
    assert np.median(gaps) > 0.1 and gaps.min() > 1e-3


def test_cache_is_keyed_and_atomic(tiny_tokenizer_dir: Path, tiny_hf_dir: Path, tmp_path: Path) -> None:
    t = time.perf_counter()
    assert tiny.make_tiny_hf(tiny_hf_dir.parent, tiny_tokenizer_dir) == tiny_hf_dir  # cached: no rebuild
    assert time.perf_counter() - t < 1.0
    other = tiny.make_tiny_hf(tmp_path, tiny_tokenizer_dir, seed=1, layers=1)
    assert other.name != tiny_hf_dir.name and json.loads((other / "tiny.json").read_text())["layers"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [other.name]  # no temp dirs left behind


def test_missing_embedded_wheel_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tiny, "embedded_file", lambda spec: None)  # as when the wheel is not installed
    with pytest.raises(UserError, match="make test"):
        tiny.embedded_gguf()
