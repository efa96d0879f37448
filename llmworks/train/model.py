"""Model loading for training: resolve → HF dir → fp32 model, then the method (LoRA, DoRA, QLoRA, full,
freeze) applied, with a memory check before anything is loaded."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from rich.console import Console

from llmworks.errors import MissingExtra, UserError
from llmworks.models.hf_weights import hf_dir_for
from llmworks.models.sources import ModelSource, resolve
from llmworks.train.config import TrainConfig
from llmworks.train.fused_lora import fuse_lora


def load_base(cfg: TrainConfig, console: Console) -> tuple[Any, Any, ModelSource, Path]:
    """(model, tokenizer, source, hf_dir) with the training method applied."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve(cfg.model or None)
    if source.adapter is not None:
        raise UserError(
            f"{cfg.model} is a LoRA adapter; training on top of an adapter is not supported.",
            "Merge it first, or train from its base model.",
        )
    check_memory(cfg, source, console)
    hf_dir = hf_dir_for(source)
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    if cfg.method == "qlora":
        kwargs: dict[str, Any] = {"quantization_config": _nf4_config(), "device_map": "cpu"}
    else:
        kwargs = {"dtype": torch.float32}
    model = AutoModelForCausalLM.from_pretrained(hf_dir, **kwargs)
    model.config.use_cache = False
    return apply_method(model, cfg), tokenizer, source, hf_dir


def apply_method(model: Any, cfg: TrainConfig) -> Any:
    if cfg.method in ("lora", "dora", "qlora"):
        from peft import LoraConfig, get_peft_model

        targets: Any = cfg.target_modules
        if targets == ["all-linear"]:
            targets = "all-linear"
        else:
            _check_targets(model, targets)
        lora = LoraConfig(
            r=cfg.lora_rank,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=targets,
            use_dora=cfg.method == "dora",
            task_type="CAUSAL_LM",
        )
        if cfg.method == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
        model = get_peft_model(model, lora)
        fuse_lora(model)
        return model
    if cfg.method == "freeze":
        n_layers = model.config.num_hidden_layers
        keep = {str(i) for i in range(max(0, n_layers - cfg.freeze_trainable_layers), n_layers)}
        for name, p in model.named_parameters():
            m = re.search(r"\.layers\.(\d+)\.", name)
            p.requires_grad = bool(m and m.group(1) in keep)
    return model  # full: everything trains


def trainable_summary(model: Any) -> str:
    total = sum(p.numel() for p in model.parameters())
    train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"trainable {train:,} of {total:,} parameters ({100 * train / max(total, 1):.2f}%)"


def check_memory(cfg: TrainConfig, source: ModelSource, console: Console) -> None:
    """Estimate peak memory before loading: an error if it exceeds the machine, a warning if it exceeds
    what is free now. Skipped for models the registry does not know."""
    if source.spec is None:
        return
    from llmworks.models.estimate import estimate_memory

    mode = {"dora": "lora"}.get(cfg.method, cfg.method)
    est = estimate_memory(
        source.spec,
        mode=mode,
        dtype="int4" if cfg.method == "qlora" else "fp32",
        seq_len=cfg.max_seq_len,
        batch=cfg.batch_size,
        lora_rank=cfg.lora_rank,
        device="cpu",
        trainable_layers=cfg.freeze_trainable_layers,
    )
    total, free = memory_bytes()
    need = est.total / 2**30
    if est.total > total:
        raise UserError(
            f"training {source.name} with method={cfg.method}, batch_size={cfg.batch_size}, "
            f"max_seq_len={cfg.max_seq_len} needs about {need:.1f} GiB, more than this machine's "
            f"{total / 2**30:.1f} GiB.",
            "Lower batch_size (raise grad_accum instead) or max_seq_len"
            + ("." if cfg.method in ("lora", "qlora") else ", or use method=lora."),
        )
    if est.total > free:
        console.print(
            f"[yellow]warning: about {need:.1f} GiB needed and {free / 2**30:.1f} GiB free now; "
            "the run may swap.[/yellow]"
        )


def memory_bytes() -> tuple[int, int]:
    """(total, available) RAM from /proc/meminfo (falls back to sysconf)."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        return int(info["MemTotal"].split()[0]) * 1024, int(info["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return total, total


def _check_targets(model: Any, targets: list[str]) -> None:
    import torch

    linear = sorted(
        {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    )
    names = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    unknown = [t for t in targets if t not in names]
    if unknown:
        raise UserError(
            f"unknown target module(s) {', '.join(unknown)} for {type(model).__name__}.",
            f"Use all-linear or some of: {', '.join(linear)}.",
        )


def _nf4_config() -> Any:
    import torch

    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise MissingExtra("bitsandbytes (needed for method=qlora)", "qlora") from None
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        # bitsandbytes >= 0.48 has CPU 4-bit kernels; bf16 compute is ~300x slower than fp32 on this CPU
        bnb_4bit_compute_dtype=torch.bfloat16 if torch.cuda.is_available() else torch.float32,
    )
