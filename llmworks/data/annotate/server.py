"""The annotation web app (FastAPI) and `serve`, which runs it with uvicorn on the loopback interface."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from llmworks.data import formats, io
from llmworks.data.annotate.store import Store
from llmworks.errors import UserError
from llmworks.local_server import free_port


class Edit(BaseModel):
    messages: list[dict[str, str]]


class Ranking(BaseModel):
    ranking: list[int]


def default_out_dir(src: Path) -> Path:
    return src.with_name(src.name + ".annotations")


def create_app(src: Path | str, out_dir: Path | str | None = None) -> FastAPI:
    src = io.check_exists([src])[0]
    store = Store(src, Path(out_dir) if out_dir else default_out_dir(src))
    if not len(store):
        raise UserError(
            f"{src} has no records to annotate.", "Give a file with SFT records or prompts with responses."
        )
    page = resources.files("llmworks.data.annotate").joinpath("page.html").read_text(encoding="utf-8")
    app = FastAPI(title="llmworks annotate")
    app.state.store = store

    def check(i: int) -> None:
        if not 0 <= i < len(store):
            raise HTTPException(404, f"no record {i}; there are {len(store)}")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {"source": str(src), "count": len(store), "out_dir": str(store.out_dir)}

    @app.get("/api/items/{i}")
    def item(i: int) -> dict[str, Any]:
        check(i)
        return store.item(i)

    @app.post("/api/items/{i}/edit")
    def edit(i: int, body: Edit) -> dict[str, Any]:
        check(i)
        try:
            store.save_edit(i, body.messages)
        except formats.BadRecord as e:
            raise HTTPException(400, str(e)) from e
        return {"saved": True, "file": str(store.out_dir / "edited.jsonl")}

    @app.post("/api/items/{i}/rank")
    def rank(i: int, body: Ranking) -> dict[str, Any]:
        check(i)
        try:
            pairs = store.save_ranking(i, body.ranking)
        except formats.BadRecord as e:
            raise HTTPException(400, str(e)) from e
        return {"saved": True, "pairs": pairs, "file": str(store.out_dir / "preferences.jsonl")}

    return app


def serve(src: Path | str, out_dir: Path | str | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
    import uvicorn

    app = create_app(src, out_dir)
    port = port or free_port(host)
    print(f"annotate {src}: http://{host}:{port}/  (outputs in {app.state.store.out_dir}; Ctrl-C to stop)")
    uvicorn.run(app, host=host, port=port, log_level="warning")
