"""The server on the real embedded model, through the official `openai` SDK. Marked slow."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

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
    assert "Paris" in ask(client, "What is the capital of France?")


def test_concurrent_requests_are_answered_together(client: openai.OpenAI) -> None:
    questions = {"France": "Paris", "Italy": "Rom", "Germany": "Berlin", "Japan": "Tokyo"}  # Rome or Roma
    answers: dict[str, str] = {}
    first_token: dict[str, float] = {}
    done: dict[str, float] = {}

    def run(country: str) -> None:
        stream = client.chat.completions.create(
            model="smollm2-135m-instruct",
            temperature=0,
            max_tokens=48,
            stream=True,
            messages=[{"role": "user", "content": f"What is the capital of {country}?"}],
        )
        parts = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first_token.setdefault(country, time.monotonic())
                parts.append(chunk.choices[0].delta.content)
        done[country] = time.monotonic()
        answers[country] = "".join(parts)

    threads = [threading.Thread(target=run, args=(c,)) for c in questions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for country, city in questions.items():
        assert city in answers[country], answers[country]
    # In flight together: every stream had started before the first one finished.
    assert max(first_token.values()) < min(done.values())


def test_json_object_parses(client: openai.OpenAI) -> None:
    text = ask(
        client,
        "Give the name and age of a fictional person as JSON.",
        max_tokens=120,
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(text), dict)


def test_web_chat_page_is_served(server: Server) -> None:
    import httpx

    page = httpx.get(server.base + "/")
    assert page.status_code == 200 and 'id="prompt"' in page.text
