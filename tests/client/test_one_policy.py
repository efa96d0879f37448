"""One chat policy: the same messages reach the model as the same token ids through `llmworks chat`'s
session, the in-process client and `llmworks serve` (the real openai client, with vLLM's
`return_token_ids`), tools included."""

from __future__ import annotations

import io
from pathlib import Path

import openai
import pytest

from llmworks.chat.session import ChatSession
from llmworks.client import make_client
from llmworks.testing.server import start_server, stop_server

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
CONVERSATIONS = [
    ([{"role": "user", "content": "Name a colour."}], None),
    ([{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Hi!"}], None),
    ([{"role": "user", "content": "Weather in Paris?"}], TOOLS),
]


@pytest.mark.slow
def test_same_prompt_tokens_on_every_path(embedded_gguf: Path, tmp_path: Path) -> None:
    server = start_server(["--parallel", "1", "--ctx", "1024"], tmp_path / "server.log")
    try:
        remote = openai.OpenAI(base_url=server.v1, api_key="unused")
        with make_client(n_ctx=1024) as local, make_client(n_ctx=1024) as for_session:
            for messages, tools in CONVERSATIONS:
                extra = {"tools": tools} if tools else {}
                local.chat(messages, max_tokens=4, **extra)
                via_client = local.last_prompt_ids  # type: ignore[attr-defined]
                r = remote.chat.completions.create(
                    model="smollm2-135m-instruct",
                    messages=messages,  # type: ignore[arg-type]
                    max_tokens=4,
                    temperature=0,
                    extra_body={"return_token_ids": True},
                    **extra,
                )
                via_server = r.model_extra["prompt_token_ids"]
                assert via_client == via_server, messages
                if tools:
                    continue
                system = messages[0]["content"] if messages[0]["role"] == "system" else None
                session = ChatSession(for_session, {"max_tokens": 4}, system=system)
                session.ask(messages[-1]["content"], io.StringIO().write)
                assert for_session.last_prompt_ids == via_server, messages  # type: ignore[attr-defined]
    finally:
        stop_server(server)


def test_registry_stop_strings_end_chat_turns(tiny_gguf: Path) -> None:
    """A registry entry's stop strings (ChatGLM's <|user|>, Qwen's <|endoftext|>) end a chat turn."""
    import dataclasses

    from llmworks.client.base import GenOptions
    from llmworks.client.local import chat_request
    from llmworks.engines import load_engine
    from llmworks.models.registry import get_spec

    with load_engine(tiny_gguf, n_ctx=256) as eng:
        spec = dataclasses.replace(get_spec("smollm2-135m-instruct"), stop=("<|user|>",))
        eng.source = dataclasses.replace(eng.source, spec=spec)
        _, _, params = chat_request(eng, [{"role": "user", "content": "hi"}], GenOptions(stop=("END",)))
        assert params.stop == ("END", "<|user|>", "<|im_end|>")
