"""`llmworks models ...`: list the registry, inspect a model, estimate its memory.

Each command is a plain function on `app`. `models check` runs a model, so it lives above the engines, in
`llmworks/chat/cli.py`, and the root CLI adds it to this group.
Heavy libraries (gguf, huggingface_hub) are imported inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from llmworks.console import make_console
from llmworks.errors import UserError
from llmworks.models.registry import DEFAULT_MODEL, ModelSpec, registry

app = typer.Typer(
    help="Model registry: list known families, inspect a model, estimate memory.",
    no_args_is_help=True,
)


def _console() -> Console:
    return make_console(width=200)  # pipes and tests: don't wrap the registry table


def _fmt_params(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.0f}M"


def _local_path(spec: ModelSpec) -> Path | None:
    """Where the model is on disk right now (embedded wheel or HF cache), without loading anything."""
    from llmworks.models.sources import resolve

    try:
        return resolve(spec.name).path
    except UserError:
        return None


@app.command("list")
def list_models() -> None:
    """Show the registry: shapes, context, chat template source and stop tokens; mark local models."""
    table = Table(title="llmworks model registry  (* = embedded default, local = on disk now)")
    for col in ("name", "family", "params", "layers", "hidden", "heads/kv", "vocab", "context"):
        table.add_column(col, justify="right" if col not in ("name", "family") else "left")
    for col in ("template", "stop", "local"):
        table.add_column(col)
    for spec in registry().values():
        local = _local_path(spec)
        table.add_row(
            spec.name + (" *" if spec.name == DEFAULT_MODEL else ""),
            spec.family,
            _fmt_params(spec.params),
            str(spec.layers),
            str(spec.hidden),
            f"{spec.heads}/{spec.kv_heads}",
            f"{spec.vocab:,}",
            f"{spec.context:,}",
            spec.template,
            " ".join(spec.stop),
            ("embedded" if spec.embedded else "yes") if local else "",
        )
    _console().print(table)


def _kv_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for k, v in rows.items():
        table.add_row(k, "" if v is None else str(v))
    return table


def _spec_rows(spec: ModelSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "family": spec.family,
        "arch": spec.arch,
        "params": f"{_fmt_params(spec.params)} ({spec.params:,.0f})",
        "layers": spec.layers,
        "hidden": spec.hidden,
        "intermediate": spec.intermediate,
        "heads / kv heads": f"{spec.heads} / {spec.kv_heads}",
        "head dim": spec.head_size,
        "vocab": f"{spec.vocab:,}",
        "context": f"{spec.context:,}",
        "tied embeddings": "yes" if spec.tied_embeddings else "no",
        "chat template": spec.template,
        "stop tokens": " ".join(spec.stop) or "-",
    }


@app.command()
def info(
    model: str = typer.Argument(..., help="Registry name, .gguf file, HF directory or HF cache id."),
) -> None:
    """Show a model's shape, template and stop tokens (GGUF metadata or config.json for local models)."""
    from llmworks.models.inspect import gguf_info, spec_for

    spec, path = spec_for(model)
    console = _console()
    if path is not None and path.suffix.lower() == ".gguf":
        meta = gguf_info(path)  # cached: spec_for already read it
        rows = _spec_rows(spec)
        rows.update(
            {
                "file": str(path),
                "file type": meta["file_type"],
                "file size": f"{meta['file_bytes'] / 2**20:,.1f} MiB",
                "chat template": "yes (in GGUF)" if meta["chat_template"] else "no",
                "bos token": meta["bos_token"],
                "eos token": meta["eos_token"],
            }
        )
        console.print(_kv_table(f"{path.name} (GGUF)", rows))
        return
    rows = _spec_rows(spec)
    if path is not None:
        rows["path"] = str(path)
        console.print(_kv_table(f"{spec.name} (config.json)", rows))
        return
    local = _local_path(spec)
    rows.update(
        {"HF repo": spec.hf_repo or "-", "on disk": str(local) if local else "no", "notes": spec.notes}
    )
    if spec.embedded:
        rows["embedded"] = spec.embedded
    console.print(_kv_table(f"{spec.name} (registry)", rows))


@app.command()
def estimate(
    model: str = typer.Argument(..., help="Registry name, .gguf file, HF directory or HF cache id."),
    mode: str = typer.Option("infer", help="infer | lora | qlora | freeze | full"),
    dtype: str = typer.Option(
        "",
        help="Base weights: fp32 | bf16 | fp16 | int8 | int4 | a GGUF type (q4_1, q8_0, ...). "
        "Default: the GGUF's type for a .gguf, int4 for qlora, else bf16 (cuda) / fp32 (cpu).",
    ),
    seq_len: int = typer.Option(2048, "--seq-len", help="Tokens per sequence (the context for infer)."),
    batch: int = typer.Option(1, help="Sequences per step."),
    grad_checkpointing: bool = typer.Option(
        False, "--grad-checkpointing", help="Recompute activations in backward."
    ),
    lora_rank: int = typer.Option(8, "--lora-rank", help="LoRA rank (all linear layers)."),
    device: str = typer.Option(
        "",
        help="cuda | cpu: sets runtime overhead and allocator slack. Default: cuda if this machine has one.",
    ),
    pure_16bit: bool = typer.Option(
        False, "--pure-16bit", help="full/freeze: no fp32 master weights or states."
    ),
) -> None:
    """Estimate peak memory (GiB) for inference or fine-tuning: weights, KV cache, grads, optimizer, activations."""
    import shutil

    from llmworks.models.estimate import GGUF_DTYPES, estimate_memory
    from llmworks.models.inspect import gguf_info, spec_for

    device = device or ("cuda" if shutil.which("nvidia-smi") else "cpu")
    spec, path = spec_for(model)
    weights_bytes, engine = None, None
    if path is not None and path.suffix.lower() == ".gguf":
        # A GGUF's own file is its weights: use its size rather than the formula; llama.cpp runs it.
        meta = gguf_info(path)
        weights_bytes, engine = meta["file_bytes"], "llama.cpp"
        if not dtype:
            ftype = meta["file_type"].lower()
            dtype = {"all_f32": "fp32", "f16": "fp16", "bf16": "bf16"}.get(ftype, ftype)
            dtype = next((d for d in GGUF_DTYPES if dtype.startswith(d)), dtype)  # q4_k_m -> q4_k
    elif not dtype:
        dtype = "int4" if mode == "qlora" else ("fp32" if device == "cpu" else "bf16")
    est = estimate_memory(
        spec, mode, dtype.lower(), seq_len=seq_len, batch=batch, grad_checkpointing=grad_checkpointing,
        lora_rank=lora_rank, device=device, pure_16bit=pure_16bit, weights_bytes=weights_bytes, engine=engine,
    )  # fmt: skip
    table = Table()
    table.add_column("row")
    table.add_column("GiB", justify="right")
    for row, value in est.gib().items():
        table.add_row(row, f"{value:.2f}", style="bold" if row == "total" else None)
    console = _console()
    console.print(f"[bold]{spec.name}[/bold]: {mode}, {est.dtype}, seq {seq_len} x batch {batch}, {device}")
    console.print(table)
    for note in est.notes:
        console.print(f"- {note}")
