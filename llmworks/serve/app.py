"""The OpenAI-compatible FastAPI app: routes, auth, errors, metrics, the request log. Generation is in
`generation.py`."""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from llmworks import __version__
from llmworks.engines.embedder import Embedder
from llmworks.errors import UserError
from llmworks.serve.apps import AppContext, ChatApp, app_chat_completion
from llmworks.serve.generation import ApiError, ClientGone, chat_completion, chat_options, completion
from llmworks.serve.metrics import Metrics
from llmworks.serve.protocol import (
    ERROR_SCHEMA,
    ChatCompletionRequest,
    CompletionRequest,
    EmbeddingRequest,
    error_body,
)
from llmworks.serve.served import ServedModel

log = logging.getLogger("llmworks.serve")


@dataclass
class ServerState:
    models: dict[str, ServedModel]
    api_key: str | None = None
    """One key for everything (--api-key)."""
    embedder: Embedder | None = None
    metrics: Metrics | None = None
    apps: dict[str, ChatApp] = field(default_factory=dict)
    """Applications served as models (rag:NAME, agent:NAME)."""
    keys: dict[str, frozenset[str] | None] = field(default_factory=dict)
    """API keys -> the models (apps included) each may use; None: all. `api_key` is one more key for all."""

    @property
    def guarded(self) -> bool:
        return bool(self.api_key or self.keys)

    def allowed_for(self, key: str | None) -> frozenset[str] | None:
        """The models a request with this key may use (None: all); raises if the key is not valid."""
        if not self.guarded:
            return None
        sent = (key or "").encode()
        if self.api_key and secrets.compare_digest(sent, self.api_key.encode()):
            return None
        for k, allowed in self.keys.items():
            if secrets.compare_digest(sent, k.encode()):
                return allowed
        raise PermissionError

    def visible(self, allowed: frozenset[str] | None) -> list[str]:
        names = [*self.models, *self.apps]
        return names if allowed is None else [n for n in names if n in allowed]

    def target(self, name: str | None, allowed: frozenset[str] | None) -> ServedModel | ChatApp:
        """The model or app a request names; one it may not use does not exist for it."""
        visible = self.visible(allowed)
        if not name and visible:  # clients that send no model get the first one
            name = visible[0]
        found = self.models.get(name or "") or self.apps.get(name or "")
        if found is None or name not in visible:
            raise ApiError(
                404,
                f"The model '{name}' does not exist. Served: {', '.join(visible)}.",
                "invalid_request_error",
                "model_not_found",
                param="model",
            )
        return found

    def model(self, name: str | None, allowed: frozenset[str] | None = None) -> ServedModel:
        found = self.target(name, allowed)
        if not isinstance(found, ServedModel):
            raise ApiError(
                400, f"'{name}' is an application: it answers /v1/chat/completions only.", param="model"
            )
        return found


