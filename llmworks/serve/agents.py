"""Agents served as models: `llmworks serve --agent CONFIG` answers `agent:NAME` on /v1/chat/completions.

The final answer is the message content; every step (tool calls, observations, the planner's graph and
nodes) is a data event in the response's `llmworks` field, under `steps` (streamed: one chunk per step, as
it happens). Files a tool makes are served at `/files/agent/RUN/NAME` (RUN is a random id, the capability
to read them) and linked from the answer. Each request gets its own agent (its own tool state); an
agent's error fails that request only.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from llmworks.agent.config import AgentConfig, build_agent
from llmworks.agent.run import Step
from llmworks.client.base import Client, GenOptions
from llmworks.errors import UserError
from llmworks.serve.apps import AppContext, AppEvent, ChatApp

__all__ = ["FILES_ROUTE", "AgentApp"]

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
        build_agent(
            cfg, client, self.files_dir / "check"
        ).close()  # a bad config fails at start, not per request

    def chat_stream(
        self, messages: list[dict[str, Any]], options: GenOptions, context: AppContext
    ) -> Iterator[AppEvent]:
        history, task = _split(messages)
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
        return f"{FILES_ROUTE}/{run_id}/{rel.as_posix()}"


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
