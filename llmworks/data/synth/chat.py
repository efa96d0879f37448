"""The one thing synth needs from a model: a chat function, messages -> reply text.

`engine_chat` runs the in-process engine (the embedded model by default); `openai_chat` talks to
any OpenAI-compatible server. Tests pass a scripted function instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from llmworks.errors import UserError


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 256
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int | None = None


class ChatFn(Protocol):
    def __call__(self, messages: Sequence[dict[str, str]], sampling: Sampling) -> str: ...


def engine_chat(model: str | None = None) -> ChatFn:
    try:
        from llmworks.engines import load_engine
        from llmworks.engines.base import SamplingParams
    except ImportError as e:
        raise UserError(
            "the in-process engine is not available in this install.", "Use --base-url URL."
        ) from e
    eng = load_engine(model)

    def chat(messages: Sequence[dict[str, str]], s: Sampling) -> str:
        params = SamplingParams(
            max_tokens=s.max_tokens, temperature=s.temperature, top_p=s.top_p, seed=s.seed
        )
        return "".join(d.text for d in eng.chat(list(messages), params))

    return chat


def openai_chat(base_url: str, model: str | None = None, api_key: str | None = None) -> ChatFn:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key=api_key or "not-needed")
    name = model
    if name is None:
        try:
            name = client.models.list().data[0].id
        except Exception as e:
            raise UserError(
                f"cannot list models at {base_url} ({e}).", "Check --base-url, or pass --model."
            ) from e

    def chat(messages: Sequence[dict[str, str]], s: Sampling) -> str:
        try:
            r = client.chat.completions.create(
                model=name,  # type: ignore[arg-type]
                messages=list(messages),  # type: ignore[arg-type]
                max_tokens=s.max_tokens,
                temperature=s.temperature,
                top_p=s.top_p,
                seed=s.seed,
            )
        except openai.APIConnectionError as e:
            raise UserError(f"cannot reach {base_url} ({e}).", "Start the server or fix --base-url.") from e
        return r.choices[0].message.content or ""

    return chat


def make_chat(model: str | None = None, base_url: str | None = None, api_key: str | None = None) -> ChatFn:
    return openai_chat(base_url, model, api_key) if base_url else engine_chat(model)
