"""tool_choice auto under the tool grammar, on the embedded model: a call the model starts is a call of an
offered tool with arguments of its schema; without the grammar the same model, shown one worked call, writes
tool *responses* of its own instead."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import openai
import pytest

from llmworks.client import make_client
from llmworks.client.http import HTTPClient
from llmworks.testing.server import start_server, stop_server

pytestmark = pytest.mark.slow

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
SHOT = [
    {"role": "user", "content": "What's the weather in Oslo?"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
            }
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 3}'},
    {"role": "assistant", "content": "It is 3 °C in Oslo."},
    {"role": "user", "content": "What's the weather in Lima?"},
]


def test_auto_calls_parse_under_the_grammar() -> None:
    replies = {}
    with make_client(None) as client:
        for grammar in (True, False):
            replies[grammar] = [
                client.chat(
                    SHOT, tools=[WEATHER], max_tokens=40, temperature=1.0, seed=s, tool_grammar=grammar
                )
                for s in range(6)
            ]
    constrained = replies[True]
    calls = [c for r in constrained for c in r.tool_calls]
    assert calls, [r.content for r in constrained]
    for c in calls:
        assert c.name == "get_weather"
        jsonschema.validate(json.loads(c.arguments), WEATHER["function"]["parameters"])
    assert not any("<tool_call" in (r.content or "") for r in constrained)
    # the same requests unconstrained: no call parses (it imitates the tool's turn instead)
    assert sum(len(r.tool_calls) for r in replies[False]) < len(calls)


def test_served_auto_calls_follow_the_server_setting(tmp_path: Path) -> None:
    """`llmworks serve` applies the grammar to tool_choice auto by default; `--no-tool-grammar` does not.
    The real openai client, the same requests as above."""
    calls = {}
    for flag in ([], ["--no-tool-grammar"]):
        server = start_server(["--parallel", "2", *flag], tmp_path / f"serve{len(flag)}.log")
        try:
            client = openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0)
            # the server says its setting (an eval run against it reports how the calls were made)
            assert client.models.list().data[0].model_extra["tool_grammar"] is not bool(flag)
            assert HTTPClient(server.v1).server_tool_grammar is not bool(flag)
            assert HTTPClient(server.v1, model="smollm2-135m-instruct").server_tool_grammar is not bool(flag)
            replies = [
                client.chat.completions.create(
                    model="smollm2-135m-instruct", messages=SHOT, tools=[WEATHER], max_tokens=40, temperature=1.0,
                    seed=s,
                ).choices[0].message
                for s in range(6)
            ]  # fmt: skip
        finally:
            stop_server(server)
        calls[bool(flag)] = [c for m in replies for c in m.tool_calls or []]
        if not flag:
            assert not any("<tool_call" in (m.content or "") for m in replies)
    assert calls[False] and all(json.loads(c.function.arguments).get("city") for c in calls[False])
    assert len(calls[True]) < len(calls[False])
