"""One config per export command (`llmworks export merge|gguf|quant ... [--config FILE] [key=value ...]`).

Each export saves the config that made it beside its report: `DIR/export_config.yaml` in an export
directory (its `config.yaml` name is taken: `train_config.yaml` is the training run's), `FILE.gguf.config.yaml`
next to a GGUF. `llmworks export CMD --config THAT_FILE output=NEW` repeats the export.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from llmworks.config import StageConfig

QUANT_METHODS = ("int8", "int4")
DIR_CONFIG = "export_config.yaml"
"""The saved config's name inside a merge or quant export directory."""


def gguf_config_path(gguf: Path) -> Path:
    """Where the config of the GGUF export `gguf` is saved."""
    return gguf.with_name(gguf.name + ".config.yaml")


class ExportConfig(StageConfig):
    """What every export shares."""

    output: Path | None = None
    """Where to write the export: a directory (merge, quant), or NAME.gguf (gguf)."""
    eval: bool = True
    """Measure source and export (perplexity, decode speed, greedy agreement) for the report."""
    threads: int | None = None
    """CPU threads (default: all)."""

    def problems(self) -> list[str]:
        errors = []
        if self.output is None:
            errors.append("output is not set (give -o PATH or output=PATH)")
        if self.threads is not None and self.threads < 1:
            errors.append(f"threads={self.threads} (must be >= 1)")
        return errors

    @property
    def out(self) -> Path:
        assert self.output is not None  # checked above
        return self.output


class MergeConfig(ExportConfig):
    """`llmworks export merge RUN_DIR -o DIR`: base + LoRA/DoRA adapter -> one standalone HF directory."""

    run_dir: Path | None = None
    """A `llmworks train` run directory with a LoRA/DoRA adapter."""

    def problems(self) -> list[str]:
        missing = (
            ["run_dir is not set (give the run directory, or run_dir=PATH)"] if self.run_dir is None else []
        )
        return [*super().problems(), *missing]


class GGUFConfig(ExportConfig):
    """`llmworks export gguf [MODEL] -o FILE.gguf --quant TYPE`: HF -> GGUF, then llama.cpp's quantizer."""

    model: str | None = None
    """HF dir, merged or full run dir, .gguf, registry name (default: the embedded model)."""
    quant: str = "f16"
    """f16 | q8_0 | q4_k_m | q4_0, or another llama.cpp type (f32, bf16, q6_k, q5_k_m, q2_k, ...)."""

    @field_validator("quant", mode="before")
    @classmethod
    def _lower(cls, v: object) -> object:
        return v.lower() if isinstance(v, str) else v

    def problems(self) -> list[str]:
        from llmworks.export.gguf import GGUF_TYPES

        errors = super().problems()
        if self.quant not in GGUF_TYPES:
            errors.append(f"quant={self.quant!r} (choose one of {', '.join(GGUF_TYPES)})")
        if self.output is not None and self.output.suffix.lower() != ".gguf":
            errors.append(f"output={str(self.output)!r} (give a NAME.gguf file name)")
        return errors


class QuantConfig(ExportConfig):
    """`llmworks export quant [MODEL] --method int8|int4 -o DIR`: weight-only quantization for transformers."""

    model: str | None = None
    """HF dir, merged or full run dir, registry name (default: the embedded model)."""
    method: str = "int8"
    """int8 (torchao) | int4 (bitsandbytes NF4)."""

    def problems(self) -> list[str]:
        errors = super().problems()
        if self.method not in QUANT_METHODS:
            errors.append(f"method={self.method!r} (choose one of {', '.join(QUANT_METHODS)})")
        return errors


class CardConfig(StageConfig):
    """`llmworks export card MODEL --eval RUN_DIR ...`: the model's evaluation runs, as a table in its card."""

    model: Path | None = None
    """An exported model: a .gguf file (card FILE.gguf.md) or an export directory (card README.md)."""
    evals: list[Path] = Field(default_factory=list)
    """`llmworks eval run` directories (their results.json) of this model, in the order to show them."""
    benches: list[Path] = Field(default_factory=list)
    """Files `python bench/agent.py --only tasks --model MODEL` wrote: the tool-use task set's results."""

    def problems(self) -> list[str]:
        errors = [] if self.model is not None else ["model is not set (give the exported model)"]
        if not self.evals:
            errors.append("no evaluation runs (give --eval RUN_DIR, repeatable)")
        return errors
