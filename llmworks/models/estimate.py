"""Peak-memory estimate for running or fine-tuning a model, from its shape alone (no weights loaded).

    total = weights + KV cache + gradients + optimizer states + activations + runtime overhead

Every row is a closed formula over the ModelSpec shape, so it works for registry entries and for local
HF directories / GGUF files alike (see `llmworks.models.inspect`). The constants that are not shape
formulas (runtime baselines, allocator slack) were measured on this project's CPU machine or taken from
common CUDA figures; `bench/estimate.py` re-measures the CPU ones and `tests/test_estimate.py` checks the
result against LLaMA-Factory's published GPU table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmworks.errors import UserError
from llmworks.models.registry import ModelSpec

MODES: tuple[str, ...] = ("infer", "lora", "qlora", "freeze", "full")
DEVICES: tuple[str, ...] = ("cuda", "cpu")

# Bits per weight of the base model. bitsandbytes int4 is NF4 with double quantization (4 bits plus
# ~0.127 bits of block constants); GGUF types include their block scales (q4_1: 32 weights share an
# fp16 scale and min -> 5.0 bits).
DTYPE_BITS: dict[str, float] = {
    "fp32": 32,
    "bf16": 16,
    "fp16": 16,
    "int8": 8,
    "int4": 4.127,
    "q8_0": 8.5,
    "q6_k": 6.5625,
    "q5_k": 5.5,
    "q5_1": 6.0,
    "q5_0": 5.5,
    "q4_k": 4.5,
    "q4_1": 5.0,
    "q4_0": 4.5,
    "q3_k": 3.4375,
    "q2_k": 2.625,
}
BNB_DTYPES = frozenset({"int8", "int4"})
GGUF_DTYPES = frozenset(d for d in DTYPE_BITS if d.startswith("q"))

GIB = 2**30
MIB = 2**20

# Runtime overhead: memory the process holds before the model counts. CPU figures are the RSS measured
# here (bench/estimate.py: `import torch, transformers, peft` = 383 MiB; `import llama_cpp` = 43 MiB).
# CUDA: context + cuBLAS/cuDNN workspaces + kernel images, typically 0.5-1 GiB per process; not measured
# here (no GPU), so it is the usual nvidia-smi figure.
RUNTIME_BYTES: dict[tuple[str, str], int] = {
    ("cpu", "torch"): 380 * MIB,
    ("cpu", "llama.cpp"): 45 * MIB,
    ("cuda", "torch"): 1 * GIB,
    ("cuda", "llama.cpp"): 512 * MIB,
}
# Activation slack: peak memory above the tensors autograd keeps, from temporaries of the op in flight
# and allocator caching. CPU: measured 1.7-2.0x for fp32 LoRA on SmolLM2-135M (glibc malloc keeps freed
# blocks mapped); 1.85 is the middle. CUDA: PyTorch's caching allocator, typically 10-30% over live
# tensors.
ACTIVATION_SLACK: dict[str, float] = {"cpu": 1.85, "cuda": 1.25}
# llama.cpp evaluates a prompt in micro-batches of this many tokens (its n_ubatch default).
LLAMACPP_UBATCH = 512


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes per row; `total` is their sum. `notes` say which assumptions apply."""

    model: str
    mode: str
    dtype: str
    device: str
    seq_len: int
    batch: int
    trainable_params: int
    rows: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return sum(self.rows.values())

    def gib(self) -> dict[str, float]:
        """Rows and total in GiB, rounded for display."""
        out = {k: round(v / GIB, 3) for k, v in self.rows.items()}
        out["total"] = round(self.total / GIB, 3)
        return out


def lora_params(spec: ModelSpec, rank: int) -> int:
    """LoRA on every linear layer ("all-linear"): each (in x out) matrix gains rank * (in + out)."""
    h, q, kv, i = spec.hidden, spec.q_dim, spec.kv_dim, spec.intermediate
    per_layer = (h + q) + 2 * (h + kv) + (q + h) + 3 * (h + i)
    return spec.layers * rank * per_layer


def activation_elems_per_token_layer(spec: ModelSpec) -> int:
    """Elements autograd keeps per token in one decoder layer (memory-efficient attention, no dropout).

    Counted with saved-tensor hooks on a Llama layer (transformers 5, SDPA): the two norm inputs and
    outputs (4h), query and attention output (2 q_dim), keys and values (2 kv_dim), and the gated MLP's
    gate, up, activation and product (4 intermediate). No seq^2 term: SDPA/flash kernels keep only the
    log-sum-exp per head.
    """
    return 4 * spec.hidden + 2 * spec.q_dim + 2 * spec.kv_dim + 4 * spec.intermediate


