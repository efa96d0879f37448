"""The memory estimator: formulas per row, user errors, and agreement with published and measured figures.

Published: LLaMA-Factory's README hardware table ("estimated GPU memory", 7B column; read as GiB, since
a "16GB" board holds 16 GiB). Its 7B is a LLaMA-style model with a 32k vocabulary; we check it on
llama-2-7b-chat and mistral-7b-instruct-v0.3 with LLaMA-Factory's example settings (cutoff_len 2048,
per-device batch 1, gradient checkpointing on by default). Large-vocabulary 7B models (Qwen2.5, 152k)
legitimately need more: their fp32 logits alone are ~3 GiB at 2048 tokens.

Measured: peak RSS on this project's CPU machine (2 cores, 23 GiB), recorded by bench/estimate.py on
2026-11-23 for the embedded SmolLM2-135M; rerun the bench to refresh them.
"""

from __future__ import annotations

import pytest

from llmworks.errors import UserError
from llmworks.models.estimate import (
    GIB,
    activation_elems_per_token_layer,
    estimate_memory,
    lora_params,
    weight_bytes,
)
from llmworks.models.registry import DEFAULT_MODEL, get_spec

TOLERANCE = 0.25

# (label, estimate_memory kwargs, LLaMA-Factory 7B figure in GB)
LLAMA_FACTORY_7B = [
    ("full bf16 mixed precision (32-bit states)", {"mode": "full", "dtype": "bf16"}, 120),
    ("full pure_bf16", {"mode": "full", "dtype": "bf16", "pure_16bit": True}, 60),
    ("lora 16-bit", {"mode": "lora", "dtype": "bf16"}, 16),
    ("qlora 8-bit", {"mode": "qlora", "dtype": "int8"}, 10),
    ("qlora 4-bit", {"mode": "qlora", "dtype": "int4"}, 6),
]
SETTINGS = {"seq_len": 2048, "batch": 1, "grad_checkpointing": True, "device": "cuda"}


@pytest.mark.parametrize("model", ["llama-2-7b-chat", "mistral-7b-instruct-v0.3"])
@pytest.mark.parametrize(
    ("label", "kwargs", "published_gb"), LLAMA_FACTORY_7B, ids=[r[0] for r in LLAMA_FACTORY_7B]
)
def test_llama_factory_table(model: str, label: str, kwargs: dict, published_gb: float) -> None:
    est = estimate_memory(get_spec(model), **kwargs, **SETTINGS)
    ratio = est.total / GIB / published_gb
    assert 1 - TOLERANCE <= ratio <= 1 + TOLERANCE, (
        f"{model} {label}: {est.total / GIB:.1f} GiB vs {published_gb}"
    )


def test_llama_factory_freeze_row() -> None:
    # The table lumps freeze with LoRA at 16 GB. Freezing all but LLaMA-Factory's default 2 layers leaves
    # 0.4B params with fp32 master weights + AdamW states (~6 GiB) on top of the 12.6 GiB of weights, so
    # we land at ~1.25x: checked at 30%, the one row outside 25%.
    est = estimate_memory(get_spec("llama-2-7b-chat"), mode="freeze", dtype="bf16", **SETTINGS)
    assert 0.7 <= est.total / GIB / 16 <= 1.3


# (settings, peak RSS in GiB measured by bench/estimate.py: VmHWM of a fresh process per case)
MEASURED_CPU = [
    ({"mode": "infer", "dtype": "q4_1", "seq_len": 2048, "batch": 1}, 0.207),  # llama-cpp-python, n_ctx 2048
    ({"mode": "infer", "dtype": "q4_1", "seq_len": 8192, "batch": 1}, 0.339),  # n_ctx 8192
    ({"mode": "lora", "dtype": "fp32", "seq_len": 256, "batch": 8}, 7.605),  # peft r=8 all-linear, AdamW
    ({"mode": "lora", "dtype": "fp32", "seq_len": 256, "batch": 1}, 1.638),
]


