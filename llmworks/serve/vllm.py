"""`llmworks serve --engine vllm`: the model runs on vLLM (`vllm serve`), behind our API key, web chat and port.

vLLM speaks the OpenAI API already, so this starts it on a private loopback port and forwards /v1/* to it
(streams included). vLLM is an optional extra: it needs a GPU build, which these CPU machines do not have.
"""

from __future__ import annotations

import importlib.util
import secrets
import shutil
import subprocess
import sys
from importlib import resources
from typing import Any

from llmworks.errors import MissingExtra, UserError
from llmworks.local_server import free_port, stop_process, wait_ready
from llmworks.models.sources import resolve


def vllm_command(model: str, name: str, port: int, ctx: int) -> list[str]:
    exe = shutil.which("vllm")
    base = [exe] if exe else [sys.executable, "-m", "vllm.entrypoints.cli.main"]
    return [
        *base,
        "serve",
        model,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--served-model-name",
        name,
        "--max-model-len",
        str(ctx),
    ]


def serve_vllm(models: list[str], host: str, port: int, api_key: str | None, ctx: int, console: Any) -> None:
    if importlib.util.find_spec("vllm") is None:
        raise MissingExtra("vLLM (for --engine vllm)", "vllm")
    if len(models) > 1:
        raise UserError("--engine vllm serves one model per server.", "Start one server per model.")
    source = resolve(models[0] if models else None)
    inner = free_port()
    proc = subprocess.Popen(vllm_command(str(source.path), source.name, inner, ctx))
    try:
        wait_ready(f"http://127.0.0.1:{inner}", proc, 900, path="/health", any_status=False)
        import uvicorn

        console.print(
            f"llmworks serving {source.name} (vllm)\n  OpenAI base URL: http://{host}:{port}/v1\n"
            f"  web chat:        http://{host}:{port}/"
        )
        uvicorn.run(
            proxy_app(f"http://127.0.0.1:{inner}", api_key), host=host, port=port, log_level="warning"
        )
    finally:
        stop_process(proc, 30)


def proxy_app(upstream: str, api_key: str | None) -> Any:
    import httpx
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
    from starlette.background import BackgroundTask

    from llmworks.serve.protocol import error_body

    app = FastAPI(title="llmworks (vllm)")
    client = httpx.AsyncClient(base_url=upstream, timeout=None)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return HTMLResponse(resources.files("llmworks.serve").joinpath("webui/index.html").read_text("utf-8"))

    @app.get("/health")
    async def health() -> JSONResponse:
        r = await client.get("/health")
        return JSONResponse({"status": "ok" if r.status_code == 200 else "dead"}, status_code=r.status_code)

    @app.api_route("/v1/{path:path}", methods=["GET", "POST"])
    async def forward(path: str, request: Request) -> Any:
        sent = request.headers.get("authorization", "").encode()
        if api_key and not secrets.compare_digest(sent, f"Bearer {api_key}".encode()):
            return JSONResponse(
                error_body("Missing or wrong API key.", "authentication_error", "invalid_api_key"), 401
            )
        upstream_req = client.build_request(
            request.method,
            f"/v1/{path}",
            content=await request.body(),
            headers={"content-type": request.headers.get("content-type", "")},
        )
        r = await client.send(upstream_req, stream=True)
        # The upstream response is closed when the client is gone or the stream ends, so vLLM stops too.
        return StreamingResponse(
            r.aiter_raw(),
            status_code=r.status_code,
            background=BackgroundTask(r.aclose),
            media_type=r.headers.get("content-type"),
        )

    return app
