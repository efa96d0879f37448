"""`llmworks eval run|compare|arena`: evaluate a local model or a server on tasks; compare runs side by side;
judge runs' answers pairwise with a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Evaluate: benchmarks (MC, math, code, NIAH, custom), model as judge, HTML reports, comparisons.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def run(
    tasks: Annotated[
        str,
        typer.Option("--tasks", help="Comma-separated: names (smoke, mmlu, ...), NAME=PATH, or task YAMLs."),
    ],
    model: Annotated[
        str | None,
        typer.Option(
            "--model", help="A local model (default: the embedded one), or the served name with --base-url."
        ),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="An OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1."),
    ] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", help="Its API key.")] = None,
    output: Annotated[
        str | None,
        typer.Option("-o", "--output", help="Run directory (default out/eval/<model>); rerun to resume."),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most N samples per task.")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Requests in flight (HTTP).")] = 4,
    shots: Annotated[
        int, typer.Option("--shots", help="Few-shot examples (from the benchmark's dev/train files).")
    ] = 0,
    chat: Annotated[
        bool | None,
        typer.Option("--chat/--no-chat", help="Chat template on/off (default: on if the model has one)."),
    ] = None,
    judge: Annotated[
        str | None, typer.Option("--judge", help="Judge model (local) or URL for 'judge' metrics.")
    ] = None,
    engine: Annotated[
        str | None, typer.Option("--engine", help="llamacpp | transformers (local models).")
    ] = None,
    ctx: Annotated[int | None, typer.Option("--ctx", help="Context length for a local model.")] = None,
    retries: Annotated[int, typer.Option("--retries", help="Retries with backoff when a server fails.")] = 4,
) -> None:
    """Run tasks against a model; write results.json and report.html."""
    from llmworks.eval.runner import EvalConfig, evaluate

    cfg = EvalConfig(
        tasks=[t for t in tasks.split(",") if t.strip()],
        model=model,
        base_url=base_url,
        api_key=api_key,
        output_dir=output,
        limit=limit,
        concurrency=concurrency,
        shots=shots,
        chat=chat,
        judge=judge,
        engine=engine,
        ctx=ctx,
        retries=retries,
    )
    evaluate(cfg)


@app.command("compare")
def compare_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Run directories; the first is the baseline.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where compare.json and compare.html go.")
    ] = Path("out/eval/compare"),
) -> None:
    """Put runs side by side with deltas to the first (the forgetting report after fine-tuning)."""
    from llmworks.eval.report import compare

    path = compare(list(runs), output)
    typer.echo(f"comparison: {path}")


@app.command()
def arena(
    runs: Annotated[list[str], typer.Argument(help="Run directories of `llmworks eval run` (two or more).")],
    judge: Annotated[str, typer.Option("--judge", help="Judge: a local model, or a server URL.")],
    api_key: Annotated[str | None, typer.Option("--api-key", help="The judge server's API key.")] = None,
    baseline: Annotated[
        str | None, typer.Option("--baseline", help="The run to win/tie/lose against (default: the first).")
    ] = None,
    pairs: Annotated[
        str, typer.Option("--pairs", help="all: every pair of models; baseline: each vs the baseline.")
    ] = "all",
    tasks: Annotated[
        str | None,
        typer.Option("--tasks", help="Comma-separated tasks (default: all shared generation tasks)."),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="At most N samples per task.")] = None,
    output: Annotated[
        str, typer.Option("-o", "--output", help="Where arena.json and arena.html go; rerun to resume.")
    ] = "out/eval/arena",
    max_tokens: Annotated[int, typer.Option("--max-tokens", help="The judge's reply budget.")] = 512,
    concurrency: Annotated[int, typer.Option("--concurrency", help="Judge requests in flight (HTTP).")] = 4,
    retries: Annotated[int, typer.Option("--retries", help="Retries with backoff when a server fails.")] = 4,
) -> None:
    """Judge the runs' answers pairwise, in both orders: win/tie/loss vs a baseline, Bradley–Terry and Elo."""
    from llmworks.eval.arena import ArenaConfig, run_arena

    run_arena(
        ArenaConfig(
            runs=runs,
            judge=judge,
            api_key=api_key,
            baseline=baseline,
            pairs=pairs,  # type: ignore[arg-type]
            tasks=[t.strip() for t in tasks.split(",") if t.strip()] if tasks else None,
            limit=limit,
            output_dir=output,
            max_tokens=max_tokens,
            concurrency=concurrency,
            retries=retries,
        )
    )