@pytest.mark.parametrize(("kwargs", "measured_gib"), MEASURED_CPU, ids=[str(c[0]) for c in MEASURED_CPU])
def test_cpu_measurements(kwargs: dict, measured_gib: float) -> None:
    est = estimate_memory(get_spec(DEFAULT_MODEL), device="cpu", **kwargs)
    assert est.total / GIB / measured_gib == pytest.approx(1, abs=TOLERANCE)


def test_row_formulas_smollm2() -> None:
    spec = get_spec(DEFAULT_MODEL)
    # r * (in + out) summed over q, k, v, o, gate, up, down, times 30 layers.
    assert lora_params(spec, 8) == 30 * 8 * ((576 + 576) + 2 * (576 + 192) + (576 + 576) + 3 * (576 + 1536))
    assert activation_elems_per_token_layer(spec) == 4 * 576 + 2 * 576 + 2 * 192 + 4 * 1536
    assert weight_bytes(spec, "fp32") == pytest.approx(spec.params * 4, rel=1e-6)
    # GGUF q4_1: body at 5 bits, the embedding at q8_0 (8.5 bits): the embedded file is 98.4 MB.
    assert weight_bytes(spec, "q4_1") == pytest.approx(98_362_432, rel=0.05)


def test_kv_cache_and_inference_rows() -> None:
    spec = get_spec("llama-3.1-8b-instruct")
    est = estimate_memory(spec, "infer", "bf16", seq_len=8192, batch=2)
    # 2 (k, v) x 32 layers x 8 kv heads x 128 dims x 2 bytes = 128 KiB per token.
    assert est.rows["kv_cache"] == 128 * 1024 * 8192 * 2
    assert est.rows["gradients"] == est.rows["optimizer"] == 0
    assert est.trainable_params == 0


def test_training_rows() -> None:
    spec = get_spec("qwen2.5-1.5b-instruct")
    full = estimate_memory(spec, "full", "bf16", seq_len=1024)
    # Mixed precision: bf16 weights and grads, fp32 master + 2 fp32 AdamW states = 16 bytes/param.
    per_param = (full.rows["weights"] + full.rows["gradients"] + full.rows["optimizer"]) / spec.params
    assert per_param == pytest.approx(16, rel=0.01)
    pure = estimate_memory(spec, "full", "bf16", seq_len=1024, pure_16bit=True)
    assert pure.rows["optimizer"] == 4 * spec.params
    fp32 = estimate_memory(spec, "full", "fp32", seq_len=1024)
    assert fp32.rows["optimizer"] == 8 * spec.params  # fp32 training needs no master copy
    lora = estimate_memory(spec, "lora", "bf16", seq_len=1024, lora_rank=16)
    assert lora.trainable_params == lora_params(spec, 16)
    assert lora.rows["optimizer"] == 8 * lora.trainable_params
    ckpt = estimate_memory(spec, "lora", "bf16", seq_len=1024, lora_rank=16, grad_checkpointing=True)
    assert ckpt.rows["activations"] < lora.rows["activations"] / 2
    qlora = estimate_memory(spec, "qlora", "int4", seq_len=1024)
    assert qlora.rows["weights"] < lora.rows["weights"] / 2


def test_weights_override_and_engine() -> None:
    spec = get_spec(DEFAULT_MODEL)
    est = estimate_memory(spec, "infer", "fp16", weights_bytes=123, engine="llama.cpp", device="cpu")
    assert est.rows["weights"] == 123
    assert est.rows["runtime"] < estimate_memory(spec, "infer", "fp16", device="cpu").rows["runtime"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "pretrain"}, "unknown mode"),
        ({"dtype": "fp8"}, "unknown dtype"),
        ({"device": "tpu"}, "unknown device"),
        ({"mode": "qlora", "dtype": "bf16"}, r"int4 or --dtype int8"),
        ({"mode": "full", "dtype": "int4"}, "cannot be int4"),
        ({"mode": "lora", "dtype": "q4_1"}, "GGUF"),
        ({"seq_len": 0}, "positive"),
    ],
)
def test_user_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(UserError, match=message) as err:
        estimate_memory(get_spec(DEFAULT_MODEL), **kwargs)
    assert err.value.fix
