"""One typed config per training mode (the stage config mechanism of `llmworks.config`). Values resolve as:
defaults, then a YAML recipe, then `key=value` overrides. Unknown keys and bad values are one error listing
all of them."""

from __future__ import annotations

from pathlib import Path
from typing import Self, TypeVar

from pydantic import Field, model_validator

from llmworks.config import StageConfig

METHODS = ("lora", "dora", "qlora", "full", "freeze")
C = TypeVar("C", bound="TrainConfig")


class TrainConfig(StageConfig):
    """What every training mode shares: model, data, optimisation, run bookkeeping."""

    # -- model --
    model: str = ""
    """Any model argument `llmworks.models.sources.resolve` accepts; empty = the embedded default."""
    method: str = "lora"
    """lora | dora | qlora (4-bit NF4 base, needs bitsandbytes) | full | freeze (last `freeze_trainable_layers`)."""
    lora_rank: int = 8
    """LoRA rank r."""
    lora_alpha: int = 16
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input."""
    target_modules: list[str] = Field(default_factory=lambda: ["all-linear"])
    """Module names to adapt (e.g. [q_proj, v_proj]); `all-linear` = every linear layer but the LM head."""
    freeze_trainable_layers: int = 2
    """For method=freeze: how many of the last transformer layers to train."""

    # -- data --
    data: list[str] = Field(default_factory=list)
    """Training files: JSONL/JSON/CSV/Parquet (messages, sharegpt or alpaca; text for pretrain). `path#N`
    takes N records (sampled with `seed`, repeated if N exceeds the file); `builtin:sentiment` and
    `builtin:memory` are the train splits of the demo's sentiment and two-turn memory tasks; `builtin:general`
    is the embedded model's own answers to everyday prompts (mix it in to keep general ability)."""
    val_data: list[str] = Field(default_factory=list)
    """Validation files; if empty, `val_ratio` of the training records are held out."""
    val_ratio: float = 0.0
    """Share of training records held out for the eval loss when `val_data` is empty."""
    max_seq_len: int = 1024
    """Tokens per sample; longer samples are truncated (and counted)."""
    packing: bool = False
    """Concatenate samples into rows of `max_seq_len` (no padding; attention stays within a sample)."""
    model_name: str = ""
    """Fills `{{NAME}}` in the data (self-cognition records)."""
    model_author: str = ""
    """Fills `{{AUTHOR}}` in the data."""

    # -- optimisation --
    max_steps: int = 0
    """Optimizer steps; 0 = `epochs` passes over the data."""
    epochs: float = 1.0
    """Passes over the data when max_steps is 0."""
    batch_size: int = 4
    """Samples (or packed rows) per micro-batch."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    lr: float = 2e-4
    """Peak learning rate (AdamW)."""
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    """Share of steps with linear warm-up; cosine decay after."""
    max_grad_norm: float = 1.0
    """Gradient clipping; 0 disables it."""
    seed: int = 42
    """Seeds the data order, the split, the sampling and the weights init."""
    threads: int = 0
    """torch threads; 0 = all cores."""

    # -- run --
    output_dir: str = "out/run"
    """Where the adapter/weights, config.yaml, metrics.jsonl, loss.png, README.md and checkpoints go."""
    logging_steps: int = 1
    """Write a metrics line every N steps."""
    eval_steps: int = 0
    """Eval loss every N steps (0 = only at the end)."""
    save_steps: int = 0
    """Checkpoint every N steps (0 = only on Ctrl-C)."""
    resume: bool = False
    """Continue from the newest checkpoint in `output_dir`."""
    eval_before_after: bool = False
    """Forgetting guard: perplexity on held-out general text, and the eval stage's `guard_tasks`, before and
    after training, with a warning when either got worse by more than `forgetting_threshold`."""
    general_text: str = ""
    """Text file (paragraphs split by blank lines) for the guard; empty = the shipped llmworks/train/general.txt."""
    guard_tasks: list[str] = Field(default_factory=lambda: ["general-smoke"])
    """Eval tasks for the guard (`llmworks eval run --tasks` names); [] = perplexity only."""
    forgetting_threshold: float = 0.10
    """Warn when general-text perplexity rises by more than this fraction, or a guard task's score drops by
    more than this many points (scores are 0-1)."""
    check_after: bool = True
    """Run `llmworks models check` (stop-token check with greedy answers) on the result."""

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        errors = []
        if self.method not in METHODS:
            errors.append(f"method={self.method!r} (choose one of {', '.join(METHODS)})")
        for name in ("lora_rank", "batch_size", "grad_accum", "max_seq_len", "logging_steps"):
            if getattr(self, name) < 1:
                errors.append(f"{name}={getattr(self, name)} (must be >= 1)")
        for name in ("max_steps", "eval_steps", "save_steps", "threads"):
            if getattr(self, name) < 0:
                errors.append(f"{name}={getattr(self, name)} (must be >= 0)")
        if not 0 <= self.val_ratio < 1:
            errors.append(f"val_ratio={self.val_ratio} (must be in [0, 1))")
        if self.max_steps == 0 and self.epochs <= 0:
            errors.append("epochs must be > 0 when max_steps is 0")
        if self.lr <= 0:
            errors.append(f"lr={self.lr} (must be > 0)")
        if self.method == "freeze" and self.freeze_trainable_layers < 1:
            errors.append("freeze_trainable_layers must be >= 1 for method=freeze")
        if not self.target_modules:
            errors.append("target_modules is empty (use [all-linear] or module names)")
        if not self.data:
            errors.append("data is empty (give data=path.jsonl or a list in the YAML)")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    @property
    def uses_peft(self) -> bool:
        return self.method in ("lora", "dora", "qlora")


class SFTConfig(TrainConfig):
    """Supervised fine-tuning on chat data: loss on every assistant turn, end-of-turn token included."""


class DPOConfig(TrainConfig):
    """Direct preference optimisation on prompt/chosen/rejected records."""

    beta: float = 0.1
    """DPO temperature: how far the policy may move from the reference."""
    lr: float = 5e-5

    @model_validator(mode="after")
    def _positive_beta(self) -> Self:
        if self.beta <= 0:
            raise ValueError(f"beta={self.beta} (must be > 0)")
        return self


class PretrainConfig(TrainConfig):
    """Continued pre-training on plain text: every token is a target, samples are packed."""

    packing: bool = True


def load_config(cls: type[C], path: str | Path | None, overrides: list[str]) -> C:
    """`cls` filled from the YAML at `path` (optional), then from `key=value` overrides."""
    return cls.resolve(path, overrides)


def to_yaml(cfg: TrainConfig) -> str:
    return cfg.to_yaml()
