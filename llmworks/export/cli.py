"""`llmworks export merge|gguf|quant ARGS [--config FILE] [key=value ...] [--flags]`: thin wrappers over
`llmworks.export`'s functions, each filling its command's config (`llmworks.export.config`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from llmworks.config_cli import ConfigFile, arguments, from_cli, option
from llmworks.export.config import CardConfig, ExportConfig, GGUFConfig, MergeConfig, QuantConfig

app = typer.Typer(
    help="Export: merge adapters, HF → GGUF (+ llama.cpp quantization), int8/int4 for transformers.",
    no_args_is_help=True,
)

Out = Annotated[Path | None, option(ExportConfig, "output", "--output", "-o")]
Eval = Annotated[bool | None, option(ExportConfig, "eval", "--eval/--no-eval")]
Threads = Annotated[int | None, option(ExportConfig, "threads")]


@app.command()
def merge(
    args: Annotated[list[str] | None, arguments(MergeConfig, "run_dir")] = None,
    config: ConfigFile = None,
    output: Out = None,
    eval: Eval = None,
    threads: Threads = None,
) -> None:
    """Merge a run's adapter into its base: a standalone HF directory with tokenizer, chat template and card."""
    from llmworks.export.merge import merge as run

    cfg = from_cli(MergeConfig, config, args, "run_dir", output=output, eval=eval, threads=threads)
    assert cfg.run_dir is not None
    _summary(run(cfg.run_dir, cfg.out, evaluate=cfg.eval, n_threads=cfg.threads).to_json())


@app.command()
def gguf(
    args: Annotated[list[str] | None, arguments(GGUFConfig, "model")] = None,
    config: ConfigFile = None,
    output: Out = None,
    quant: Annotated[str | None, option(GGUFConfig, "quant", "--quant", "-q")] = None,
    eval: Eval = None,
    threads: Threads = None,
) -> None:
    """Convert to GGUF and quantize with llama.cpp; writes FILE.gguf, its card (.md), report and config."""
    from llmworks.export.gguf import export_gguf

    cfg = from_cli(GGUFConfig, config, args, "model", output=output, quant=quant, eval=eval, threads=threads)
    _summary(export_gguf(cfg.model, cfg.out, cfg.quant, evaluate=cfg.eval, n_threads=cfg.threads).to_json())


@app.command()
def quant(
    args: Annotated[list[str] | None, arguments(QuantConfig, "model")] = None,
    config: ConfigFile = None,
    output: Out = None,
    method: Annotated[str | None, option(QuantConfig, "method", "--method", "-m")] = None,
    eval: Eval = None,
    threads: Threads = None,
) -> None:
    """Weight-only int8/int4 for the transformers engine (`llmworks chat DIR --engine transformers`)."""
    from llmworks.export.hf_quant import quantize

    cfg = from_cli(
        QuantConfig, config, args, "model", output=output, method=method, eval=eval, threads=threads
    )
    _summary(quantize(cfg.model, cfg.method, cfg.out, evaluate=cfg.eval, n_threads=cfg.threads).to_json())


@app.command()
def card(
    args: Annotated[list[str] | None, arguments(CardConfig, "model")] = None,
    config: ConfigFile = None,
    evals: Annotated[list[Path] | None, option(CardConfig, "evals", "--eval")] = None,
    benches: Annotated[list[Path] | None, option(CardConfig, "benches", "--bench")] = None,
) -> None:
    """Put evaluation runs of an exported model into its model card (an Evaluation section)."""
    from llmworks.export.card import add_evaluation

    cfg = from_cli(CardConfig, config, args, "model", evals=evals, benches=benches)
    assert cfg.model is not None
    typer.echo(f"model card: {add_evaluation(cfg.model, cfg.evals, cfg.benches)}")


def _summary(report: dict[str, object]) -> None:
    """The report's headline numbers on stdout, one `key: value` per line."""
    keys = ("output", "method", "size_ratio", "max_abs_logit_diff", "perplexity_delta", "decode_speedup")
    for k in keys:
        if report.get(k) is not None:
            typer.echo(f"{k}: {report[k]}")
    for m in report.get("measurements") or []:  # type: ignore[attr-defined]
        agree = m["greedy_agreement"]
        typer.echo(
            f"  {m['model']}: perplexity {m['perplexity']}, {m['decode_tok_s']} tok/s"
            + (
                f", greedy agreement {agree:.1%}, identical answers {m['identical_outputs']}"
                if agree is not None
                else ""
            )
        )