def error_responses(why: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for error statuses ({400: "what it means"}), each with OpenAI's error body."""
    return {
        str(code): {"description": text, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
        for code, text in why.items()
    }


GENERATES = {
    200: {"content": {"text/event-stream": {}}, "description": "The answer; with stream=true, SSE chunks."},
    **error_responses(
        {
            400: "The request is wrong: the message says what to change.",
            404: "No such model.",
            429: "The queue is full: retry later.",
            503: "The engine stopped.",
        }
    ),
}
"""The documented answers of a generating route (what schemathesis checks each response against)."""


def create_app(state: ServerState) -> FastAPI:
    app = FastAPI(
        title="llmworks",
        version=__version__,
        docs_url="/docs",
        redoc_url=None,
        responses=error_responses({500: "Our fault: the message has an error id to find in the log."}),
    )
    _document_errors(app)
    state.metrics = Metrics(
        queue_depth=lambda: sum(len(m.engine.scheduler.waiting) for m in state.models.values()),
        running=lambda: sum(m.engine.scheduler.running for m in state.models.values()),
    )
    app.state.llmworks = state
    _install_error_handlers(app)

    # A plain ASGI middleware: Starlette's BaseHTTPMiddleware would hide client disconnects from the routes.
    app.add_middleware(_AuthAndCount, state=state)

    @app.get("/health", responses=error_responses({503: "An engine stopped."}))
    async def health() -> JSONResponse:
        dead = {m.name: m.engine.dead for m in state.models.values() if m.engine.dead}
        if dead:
            return JSONResponse({"status": "dead", "errors": dead}, status_code=503)
        return JSONResponse({"status": "ok", "models": list(state.models)})

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        allowed = _allowed(request)
        data = [
            {
                "id": m.name,
                "object": "model",
                "created": m.created,
                "owned_by": "llmworks",
                "engine": m.engine_kind,
                "context_length": m.ctx,
                "tool_grammar": m.tool_grammar,  # so an eval run reports how its calls were made
            }
            for m in state.models.values()
            if allowed is None or m.name in allowed
        ]
        data += [
            {
                "id": a.name,
                "object": "model",
                "created": 0,
                "owned_by": a.owned_by,
                "engine": "app",
                "description": a.description,
            }
            for a in state.apps.values()
            if allowed is None or a.name in allowed
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

    @app.post("/v1/chat/completions", responses=GENERATES)
    async def chat(body: ChatCompletionRequest, request: Request) -> Response:
        allowed = _allowed(request)
        target = state.target(body.model, allowed)
        if isinstance(target, ServedModel):
            return await chat_completion(target, body, request, state.metrics)
        options = chat_options(body)
        return await app_chat_completion(target, body, request, options, AppContext(allowed))

    @app.post("/v1/completions", responses=GENERATES)
    async def complete(body: CompletionRequest, request: Request) -> Response:
        return await completion(state.model(body.model, _allowed(request)), body, request, state.metrics)

    @app.post("/v1/embeddings", responses=error_responses({400: "Empty input.", 404: "No embedding model."}))
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
    for a in state.apps.values():  # files an app made (an agent's charts), under a route it names
        route, files = getattr(a, "route", None), getattr(a, "files_dir", None)
        if route and files:
            app.mount(route, StaticFiles(directory=str(files)), name=route)
    app.state.started = time.time()
    return app


ROUTES = (
    "/v1/models",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/agent-builder/options",
    "/v1/agent-builder/yaml",
    "/v1/agent-builder/preview",
)
"""Metric labels: a known route, or "other" (a scan of random paths must not create new series)."""


class _AuthAndCount:
    """Checks the API key on /v1, counts /v1 responses by route and status, and writes the request log
    line (id, model, route, status, tokens, time to first token, duration) when a response ends."""

    def __init__(self, app: Any, state: ServerState) -> None:
        self.app, self.state = app, state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/v1"):
            await self.app(scope, receive, send)
            return
        metrics = self.state.metrics
        assert metrics is not None
        route = path if path in ROUTES else "other"
        rid = uuid.uuid4().hex[:12]
        scope["llmworks"] = {"id": rid}
        started = time.perf_counter()
        status = 0

        async def logging_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {
                    **message,
                    "headers": [*message.get("headers", []), (b"x-request-id", rid.encode())],
                }
                metrics.requests.labels(route, str(status)).inc()
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                _log_request(scope, route, status, time.perf_counter() - started)

        try:
            scope["llmworks"]["allowed"] = self.state.allowed_for(_bearer(scope))
        except PermissionError:
            response = JSONResponse(
                error_body(
                    "Missing or wrong API key: send 'Authorization: Bearer <key>'.",
                    "authentication_error",
                    "invalid_api_key",
                ),
                status_code=401,
            )
            await response(scope, receive, logging_send)
            return
        await self.app(scope, receive, logging_send)


def _bearer(scope: Any) -> str | None:
    headers = dict(scope.get("headers") or [])
    sent = headers.get(b"authorization", b"").decode("latin-1")
    return sent.removeprefix("Bearer ") if sent.startswith("Bearer ") else None


def _request_id(request: Request) -> str | None:
    return request.scope.get("llmworks", {}).get("id")


def _allowed(request: Request) -> frozenset[str] | None:
    return request.scope.get("llmworks", {}).get("allowed")


def _log_request(scope: Any, route: str, status: int, seconds: float) -> None:
    info = scope.get("llmworks", {})
    ttft = info.get("ttft")
    log.info(
        "request %s model=%s route=%s status=%s prompt_tokens=%s completion_tokens=%s ttft=%s duration=%.3fs",
        info.get("id"),
        info.get("model", "-"),
        route,
        status,
        info.get("prompt_tokens", "-"),
        info.get("completion_tokens", "-"),
        f"{ttft:.3f}s" if ttft is not None else "-",
        seconds,
    )


def _document_errors(app: FastAPI) -> None:
    """FastAPI documents a 422 for every request body, but a body that fails validation gets OpenAI's 400 here
    (clients expect it), and /v1 answers 401 without the key (_AuthAndCount): the schema says so, so a client
    generated from it, or schemathesis, sees what the server does."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            for path, operations in schema.get("paths", {}).items():
                for op in operations.values():
                    responses = op["responses"]
                    if path.startswith("/v1"):
                        responses.update(
                            error_responses({401: "Missing or wrong API key (a server with keys)."})
                        )
                    if responses.pop("422", None) is not None:
                        responses.setdefault("400", error_responses({400: "The request is wrong."})["400"])
            for unused in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(unused, None)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _install_error_handlers(app: FastAPI) -> None:
    """Every error is an OpenAI error object with the right status; never a traceback."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(e.message, e.type, e.code, e.param), status_code=e.status, headers=e.headers
        )

    @app.exception_handler(ClientGone)
    async def client_gone(request: Request, _: ClientGone) -> Response:
        log.info(
            "request %s: the client left before the answer; its generation stopped", _request_id(request)
        )
        # nginx's "client closed request": uvicorn drops the response, the request log keeps the status
        return Response(status_code=499)

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
        # the headers too: a 405 must say which methods the route allows (Allow)
        return JSONResponse(error_body(str(e.detail), kind), status_code=e.status_code, headers=e.headers)

    @app.exception_handler(Exception)
    async def crash(request: Request, e: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex[:12]
        log.error(
            "request %s failed (error id %s)",
            _request_id(request),
            error_id,
            exc_info=e,
        )
        return JSONResponse(
            error_body(
                f"Internal error {type(e).__name__} (error id {error_id}); the server log has the details.",
                "server_error",
                "internal_error",
            ),
            status_code=500,
        )
