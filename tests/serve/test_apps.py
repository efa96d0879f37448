"""Applications served as models (the seam RAG and agents use): content, the `llmworks` data field,
streaming, errors scoped to the request, and API keys limited to some models. A real uvicorn server and the
real openai client; the apps are small ChatApps written for the test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

from llmworks.client.base import GenOptions
from llmworks.errors import UserError
from llmworks.serve.app import ServerState, create_app
from llmworks.serve.apps import AppContext, AppEvent, ChatApp
from llmworks.testing.server import serving


class Echo(ChatApp):
    """Answers with the last user message, word by word, and its words as `sources`."""

    name = "echo:words"

    def chat_stream(
        self, messages: list[dict[str, Any]], options: GenOptions, context: AppContext
    ) -> Iterator[AppEvent]:
        text = messages[-1]["content"]
        if text == "fail":
            raise UserError("the app cannot answer 'fail'.", "Ask something else.")
        if text == "crash":
            raise RuntimeError("boom")
        for word in text.split():
            yield AppEvent(word + " ", {"sources": [word]})
        yield AppEvent("", finish_reason="stop", prompt_tokens=3, completion_tokens=len(text.split()))


class Secret(Echo):
    name = "echo:secret"


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    state = ServerState(
        {},
        apps={a.name: a for a in (Echo(), Secret())},
        keys={"all": None, "some": frozenset({"echo:words"})},
    )
    with serving(create_app(state)) as url:
        yield url


def client(base: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)


def test_answer_and_data_field(base: str) -> None:
    r = client(base, "all").chat.completions.create(
        model="echo:words", messages=[{"role": "user", "content": "a b c"}]
    )
    assert r.choices[0].message.content == "a b c "
    assert r.model_extra["llmworks"] == {"sources": ["a", "b", "c"]}
    assert r.usage.completion_tokens == 3


def test_streamed_data_events_and_final_merge(base: str) -> None:
    stream = client(base, "all").chat.completions.create(
        model="echo:words", messages=[{"role": "user", "content": "x y"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    data = [c.model_extra.get("llmworks") for c in chunks if c.model_extra.get("llmworks")]
    assert text == "x y " and data[-1] == {"sources": ["x", "y"]} and {"sources": ["x"]} in data
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_an_app_error_fails_that_request_only(base: str) -> None:
    c = client(base, "all")
    with pytest.raises(openai.BadRequestError, match="cannot answer"):
        c.chat.completions.create(model="echo:words", messages=[{"role": "user", "content": "fail"}])
    with pytest.raises(openai.InternalServerError, match="error id"):
        c.chat.completions.create(model="echo:words", messages=[{"role": "user", "content": "crash"}])
    assert c.chat.completions.create(model="echo:words", messages=[{"role": "user", "content": "ok"}]).choices


def test_keys_limited_to_some_models(base: str) -> None:
    some = client(base, "some")
    assert [m.id for m in some.models.list().data] == ["echo:words"]
    with pytest.raises(openai.NotFoundError):
        some.chat.completions.create(model="echo:secret", messages=[{"role": "user", "content": "hi"}])
    assert {m.id for m in client(base, "all").models.list().data} == {"echo:words", "echo:secret"}
    with pytest.raises(openai.AuthenticationError):
        client(base, "wrong").models.list()
