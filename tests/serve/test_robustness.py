"""A server fails the one request at fault and keeps serving: the embedded model behind `llmworks serve`,
odd-but-valid requests, the request that used to kill the engine, and schemathesis fuzzing its OpenAPI
schema (bounded, fixed seed) with a health check after every case."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis

from llmworks.testing.fuzz import check_answer
from llmworks.testing.server import Server, start_server, stop_server

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m-instruct"
FUZZ_EXAMPLES = 40
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # A small context bounds the time of any generated request (the fuzzer picks max_tokens freely).
    s = start_server(["--parallel", "2", "--ctx", "128"], tmp_path_factory.mktemp("robust") / "server.log")
    yield s
    stop_server(s)


def post(server: Server, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.v1 + path, json=body, timeout=120)


def healthy(server: Server) -> bool:
    return httpx.get(server.base + "/health", timeout=10).status_code == 200


def test_an_empty_enum_schema_is_a_400_and_the_server_answers_the_next(server: Server) -> None:
    schema = {"name": "x", "schema": {"enum": []}}
    r = post(
        server,
        "/chat/completions",
        {"model": MODEL, "messages": HI, "response_format": {"type": "json_schema", "json_schema": schema}},
    )
    assert r.status_code == 400 and "grammar" in r.json()["error"]["message"]
    tool = {
        "type": "function",
        "function": {
            "name": "f",
            "parameters": {"type": "object", "properties": {"a": {"enum": []}}, "required": ["a"]},
        },
    }
    r = post(
        server,
        "/chat/completions",
        {"model": MODEL, "messages": HI, "tools": [tool], "tool_choice": "required"},
    )
    assert r.status_code == 400
    ok = post(server, "/chat/completions", {"model": MODEL, "messages": HI, "max_tokens": 4})
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] is not None
    assert healthy(server)


ODD = [
    ("/completions", {"prompt": [1_000_000_000]}, 400),  # a token id out of the vocabulary
    ("/completions", {"prompt": [-1]}, 400),
    ("/completions", {"prompt": "", "max_tokens": 2}, 200),  # from BOS, as OpenAI does
    ("/completions", {"prompt": [[]], "max_tokens": 2}, 200),
    ("/completions", {"prompt": [], "max_tokens": 2}, 400),
    (
        "/chat/completions",
        {
            "messages": HI,
            "max_tokens": 4,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "integer", "minimum": 5, "maximum": 1}},
            },
        },
        None,
    ),
    (
        "/chat/completions",
        {
            "messages": HI,
            "max_tokens": 4,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "string", "minLength": 10_000_000}},
            },
        },
        400,
    ),
    (
        "/chat/completions",
        {
            "messages": HI,
            "max_tokens": 4,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"$ref": "#/nowhere"}},
            },
        },
        400,
    ),
    (
        "/chat/completions",
        {
            "messages": HI,
            "max_tokens": 4,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "x", "schema": {"type": "string", "pattern": "(unclosed"}},
            },
        },
        400,
    ),
    ("/chat/completions", {"messages": HI, "min_p": 1.5}, 400),
    ("/chat/completions", {"messages": HI, "stop": [""], "max_tokens": 3}, 200),
    ("/chat/completions", {"messages": HI, "seed": 2**70, "max_tokens": 3}, 400),
    ("/chat/completions", {"messages": HI, "top_k": 2**40, "temperature": 0.7, "max_tokens": 3}, 200),
    ("/chat/completions", {"messages": HI, "repetition_penalty": 1e30, "max_tokens": 3}, 200),
    ("/chat/completions", {"messages": HI, "temperature": 1e-30, "max_tokens": 3}, 200),
    ("/chat/completions", {"messages": HI, "max_tokens": 100_000}, 400),  # more than the context
    ("/chat/completions", {"messages": [{"role": "user", "content": "x " * 5000}]}, 400),
    ("/chat/completions", {"messages": HI, "tools": [{"type": "function"}]}, 400),
    (
        "/chat/completions",
        {
            "messages": HI,
            "tool_choice": {"function": {"name": "nope"}},
            "tools": [{"type": "function", "function": {"name": "f"}}],
        },
        400,
    ),
    ("/embeddings", {"input": [""]}, 400),
]


@pytest.mark.parametrize(("path", "body", "status"), ODD, ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(ODD)])
def test_odd_requests_get_an_answer_or_a_4xx(
    server: Server, path: str, body: dict[str, Any], status: int | None
) -> None:
    r = post(server, path, {"model": MODEL, **body} if path != "/embeddings" else body)
    if status is None:  # either is right (some schemas compile to an empty or a trivial grammar)
        assert r.status_code in (200, 400), r.text
    else:
        assert r.status_code == status, r.text
    assert healthy(server)


def test_fuzzed_requests_never_get_a_server_error(server: Server) -> None:
    """schemathesis generates requests from the server's own /openapi.json: none may get a 5xx, each answer
    must be one the schema documents (status, content type, headers, body), and the server must stay healthy
    after each (a bounded run with a fixed seed; a long run is in the notes)."""
    schema = schemathesis.openapi.from_url(server.base + "/openapi.json")
    cases: list[str] = []

    @hypothesis.given(case=schema.as_strategy())
    @hypothesis.settings(
        max_examples=FUZZ_EXAMPLES,
        derandomize=True,  # a fixed seed: the same cases every run
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def one(case: Any) -> None:
        response = case.call(timeout=120)
        cases.append(f"{case.method} {case.path} {response.status_code}")
        check_answer(case, response)
        assert healthy(server), f"unhealthy after {case.method} {case.path}"

    one()
    assert len(cases) >= FUZZ_EXAMPLES // 2  # the run really sent requests


def test_a_method_the_route_does_not_serve_is_a_405_that_names_the_allowed_ones(server: Server) -> None:
    r = httpx.request("TRACE", server.v1 + "/models", timeout=10)
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_echo_logprobs_always_carry_the_generated_token(server: Server) -> None:
    """As OpenAI and vLLM do, even when that token is EOS (lm-eval's local-completions drops the last one)."""
    done = "<|im_start|>user\nThe capital of France?<|im_end|>\n<|im_start|>assistant\nParis.<|im_end|>"
    for prompt in (done, "The capital of France is"):
        r = post(
            server,
            "/completions",
            {"model": MODEL, "prompt": prompt, "max_tokens": 1, "echo": True, "logprobs": 0},
        )
        lp = r.json()["choices"][0]["logprobs"]
        n_prompt = r.json()["usage"]["prompt_tokens"]
        assert len(lp["tokens"]) == len(lp["token_logprobs"]) == n_prompt + 1, prompt
        assert lp["token_logprobs"][0] is None and lp["token_logprobs"][-1] is not None
