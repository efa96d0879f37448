"""Several agents on the embedded model (greedy, seed 0, one engine thread), each run kept to a step or two.
What must hold whatever a 135M model says: the manager's call reaches the sub-agent, which runs its own
loop, and its final answer is the manager's observation; a role-play alternates instructor and solver
and saves its transcript. (How good their answers are: the README's Agents section; they are weak.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmworks.agent.config import build_agent, load_agent_config
from llmworks.agent.roleplay import roleplay
from llmworks.client import Client, make_client

pytestmark = pytest.mark.slow
CONFIGS = Path(__file__).parents[2] / "configs" / "agents"


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with make_client(n_threads=1) as c:
        yield c


def test_a_manager_hands_a_sub_task_to_a_sub_agent(client: Client, tmp_path: Path) -> None:
    (tmp_path / "calc-helper.yaml").write_text(
        "name: calc-helper\ndescription: Does arithmetic with a calculator.\ntools: [calculator]\n"
        "max_steps: 1\nstep_tokens: 64\n"
    )
    (tmp_path / "manager.yaml").write_text(
        "name: manager\ninstructions: Hand arithmetic to calc-helper.\ntools: []\nagents: [calc-helper.yaml]\n"
        "max_steps: 1\nstep_tokens: 64\n"
    )
    manager = build_agent(load_agent_config(tmp_path / "manager.yaml"), client, tmp_path / "files")
    (sub,) = manager.tools
    sub.agent.trajectory = tmp_path / "sub.jsonl"  # type: ignore[attr-defined]
    try:
        result = manager.run("Ask calc-helper: what is 6 * 7?")
    finally:
        manager.close()
    assert [s.tool for s in result.steps if s.kind == "call"] == ["calc-helper"]  # it delegated
    observation = next(s for s in result.steps if s.kind == "observation")
    (line,) = (tmp_path / "sub.jsonl").read_text().splitlines()
    sub_run = json.loads(line)
    assert sub_run["messages"][-1]["content"] == observation.text != ""  # its answer is the observation
    assert sub_run["meta"]["loop"] == "tools" and result.answer.strip()


def test_roleplay_alternates_and_saves_its_transcript(client: Client, tmp_path: Path) -> None:
    a = build_agent(load_agent_config(CONFIGS / "instructor.yaml"), client, tmp_path / "a")
    b = build_agent(load_agent_config(CONFIGS / "doc-helper.yaml", ["max_steps=1"]), client, tmp_path / "b")
    try:
        t = roleplay(a, b, "Find which license Quill uses.", turns=1)
    finally:
        a.close()
        b.close()
    roles = [x.role for x in t.turns]
    assert roles in (["instructor"], ["instructor", "solver"])
    assert t.ended == ("stop phrase" if roles == ["instructor"] else "turn limit")
    assert all(x.text.strip() for x in t.turns)
    path = t.save(tmp_path / "transcript.jsonl")
    assert len(path.read_text().splitlines()) == 1 + len(t.turns)
    assert path.with_suffix(".md").read_text().count("**") == 2 * len(t.turns)
