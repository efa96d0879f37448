"""`llmworks serve --engine vllm`: the model runs on vLLM (`vllm serve`), behind our API key, web chat and port.

vLLM speaks the OpenAI API already, so this starts it on a private loopback port and forwards /v1/* to it
(streams included). vLLM is an optional extra: it needs a GPU build, which these CPU machines do not have.
"""

from __future__ import annotations

import importlib.util
import shutil
import socket
import subprocess
import sys
import time
from importlib import resources
from typing import Any

from llmworks.errors import MissingExtra, UserError
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
    inner = _free_port()
    proc = subprocess.Popen(vllm_command(str(source.path), source.name, inner, ctx))
    try:
        _wait_healthy(proc, f"http://127.0.0.1:{inner}/health")
        import uvicorn

        console.print(
            f"llmworks serving {source.name} (vllm)\n  OpenAI base URL: http://{host}:{port}/v1\n"
            f"  web chat:        http://{host}:{port}/"
        )
        uvicorn.run(
            proxy_app(f"http://127.0.0.1:{inner}", api_key), host=host, port=port, log_level="warning"
        )
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def proxy_app(upstream: str, api_key: str | None) -> Any:
    import httpx
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse

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
        if api_key and request.headers.get("authorization") != f"Bearer {api_key}":
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
        return StreamingResponse(
            r.aiter_raw(),
            status_code=r.status_code,
            background=None,
            media_type=r.headers.get("content-type"),
        )

    return app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, timeout: float = 900) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UserError(f"vllm serve exited with status {proc.returncode}.", "See its output above.")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise UserError("vllm serve did not become healthy in 15 minutes.", "See its output above.")
