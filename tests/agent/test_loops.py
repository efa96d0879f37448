"""The three loops and the budget controller, driven by a ScriptedClient (canned replies, as the real
clients return them) and real tools."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from llmworks.agent import Agent, Budget, tool
from llmworks.agent.tools.calculator import Calculator
from llmworks.agent.tools.python import PythonTool
from llmworks.client.base import ChatChunk, RequestFailed
from llmworks.data.formats import parse
from llmworks.errors import UserError
from llmworks.models.chat_policy import ToolCall
from llmworks.testing.fake_client import ScriptedClient


def call(name: str, **args: Any) -> ToolCall:
    return ToolCall(f"call_{name}_{len(json.dumps(args))}", name, json.dumps(args))


def final(answer: str) -> ToolCall:
    return call("final_answer", answer=answer)


@tool
def lookup(word: str) -> str:
    """Look a word up.

    Args:
        word: The word.
    """
    return "x" * 5000 if word == "long" else f"{word} means something"


def test_function_calling_runs_a_tool_then_answers(tmp_path: Path) -> None:
    client = ScriptedClient([call("calculator", expression="17% of 2340"), final("397.8")])
    agent = Agent([Calculator()], client, trajectory=tmp_path / "t.jsonl")
    result = agent.run("What is 17% of 2340?")
    assert (
        result.answer == "397.8"
        and result.tool_calls == 1
        and result.malformed == 0
        and result.stopped is None
    )
    assert [s.kind for s in result.steps] == ["call", "observation", "answer"]
    assert result.steps[1].text == "397.8"
    # The request: the registry's tools plus final_answer, the call forced (a grammar on llama.cpp).
    _, opts = client.calls[0]
    assert [t["function"]["name"] for t in opts.tools] == ["calculator", "final_answer"]
    assert opts.tool_choice == "required" and opts.temperature == 0.0
    assert opts.tools[0]["function"]["parameters"]["properties"]["expression"]["maxLength"] <= 256
    # The trajectory: OpenAI messages with tool_calls, the format `llmworks train` reads.
    line = json.loads((tmp_path / "t.jsonl").read_text())
    roles = [m["role"] for m in line["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "assistant"]
    assert line["messages"][2]["tool_calls"][0]["function"]["name"] == "calculator"
    assert line["messages"][3]["tool_call_id"] == line["messages"][2]["tool_calls"][0]["id"]
    assert line["messages"][-1] == {"role": "assistant", "content": "397.8"}
    assert line["tools"][0]["function"]["name"] == "calculator"
    assert parse(line).tools[0]["function"]["name"] == "calculator"  # the training data parser reads it


def test_worked_examples_precede_the_task_and_stay_out_of_the_trajectory() -> None:
    client = ScriptedClient([final("4")])
    result = Agent([Calculator()], client).run("What is 2+2?")
    sent = client.calls[0][0]
    # The tool-free example first, the calculator's last (small models copy the latest turn), each
    # answered by a final_answer call since the calls are constrained.
    roles = [m["role"] for m in sent]
    assert roles == ["system", "user", "assistant", "user", "assistant", "tool", "assistant", "user"]
    assert sent[1]["content"] == "What is the capital of Italy?" and sent[3]["content"] == "What is 6 * 7?"
    assert sent[2]["tool_calls"][0]["function"]["name"] == "final_answer"
    assert sent[-1]["content"] == "What is 2+2?"
    assert [m["role"] for m in result.messages] == ["system", "user", "assistant"]


def test_errors_go_back_to_the_model() -> None:
    client = ScriptedClient(
        [
            call("shell", cmd="ls"),
            call("calculator", expr="1"),
            call("calculator", expression="1/0"),
            final("none"),
        ]
    )
    result = Agent([Calculator()], client, examples=False).run("Divide one by zero.")
    obs = [s.text for s in result.steps if s.kind == "observation"]
    assert "there is no tool 'shell'" in obs[0] and "bad arguments for calculator" in obs[1]
    assert "division by zero" in obs[2]
    assert result.malformed == 2 and result.answer == "none"
    # The model saw each error as the tool's result.
    tool_msgs = [m for m in client.calls[-1][0] if m["role"] == "tool"]
    assert "there is no tool" in tool_msgs[0]["content"]


def test_a_repeated_call_is_stopped_and_the_answer_forced() -> None:
    same = call("calculator", expression="2+2")
    client = ScriptedClient([same, same, same, '{"answer": "4"}'])
    result = Agent([Calculator()], client).run("What is 2+2?")
    assert result.answer == "4" and result.tool_calls == 1 and "repeated" in result.stopped
    assert "already called calculator" in [s.text for s in result.steps if s.kind == "observation"][1]
    msgs, opts = client.calls[-1]
    assert opts.response_format["json_schema"]["schema"]["properties"]["answer"]["type"] == "string"
    assert not opts.tools
    # the results so far are restated next to the demand (the embedded model answered 17.8 after 397.8)
    assert (
        msgs[-1]["content"]
        == "Tool result: 4\nStop using tools now. Give your final answer to the task: What is 2+2?"
    )


@pytest.mark.parametrize(
    ("budget", "why", "calls"),
    [
        (Budget(max_steps=2), "step budget", 2),
        (Budget(max_tokens=3), "token budget", 2),  # the scripted client counts 2 tokens per call
        (Budget(max_seconds=0), "time budget", 0),
    ],
)
def test_budgets_force_a_constrained_answer(budget: Budget, why: str, calls: int) -> None:
    client = ScriptedClient([*(call("lookup", word=f"w{i}") for i in range(calls)), '{"answer": "done"}'])
    result = Agent([lookup], client, budget=budget).run("Look things up.")
    assert why in result.stopped and result.answer == "done" and result.tool_calls == calls
    assert [s.kind for s in result.steps][-2:] == ["notice", "answer"]


def test_long_observations_are_cut_with_a_note() -> None:
    client = ScriptedClient([call("lookup", word="long"), final("ok")])
    result = Agent([lookup], client, budget=Budget(observation_chars=100)).run("Look up long.")
    obs = result.steps[1].text
    assert obs.startswith("x" * 70) and "4,900 more characters cut" in obs and obs.endswith("x" * 30)


def test_plain_text_answer_without_constraints() -> None:
    client = ScriptedClient(["Paris."])
    result = Agent([Calculator()], client, constrain=False).run("Capital of France?")
    assert result.answer == "Paris." and client.calls[0][1].tool_choice == "auto"
    assert "maxLength" not in json.dumps(client.calls[0][1].tools)


def test_unconstrained_a_tool_response_the_model_wrote_is_malformed() -> None:
    """What the embedded model wrote unconstrained for half of the bench's tasks: a tool's result itself."""
    client = ScriptedClient(['<tool_response>\n"Paris" is the capital.', "Paris."])
    result = Agent([Calculator()], client, constrain=False, examples=False).run("Capital of France?")
    assert result.answer == "Paris." and result.malformed == 1
    assert "only a tool writes a tool response" in client.calls[1][0][-1]["content"]


def test_the_python_tool_fails_safely_and_the_agent_goes_on(tmp_path: Path) -> None:
    attempts = [
        "import os\nwhile True:\n    os.fork()",
        "open('/etc/passwd').read()",
        "import socket\nsocket.create_connection(('10.0.0.1', 80), timeout=1)",
        "x = bytearray(10 * 2**30)",
        "print('y' * 100_000_000)",
        "6 * 7",
    ]
    client = ScriptedClient([*(call("python", code=c) for c in attempts), final("42")])
    result = Agent([PythonTool(tmp_path)], client, budget=Budget(max_steps=10)).run("Try everything.")
    obs = [s for s in result.steps if s.kind == "observation"]
    assert all(o.error for o in obs[:5]) and obs[5].text == "42" and result.answer == "42"
    assert "PermissionError" in obs[0].text and "PermissionError" in obs[1].text
    assert "out of memory" in obs[3].text and "printed more than" in obs[4].text


def test_react_constrained_steps_are_json_steps() -> None:
    client = ScriptedClient(
        [
            json.dumps(
                {"thought": "Compute it.", "action": "calculator", "action_input": {"expression": "6*7"}}
            ),
            json.dumps({"thought": "I know the answer.", "action": "Final Answer", "action_input": "42"}),
        ]
    )
    result = Agent([Calculator()], client, loop="react", examples=False).run("What is 6 times 7?")
    assert result.answer == "42" and [s.kind for s in result.steps] == [
        "thought",
        "call",
        "observation",
        "thought",
        "answer",
    ]
    msgs, opts = client.calls[1]
    assert '"action": the tool to use, one of [calculator]' in msgs[0]["content"]
    assert json.loads(msgs[2]["content"])["action_input"] == {"expression": "6*7"}
    assert msgs[3] == {"role": "user", "content": "Observation: 42"}
    schema = opts.response_format["json_schema"]["schema"]
    assert [o["properties"]["action"]["const"] for o in schema["anyOf"]] == ["calculator", "Final Answer"]


def test_react_text_is_parsed_and_bad_replies_reported() -> None:
    client = ScriptedClient(
        [
            "I think I should calculate.",
            'Thought: use the calculator\nAction: calculator\nAction Input: {"expression": "2**5"}',
            "Thought: done\nFinal Answer: 32",
        ]
    )
    result = Agent([Calculator()], client, loop="react", constrain=False, examples=False).run("2 to the 5th?")
    assert result.answer == "32" and result.malformed == 1
    assert "Action: the tool to use, one of [calculator]" in client.calls[0][0][0]["content"]
    assert client.calls[2][0][4]["content"].startswith("Thought: use the calculator\nAction: calculator")
    assert client.calls[0][1].stop == ("\nObservation:", "Observation:")
    assert "follow the format" in client.calls[1][0][-1]["content"]


def test_plan_and_execute_fills_placeholders() -> None:
    plan = {
        "steps": [
            {"tool": "calculator", "arguments": {"expression": "12 * 12"}},
            {"tool": "calculator", "arguments": {"expression": "#E1 - 44"}},
        ]
    }
    client = ScriptedClient([json.dumps(plan), '{"answer": "100"}'])
    result = Agent([Calculator()], client, loop="plan").run("12 squared minus 44?")
    calls = [s.arguments for s in result.steps if s.kind == "call"]
    assert calls == [{"expression": "12 * 12"}, {"expression": "144 - 44"}]
    assert result.answer == "100" and result.requests == 2
    assert client.calls[0][0][-1] == {"role": "user", "content": "Task: 12 squared minus 44?"}
    demo_plans = [
        json.loads(m["content"])["steps"] for m in client.calls[0][0][1:-1] if m["role"] == "assistant"
    ]
    assert demo_plans == [[], [{"tool": "calculator", "arguments": {"expression": "6 * 7"}}]]
    solve = client.calls[1][0][-1]["content"]
    assert "#E2 = calculator" in solve and "Result: 100" in solve
    assert client.calls[0][1].response_format["json_schema"]["name"] == "plan"


def test_plan_text_format_without_constraints() -> None:
    client = ScriptedClient(['#E1 = calculator[{"expression": "3*3"}]', "The answer is 9."])
    result = Agent([Calculator()], client, loop="plan", constrain=False).run("3 squared?")
    assert result.answer == "The answer is 9." and result.tool_calls == 1


def test_an_agent_as_a_tool_of_another() -> None:
    helper = Agent(
        [Calculator()],
        ScriptedClient([call("calculator", expression="9*9"), final("81")]),
        name="math",
        description="Does arithmetic.",
    )
    manager = Agent(
        [helper.as_tool()],
        ScriptedClient([call("math", task="What is 9 times 9?"), final("It is 81.")]),
        name="manager",
    )
    result = manager.run("Ask math for 9*9.")
    assert result.steps[1].text == "81" and result.answer == "It is 81."


class NoTools(ScriptedClient):
    def chat_stream(self, messages: Sequence[Any], **options: Any) -> Iterator[ChatChunk]:
        raise RequestFailed("constrained output is not supported by this engine", fatal=False)


def test_a_model_without_tool_support_names_the_loop_to_use() -> None:
    with pytest.raises(UserError, match="loop: react"):
        Agent([Calculator()], NoTools(["x"])).run("1+1?")


def test_bad_agent_definitions() -> None:
    with pytest.raises(UserError, match="unknown loop 'reflexion'"):
        Agent([Calculator()], ScriptedClient(["x"]), loop="reflexion")
    with pytest.raises(UserError, match="unique"):
        Agent([Calculator(), Calculator()], ScriptedClient(["x"]))
    with pytest.raises(UserError, match="empty"):
        Agent([], ScriptedClient(["x"])).run("  ")


def test_history_is_kept_across_turns() -> None:
    client = ScriptedClient([final("Your name is Ada.")])
    history = [{"role": "user", "content": "My name is Ada."}, {"role": "assistant", "content": "Hello Ada!"}]
    Agent([Calculator()], client, examples=False).run("What is my name?", history=history)
    assert [m["content"] for m in client.calls[0][0][1:]] == [
        "My name is Ada.",
        "Hello Ada!",
        "What is my name?",
    ]


def test_cancelled_runs_stop() -> None:
    client = ScriptedClient([call("calculator", expression="1+1"), '{"answer": "2"}'])
    result = Agent([Calculator()], client).run("1+1?", cancelled=lambda: True)
    assert "cancelled" in result.stopped


def test_an_answer_ends_at_the_brace_the_model_meant_to_close() -> None:
    """The embedded model's forced answer to 'What is 17% of 2340?' was `397.8 } } 2000000...`."""
    result = Agent([Calculator()], ScriptedClient([final("397.8 } } 2000000000")])).run("17% of 2340?")
    assert result.answer == "397.8"
    result = Agent([Calculator()], ScriptedClient([final("Use {a} or {b}.")])).run("Which?")
    assert result.answer == "Use {a} or {b}."


def test_the_worked_example_nearest_the_task_comes_last() -> None:
    from llmworks.agent.examples import examples_for

    tools = ["kb_search", "python", "calculator"]
    last = {
        t: examples_for(tools, t)[-1].calls[0][0]
        for t in ("What is 17% of 2340?", "Use python to sort [3, 1]")
    }
    assert last == {"What is 17% of 2340?": "calculator", "Use python to sort [3, 1]": "python"}
    assert examples_for(tools, "How do I restore an archive?")[-1].calls[0][0] == "kb_search"
    assert [ex.calls for ex in examples_for([], "x")] == [()]  # no tools: the tool-free example only
