"""`llmworks export merge|gguf|quant`: thin wrappers over `llmworks.export`'s functions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Export: merge adapters, HF → GGUF (+ llama.cpp quantization), int8/int4 for transformers.",
    no_args_is_help=True,
)

Out = Annotated[Path, typer.Option("--output", "-o", help="Where to write the export.")]
Model = Annotated[
    str | None,
    typer.Argument(help="HF dir, merged or full run dir, .gguf, registry name (default: embedded)."),
]
NoEval = Annotated[
    bool,
    typer.Option("--no-eval", help="Skip the measurements (perplexity, speed, agreement) in the report."),
]
Threads = Annotated[int | None, typer.Option("--threads", help="CPU threads (default: all).")]


@app.command()
def merge(
    run_dir: Annotated[
        Path, typer.Argument(help="A `llmworks train` run directory with a LoRA/DoRA adapter.")
    ],
    output: Out,
    no_eval: NoEval = False,
    threads: Threads = None,
) -> None:
    """Merge a run's adapter into its base: a standalone HF directory with tokenizer, chat template and card."""
    from llmworks.export.merge import merge as run

    _summary(run(run_dir, output, evaluate=not no_eval, n_threads=threads).to_json())


@app.command()
def gguf(
    output: Out,
    model: Model = None,
    quant: Annotated[
        str,
        typer.Option(
            "--quant",
            "-q",
            help="f16 | q8_0 | q4_k_m | q4_0, or another llama.cpp type (f32, bf16, q6_k, q5_k_m, q2_k, ...).",
        ),
    ] = "f16",
    no_eval: NoEval = False,
    threads: Threads = None,
) -> None:
    """Convert to GGUF and quantize with llama.cpp; writes FILE.gguf, FILE.gguf.md and FILE.gguf.report.json."""
    from llmworks.export.gguf import export_gguf

    _summary(export_gguf(model, output, quant, evaluate=not no_eval, n_threads=threads).to_json())


@app.command()
def quant(
    output: Out,
    model: Model = None,
    method: Annotated[
        str, typer.Option("--method", "-m", help="int8 (torchao) | int4 (bitsandbytes NF4).")
    ] = "int8",
    no_eval: NoEval = False,
    threads: Threads = None,
) -> None:
    """Weight-only int8/int4 for the transformers engine (`llmworks chat DIR --engine transformers`)."""
    from llmworks.export.hf_quant import quantize

    _summary(quantize(model, method, output, evaluate=not no_eval, n_threads=threads).to_json())


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
