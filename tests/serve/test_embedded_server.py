"""The server on the real embedded model, through the official `openai` SDK. Marked slow.

The questions are ones the model answers right with a clear margin (llmworks/testing/golden.py): four
requests decoded in one batch do not see exactly the numerics of one alone, and a near-tie could flip.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest

from llmworks.testing.golden import CAPITALS, COUNT_PROMPT, JSON_PROMPT, capital_question
from llmworks.testing.server import Server, start_server, stop_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(["--parallel", "4"], tmp_path_factory.mktemp("emb") / "log")
    yield s
    stop_server(s)


@pytest.fixture(scope="module")
def client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.v1, api_key="unused", max_retries=0)


def ask(client: openai.OpenAI, question: str, **kw) -> str:  # type: ignore[no-untyped-def]
    kw.setdefault("max_tokens", 48)
    r = client.chat.completions.create(
        model="smollm2-135m-instruct", temperature=0, messages=[{"role": "user", "content": question}], **kw
    )
    return r.choices[0].message.content or ""


def test_capital_of_france(client: openai.OpenAI) -> None:
    assert "Paris" in ask(client, capital_question("France"))


@dataclass
class Streams:
    answers: dict[str, str] = field(default_factory=dict)
    finish: dict[str, str | None] = field(default_factory=dict)
    first_token: dict[str, float] = field(default_factory=dict)
    done: dict[str, float] = field(default_factory=dict)


def stream_together(client: openai.OpenAI, questions: dict[str, str], max_tokens: int) -> Streams:
    """Stream every question (name -> text) at once, one thread each."""
    out = Streams()

    def run(name: str) -> None:
        stream = client.chat.completions.create(
            model="smollm2-135m-instruct",
            temperature=0,
            max_tokens=max_tokens,
            stream=True,
            messages=[{"role": "user", "content": questions[name]}],
        )
        parts = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                out.first_token.setdefault(name, time.monotonic())
                parts.append(chunk.choices[0].delta.content)
            if chunk.choices and chunk.choices[0].finish_reason:
                out.finish[name] = chunk.choices[0].finish_reason
        out.done[name] = time.monotonic()
        out.answers[name] = "".join(parts)

    threads = [threading.Thread(target=run, args=(name,)) for name in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_concurrent_requests_are_answered_right(client: openai.OpenAI) -> None:
    got = stream_together(client, {c: capital_question(c) for c in CAPITALS}, max_tokens=48)
    for country, city in CAPITALS.items():
        assert city in got.answers[country], got.answers[country]
        assert got.finish[country] == "stop"


def test_concurrent_requests_are_decoded_together(client: openai.OpenAI) -> None:
    """Four streams that each run to max_tokens (counting to 200 does not fit in 48 tokens): in flight
    together, every stream has started before the first one finishes."""
    got = stream_together(client, {f"s{i}": COUNT_PROMPT for i in range(4)}, max_tokens=48)
    assert set(got.finish.values()) == {"length"}, got.answers
    assert max(got.first_token.values()) < min(got.done.values())


def test_json_object_parses(client: openai.OpenAI) -> None:
    text = ask(
        client,
        JSON_PROMPT,
        max_tokens=120,
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(text), dict)


def test_web_chat_page_is_served(server: Server) -> None:
    import httpx

    page = httpx.get(server.base + "/")
    assert page.status_code == 200 and 'id="prompt"' in page.text
