"""One OpenAI-style client for every stage above the engines (eval, data synth, chat, RAG, agents):
in process over an engine, or over HTTP to any OpenAI-compatible server.

    from llmworks.client import make_client
    with make_client() as client:                              # the embedded model, in this process
        print(client.chat([{"role": "user", "content": "Hi!"}]).content)
    client = make_client("NAME", base_url="http://127.0.0.1:8000/v1")   # any server
"""

from __future__ import annotations

from typing import Any

from llmworks.client.base import (
    ChatChunk,
    ChatResult,
    Client,
    Completion,
    GenOptions,
    Pair,
    RequestFailed,
    Usage,
)
from llmworks.errors import UserError
from llmworks.models.chat_policy import ToolCall


def make_client(
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    retries: int = 4,
    embedding_model: str | None = None,
    **engine_options: Any,
) -> Client:
    """`base_url` -> an HTTPClient (`model`: the served name; None: the server's first model); otherwise
    `model` (registry name, path; None: the embedded default) loaded here with `engine_options`
    (engine=, n_ctx=, parallel=, ...)."""
    if base_url:
        from llmworks.client.http import HTTPClient

        try:
            return HTTPClient(base_url, api_key, model, retries, embedding_model)
        except RequestFailed as e:
            raise UserError(f"{e}.", "Start the server, or check the base URL and API key.") from None
    from llmworks.client.local import LocalClient
    from llmworks.engines import load_engine

    return LocalClient(load_engine(model, **engine_options), embedding_model)


__all__ = [
    "ChatChunk",
    "ChatResult",
    "Client",
    "Completion",
    "GenOptions",
    "Pair",
    "RequestFailed",
    "ToolCall",
    "Usage",
    "make_client",
]
