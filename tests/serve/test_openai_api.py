"""The server against the official `openai` SDK (and raw HTTP for malformed bodies), on the tiny model."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest

from llmworks.engines import load_engine
from llmworks.testing.server import Server, start_server, stop_server

MSG = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def client(tiny_server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=tiny_server.v1, api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def model(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


def test_models_and_health(client: openai.OpenAI, tiny_server: Server) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids[0].startswith("tiny-llama") and "all-minilm-l6-v2" in ids
    assert httpx.get(tiny_server.base + "/health").json()["status"] == "ok"


def test_plain_chat(client: openai.OpenAI, model: str) -> None:
    r = client.chat.completions.create(model=model, messages=MSG, max_tokens=8, temperature=0)
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content and r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 8 and r.usage.prompt_tokens > 5


def test_system_and_multi_turn(client: openai.OpenAI, model: str) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        *MSG,
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "And again?"},
    ]
    r = client.chat.completions.create(model=model, messages=messages, max_tokens=4, temperature=0)
    assert r.usage.prompt_tokens > 20


def test_stream_with_usage_equals_non_stream(client: openai.OpenAI, model: str) -> None:
    full = client.chat.completions.create(model=model, messages=MSG, max_tokens=12, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=MSG,
            max_tokens=12,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert (
        chunks[-1].usage.completion_tokens == 12
        and chunks[-1].usage.prompt_tokens == full.usage.prompt_tokens
    )


def test_n_and_seed(client: openai.OpenAI, model: str) -> None:
    kw = dict(model=model, messages=MSG, max_tokens=10, temperature=1.0, n=2, seed=42)
    a = client.chat.completions.create(**kw)
    b = client.chat.completions.create(**kw)
    assert [c.index for c in a.choices] == [0, 1]
    assert [c.message.content for c in a.choices] == [
        c.message.content for c in b.choices
    ]  # seeded: reproducible
    assert a.choices[0].message.content != a.choices[1].message.content  # choices differ
    assert a.usage.completion_tokens == 20


def test_n_streamed(client: openai.OpenAI, model: str) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model, messages=MSG, max_tokens=5, n=2, stream=True, temperature=0
        )
    )
    finished = {c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason}
    assert finished == {0, 1}


def test_stop(client: openai.OpenAI, model: str) -> None:
    text = (
        client.chat.completions.create(model=model, messages=MSG, max_tokens=16, temperature=0)
        .choices[0]
        .message.content
    )
    stop = text[4:7]
    r = client.chat.completions.create(model=model, messages=MSG, max_tokens=16, temperature=0, stop=[stop])
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content == text[: text.index(stop)]


def test_max_completion_tokens(client: openai.OpenAI, model: str) -> None:
    r = client.chat.completions.create(model=model, messages=MSG, max_completion_tokens=3, temperature=0)
    assert r.usage.completion_tokens == 3


def test_logprobs(client: openai.OpenAI, model: str) -> None:
    r = client.chat.completions.create(
        model=model, messages=MSG, max_tokens=4, temperature=0, logprobs=True, top_logprobs=3
    )
    content = r.choices[0].logprobs.content
    assert len(content) == 4
    for entry in content:
        assert len(entry.top_logprobs) == 3
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob)  # greedy picks the top token
        assert entry.token == entry.top_logprobs[0].token and entry.logprob <= 0


SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "enum": ["yes", "no"]},
        "confidence": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 2},
    },
    "required": ["answer", "confidence", "tags"],
    "additionalProperties": False,
}


def test_json_schema_is_enforced(client: openai.OpenAI, model: str) -> None:
    for seed in range(3):
        r = client.chat.completions.create(
            model=model,
            messages=MSG,
            max_tokens=200,
            temperature=1.0,
            seed=seed,
            response_format={"type": "json_schema", "json_schema": {"name": "verdict", "schema": SCHEMA}},
        )
        jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMA)


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "maxLength": 12},
                    "unit": {"type": "string", "enum": ["C", "F"]},
                },
                "required": ["city", "unit"],
            },
        },
    }
]


def test_forced_tool_call(client: openai.OpenAI, model: str) -> None:
    r = client.chat.completions.create(
        model=model,
        messages=MSG,
        tools=TOOLS,
        max_tokens=120,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    jsonschema.validate(json.loads(call.function.arguments), TOOLS[0]["function"]["parameters"])


def test_tool_call_streamed(client: openai.OpenAI, model: str) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model, messages=MSG, tools=TOOLS, tool_choice="required", max_tokens=120, stream=True
        )
    )
    deltas = [
        tc
        for c in chunks
        if c.choices and c.choices[0].delta.tool_calls
        for tc in c.choices[0].delta.tool_calls
    ]
    assert deltas[0].function.name == "get_weather" and deltas[0].id
    args = "".join(d.function.arguments or "" for d in deltas)
    jsonschema.validate(json.loads(args), TOOLS[0]["function"]["parameters"])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_tool_results_are_accepted_next_turn(client: openai.OpenAI, model: str) -> None:
    messages = [
        *MSG,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "C"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
    ]
    r = client.chat.completions.create(
        model=model, messages=messages, tools=TOOLS, max_tokens=5, temperature=0
    )
    assert r.choices[0].message.content is not None or r.choices[0].message.tool_calls


def test_completions_echo_logprobs_match_engine_loglikelihood(
    client: openai.OpenAI, model: str, tiny_gguf: Path
) -> None:
    context, continuation = "The capital of France is", " Paris, of course"
    r = client.completions.create(
        model=model, prompt=context + continuation, max_tokens=0, echo=True, logprobs=1
    )
    lp = r.choices[0].logprobs
    assert r.choices[0].text == context + continuation
    assert lp.token_logprobs[0] is None and all(x is not None for x in lp.token_logprobs[1:])
    assert "".join(lp.tokens) == context + continuation and lp.text_offset[0] == 0
    with load_engine(tiny_gguf) as eng:
        n_ctx = len(eng.encode_prompt(context))
        [want] = eng.loglikelihood([(context, continuation)])
    assert sum(lp.token_logprobs[n_ctx:]) == pytest.approx(want.logprob, abs=1e-3)


def test_completions_plain_and_streamed(client: openai.OpenAI, model: str) -> None:
    r = client.completions.create(model=model, prompt="Once upon a time", max_tokens=6, temperature=0, n=2)
    assert len(r.choices) == 2 and r.choices[0].text == r.choices[1].text  # greedy: identical choices
    chunks = list(
        client.completions.create(
            model=model, prompt="Once upon a time", max_tokens=6, temperature=0, stream=True
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == r.choices[0].text
    stopped = client.completions.create(
        model=model, prompt="Once upon a time", max_tokens=6, temperature=0, stop=r.choices[0].text[2:4]
    )
    assert stopped.choices[0].finish_reason == "stop"


def test_embeddings(client: openai.OpenAI) -> None:
    texts = ["A cat sits on the mat.", "A kitten is sitting on a rug.", "Quarterly revenue grew by 4%."]
    r = client.embeddings.create(model="all-minilm-l6-v2", input=texts)
    v = [d.embedding for d in r.data]
    assert len(v) == 3 and len(v[0]) == 384 and r.usage.prompt_tokens > 10
    cos = lambda a, b: sum(x * y for x, y in zip(a, b, strict=True))  # noqa: E731 - vectors are normalized
    assert cos(v[0], v[1]) > cos(v[0], v[2]) + 0.2


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=MSG)
    assert e.value.body["code"] == "model_not_found"


def test_prompt_over_context_is_400_with_counts(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "word " * 600}])
    assert "maximum context length is 512 tokens" in e.value.message and "in the prompt" in e.value.message


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"messages": "hi"}',
        b'{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}',
        b'{"messages": []}',
        b'{"messages": [{"role": "wizard", "content": "x"}]}',
        b'{"model": 5, "messages": [{"role": "user"}]}',
        b'{"messages": [{"role": "user", "content": "x"}], "n": 0}',
    ],
)
def test_malformed_bodies_are_400(tiny_server: Server, body: bytes) -> None:
    r = httpx.post(
        tiny_server.v1 + "/chat/completions", content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["message"]


def test_metrics(tiny_server: Server, client: openai.OpenAI, model: str) -> None:
    client.chat.completions.create(model=model, messages=MSG, max_tokens=2)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=MSG)
    text = httpx.get(tiny_server.base + "/metrics").text
    for name in (
        "llmworks_requests_total",
        "llmworks_queue_depth",
        "llmworks_running_sequences",
        "llmworks_prompt_tokens_total",
        "llmworks_generation_tokens_total",
        "llmworks_time_to_first_token_seconds_bucket",
        "llmworks_request_latency_seconds_bucket",
    ):
        assert name in text
    assert 'status="200"' in text and 'status="404"' in text


# -- servers with other settings --


def test_api_key(tiny_gguf: Path, tmp_path: Path) -> None:
    server = start_server(
        [str(tiny_gguf), "--ctx", "256"], tmp_path / "log", env={"LLMWORKS_API_KEY": "s3cret"}
    )
    try:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=server.v1, api_key="wrong", max_retries=0).models.list()
        assert httpx.get(server.v1 + "/models").status_code == 401
        good = openai.OpenAI(base_url=server.v1, api_key="s3cret", max_retries=0)
        assert good.models.list().data
        assert httpx.get(server.base + "/health").status_code == 200  # only /v1 needs the key
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def one_slot_server(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Server:
    log = tmp_path_factory.mktemp("one") / "log"
    server = start_server([str(tiny_gguf), "--ctx", "4096", "--parallel", "1", "--max-queue", "1"], log)
    yield server
    stop_server(server)


def _long_request(server: Server, results: list[int]) -> None:
    r = httpx.post(
        server.v1 + "/chat/completions",
        json={"messages": MSG, "max_tokens": 800, "temperature": 0},
        timeout=120,
    )
    results.append(r.status_code)
    if r.status_code == 429:
        assert r.headers["retry-after"] == "1" and r.json()["error"]["code"] == "queue_full"


def test_queue_full_is_429(one_slot_server: Server) -> None:
    results: list[int] = []
    threads = [threading.Thread(target=_long_request, args=(one_slot_server, results)) for _ in range(3)]
    for t in threads:
        t.start()
        time.sleep(0.3)  # in order: the first runs, the second waits, the third finds the queue full
    for t in threads:
        t.join()
    assert sorted(results) == [200, 200, 429]


def _running(server: Server) -> float:
    for line in httpx.get(server.base + "/metrics").text.splitlines():
        if line.startswith("llmworks_running_sequences "):
            return float(line.split()[1])
    raise AssertionError("no running_sequences metric")


def _generated(server: Server) -> float:
    for line in httpx.get(server.base + "/metrics").text.splitlines():
        if line.startswith("llmworks_generation_tokens_total "):
            return float(line.split()[1])
    return 0.0


@pytest.mark.parametrize("stream", [True, False])
def test_disconnect_cancels_generation(one_slot_server: Server, stream: bool) -> None:
    body = {"messages": MSG, "max_tokens": 4000, "temperature": 0, "stream": stream}
    with httpx.Client(timeout=60) as http:
        if stream:
            with http.stream("POST", one_slot_server.v1 + "/chat/completions", json=body) as r:
                for i, _ in enumerate(r.iter_lines()):
                    if i > 5:
                        break  # leaving the block closes the connection mid-stream
        else:
            with pytest.raises(httpx.ReadTimeout):
                http.post(one_slot_server.v1 + "/chat/completions", json=body, timeout=1.0)
    for _ in range(100):  # the slot is freed promptly, long before 4000 tokens
        if _running(one_slot_server) == 0:
            break
        time.sleep(0.05)
    assert _running(one_slot_server) == 0
    before = _generated(one_slot_server)
    time.sleep(0.5)
    assert _generated(one_slot_server) == before  # nothing is generated for the departed client
    log = one_slot_server.log.read_text()
    assert "Traceback" not in log and "never retrieved" not in log  # a departure is no crash
    if not stream:
        assert "the client left before the answer" in log and "status=499" in log
    r = httpx.post(
        one_slot_server.v1 + "/chat/completions", json={"messages": MSG, "max_tokens": 2}, timeout=30
    )
    assert r.status_code == 200