def weight_bytes(spec: ModelSpec, dtype: str) -> int:
    """Bytes of the base weights stored as `dtype`."""
    bits = DTYPE_BITS[dtype]
    body = spec.params - spec.embedding_params
    if dtype in BNB_DTYPES:
        # bitsandbytes quantizes the linear layers only: embeddings and the LM head stay 16-bit.
        emb_bits = 16.0
    elif dtype in GGUF_DTYPES:
        # llama.cpp keeps the token embedding / output matrix at q8_0 or q6_k; take q8_0.
        emb_bits = max(bits, DTYPE_BITS["q8_0"])
    else:
        emb_bits = bits
    return int(body * bits / 8 + spec.embedding_params * emb_bits / 8)


def estimate_memory(
    spec: ModelSpec,
    mode: str = "infer",
    dtype: str = "bf16",
    seq_len: int = 2048,
    batch: int = 1,
    grad_checkpointing: bool = False,
    lora_rank: int = 8,
    *,
    device: str = "cuda",
    trainable_layers: int = 2,
    pure_16bit: bool = False,
    weights_bytes: int | None = None,
    engine: str | None = None,
) -> MemoryEstimate:
    """Estimate peak memory of one process.

    mode: `infer` (generation with a KV cache of `seq_len` tokens per sequence), `lora` / `qlora`
    (all-linear adapters of `lora_rank`; qlora needs dtype int4 or int8), `freeze` (train the last
    `trainable_layers` layers), `full`. dtype: the base weights (fp32, bf16, fp16, int8, int4, or a GGUF
    type such as q4_1, which means llama.cpp). `pure_16bit`: full/freeze keep gradients and AdamW
    states in the 16-bit dtype without fp32 master weights (LLaMA-Factory's `pure_bf16`).
    `weights_bytes`: use a known size (e.g. a GGUF file's) instead of the formula. `engine`: `torch` or
    `llama.cpp`; by default llama.cpp for GGUF types, torch otherwise (an f16 GGUF passes fp16 + llama.cpp).
    """
    _check(mode, dtype, device, seq_len, batch, lora_rank)
    engine = engine or ("llama.cpp" if dtype in GGUF_DTYPES else "torch")
    if engine not in ("torch", "llama.cpp"):
        raise UserError(f"unknown engine '{engine}'.", "Use torch or llama.cpp.")
    gguf = engine == "llama.cpp"
    training = mode != "infer"
    if training and gguf:
        raise UserError(
            f"mode '{mode}' needs HF weights; GGUF models ({dtype}) only run inference, in llama.cpp.",
            "Use --dtype bf16/fp32 (or int4/int8 for qlora).",
        )
    if mode == "qlora" and dtype not in BNB_DTYPES:
        raise UserError(
            f"qlora quantizes the base weights, so dtype '{dtype}' does not apply.",
            "Use --dtype int4 or --dtype int8 (or --mode lora for 16/32-bit weights).",
        )
    if mode in ("full", "freeze") and dtype in BNB_DTYPES:
        raise UserError(
            f"mode '{mode}' updates the base weights, which cannot be {dtype}-quantized.",
            "Use --dtype bf16/fp16/fp32, or --mode qlora.",
        )

    # Compute dtype: fp32 stays fp32; 16-bit and bitsandbytes-quantized weights compute in 16-bit.
    act_bytes = 4 if dtype == "fp32" else 2
    tokens = seq_len * batch
    notes: list[str] = []
    rows: dict[str, int] = {}

    # Weights: base model at its dtype; LoRA adapters are kept in fp32 by peft (autocast_adapter_dtype).
    base = weights_bytes if weights_bytes is not None else weight_bytes(spec, dtype)
    if mode in ("lora", "qlora"):
        trainable = lora_params(spec, lora_rank)
        rows["weights"] = base + 4 * trainable
        notes.append(
            f"LoRA r={lora_rank} on all linear layers: {trainable / 1e6:.1f}M trainable params (fp32)"
        )
    elif mode == "freeze":
        trainable = min(trainable_layers, spec.layers) * spec.layer_params
        rows["weights"] = base
        notes.append(f"freeze: the last {min(trainable_layers, spec.layers)} layers train")
    elif mode == "full":
        trainable = spec.params
        rows["weights"] = base
    else:
        trainable = 0
        rows["weights"] = base

    # KV cache (inference): keys and values, per layer, for every token of every sequence.
    # llama.cpp stores them as f16 whatever the weights; transformers in the compute dtype.
    kv_bytes = 2 if gguf else act_bytes
    rows["kv_cache"] = 2 * spec.layers * spec.kv_dim * tokens * kv_bytes if not training else 0

    # Gradients: one per trainable parameter, in the trainable parameters' dtype
    # (fp32 for adapters and mixed-precision training, the 16-bit dtype for pure 16-bit / 16-bit full).
    if mode in ("lora", "qlora"):
        grad_bytes = 4
    elif mode in ("full", "freeze"):
        grad_bytes = DTYPE_BITS[dtype] // 8
    else:
        grad_bytes = 0
    rows["gradients"] = int(trainable * grad_bytes)

    # Optimizer: AdamW keeps 2 states (exp_avg, exp_avg_sq) per trainable param, fp32 unless pure 16-bit.
    # Mixed-precision full/freeze training in 16-bit also keeps an fp32 master copy of the trained weights.
    if not training:
        rows["optimizer"] = 0
    elif mode in ("full", "freeze") and dtype in ("bf16", "fp16"):
        rows["optimizer"] = trainable * (2 * 2 if pure_16bit else 2 * 4 + 4)
        notes.append(
            "pure 16-bit: no fp32 master weights" if pure_16bit else "mixed precision: fp32 master weights"
        )
    else:
        rows["optimizer"] = trainable * 2 * 4

    rows["activations"] = int(
        _activations(spec, mode, tokens, batch, act_bytes, gguf, grad_checkpointing, trainable_layers)
        * ACTIVATION_SLACK[device]
    )
    if training and grad_checkpointing:
        notes.append("gradient checkpointing: one layer's activations are recomputed at a time")

    rows["runtime"] = RUNTIME_BYTES[(device, engine)]
    return MemoryEstimate(
        model=spec.name, mode=mode, dtype=dtype, device=device, seq_len=seq_len, batch=batch,
        trainable_params=int(trainable), rows=rows, notes=tuple(notes),
    )  # fmt: skip


