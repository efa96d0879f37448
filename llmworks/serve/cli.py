"""`llmworks serve [MODEL ...] [--config serve.yaml] [key=value ...] [--flags]`: start the OpenAI-compatible
server (and web chat) on one or more models. The settings fill one `ServeConfig`; the server logs them at
start (`llmworks.serve` logger; the full YAML at --log-level debug)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

from llmworks.config_cli import ConfigFile, arguments, from_cli, option
from llmworks.errors import UserError
from llmworks.serve.config import LOOPBACK, ServeConfig

if TYPE_CHECKING:
    from llmworks.serve.app import ServerState


def serve(
    args: Annotated[list[str] | None, arguments(ServeConfig, "models")] = None,
    config: ConfigFile = None,
    engine: Annotated[str | None, option(ServeConfig, "engine")] = None,
    host: Annotated[str | None, option(ServeConfig, "host")] = None,
    port: Annotated[int | None, option(ServeConfig, "port")] = None,
    lora: Annotated[list[str] | None, option(ServeConfig, "lora")] = None,
    api_key: Annotated[str | None, option(ServeConfig, "api_key")] = None,
    max_queue: Annotated[int | None, option(ServeConfig, "max_queue")] = None,
    parallel: Annotated[int | None, option(ServeConfig, "parallel")] = None,
    ctx: Annotated[int | None, option(ServeConfig, "ctx")] = None,
    embedding_model: Annotated[str | None, option(ServeConfig, "embedding_model")] = None,
    log_level: Annotated[str | None, option(ServeConfig, "log_level")] = None,
    agent: Annotated[list[str] | None, option(ServeConfig, "agents", "--agent")] = None,
    agent_builder: Annotated[bool | None, option(ServeConfig, "agent_builder", "--agent-builder")] = None,
    tool_grammar: Annotated[bool | None, option(ServeConfig, "tool_grammar")] = None,
    kb: Annotated[list[str] | None, option(ServeConfig, "kb")] = None,
    kb_dir: Annotated[str | None, option(ServeConfig, "kb_dir")] = None,
    rag_access: Annotated[str | None, option(ServeConfig, "rag_access")] = None,
    rag_config: Annotated[str | None, option(ServeConfig, "rag_config")] = None,
) -> None:
    """Serve models behind an OpenAI-compatible API, with a web chat at /."""
    import logging
    import socket

    import uvicorn

    from llmworks.console import make_console
    from llmworks.engines.embedder import Embedder
    from llmworks.serve.app import ServerState, create_app
    from llmworks.serve.served import load_served_models

    cfg = from_cli(
        ServeConfig, config, args, "models",
        engine=engine, host=host, port=port, lora=lora, api_key=api_key, max_queue=max_queue,
        parallel=parallel, ctx=ctx, embedding_model=embedding_model, log_level=log_level, agents=agent,
        agent_builder=agent_builder, tool_grammar=tool_grammar, kb=kb, kb_dir=kb_dir, rag_access=rag_access, rag_config=rag_config,
    )  # fmt: skip
    if cfg.api_key is None and os.environ.get("LLMWORKS_API_KEY"):
        cfg.api_key = os.environ["LLMWORKS_API_KEY"]
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("llmworks").setLevel(cfg.log_level.upper())
    log = logging.getLogger("llmworks.serve")
    log.info("serve config: %s", cfg.summary_line())
    log.debug("resolved config (reuse it with --config FILE):\n%s", _masked_yaml(cfg))
    console = make_console(stderr=True)
    host, port, key = cfg.host, cfg.port, cfg.api_key
    if host not in LOOPBACK and not key:
        console.print(
            f"[yellow]warning: serving on {host} without --api-key: anyone who can reach this port can use "
            "the models. Set --api-key (or LLMWORKS_API_KEY).[/yellow]"
        )
    if cfg.engine == "vllm":
        from llmworks.serve.vllm import serve_vllm

        serve_vllm(cfg.models, host, port, key, cfg.ctx, console)
        return
    served = load_served_models(cfg.models, cfg.engine, cfg.lora, cfg.parallel, cfg.ctx, cfg.max_queue)
    for m in served.values():
        m.tool_grammar = cfg.tool_grammar
    state = ServerState(served, api_key=key, embedder=Embedder(cfg.embedding_model))
    if cfg.agents:
        from llmworks.serve.agents import load_agent_apps

        state.apps.update(load_agent_apps(cfg.agents, served))
    if cfg.kb:
        _add_knowledge_bases(state, cfg)
    app = create_app(state)
    if cfg.agent_builder:
        from llmworks.serve.builder import install_builder

        install_builder(app, state, cfg.kb_dir)

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
    if state.apps:
        console.print(f"  apps:            {', '.join(state.apps)}")
    console.print(f"  OpenAI base URL: {base}/v1")
    console.print(f"  web chat:        {base}/")
    if cfg.agent_builder:
        console.print(f"  agent builder:   {base}/builder")
    console.print(f"  embeddings:      {state.embedder.name if state.embedder else 'none'}")
    if key:
        console.print("  API key required (Authorization: Bearer ...)")
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2, log_config=None)
    )
    try:
        server.run(sockets=[sock])
    finally:
        for a in state.apps.values():
            a.close()
        for m in served.values():
            m.engine.close()


def _add_knowledge_bases(state: ServerState, cfg: ServeConfig) -> None:
    """`rag:NAME` apps answered by the first served model (in process, sharing its batch), and the
    access file's keys."""
    from llmworks.client.local import LocalClient
    from llmworks.rag.config import AskConfig
    from llmworks.serve.rag import access_keys, load_rag_apps

    first = next(iter(state.models.values()))
    client = LocalClient(first.engine, owns_engine=False)
    ask = AskConfig.resolve(cfg.rag_config) if cfg.rag_config else AskConfig()
    state.apps.update(load_rag_apps(cfg.kb, cfg.kb_dir, client, ask))
    if cfg.rag_access:
        state.keys.update(access_keys(cfg.rag_access, list(state.models), state.apps))


def _masked_yaml(cfg: ServeConfig) -> str:
    import yaml

    data = cfg.model_dump(mode="json")
    if data.get("api_key"):
        data["api_key"] = "***"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
