"""The agent builder (as AgentFabric's): a page that edits an agent config in a form, runs the agent live
beside it, and saves its YAML. `llmworks serve --agent-builder` serves the page at /builder and its API
under /v1/agent-builder (behind --api-key, like the rest of /v1).

A preview runs an agent from a config the page sends, in this server, on a served model. That config comes
over the network, so it may use only what is safe to hand to whoever holds the key: built-in tools that
reach nothing outside the run (python runs in the sandbox; read_file and http_get are refused), knowledge
bases by the names the RAG stage lists (never folders), budgets within PREVIEW_LIMITS, and its own scratch
memory. Settings that name files or other servers (model, base_url, agents, read_dirs, http_allow, memory)
are refused in a preview; the saved YAML is plain config, to edit by hand for those.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from llmworks.agent.config import AgentConfig, config_from_mapping
from llmworks.agent.tools import BUILTIN, builtin_specs
from llmworks.client.local import LocalClient
from llmworks.errors import UserError
from llmworks.serve.agents import AgentApp
from llmworks.serve.app import GENERATES, error_responses
from llmworks.serve.apps import AppContext, app_chat_completion
from llmworks.serve.generation import ApiError, chat_options
from llmworks.serve.protocol import ChatCompletionRequest

__all__ = ["PREVIEW_TOOLS", "install_builder", "preview_config"]

PREVIEW_TOOLS = tuple(t for t in BUILTIN if t not in ("read_file", "http_get"))
REFUSED_IN_PREVIEW = ("model", "base_url", "api_key", "agents", "read_dirs", "http_allow", "memory")
PREVIEW_LIMITS = {"max_steps": 8, "max_tokens": 16_000, "max_seconds": 120.0, "step_tokens": 512}
FILES_ROUTE = "/files/builder"
KEPT_PREVIEWS = 32
"""Previews whose files stay readable; older ones are deleted."""
FORM_FIELDS = (
    "name",
    "description",
    "instructions",
    "tools",
    "kbs",
    "loop",
    "constrain",
    "max_steps",
    "step_tokens",
    "temperature",
    "suggestions",
)
"""The settings the form edits, in the order the saved YAML lists them."""
ALWAYS_SAVED = ("name", "tools", "loop")
"""Written even at their defaults: what the agent may do should be plain in its file."""


class AgentDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: dict[str, Any] = Field(description="The agent config as the form holds it (AgentConfig keys).")


class PreviewRequest(ChatCompletionRequest):
    agent: dict[str, Any] = Field(description="The agent config to run (AgentConfig keys).")


def preview_config(values: Mapping[str, Any], knowledge_bases: list[str], scratch: Path) -> AgentConfig:
    """The config a preview may run, or one UserError naming everything it may not do."""
    problems = [f"{k} cannot be set in a preview" for k in REFUSED_IN_PREVIEW if k in values]
    for tool in values.get("tools") or []:
        if isinstance(tool, str) and tool in BUILTIN and tool not in PREVIEW_TOOLS:
            problems.append(f"the {tool} tool cannot run in a preview (it reaches outside the run)")
    for kb in values.get("kbs") or []:
        if kb not in knowledge_bases:
            known = ", ".join(knowledge_bases) or "none: build one with `llmworks rag ingest`"
            problems.append(f"no knowledge base {kb!r} (knowledge bases: {known})")
    for key, limit in PREVIEW_LIMITS.items():
        value = values.get(key)
        if isinstance(value, int | float) and value > limit:
            problems.append(f"{key}={value} is over the preview's limit of {limit}")
    if problems:
        raise UserError(
            f"this agent config cannot be previewed: {'; '.join(problems)}.",
            "Change it in the form, or save the YAML and run it with `llmworks agent run`.",
        )
    return config_from_mapping({**values, "memory": str(scratch / "memory.jsonl")}, base=scratch)


def config_yaml(cfg: AgentConfig) -> str:
    """The config as a YAML file: what it may do, then the settings that differ from the defaults."""
    values = cfg.model_dump(exclude_defaults=True)
    values.update({k: getattr(cfg, k) for k in ALWAYS_SAVED})
    ordered = {k: values[k] for k in FORM_FIELDS if k in values}
    ordered.update({k: v for k, v in values.items() if k not in ordered})
    head = f'# llmworks agent run {cfg.name}.yaml "..."   (made with the agent builder)\n'
    return head + yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=100)


def install_builder(app: FastAPI, state: Any, kb_dir: str | None = None) -> None:
    """Add the builder's page and API to the server's app."""
    from llmworks.rag.kb import list_knowledge_bases

    page = resources.files("llmworks.serve").joinpath("webui", "builder.html")

    limited = error_responses({403: "This API key may use only some models."})

    def restricted(request: Request) -> None:
        if request.scope.get("llmworks", {}).get("allowed") is not None:
            raise ApiError(
                403,
                "This API key may use only some models; the agent builder needs a key for all of them.",
                "permission_error",
            )

    @app.get("/builder", response_class=HTMLResponse)
    async def builder_page() -> HTMLResponse:
        return HTMLResponse(page.read_text(encoding="utf-8"))

    @app.get("/v1/agent-builder/options", responses=limited)
    async def options(request: Request) -> dict[str, Any]:
        """What the form offers: the tools a preview may use, the loops, the knowledge bases, the defaults."""
        restricted(request)
        defaults = AgentConfig()
        return {
            "tools": [s["function"] for s in builtin_specs() if s["function"]["name"] in PREVIEW_TOOLS],
            "loops": ["tools", "react", "plan"],
            "knowledge_bases": list_knowledge_bases(kb_dir),
            "models": list(state.models),
            "defaults": {k: getattr(defaults, k) for k in FORM_FIELDS},
            "limits": PREVIEW_LIMITS,
        }

    @app.post("/v1/agent-builder/yaml", responses=limited)
    async def as_yaml(body: AgentDraft, request: Request) -> dict[str, str]:
        """The config checked and written as YAML (the page saves it as NAME.yaml)."""
        restricted(request)
        cfg = config_from_mapping(body.agent)
        return {"filename": f"{cfg.name}.yaml", "yaml": config_yaml(cfg)}

    # A preview's files (charts, speech) are served from here while the server runs; the oldest go first.
    files_root = Path(tempfile.mkdtemp(prefix="llmworks-builder-"))
    app.mount(FILES_ROUTE, StaticFiles(directory=str(files_root)), name=FILES_ROUTE)

    @app.post("/v1/agent-builder/preview", responses={**GENERATES, **limited})
    async def preview(body: PreviewRequest, request: Request) -> Response:
        """Run the agent of `agent` on the conversation, answered as /v1/chat/completions answers an agent
        (steps in the `llmworks` field; `stream` works the same)."""
        restricted(request)
        served = state.model(body.model)
        _keep_newest(files_root, KEPT_PREVIEWS - 1)
        scratch = Path(tempfile.mkdtemp(prefix="preview-", dir=files_root))

        def make() -> AgentApp:
            cfg = preview_config(body.agent, list_knowledge_bases(kb_dir), scratch)
            made = AgentApp(cfg, LocalClient(served.engine, owns_engine=False), scratch / "files")
            made.name, made.route = f"agent:{cfg.name} (preview)", f"{FILES_ROUTE}/{scratch.name}/files"
            return made

        try:
            agent_app = await asyncio.to_thread(make)  # opening knowledge bases reads from disk
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        response = await app_chat_completion(agent_app, body, request, chat_options(body), AppContext())
        response.background = BackgroundTask(agent_app.close)
        return response


def _keep_newest(root: Path, n: int) -> None:
    runs = sorted(root.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[n:]:
        shutil.rmtree(old, ignore_errors=True)
