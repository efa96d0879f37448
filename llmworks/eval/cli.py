"""`llmworks eval run|compare|arena`: evaluate a local model or a server on tasks; compare runs side by side;
judge runs' answers pairwise with a model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from llmworks.config_cli import ConfigFile, arguments, from_cli, option
from llmworks.eval.config import EvalConfig

app = typer.Typer(
    help="Evaluate: benchmarks (MC, math, code, NIAH, custom), model as judge, HTML reports, comparisons.",
    no_args_is_help=True,
    add_completion=False,
)


def _opt(key: str, *decls: str) -> Any:
    return option(EvalConfig, key, *decls)


@app.command()
def run(
    args: Annotated[list[str] | None, arguments(EvalConfig)] = None,
    config: ConfigFile = None,
    tasks: Annotated[str | None, _opt("tasks")] = None,
    model: Annotated[str | None, _opt("model")] = None,
    base_url: Annotated[str | None, _opt("base_url")] = None,
    api_key: Annotated[str | None, _opt("api_key")] = None,
    output: Annotated[str | None, _opt("output_dir", "-o", "--output")] = None,
    limit: Annotated[int | None, _opt("limit")] = None,
    concurrency: Annotated[int | None, _opt("concurrency")] = None,
    shots: Annotated[int | None, _opt("shots")] = None,
    chat: Annotated[bool | None, _opt("chat", "--chat/--no-chat")] = None,
    method: Annotated[str | None, _opt("method")] = None,
    tool_choice: Annotated[str | None, _opt("tool_choice")] = None,
    tool_grammar: Annotated[bool | None, _opt("tool_grammar", "--tool-grammar/--no-tool-grammar")] = None,
    judge: Annotated[str | None, _opt("judge")] = None,
    engine: Annotated[str | None, _opt("engine")] = None,
    ctx: Annotated[int | None, _opt("ctx")] = None,
    retries: Annotated[int | None, _opt("retries")] = None,
    harness: Annotated[str | None, _opt("harness")] = None,
) -> None:
    """Run tasks against a model; write results.json and report.html (the resolved config: config.yaml)."""
    from llmworks.eval.runner import evaluate

    cfg = from_cli(
        EvalConfig, config, args,
        tasks=tasks, model=model, base_url=base_url, api_key=api_key, output_dir=output, limit=limit,
        concurrency=concurrency, shots=shots, chat=chat, method=method, tool_choice=tool_choice, judge=judge,
        tool_grammar=tool_grammar, engine=engine, ctx=ctx, retries=retries, harness=harness,
    )  # fmt: skip
    evaluate(cfg)


@app.command("compare")
def compare_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Run directories; the first is the baseline.")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Where compare.json and compare.html go.")
    ] = Path("out/eval/compare"),
) -> None:
    """Put runs side by side with deltas to the first, each tested for significance on the paired samples (the
    forgetting report after fine-tuning); warns when runs scored a task differently."""
    from llmworks.console import make_console
    from llmworks.eval.report import compare, print_comparison

    console = make_console(stderr=True)
    path = compare(list(runs), output, console)
    print_comparison(path.parent / "compare.json", console)
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
