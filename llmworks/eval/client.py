"""The one OpenAI-style client that evaluation talks through: in-process (an Engine) or HTTP (any server).

Both answer `chat`, `complete` and `loglikelihood`; `loglikelihood` returns None when the model cannot
score text (an HTTP server without echo+logprobs), and tasks then fall back to generation.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from llmworks.engines.base import Engine, SamplingParams
from llmworks.errors import UserError
from llmworks.models.template import Message

SCORE_BATCH = 16
"""Prompts per /v1/completions scoring request."""


class RequestFailed(Exception):
    """A request that failed. `fatal`: the server is down or kept failing after retries, so the run stops
    and keeps what it has; otherwise the server rejected this one request (HTTP 4xx) and it scores as wrong."""

    def __init__(self, message: str, fatal: bool = True) -> None:
        super().__init__(message)
        self.fatal = fatal


class Client(ABC):
    name: str
    """The model, as it is named in reports."""

    @abstractmethod
    def chat(
        self,
        messages: Sequence[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int | None = None,
    ) -> str: ...

    @abstractmethod
    def complete(
        self,
        prompt: str,
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: Sequence[str] = (),
        seed: int | None = None,
    ) -> str: ...

    @abstractmethod
    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[float] | None:
        """Summed log P(continuation | context) per pair, or None if this model cannot score text."""

    @abstractmethod
    def render(self, messages: Sequence[Message]) -> str | None:
        """The chat-templated prompt text (to score under the template), or None if it is not known here."""

    @abstractmethod
    def count_tokens(self, text: str) -> int: ...

    def describe(self) -> dict[str, Any]:
        return {"model": self.name}

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class LocalClient(Client):
    """An engine in this process. One request at a time (engines are not thread-safe); scoring is batched."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name = engine.name
        self._lock = threading.Lock()

    def chat(self, messages, max_tokens=256, temperature=0.0, stop=(), seed=None):  # type: ignore[no-untyped-def]
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, stop=tuple(stop), seed=seed)
        with self._lock:
            return "".join(d.text for d in self.engine.chat(messages, params))

    def complete(self, prompt, max_tokens=256, temperature=0.0, stop=(), seed=None):  # type: ignore[no-untyped-def]
        params = SamplingParams(max_tokens=max_tokens, temperature=temperature, stop=tuple(stop), seed=seed)
        with self._lock:
            return self.engine.complete(prompt, params)[0]

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        from llmworks.eval.loglik import batched_loglikelihood

        with self._lock:
            return [r.logprob for r in batched_loglikelihood(self.engine, pairs)]

    def render(self, messages: Sequence[Message]) -> str | None:
        t = self.engine.template
        return t.render(messages, add_generation_prompt=True) if t else None

    def count_tokens(self, text: str) -> int:
        return len(self.engine.tokenize(text))

    def describe(self) -> dict[str, Any]:
        source = getattr(self.engine, "source", None)
        return {
            "model": self.name,
            "engine": type(self.engine).__name__,
            "path": str(getattr(source, "path", "")),
        }

    def close(self) -> None:
        self.engine.close()


class HTTPClient(Client):
    """Any OpenAI-compatible server (ours, vLLM, LMDeploy, Ollama) through the `openai` client.

    The client retries connection errors, 408/409/429 and 5xx with exponential backoff; a request that still
    fails raises RequestFailed, and a 4xx reply (a prompt too long, ...) is that request's own error.
    """

    def __init__(
        self, base_url: str, api_key: str | None = None, model: str | None = None, retries: int = 4
    ) -> None:
        import openai

        self.base_url = base_url.rstrip("/")
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key or "unused", max_retries=retries, timeout=600
        )
        self._openai = openai
        if model is None:
            models = self._call(lambda: self._client.models.list().data)
            if not models:
                raise UserError(
                    f"the server at {self.base_url} serves no models.", "Check its configuration."
                )
            model = models[0].id
        self.name = model
        self._can_score: bool | None = None

    def chat(self, messages, max_tokens=256, temperature=0.0, stop=(), seed=None):  # type: ignore[no-untyped-def]
        r = self._call(
            lambda: self._client.chat.completions.create(
                model=self.name,
                messages=list(messages),
                max_tokens=max_tokens,
                temperature=temperature,
                stop=list(stop) or None,
                seed=seed,
            )
        )
        return r.choices[0].message.content or ""

    def complete(self, prompt, max_tokens=256, temperature=0.0, stop=(), seed=None):  # type: ignore[no-untyped-def]
        r = self._call(
            lambda: self._client.completions.create(
                model=self.name,
                prompt=prompt,
                max_tokens=max_tokens,
                temperature=temperature,
                stop=list(stop) or None,
                seed=seed,
            )
        )
        return r.choices[0].text

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[float] | None:
        """Echo the prompt with logprobs and one generated token; sum the continuation's token logprobs.

        Token text offsets locate the continuation; the echoed prompt may carry a BOS the request did not,
        so offsets are shifted by the difference (the generated token's offset is the echoed prompt length).
        """
        if self._can_score is False:
            return None
        out: list[float] = []
        for start in range(0, len(pairs), SCORE_BATCH):
            chunk = pairs[start : start + SCORE_BATCH]
            try:
                r = self._call(
                    lambda chunk=chunk: self._client.completions.create(
                        model=self.name,
                        prompt=[c + x for c, x in chunk],
                        max_tokens=1,
                        temperature=0.0,
                        echo=True,
                        logprobs=0,
                    )
                )
            except RequestFailed as e:
                if (
                    self._can_score is None and not e.fatal
                ):  # the server rejects echo scoring: use generation instead
                    self._can_score = False
                    return None
                raise
            for (context, continuation), choice in zip(
                chunk, sorted(r.choices, key=lambda c: c.index), strict=True
            ):
                lp = choice.logprobs
                if lp is None or not lp.text_offset or lp.token_logprobs is None:
                    self._can_score = False
                    return None
                shift = lp.text_offset[-1] - len(context + continuation)
                begin = len(context) + shift
                out.append(
                    sum(
                        v or 0.0
                        for off, v in zip(lp.text_offset[:-1], lp.token_logprobs[:-1], strict=True)
                        if off >= begin
                    )
                )
            self._can_score = True
        return out

    def render(self, messages: Sequence[Message]) -> str | None:
        return None  # the server applies its own template; its text is not visible from here

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # no tokenizer over HTTP: ~4 characters per token (English)

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "base_url": self.base_url}

    def _call(self, fn: Any) -> Any:
        o = self._openai
        try:
            return fn()
        except o.APIConnectionError as e:
            raise RequestFailed(f"cannot reach {self.base_url} ({e.__cause__ or e})") from None
        except o.APIStatusError as e:
            fatal = e.status_code >= 500 or e.status_code in (401, 403, 408, 429)
            raise RequestFailed(
                f"{self.base_url} answered HTTP {e.status_code}: {_message(e)}", fatal
            ) from None


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error", {}).get("message") or body)
    return str(e)


def make_client(
    model: str | None, base_url: str | None, api_key: str | None = None, retries: int = 4, **engine_opts: Any
) -> Client:
    """`--base-url` -> HTTPClient (with `model` as the served name, if given); else load `model` here."""
    if base_url:
        try:
            return HTTPClient(base_url, api_key, model, retries)
        except RequestFailed as e:
            raise UserError(f"{e}.", "Start the server, or check --base-url and --api-key.") from None
    from llmworks.engines import load_engine

    return LocalClient(load_engine(model, **engine_opts))
