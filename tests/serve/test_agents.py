"""Agents served as models (`llmworks serve --agent CONFIG`): `agent:NAME` on /v1/chat/completions, the
answer as content, the steps in the response's `llmworks.steps` (streamed one chunk per step), tool files
as links the server serves, and an agent's error failing that request only. The fast tests drive a real
uvicorn server and the real openai client with an agent on a ScriptedClient; the last one serves a
shipped config on the embedded model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmworks.agent.config import AgentConfig
from llmworks.models.chat_policy import ToolCall
from llmworks.serve.agents import AgentApp
from llmworks.serve.app import ServerState, create_app
from llmworks.testing.fake_client import ScriptedClient
from llmworks.testing.server import serving, start_server, stop_server

CONFIGS = Path(__file__).parents[2] / "configs" / "agents"


def call(name: str, **args: Any) -> ToolCall:
    return ToolCall(f"call_{name}", name, json.dumps(args))


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    work = tmp_path_factory.mktemp("agents")
    client = ScriptedClient(
        [
            call("chart", kind="line", expression="x**2", x_min=1, x_max=5),
            call("final_answer", answer="Here is the chart."),
        ]
    )
    cfg = AgentConfig(name="charter", description="Draws charts.", tools=["chart"], examples=False)
    app = AgentApp(cfg, client, work / "files", log_dir=work)
    state = ServerState({}, apps={app.name: app})
    with serving(create_app(state)) as url:
        yield url


def test_the_answer_is_content_and_the_steps_a_field(base: str) -> None:
    oa = openai.OpenAI(base_url=base + "/v1", api_key="unused")
    assert "agent:charter" in [m.id for m in oa.models.list().data]
    r = oa.chat.completions.create(
        model="agent:charter", messages=[{"role": "user", "content": "Plot x squared."}]
    )
    content = r.choices[0].message.content or ""
    assert content.startswith("Here is the chart.")
    data = r.model_extra["llmworks"]
    assert [s["kind"] for s in data["steps"]] == ["call", "observation", "answer"]
    assert data["steps"][0]["tool"] == "chart" and data["steps"][0]["arguments"]["expression"] == "x**2"
    (link,) = data["files"]
    assert link.startswith("/files/agent/charter/") and link.endswith(".png") and f"]({link})" in content
    png = httpx.get(base + link)
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    assert httpx.get(base + "/files/agent/charter/nosuchrun/chart.png").status_code == 404


def test_steps_stream_as_they_happen(base: str) -> None:
    chunks = []
    with httpx.stream(
        "POST",
        base + "/v1/chat/completions",
        json={"model": "agent:charter", "stream": True, "messages": [{"role": "user", "content": "Plot."}]},
    ) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunks.append(json.loads(line[6:]))
    kinds = [s["kind"] for c in chunks[:-1] for s in (c.get("llmworks") or {}).get("steps", [])]
    assert kinds[:2] == ["call", "observation"]  # each its own chunk, before the answer's text
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text.startswith("Here is the chart.")
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_a_bad_request_fails_alone(base: str) -> None:
    r = httpx.post(
        base + "/v1/chat/completions",
        json={"model": "agent:charter", "messages": [{"role": "assistant", "content": "Hi."}]},
    )
    assert r.status_code == 400 and "last message must be the user's" in r.text
    ok = httpx.post(
        base + "/v1/chat/completions",
        json={"model": "agent:charter", "messages": [{"role": "user", "content": "Plot."}]},
    )
    assert ok.status_code == 200


def test_serve_agent_from_the_command_line(tiny_gguf: Path, tmp_path: Path) -> None:
    """`llmworks serve MODEL --agent CONFIG` as a user runs it, on the tiny random model (fast; its calls
    are constrained to the registry, so it runs the loop to a forced answer). The shipped configs run on
    the embedded model in tests/agent/test_configs_embedded.py."""
    cfg = tmp_path / "calc.yaml"
    text = (CONFIGS / "calc-helper.yaml").read_text()
    cfg.write_text(
        text.replace("max_steps: 4", "max_steps: 2").replace("step_tokens: 192", "step_tokens: 48")
    )
    server = start_server(
        [str(tiny_gguf), "--agent", str(cfg), "--parallel", "2", "--ctx", "2048"], tmp_path / "server.log"
    )
    try:
        models = httpx.get(server.v1 + "/models").json()["data"]
        assert "agent:calc-helper" in [m["id"] for m in models]
        r = httpx.post(
            server.v1 + "/chat/completions",
            json={
                "model": "agent:calc-helper",
                "messages": [{"role": "user", "content": "What is 123 * 45?"}],
            },
            timeout=300,
        )
        assert r.status_code == 200, r.text
        body = r.json()
        steps = body["llmworks"]["steps"]
        assert steps[-1] == {
            "kind": "answer",
            "text": body["choices"][0]["message"]["content"].split("\n\n")[0],
        }
        assert {s["tool"] for s in steps if s["kind"] == "call"} <= {"calculator", "python", "chart"}
        assert body["usage"]["prompt_tokens"] > 0
    finally:
        stop_server(server)
