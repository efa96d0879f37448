"""`llmworks chat [MODEL]`, `llmworks generate [MODEL] PROMPT` and `llmworks models check [MODEL]`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from llmworks.client import RequestFailed
from llmworks.console import make_console
from llmworks.errors import UserError

Engine_ = Annotated[
    str | None, typer.Option("--engine", help="llamacpp | transformers (default: by model kind).")
]
MaxTokens = Annotated[int, typer.Option("--max-tokens", "-n", help="Most tokens to generate.")]
Temperature = Annotated[float, typer.Option("--temperature", "-t", help="0 = greedy (deterministic).")]
TopP = Annotated[float, typer.Option("--top-p", help="Nucleus sampling mass.")]
TopK = Annotated[int, typer.Option("--top-k", help="Sample among the k likeliest tokens; 0 = off.")]
Seed = Annotated[int | None, typer.Option("--seed", help="Makes sampling reproducible.")]
Stop = Annotated[list[str] | None, typer.Option("--stop", help="A string that ends generation (repeatable).")]
RepPenalty = Annotated[float, typer.Option("--repetition-penalty", help="> 1 discourages repeats.")]
Ctx = Annotated[
    int | None, typer.Option("--ctx", help="Context length (default: the model's, at most 8192).")
]
System = Annotated[str | None, typer.Option("--system", "-s", help="System prompt.")]


def chat(
    model: Annotated[
        str | None, typer.Argument(help="Registry name, .gguf, HF dir, run dir (default: embedded).")
    ] = None,
    engine: Engine_ = None,
    system: System = None,
    max_tokens: MaxTokens = 512,
    temperature: Temperature = 0.0,
    top_p: TopP = 1.0,
    top_k: TopK = 0,
    seed: Seed = None,
    stop: Stop = None,
    repetition_penalty: RepPenalty = 1.0,
    ctx: Ctx = None,
) -> None:
    """Chat in the terminal, streamed. In the chat: /system TEXT, /reset, /exit."""
    from llmworks.chat.session import ChatSession, run_repl

    options = _options(max_tokens, temperature, top_p, top_k, seed, stop, repetition_penalty)
    with _client(model, engine, ctx) as client:
        run_repl(ChatSession(client, options, system=system))


def generate(
    args: Annotated[
        list[str], typer.Argument(help="[MODEL] PROMPT: one argument is the prompt.", show_default=False)
    ],
    engine: Engine_ = None,
    system: System = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="Send the prompt as is, without the chat template.")
    ] = False,
    max_tokens: MaxTokens = 256,
    temperature: Temperature = 0.0,
    top_p: TopP = 1.0,
    top_k: TopK = 0,
    seed: Seed = None,
    stop: Stop = None,
    repetition_penalty: RepPenalty = 1.0,
    ctx: Ctx = None,
) -> None:
    """Answer one prompt, streamed to stdout (a stats line goes to stderr)."""
    from llmworks.chat.session import stream_reply

    if len(args) > 2:
        raise UserError(f"expected [MODEL] PROMPT, got {len(args)} arguments.", "Quote the prompt.")
    model, prompt = (None, args[0]) if len(args) == 1 else (args[0], args[1])
    if prompt == "-":
        prompt = sys.stdin.read()
    options = _options(max_tokens, temperature, top_p, top_k, seed, stop, repetition_penalty)
    with _client(model, engine, ctx) as client:
        try:
            if raw:
                done = client.complete(prompt, **options)
                sys.stdout.write(done.text)
                tokens, reason = done.usage.completion_tokens, done.finish_reason
                line = f"[{tokens} tokens, finish: {reason}]"
            else:
                messages = ([{"role": "system", "content": system}] if system else []) + [
                    {"role": "user", "content": prompt}
                ]
                stats = stream_reply(
                    client.chat_stream(messages, **options),
                    lambda t: (sys.stdout.write(t), sys.stdout.flush()),
                )
                line = stats.line()
        except RequestFailed as e:
            raise UserError(e.message, "") from None
    sys.stdout.write("\n")
    print(line, file=sys.stderr)


def _options(max_tokens, temperature, top_p, top_k, seed, stop, repetition_penalty):  # type: ignore[no-untyped-def]
    from llmworks.engines.types import SamplingParams

    try:  # checked here so a bad option is one clear error before the model loads
        SamplingParams(
            max_tokens, temperature, top_p, top_k, 0.0, seed, tuple(stop or ()), repetition_penalty
        )
    except ValueError as e:
        raise UserError(f"bad sampling option: {e}.", "See --help for the valid ranges.") from None
    return {
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k,
        "seed": seed,
        "stop": tuple(stop or ()),
        "repetition_penalty": repetition_penalty,
    }


def _client(model, engine, ctx):  # type: ignore[no-untyped-def]
    from llmworks.client import make_client

    return make_client(model, engine=engine, n_ctx=ctx)


def models_check(
    model: str | None = typer.Argument(
        None, help="Registry name, .gguf, HF dir (default: the embedded model)."
    ),
    engine: str | None = typer.Option(
        None, "--engine", help="llamacpp | transformers (default: by model kind)."
    ),
    max_tokens: int = typer.Option(
        128, "--max-tokens", help="Greedy answers must stop before this many tokens."
    ),
) -> None:
    """Check the chat template against the stop tokens: does the model end its turns? Exit 1 on a mismatch."""
    from llmworks.chat.check import check_model
    from llmworks.engines import load_engine

    console = make_console(width=200)
    with load_engine(model, engine) as eng:
        console.print(f"Checking {eng.name} ({type(eng).__name__}) ...")
        report = check_model(eng, max_tokens=max_tokens)
    style = {"ok": "green", "warn": "yellow", "FAIL": "red"}
    for f in report.findings:
        console.print(f"[{style[f.label]}]{f.label:4}[/] {f.what}", highlight=False)
        if not f.ok and f.fix:
            console.print(f"     fix: {f.fix}", highlight=False)
    bad = sum(not f.ok for f in report.findings)
    warned = sum(f.warning for f in report.findings)
    note = f" ({warned} warning(s))" if warned else ""
    console.print(f"[green]consistent[/green]{note}" if report.ok else f"[red]{bad} problem(s)[/red]{note}")
    if not report.ok:
        raise typer.Exit(1)
