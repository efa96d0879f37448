"""Agents from a config (as in AgentFabric): one YAML says who the agent is, what it may use and how it
thinks. `llmworks agent run/chat CONFIG`, `llmworks serve --agent CONFIG` and the builder page read it.

    # llmworks agent run configs/agents/doc-helper.yaml "Which encoder is faster?"
    name: doc-helper
    description: Answers questions about the Quill manual.
    instructions: Look the answer up in the manual, then answer in one sentence.
    tools: [kb_search, python]
    kbs: [manual/]            # a folder of .md/.txt files, or a knowledge base built with the RAG stage
    loop: tools               # tools | react | plan | planner (a graph of sub-questions over kbs)
    max_steps: 4
    suggestions: [Which encoder is faster?]

Relative paths (kbs, read_dirs, agents, memory) are read from the config file's folder.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import PrivateAttr, field_validator

from llmworks.agent.agent import DEFAULT_INSTRUCTIONS, Agent
from llmworks.agent.planner import Planner
from llmworks.agent.run import Budget
from llmworks.agent.tools import BUILTIN, ToolContext, build_tools
from llmworks.agent.tools.defined import DefinedTool
from llmworks.client.base import Client
from llmworks.config import StageConfig, read_yaml_mapping
from llmworks.errors import UserError

__all__ = ["AgentConfig", "build_agent", "build_planner", "load_agent_config"]


class AgentConfig(StageConfig):
    name: str = "agent"
    """The agent's name: `agent:NAME` when served, the tool name when another agent uses it."""
    description: str = ""
    """What the agent does, in one line (shown in model lists, and to a manager agent)."""
    instructions: str = DEFAULT_INSTRUCTIONS
    """The system prompt: who the agent is and how it should work."""
    model: str | None = None
    """The chat model: a registry name or a path (default: the embedded model), or the served name at base_url."""
    base_url: str | None = None
    """An OpenAI-compatible server to reach the model at (default: load the model in this process)."""
    api_key: str | None = None
    """The server's API key (or set LLMWORKS_API_KEY)."""
    tools: list[str | dict[str, Any]] = ["calculator"]  # noqa: RUF012
    """Built-in tool names, or tools defined here: {name, description, parameters (JSON Schema), python}."""
    kbs: list[str] = []  # noqa: RUF012
    """Knowledge bases for kb_search: folders of .md/.txt files, or names of RAG-stage knowledge bases."""
    agents: list[str] = []  # noqa: RUF012
    """Other agents' config files: each becomes a tool this agent can hand a sub-task to."""
    loop: Literal["tools", "react", "plan", "planner"] = "tools"
    """tools: native function calling; react: Thought/Action/Observation text; plan: plan-and-execute;
    planner: a graph of sub-questions searched in the kbs, independent ones in parallel (MindSearch-style)."""
    max_nodes: int = 4
    """loop: planner: at most this many sub-questions."""
    constrain: bool = True
    """Constrain every action to the tool registry (a grammar on llama.cpp), so no call is malformed."""
    max_steps: int = 6
    """Model requests per run before the answer is forced."""
    max_tokens: int = 12_000
    """Prompt + completion tokens per run before the answer is forced."""
    max_seconds: float = 300.0
    """Wall clock per run before the answer is forced."""
    step_tokens: int = 256
    """Completion tokens per model request."""
    observation_chars: int = 1500
    """Tool results longer than this are cut (with a note)."""
    temperature: float = 0.0
    """Sampling temperature of every model request (0: greedy)."""
    seed: int = 0
    """Sampling seed, so a run repeats."""
    examples: bool = True
    """Show the loop's worked examples (llmworks.agent.examples) before the task; small models need them."""
    suggestions: list[str] = []  # noqa: RUF012
    """Opening suggestions shown by the chat and the web chat."""
    read_dirs: list[str] = []  # noqa: RUF012
    """The directories the read_file tool may read."""
    http_allow: list[str] = []  # noqa: RUF012
    """The hosts http_get may reach (it is off while this is empty)."""
    memory: str | None = None
    """The remember/recall store (default: ~/.cache/llmworks/agents/NAME/memory.jsonl)."""

    _base: Path = PrivateAttr(default_factory=Path.cwd)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", v):
            raise ValueError("use letters, digits, '.', '_' and '-' (at most 64 characters)")
        return v

    @field_validator("tools")
    @classmethod
    def _tools(cls, v: list[str | dict[str, Any]]) -> list[str | dict[str, Any]]:
        problems = []
        for entry in v:
            if isinstance(entry, str):
                if entry not in BUILTIN:
                    problems.append(f"unknown tool '{entry}' (built-in: {', '.join(BUILTIN)})")
            else:
                try:
                    DefinedTool(entry)
                except UserError as e:
                    problems.append(e.problem.rstrip("."))
        if problems:
            raise ValueError("; ".join(problems))
        return v

    @field_validator("max_steps", "max_tokens", "step_tokens", "observation_chars", "max_nodes")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError("must be at least 1")
        return v

    @property
    def base(self) -> Path:
        """The folder relative paths are read from."""
        return self._base

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self._base / p

    def budget(self) -> Budget:
        return Budget(
            self.max_steps, self.max_tokens, self.max_seconds, self.step_tokens, self.observation_chars
        )


