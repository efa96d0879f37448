"""`llmworks serve`: start the OpenAI-compatible server (and web chat) on one or more models."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from llmworks.errors import UserError


def serve(
    models: Annotated[
        list[str] | None, typer.Argument(help="Models to serve (default: the embedded one).")
    ] = None,
    engine: Annotated[str | None, typer.Option("--engine", help="llamacpp | transformers | vllm.")] = None,
    host: Annotated[
        str, typer.Option("--host", help="Bind address (loopback unless told otherwise).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port; 0 picks a free one.")] = 8000,
    lora: Annotated[
        list[str] | None, typer.Option("--lora", help="NAME=PATH of a LoRA adapter (repeatable).")
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key", help="Require 'Authorization: Bearer KEY' on /v1 (or set LLMWORKS_API_KEY)."
        ),
    ] = None,
    max_queue: Annotated[int, typer.Option("--max-queue", help="Requests that may wait; past it: 429.")] = 64,
    parallel: Annotated[int, typer.Option("--parallel", help="Sequences decoded together (llamacpp).")] = 8,
    ctx: Annotated[int, typer.Option("--ctx", help="Context per sequence, prompt + completion.")] = 2048,
    embedding_model: Annotated[
        str | None, typer.Option("--embedding-model", help="sentence-transformers dir for /v1/embeddings.")
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug | info (a line per request) | warning | error.")
    ] = "info",
) -> None:
    """Serve models behind an OpenAI-compatible API, with a web chat at /."""
    import logging
    import socket

    import uvicorn
    from rich.console import Console

    from llmworks.engines.embedder import Embedder
    from llmworks.serve.app import ServerState, create_app
    from llmworks.serve.served import load_served_models

    if parallel < 1 or ctx < 16 or max_queue < 0:
        raise UserError("--parallel must be >= 1, --ctx >= 16 and --max-queue >= 0.", "")
    level = logging.getLevelNamesMapping().get(log_level.upper())
    if level is None:
        raise UserError(f"unknown --log-level '{log_level}'.", "Use debug, info, warning or error.")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("llmworks").setLevel(level)
    console = Console(stderr=True)
    key = api_key or os.environ.get("LLMWORKS_API_KEY") or None
    if host not in ("127.0.0.1", "localhost", "::1") and not key:
        console.print(
            f"[yellow]warning: serving on {host} without --api-key: anyone who can reach this port can use "
            "the models. Set --api-key (or LLMWORKS_API_KEY).[/yellow]"
        )
    if engine == "vllm":
        from llmworks.serve.vllm import serve_vllm

        ignored = [
            flag
            for flag, given in (
                ("--lora", bool(lora)),
                ("--parallel", parallel != 8),
                ("--max-queue", max_queue != 64),
                ("--embedding-model", embedding_model is not None),
            )
            if given
        ]
        if ignored:
            raise UserError(
                f"--engine vllm does not take {', '.join(ignored)}: vLLM schedules and batches by itself.",
                "Drop those flags, or pass vLLM's own options by running `vllm serve` directly.",
            )
        serve_vllm(models or [], host, port, key, ctx, console)
        return
    served = load_served_models(list(models or []), engine, list(lora or []), parallel, ctx, max_queue)
    state = ServerState(served, api_key=key, embedder=Embedder(embedding_model))
    app = create_app(state)

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        raise UserError(f"cannot listen on {host}:{port} ({e.strerror}).", "Pick another --port.") from None
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    console.print(f"llmworks serving {', '.join(f'{m.name} ({m.engine_kind})' for m in served.values())}")
    console.print(f"  OpenAI base URL: {base}/v1")
    console.print(f"  web chat:        {base}/")
    console.print(f"  embeddings:      {state.embedder.name if state.embedder else 'none'}")
    if key:
        console.print("  API key required (Authorization: Bearer ...)")
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, log_config=None)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        for m in served.values():
            m.engine.close()
