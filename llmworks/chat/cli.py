"""`llmworks chat [MODEL]` and `llmworks generate [MODEL] PROMPT`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

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

    params = _params(max_tokens, temperature, top_p, top_k, seed, stop, repetition_penalty)
    eng = _load(model, engine, ctx)
    session = ChatSession(eng, params, system=system if system is not None else eng.default_system())
    try:
        run_repl(session)
    finally:
        eng.close()


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
    params = _params(max_tokens, temperature, top_p, top_k, seed, stop, repetition_penalty)
    with _load(model, engine, ctx) as eng:
        if raw:
            deltas = eng.generate(prompt, params)
        else:
            system = system if system is not None else eng.default_system()
            messages = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": prompt}
            ]
            deltas = eng.chat(messages, params)
        stats = stream_reply(deltas, lambda t: (sys.stdout.write(t), sys.stdout.flush()))
    sys.stdout.write("\n")
    print(stats.line(), file=sys.stderr)


def _params(max_tokens, temperature, top_p, top_k, seed, stop, repetition_penalty):  # type: ignore[no-untyped-def]
    from llmworks.engines.base import SamplingParams

    try:
        return SamplingParams(
            max_tokens, temperature, top_p, top_k, seed, tuple(stop or ()), repetition_penalty
        )
    except ValueError as e:
        raise UserError(f"bad sampling option: {e}.", "See --help for the valid ranges.") from None


def _load(model, engine, ctx):  # type: ignore[no-untyped-def]
    from llmworks.engines import load_engine

    return load_engine(model, engine, n_ctx=ctx)
