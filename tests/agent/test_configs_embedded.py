"""Every shipped agent config (configs/agents/*.yaml) runs on the embedded model: its first suggestion as
the task, greedy with seed 0, at most 2 steps. What must hold whatever a 135M model answers: the run
ends with an answer inside its budget, every action is well-formed (constrained), the tools called are the config's, and
the trajectory is the training format. Whether the answers are right is measured in bench/agent.py.

One engine thread: on a shared 2-core machine llama.cpp's two spinning threads are several times slower
than one (measured here under load: 24 tokens in 3.1 s with one thread, 24.5 s with two)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmworks.agent.config import build_agent, load_agent_config
from llmworks.client import Client, make_client
from llmworks.data.formats import parse

CONFIGS = sorted((Path(__file__).parents[2] / "configs" / "agents").glob("*.yaml"))


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with make_client(n_threads=1) as c:
        yield c


def test_there_are_shipped_agent_configs() -> None:
    assert {p.stem for p in CONFIGS} >= {"doc-helper", "calc-helper"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_config_runs_on_the_embedded_model(path: Path, client: Client, tmp_path: Path) -> None:
    cfg = load_agent_config(path, ["max_steps=2"])  # the config as shipped, its run kept short
    assert cfg.suggestions, f"{path.name}: give suggestions (the first is this test's task)"
    agent = build_agent(cfg, client, tmp_path / "files", tmp_path / "trajectories.jsonl")
    try:
        result = agent.run(cfg.suggestions[0])
    finally:
        agent.close()
    assert result.answer.strip()
    assert result.malformed == 0  # constrained: every call parsed
    assert result.requests <= cfg.max_steps + 1  # the steps, and at most one forced answer
    allowed = {t for t in cfg.tools if isinstance(t, str)} | {t.name for t in agent.tools}  # incl. sub-agents
    assert {s.tool for s in result.steps if s.kind == "call"} <= allowed
    (line,) = (tmp_path / "trajectories.jsonl").read_text().splitlines()
    example = parse(json.loads(line))
    assert example.messages[-1]["role"] == "assistant"
    assert example.messages[-1]["content"] == result.answer
