"""A scripted `Client` for fast unit tests: replays canned replies and records what it was asked.

It mirrors the real clients' `chat` (content and tool calls, the same options), which the tests of
`LocalClient` and `HTTPClient` check on real models.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from llmworks.client.base import ChatChunk, Client, Completion, GenOptions, Pair, Usage
from llmworks.models.chat_policy import ToolCall
from llmworks.models.template import Message

Reply = str | ToolCall | list[ToolCall]


class ScriptedClient(Client):
    def __init__(self, replies: Sequence[Reply], name: str = "scripted") -> None:
        self.name = name
        self.replies = list(replies)
        self.calls: list[tuple[list[dict[str, Any]], GenOptions]] = []

    def chat_stream(self, messages: Sequence[Message], **options: Any) -> Iterator[ChatChunk]:
        self.calls.append(([dict(m) for m in messages], GenOptions.of(**options)))
        reply = self.replies[(len(self.calls) - 1) % len(self.replies)]
        if isinstance(reply, str):
            return iter([ChatChunk(reply, [], "stop", Usage(1, max(1, len(reply) // 4)))])
        calls = [reply] if isinstance(reply, ToolCall) else list(reply)
        return iter([ChatChunk("", calls, "tool_calls", Usage(1, 1))])

    def complete(self, prompt: str, **options: Any) -> Completion:
        return Completion(self.chat([{"role": "user", "content": prompt}], **options).content or "")

    def loglikelihood(self, pairs: Sequence[Pair]) -> list[float] | None:
        return None

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise NotImplementedError("ScriptedClient has no embeddings")
