"""Agents served as models: `llmworks serve --agent CONFIG` answers `agent:NAME` on /v1/chat/completions.

The final answer is the message content; every step (tool calls, observations, the planner's graph and
nodes) is a data event in the response's `llmworks` field, under `steps` (streamed: one chunk per step, as
it happens), each step `{"kind": thought|call|observation|notice|graph|node|answer, "text", "tool",
"arguments", "error", "files", "data"}` (a `loop: planner` agent: "graph" with data {nodes, edges}, then
"node" with data {id, question, depends_on, status: running|done, answer, sources, seconds} as each node
starts and ends; the web chat draws them); `llmworks.files` lists the links to the files the run made. Files a tool makes are
served at `/files/agent/AGENT/RUN/NAME` (RUN is a random id, the capability to read them) and linked from
the answer. Each request gets its own agent (its own tool state); an agent's error fails that request only.
An agent runs on the server's first model unless its config names another served model (in this process,
sharing that model's batch) or a base_url.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from llmworks.agent.config import AgentConfig, build_agent, build_planner, load_agent_config
from llmworks.agent.run import Step
from llmworks.client.base import Client, GenOptions
from llmworks.errors import UserError
from llmworks.serve.apps import AppContext, AppEvent, ChatApp
from llmworks.serve.served import ServedModel

__all__ = ["FILES_ROUTE", "AgentApp", "load_agent_apps"]

FILES_ROUTE = "/files/agent"


class AgentApp(ChatApp):
    owned_by = "llmworks-agent"

    def __init__(
        self, cfg: AgentConfig, client: Client, files_dir: Path, log_dir: Path | None = None
    ) -> None:
        self.cfg = cfg
        self.client = client
        self.files_dir = Path(files_dir)
        self.log_dir = log_dir
        self.name = f"agent:{cfg.name}"
        self.description = cfg.description
        self.suggestions = list(cfg.suggestions)
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.route = f"{FILES_ROUTE}/{cfg.name}"
        """Where the files its runs make are served (a static mount of files_dir)."""
        if cfg.loop == "planner":
            build_planner(cfg, client)  # a bad config fails at start
        else:
            build_agent(cfg, client, self.files_dir / "check").close()

    def chat_stream(
        self, messages: list[dict[str, Any]], options: GenOptions, context: AppContext
    ) -> Iterator[AppEvent]:
        history, task = _split(messages)
        if self.cfg.loop == "planner":
            yield from self._plan(task)
            return
        run_id = secrets.token_hex(16)
        run_dir = self.files_dir / run_id
        trajectory = self.log_dir / f"{self.cfg.name}.trajectories.jsonl" if self.log_dir else None
        agent = build_agent(self.cfg, self.client, run_dir, trajectory)
        try:
            stream = agent.run_stream(task, history, cancelled=lambda: context.cancelled)
            for step in stream:
                data = self._step(step, run_dir, run_id)
                if step.kind == "answer":
                    continue
                yield AppEvent(data={"steps": [data]})
            result = stream.result
            assert result is not None
            links = [self._url(Path(f), run_dir, run_id) for f in result.files]
            text = result.answer + "".join(
                f"\n\n![{Path(u).name}]({u})" if u.endswith(".png") else f"\n\n[{Path(u).name}]({u})"
                for u in links
            )
            yield AppEvent(
                text,
                {"steps": [{"kind": "answer", "text": result.answer}], "files": links},
                finish_reason="stop",
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
            )
        finally:
            agent.close()

    def _plan(self, task: str) -> Iterator[AppEvent]:
        """The planner's run: the graph, then each node as it starts and ends, then the answer (which cites
        the nodes' sources). Earlier turns are not used: each question is planned on its own."""
        stream = build_planner(self.cfg, self.client).run_stream(task)
        for step in stream:
            if step.kind != "answer":
                yield AppEvent(data={"steps": [step.to_dict()]})
        result = stream.result
        assert result is not None
        yield AppEvent(
            result.answer, {"steps": [{"kind": "answer", "text": result.answer}]}, finish_reason="stop"
        )

    def close(self) -> None:
        self.client.close()  # an in-process client over a served model leaves the model to the server

    def _step(self, step: Step, run_dir: Path, run_id: str) -> dict[str, Any]:
        d = step.to_dict()
        if step.files:
            d["files"] = [self._url(Path(f), run_dir, run_id) for f in step.files]
        return d

    def _url(self, path: Path, run_dir: Path, run_id: str) -> str:
        try:
            rel = path.resolve().relative_to(run_dir.resolve())
        except ValueError:
            return ""
        return f"{self.route}/{run_id}/{rel.as_posix()}"


def load_agent_apps(
    paths: Sequence[str | Path], served: Mapping[str, ServedModel], work_dir: Path | None = None
) -> dict[str, AgentApp]:
    """`agent:NAME` apps from config files, each on a served model (in process) or its own base_url.
    Tool files and trajectories go under `work_dir` (default: a new temp dir)."""
    from llmworks.client import make_client
    from llmworks.client.local import LocalClient

    root = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="llmworks-serve-agents-"))
    apps: dict[str, AgentApp] = {}
    for path in paths:
        cfg = load_agent_config(path)
        if cfg.base_url:
            client = make_client(cfg.model, cfg.base_url, cfg.api_key)
        else:
            model = served.get(cfg.model) if cfg.model else next(iter(served.values()), None)
            if model is None:
                raise UserError(
                    f"agent {cfg.name} ({path}) uses model '{cfg.model}', which this server does not serve "
                    f"(served: {', '.join(served)}).",
                    f"Serve it too (llmworks serve {cfg.model} --agent {path}), or set base_url in the config.",
                )
            client = LocalClient(model.engine, owns_engine=False)
        app = AgentApp(cfg, client, root / cfg.name / "files", log_dir=root)
        if app.name in apps:
            raise UserError(f"two agents are named {cfg.name}.", "Give each agent config its own name.")
        apps[app.name] = app
    return apps


def _split(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """(earlier turns, the task): the last message must be the user's."""
    if not messages or messages[-1].get("role") != "user":
        raise UserError(
            "the last message must be the user's task.", "End the conversation with a user message."
        )
    history = [
        {"role": m["role"], "content": _text(m.get("content"))}
        for m in messages[:-1]
        if m.get("role") in ("user", "assistant")
    ]
    return history, _text(messages[-1].get("content"))


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""
