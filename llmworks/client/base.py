"""The Client seam: the one OpenAI-style way everything above the engines talks to a model.

Two implementations answer the same calls: `LocalClient` (an engine in this process) and `HTTPClient` (any
OpenAI-compatible server: ours, vLLM, LMDeploy, Ollama). Results are plain dataclasses, not wire JSON.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmworks.errors import UserError
from llmworks.models.chat_policy import ToolCall
from llmworks.models.template import Message

Pair = tuple[str, str]
"""(context, continuation) to score."""


class RequestFailed(UserError):
    """A request that failed. `fatal`: the model is unreachable or broken (a run should stop and keep what it
    has); otherwise the model rejected this one request (a prompt too long, a bad schema: HTTP 4xx)."""

    def __init__(self, message: str, fatal: bool = True) -> None:
        fix = "Check that the server runs, and its URL and API key." if fatal else ""
        super().__init__(message, fix)
        self.message = message
        self.fatal = fatal


@dataclass(frozen=True)
class GenOptions:
    """Sampling and output options of one request, as the OpenAI API names them (plus top_k, min_p and
    repetition_penalty, which vLLM and llama.cpp servers also accept)."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    min_p: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0
    tools: tuple[Mapping[str, Any], ...] | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    response_format: Mapping[str, Any] | None = None
    tool_grammar: bool = True
    """tool_choice auto: a call the model starts is grammar-constrained, where the engine has grammars
    (in-process engines; a server applies its own setting, `llmworks serve --no-tool-grammar`)."""

    @staticmethod
    def of(**kw: Any) -> GenOptions:
        if "stop" in kw:
            kw["stop"] = tuple(kw["stop"] or ())
        if kw.get("tools") is not None:
            kw["tools"] = tuple(kw["tools"])
        return GenOptions(**kw)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class ChatChunk:
    """A piece of a streamed reply; the last one has `finish_reason` (and the tool calls, and usage)."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: Usage | None = None


@dataclass
class ChatResult:
    content: str | None
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str = "stop"
    """stop, length or tool_calls."""
    usage: Usage = field(default_factory=Usage)
    prompt_token_ids: list[int] | None = None
    """The prompt as the model saw it, where known (in process, or a server that returns token ids)."""

    def message(self) -> dict[str, Any]:
        """The reply as an OpenAI assistant message, to append to the conversation."""
        m: dict[str, Any] = {"role": "assistant", "content": self.content}
        if self.tool_calls:
            m["tool_calls"] = [c.to_openai() for c in self.tool_calls]
        return m


@dataclass
class Completion:
    text: str
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)


class Client(ABC):
    name: str
    """The model, as it is named in reports and requests."""
    context_length: int | None = None
    """Tokens per sequence, where known."""
    server_tool_grammar: bool | None = None
    """Whether the server constrains tool calls with a grammar, where it says so (`llmworks serve` does in
    /v1/models); None for another server and in process (the caller's `tool_grammar` decides there)."""

    @abstractmethod
    def chat_stream(self, messages: Sequence[Message], **options: Any) -> Iterator[ChatChunk]:
        """The reply to `messages`, streamed. Options: the fields of `GenOptions`."""

    def chat(self, messages: Sequence[Message], **options: Any) -> ChatResult:
        """The whole reply at once (content, tool calls, usage)."""
        parts, calls, finish, usage = [], [], "stop", Usage()
        for chunk in self.chat_stream(messages, **options):
            parts.append(chunk.content)
            calls += chunk.tool_calls
            finish = chunk.finish_reason or finish
            usage = chunk.usage or usage
        return ChatResult("".join(parts) if parts or not calls else None, calls, finish, usage)

    @abstractmethod
    def complete(self, prompt: str, **options: Any) -> Completion:
        """Plain-text continuation of `prompt` (no chat template)."""

    @abstractmethod
    def loglikelihood(self, pairs: Sequence[Pair]) -> list[float] | None:
        """Summed log P(continuation | context) per pair, or None if this model cannot score text."""

    @abstractmethod
    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length embedding vectors of `texts`."""

    def render(self, messages: Sequence[Message]) -> str | None:
        """The chat-templated prompt text of `messages`, or None where the template is not visible."""
        return None

    def tokenize(self, text: str) -> list[int] | None:
        """Token ids of `text`, or None where the tokenizer is not visible."""
        return None

    def count_tokens(self, text: str) -> int:
        ids = self.tokenize(text)
        return len(ids) if ids is not None else max(1, len(text) // 4)  # ~4 characters a token (English)

    def describe(self) -> dict[str, Any]:
        return {"model": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
