"""The OpenAI-compatible FastAPI app: routes, auth, errors, metrics. Generation is in `generation.py`."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmworks import __version__
from llmworks.errors import UserError
from llmworks.serve.embeddings import Embedder
from llmworks.serve.generation import ApiError, chat_completion, completion
from llmworks.serve.metrics import Metrics
from llmworks.serve.protocol import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, error_body
from llmworks.serve.served import ServedModel


@dataclass
class ServerState:
    models: dict[str, ServedModel]
    api_key: str | None = None
    embedder: Embedder | None = None
    metrics: Metrics | None = None

    def model(self, name: str | None) -> ServedModel:
        if not name:  # clients that send no model get the first one
            return next(iter(self.models.values()))
        found = self.models.get(name)
        if found is None:
            raise ApiError(
                404,
                f"The model '{name}' does not exist. Served: {', '.join(self.models)}.",
                "invalid_request_error",
                "model_not_found",
                param="model",
            )
        return found


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(title="llmworks", version=__version__, docs_url="/docs", redoc_url=None)
    state.metrics = Metrics(
        queue_depth=lambda: sum(len(m.scheduler.waiting) for m in state.models.values()),
        running=lambda: sum(m.scheduler.running for m in state.models.values()),
    )
    app.state.llmworks = state
    _install_error_handlers(app)

    # A plain ASGI middleware: Starlette's BaseHTTPMiddleware would hide client disconnects from the routes.
    app.add_middleware(_AuthAndCount, state=state)

    @app.get("/health")
    async def health() -> JSONResponse:
        dead = {m.name: m.scheduler.dead for m in state.models.values() if m.scheduler.dead}
        if dead:
            return JSONResponse({"status": "dead", "errors": dead}, status_code=503)
        return JSONResponse({"status": "ok", "models": list(state.models)})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        data = [
            {
                "id": m.name,
                "object": "model",
                "created": m.created,
                "owned_by": "llmworks",
                "engine": m.engine_kind,
                "context_length": m.ctx,
            }
            for m in state.models.values()
        ]
        if state.embedder is not None:
            data.append(
                {
                    "id": state.embedder.name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "llmworks",
                    "engine": "sentence-transformers",
                }
            )
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat(body: ChatCompletionRequest, request: Request) -> Response:
        return await chat_completion(state.model(body.model), body, request, state.metrics)

    @app.post("/v1/completions")
    async def complete(body: CompletionRequest, request: Request) -> Response:
        return await completion(state.model(body.model), body, request, state.metrics)

    @app.post("/v1/embeddings")
    async def embeddings(body: EmbeddingRequest) -> dict[str, Any]:
        if state.embedder is None:
            raise ApiError(
                404, "This server has no embedding model.", "invalid_request_error", "model_not_found"
            )
        if body.model and body.model not in (state.embedder.name, str(state.embedder.path)):
            raise ApiError(
                404,
                f"The embedding model '{body.model}' does not exist. Served: {state.embedder.name}.",
                "invalid_request_error",
                "model_not_found",
                param="model",
            )
        texts = [body.input] if isinstance(body.input, str) else body.input
        if not all(isinstance(t, str) and t for t in texts):
            raise ApiError(
                400,
                "input must be a non-empty string or a list of non-empty strings.",
                "invalid_request_error",
                param="input",
            )
        vectors, n_tokens = await asyncio.to_thread(state.embedder.embed, texts)
        data = []
        for i, v in enumerate(vectors):
            emb: Any = v
            if body.encoding_format == "base64":
                emb = base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()
            data.append({"object": "embedding", "index": i, "embedding": emb})
        return {
            "object": "list",
            "data": data,
            "model": state.embedder.name,
            "usage": {"prompt_tokens": n_tokens, "total_tokens": n_tokens},
        }

    webui = resources.files("llmworks.serve").joinpath("webui")

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        page = webui.joinpath("index.html")
        if not page.is_file():
            return HTMLResponse("<h1>llmworks</h1><p>The web UI is not installed.</p>")
        return HTMLResponse(page.read_text(encoding="utf-8"))

    if webui.is_dir():
        app.mount("/webui", StaticFiles(directory=str(webui)), name="webui")
    app.state.started = time.time()
    return app


class _AuthAndCount:
    """Checks the API key on /v1 and counts /v1 responses by status."""

    def __init__(self, app: Any, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1"):
            await self.app(scope, receive, send)
            return
        metrics = self.state.metrics
        assert metrics is not None
        if self.state.api_key:
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization", b"").decode("latin-1") != f"Bearer {self.state.api_key}":
                response = JSONResponse(
                    error_body(
                        "Missing or wrong API key: send 'Authorization: Bearer <key>'.",
                        "authentication_error",
                        "invalid_api_key",
                    ),
                    status_code=401,
                )
                metrics.requests.labels(path, "401").inc()
                await response(scope, receive, send)
                return

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                metrics.requests.labels(path, str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error is an OpenAI error object with the right status; never a traceback."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(e.message, e.type, e.code, e.param), status_code=e.status, headers=e.headers
        )

    @app.exception_handler(UserError)
    async def user_error(_: Request, e: UserError) -> JSONResponse:
        return JSONResponse(
            error_body(f"{e.problem} {e.fix}".strip(), "invalid_request_error"), status_code=400
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        errors = e.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        msg = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            msg, where = "The request body is not valid JSON.", ""
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        return JSONResponse(
            error_body(
                f"{where + ': ' if where else ''}{msg}{more}", "invalid_request_error", param=where or None
            ),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, e: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(e.detail), kind), status_code=e.status_code)

    @app.exception_handler(Exception)
    async def crash(_: Request, e: Exception) -> JSONResponse:
        return JSONResponse(
            error_body(f"Internal error: {type(e).__name__}: {e}", "server_error"), status_code=500
        )