def _activations(
    spec: ModelSpec,
    mode: str,
    tokens: int,
    batch: int,
    act_bytes: int,
    gguf: bool,
    grad_checkpointing: bool,
    trainable_layers: int,
) -> float:
    per_layer = activation_elems_per_token_layer(spec)
    if mode == "infer":
        # No graph is kept: the peak is one layer's working set for the prompt chunk being evaluated
        # (llama.cpp: micro-batches of 512 tokens, computed in f32) plus last-token logits (fp32).
        chunk = min(tokens, LLAMACPP_UBATCH * batch) if gguf else tokens
        return chunk * per_layer * (4 if gguf else act_bytes) + batch * spec.vocab * 4

    # Backward needs the saved tensors of every layer it flows through.
    layers = min(trainable_layers, spec.layers) if mode == "freeze" else spec.layers
    if grad_checkpointing:
        # Only each layer's input (hidden) is kept; one layer is recomputed in full during backward.
        body = tokens * (layers * spec.hidden + per_layer) * act_bytes
    else:
        body = tokens * layers * per_layer * act_bytes
    # LM head and loss: logits in the compute dtype, then an fp32 log-softmax and its fp32 gradient
    # (HF upcasts logits for the loss). With a 50-150k vocabulary this dominates small models.
    logits = tokens * spec.vocab * (act_bytes + 2 * 4)
    return body + logits


def _check(mode: str, dtype: str, device: str, seq_len: int, batch: int, lora_rank: int) -> None:
    if mode not in MODES:
        raise UserError(f"unknown mode '{mode}'.", f"Use one of: {', '.join(MODES)}.")
    if dtype not in DTYPE_BITS:
        raise UserError(f"unknown dtype '{dtype}'.", f"Use one of: {', '.join(DTYPE_BITS)}.")
    if device not in DEVICES:
        raise UserError(f"unknown device '{device}'.", f"Use one of: {', '.join(DEVICES)}.")
    if seq_len < 1 or batch < 1 or lora_rank < 1:
        raise UserError(
            f"seq_len, batch and lora_rank must be positive (got {seq_len}, {batch}, {lora_rank}).",
            "Pass positive integers.",
        )


__all__ = [
    "DTYPE_BITS",
    "MODES",
    "MemoryEstimate",
    "activation_elems_per_token_layer",
    "estimate_memory",
    "lora_params",
    "weight_bytes",
]
