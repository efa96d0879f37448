"""Several agents: a config's `agents:` become tools of a manager (each sub-agent runs its own loop under
its own budget; its final answer is the observation), and `roleplay` runs an instructor and a solver
until the stop phrase or the turn limit, saving the transcript. Driven by ScriptedClient (canned replies,
as the real clients return them); tests/agent/test_multi_embedded.py runs both on the embedded model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from llmworks.agent import Agent, Budget
from llmworks.agent.agent import AgentTool
from llmworks.agent.config import build_agent, load_agent_config
from llmworks.agent.roleplay import roleplay
from llmworks.agent.tools.calculator import Calculator
from llmworks.cli import app
from llmworks.errors import UserError
from llmworks.models.chat_policy import ToolCall
from llmworks.testing.fake_client import ScriptedClient

CONFIGS = Path(__file__).parents[2] / "configs" / "agents"


def call(name: str, **args: Any) -> ToolCall:
    return ToolCall(f"call_{name}", name, json.dumps(args))


def final(answer: str) -> ToolCall:
    return call("final_answer", answer=answer)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_config_agents_entry_is_a_tool_named_after_the_sub_agent(tmp_path: Path) -> None:
    write(
        tmp_path / "math.yaml",
        "name: math\ndescription: Does arithmetic.\ntools: [calculator]\nmax_steps: 2\n",
    )
    manager = write(tmp_path / "boss.yaml", "name: boss\ntools: []\nagents: [math.yaml]\nmax_steps: 3\n")
    # one client for both (same model): the manager's requests and the sub-agent's interleave on it
    client = ScriptedClient(
        [
            call("math", task="What is 12 * 12?"),  # manager
            call("calculator", expression="12 * 12"),  # math
            final("144"),  # math
            final("12 * 12 is 144."),  # manager
        ]
    )
    agent = build_agent(load_agent_config(manager), client, tmp_path / "files")
    try:
        (tool,) = agent.tools
        assert isinstance(tool, AgentTool) and tool.name == "math" and tool.description == "Does arithmetic."
        assert tool.agent.budget.max_steps == 2  # its own budget, not the manager's
        result = agent.run("Ask math for 12 squared.")
    finally:
        agent.close()
    assert [(s.kind, s.tool) for s in result.steps] == [
        ("call", "math"),
        ("observation", "math"),
        ("answer", None),
    ]
    assert result.steps[1].text == "144" and result.answer == "12 * 12 is 144."
    # the sub-agent saw its own system prompt and the manager's sub-task, not the manager's conversation
    sub_messages = client.calls[1][0]
    assert sub_messages[-1] == {"role": "user", "content": "What is 12 * 12?"}
    assert "Ask math" not in json.dumps(sub_messages)


def test_a_sub_agent_that_runs_out_of_budget_still_answers(tmp_path: Path) -> None:
    helper = Agent(
        [Calculator()],
        ScriptedClient([call("calculator", expression="1+1"), '{"answer": "2, probably"}']),
        name="math",
        budget=Budget(max_steps=1),
    )
    observation = helper.as_tool()(task="1+1?")
    assert observation.text == "2, probably"


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        ({"a.yaml": "name: a\nagents: [b.yaml]\n", "b.yaml": "name: b\nagents: [a.yaml]\n"}, "in a cycle"),
        ({"a.yaml": "name: a\nagents: [missing.yaml]\n"}, "no such config file"),
        (
            {"a.yaml": "name: a\nagents: [b.yaml]\n", "b.yaml": "name: b\ncolour: red\n"},
            "unknown key 'colour'",
        ),
    ],
)
def test_bad_sub_agents_are_one_clear_error(tmp_path: Path, files: dict[str, str], needle: str) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(UserError, match=needle):
        build_agent(load_agent_config(tmp_path / "a.yaml"), ScriptedClient(["x"]), tmp_path / "files")


def _pair(instructor_replies: list[Any], solver_replies: list[Any]) -> tuple[Agent, Agent, ScriptedClient]:
    solver_client = ScriptedClient(solver_replies)
    instructor = Agent([], ScriptedClient(instructor_replies), name="teacher")
    solver = Agent([Calculator()], solver_client, name="student")
    return instructor, solver, solver_client


def test_roleplay_ends_at_the_stop_phrase_and_saves_the_transcript(tmp_path: Path) -> None:
    instructor, solver, solver_client = _pair(
        [final("Compute 6 * 7 with the calculator."), final("Now add 8."), final("Good. TASK_DONE")],
        [
            call("calculator", expression="6 * 7"),
            final("42"),
            call("calculator", expression="42 + 8"),
            final("50"),
        ],
    )
    seen: list[str] = []
    t = roleplay(
        instructor, solver, "Work out 6 * 7 + 8.", turns=5, on_turn=lambda turn: seen.append(turn.text)
    )
    assert t.ended == "stop phrase"
    assert [(x.speaker, x.role, x.text) for x in t.turns] == [
        ("teacher", "instructor", "Compute 6 * 7 with the calculator."),
        ("student", "solver", "42"),
        ("teacher", "instructor", "Now add 8."),
        ("student", "solver", "50"),
        ("teacher", "instructor", "Good. TASK_DONE"),
    ]
    assert seen == [x.text for x in t.turns]
    assert [s["kind"] for s in t.turns[1].steps] == ["call", "observation", "answer"]
    # the solver's second run is given the first exchange as history, from its own side
    second = solver_client.calls[2][0]
    assert [m["content"] for m in second if m["role"] in ("user", "assistant")][-3:] == [
        "Compute 6 * 7 with the calculator.",
        "42",
        "Now add 8.",
    ]
    path = t.save(tmp_path / "out" / "transcript.jsonl")
    head, *turns = (json.loads(line) for line in path.read_text().splitlines())
    assert head == {"task": "Work out 6 * 7 + 8.", "ended": "stop phrase"} and len(turns) == 5
    md = (tmp_path / "out" / "transcript.md").read_text()
    assert md.startswith("# Role-play: Work out 6 * 7 + 8.") and "**student** (solver): 50" in md
    assert '- call `calculator` {"expression": "42 + 8"}' in md
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def test_roleplay_stops_at_the_turn_limit() -> None:
    instructor, solver, _ = _pair([final("Keep going.")], [final("Going.")])
    t = roleplay(instructor, solver, "Never ends.", turns=2, stop="FIN")
    assert t.ended == "turn limit" and [x.role for x in t.turns] == ["instructor", "solver"] * 2


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([str(CONFIGS / "calc-helper.yaml"), "--task", "x"], "exactly two"),
        ([str(CONFIGS / "calc-helper.yaml")] * 2 + ["--task", "x", "--turns", "0"], "at least 1"),
        ([str(CONFIGS / "calc-helper.yaml"), "nope.yaml", "--task", "x"], "no such config file"),
    ],
)
def test_roleplay_bad_input_is_one_clear_error(args: list[str], needle: str) -> None:
    r = CliRunner().invoke(app, ["agent", "roleplay", *args])
    if isinstance(r.exception, UserError):
        code, out = 2, r.exception.problem
    else:
        code, out = r.exit_code, r.output
    assert code == 2 and needle in out, out