def load_agent_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), **flags: Any
) -> AgentConfig:
    """The config at `path` (if any), then `key=value` overrides, then flags; paths relative to its folder."""
    cfg = AgentConfig.resolve(path, overrides, **flags)
    if path is not None:
        cfg._base = Path(path).resolve().parent
    return cfg


def config_from_mapping(values: Mapping[str, Any], base: Path | None = None) -> AgentConfig:
    """A config from plain values (the builder page's form), paths relative to `base`."""
    cfg = AgentConfig.build(values)
    if base is not None:
        cfg._base = base
    return cfg


def build_agent(
    cfg: AgentConfig,
    client: Client | None = None,
    files_dir: Path | None = None,
    trajectory: Path | None = None,
    _seen: tuple[Path, ...] = (),
) -> Agent:
    """The agent a config describes. `client`: reuse one (else the config's model is loaded or reached);
    `files_dir`: where its tools write files (default: a temp dir)."""
    import tempfile

    from llmworks.agent.knowledge import open_kb

    if cfg.loop == "planner":
        raise UserError(
            f"agent {cfg.name} has loop: planner, which runs in llmworks serve --agent, not as a tool loop.",
            f"Serve it, or run the planner: llmworks agent search --kb {' --kb '.join(cfg.kbs) or 'DIR'} QUESTION.",
        )
    names = [t for t in cfg.tools if isinstance(t, str)]
    if "kb_search" in names and not cfg.kbs:
        raise UserError(
            f"agent {cfg.name}: the kb_search tool needs kbs.", "List knowledge bases: kbs: [docs/]."
        )
    kbs = [open_kb(k, cfg.base) for k in cfg.kbs]  # a missing one is an error before a model loads
    if client is None:
        from llmworks.client import make_client

        client = make_client(cfg.model, cfg.base_url, cfg.api_key)
        owns = True
    else:
        owns = False
    files = Path(files_dir) if files_dir else Path(tempfile.mkdtemp(prefix=f"llmworks-agent-{cfg.name}-"))
    memory = cfg.path(cfg.memory) if cfg.memory else _default_memory(cfg.name)
    context = ToolContext(
        files,
        kbs=kbs,
        read_dirs=[cfg.path(d) for d in cfg.read_dirs],
        http_allow=cfg.http_allow,
        memory_path=memory,
        embed=client.embed,
    )
    tools = build_tools(cfg.tools, context)
    for sub_path in cfg.agents:
        path = cfg.path(sub_path).resolve()
        if path in _seen:
            raise UserError(f"agent {cfg.name}: agents call each other in a cycle ({path.name}).", "")
        sub_cfg = load_agent_config(path)
        same_model = (sub_cfg.model, sub_cfg.base_url) == (cfg.model, cfg.base_url)
        sub = build_agent(sub_cfg, client if same_model else None, files / sub_cfg.name, None, (*_seen, path))
        tools.append(sub.as_tool())
    _check_model(cfg, client)
    agent = Agent(
        tools,
        client,
        name=cfg.name,
        description=cfg.description,
        instructions=cfg.instructions,
        loop=cfg.loop,
        budget=cfg.budget(),
        constrain=cfg.constrain,
        temperature=cfg.temperature,
        seed=cfg.seed,
        trajectory=trajectory,
        examples=cfg.examples,
    )
    agent._owns_client = owns
    agent.files_dir = files  # type: ignore[attr-defined]
    return agent


def build_planner(cfg: AgentConfig, client: Client) -> Planner:
    """The planner a `loop: planner` config describes, on `client` (its kbs are what the nodes search)."""
    from llmworks.agent.knowledge import open_kb

    if not cfg.kbs:
        raise UserError(f"agent {cfg.name}: loop: planner needs kbs.", "List knowledge bases: kbs: [docs/].")
    kbs = [open_kb(k, cfg.base) for k in cfg.kbs]
    _check_model(cfg, client)
    return Planner(
        client,
        kbs,
        max_nodes=cfg.max_nodes,
        constrain=cfg.constrain,
        temperature=cfg.temperature,
        seed=cfg.seed,
    )


def _default_memory(name: str) -> Path:
    import os

    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "llmworks" / "agents" / name / "memory.jsonl"


def _check_model(cfg: AgentConfig, client: Client) -> None:
    """A model that cannot do what the loop needs is one clear error, naming the loop to use instead."""
    engine = getattr(client, "engine", None)
    if engine is None or not cfg.constrain:
        return
    if not engine.has_grammars:
        fix = {
            "tools": "Use loop: react with constrain: false, or constrain: false (tool calls as text)",
            "react": "Set constrain: false (the ReAct text is parsed)",
            "plan": "Set constrain: false (the plan is parsed from text)",
            "planner": "Set constrain: false (an unparsable graph becomes one node)",
        }[cfg.loop]
        raise UserError(
            f"model '{client.name}' on the {type(engine).__name__} cannot constrain its output, which the "
            f"{cfg.loop} loop does with constrain: true.",
            f"{fix}, or run the model as a GGUF on the llamacpp engine.",
        )


def read_suggestions(path: Path) -> list[str]:
    """The opening suggestions of a config file, without building the agent."""
    return [str(s) for s in read_yaml_mapping(path).get("suggestions") or []]
