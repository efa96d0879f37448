"""The demo's agent step on the embedded model: both answers right, each got through its tool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

pytestmark = pytest.mark.slow


def test_agent_demo_answers_right_through_its_tools(tmp_path: Path) -> None:
    from llmworks.agent.demo import CASES, agent_demo

    console = Console(record=True, width=200)
    results = agent_demo(tmp_path, console)
    assert results is not None and len(results) == len(CASES)
    for (question, _, expected), r, tool in zip(CASES, results, ("kb_search", "python"), strict=True):
        calls = [s for s in r.steps if s.kind == "call"]
        assert [c.tool for c in calls] == [tool], (question, r.steps)
        observation = next(s for s in r.steps if s.kind == "observation")
        assert not observation.error and expected in observation.text  # the tool found or computed it
        assert expected in r.answer, (question, r.answer)  # and the model's answer says it
        assert r.stopped is None and r.malformed == 0
    text = console.export_text()
    assert text.count("llmworks agent run configs/agents/doc-helper.yaml") == 2
    assert "answer: Quill is released under the Apache-2.0 license." in text and "answer: 5" in text
    assert "Where the 135M model is weak" in text
    lines = (tmp_path / "trajectories.jsonl").read_text().splitlines()
    assert [json.loads(line)["meta"]["loop"] for line in lines] == ["tools", "plan"]


def test_the_demo_runs_one_independent_step_or_says_how() -> None:
    from llmworks.demo import main

    with pytest.raises(SystemExit) as e:
        main(["sft"])  # needs the data step before it: not runnable alone
    assert e.value.code == 2
