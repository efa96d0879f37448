"""`llmworks bench ...`: benchmarks of a running stage. `serve` measures an OpenAI-compatible server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from llmworks.console import make_console
from llmworks.servebench.metrics import LevelResult

app = typer.Typer(help="Benchmarks: serving throughput and latency.", no_args_is_help=True)


@app.callback()
def _bench() -> None:
    """Benchmarks of running stages (a callback keeps `bench serve` a subcommand while it is the only one)."""


@app.command("serve")
def serve(
    base_url: str = typer.Option("http://127.0.0.1:8000", help="Server root (with or without /v1)."),
    model: Annotated[
        str | None, typer.Option(help="Model name; default: the first one GET /v1/models lists.")
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="OPENAI_API_KEY", help="Sent as 'Authorization: Bearer'.")
    ] = None,
    concurrency: str = typer.Option("1,4,16", help="Requests in flight, one level per value: 1,4,16."),
    num_prompts: int = typer.Option(32, help="Requests per concurrency level."),
    input_len: int = typer.Option(128, help="Prompt length in tokens (approximate: random words)."),
    output_len: int = typer.Option(128, help="max_tokens of each request."),
    seed: int = typer.Option(0, help="Seed of the synthetic prompts."),
    out: Annotated[
        Path | None, typer.Option(help="Write config + one result object per level as JSON here.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Write a PNG of throughput and latency vs concurrency here.")
    ] = None,
) -> None:
    """Throughput, TTFT, TPOT, ITL and end-to-end latency at each concurrency (as `vllm bench serve`)."""
    from llmworks.servebench.serve_client import (
        ServeBenchConfig,
        parse_concurrency,
        run_benchmark,
        write_results,
    )

    config = ServeBenchConfig(
        base_url=base_url,
        model=model,
        api_key=api_key,
        concurrency=parse_concurrency(concurrency),
        num_prompts=num_prompts,
        input_len=input_len,
        output_len=output_len,
        seed=seed,
    )
    console = make_console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        tasks = [
            progress.add_task(f"concurrency {c}", total=config.num_prompts, rate="", start=False)
            for c in config.concurrency
        ]

        def on_progress(level: int, done: int) -> None:
            task = tasks[level]
            progress.start_task(task)
            progress.update(task, completed=done)
            speed = progress.tasks[level].speed
            progress.update(task, rate=f"{speed:.2f} req/s" if speed else "")

        results = run_benchmark(config, on_progress)
    _print_table(make_console(), config.base_url, results)
    for r in results:
        for warning in r.warnings:
            console.print(f"[yellow]warning (concurrency {r.concurrency}):[/] {warning}")
    if out:
        write_results(out, config, results)
        console.print(f"results: {out}")
    if plot:
        from llmworks.servebench.plot import plot_results

        plot_results(plot, results, title=f"{config.base_url}  in={input_len} out={output_len}")
        console.print(f"plot: {plot}")


def _print_table(console: Console, base_url: str, results: list[LevelResult]) -> None:
    """One column per concurrency level, one row per metric (as vLLM prints them), so it fits 80 columns."""
    table = Table(title=f"Serving benchmark: {base_url}")
    table.add_column("metric")
    for r in results:
        table.add_column(f"c={r.concurrency}", justify="right")
    table.add_row("completed / failed", *(f"{r.completed} / {r.failed}" for r in results))
    table.add_row("request throughput (req/s)", *(f"{r.request_throughput:.2f}" for r in results))
    table.add_row("output throughput (tok/s)", *(f"{r.output_throughput:.1f}" for r in results))
    table.add_row("total throughput (tok/s)", *(f"{r.total_token_throughput:.1f}" for r in results))
    for key, name in (
        ("ttft_ms", "TTFT"),
        ("tpot_ms", "TPOT"),
        ("itl_ms", "ITL"),
        ("e2el_ms", "E2E latency"),
    ):
        for stat in ("mean", "p50", "p90", "p99"):
            values = [getattr(getattr(r, key), stat) for r in results]
            table.add_row(f"{name} {stat} (ms)", *("-" if v is None else f"{v:.1f}" for v in values))
    console.print(table)
