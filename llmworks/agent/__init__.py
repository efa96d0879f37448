"""Agents: tools, three loops (function calling, ReAct, plan-and-execute) under one budget, a MindSearch-
style planner, agents from a YAML config, served as `agent:NAME` models by `llmworks serve --agent`.

    from llmworks.agent import Agent, tool

The names below load on first use, so `llmworks --help` (which imports this package's CLI) stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Agent": "llmworks.agent.agent",
    "AgentRun": "llmworks.agent.agent",
    "AgentTool": "llmworks.agent.agent",
    "AgentConfig": "llmworks.agent.config",
    "build_agent": "llmworks.agent.config",
    "load_agent_config": "llmworks.agent.config",
    "Planner": "llmworks.agent.planner",
    "Budget": "llmworks.agent.run",
    "RunResult": "llmworks.agent.run",
    "Step": "llmworks.agent.run",
    "Tool": "llmworks.agent.tools.base",
    "ToolError": "llmworks.agent.tools.base",
    "ToolResult": "llmworks.agent.tools.base",
    "tool": "llmworks.agent.tools.base",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'llmworks.agent' has no attribute {name!r}")
