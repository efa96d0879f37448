"""The HTTP client: any OpenAI-compatible server (ours, vLLM, LMDeploy, Ollama) through the `openai` SDK.

The SDK retries connection errors, 408/409/429 and 5xx with exponential backoff; a request that still
fails raises RequestFailed (fatal), and a 4xx reply (a prompt too long, ...) is that request's own error.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from llmworks.client.base import ChatChunk, Client, Completion, GenOptions, Pair, RequestFailed, Usage
from llmworks.errors import UserError
from llmworks.models.chat_policy import ToolCall
from llmworks.models.template import Message

SCORE_BATCH = 16
"""Prompts per /v1/completions scoring request."""


class HTTPClient(Client):
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        model: str | None = None,
        retries: int = 4,
        embedding_model: str | None = None,
        timeout: float = 600,
        score_concurrency: int = 1,
    ) -> None:
        import openai

        self.base_url = base_url.rstrip("/")
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key or "unused", max_retries=retries, timeout=timeout
        )
        self._openai = openai
        self.embedding_model = embedding_model
        self.score_concurrency = score_concurrency
        listed = self._models(required=model is None)
        if model is None and not listed:
            raise UserError(f"the server at {self.base_url} serves no models.", "Check its configuration.")
        self.name = model or listed[0].id
        entry = next((m for m in listed if m.id == self.name), None)
        extra = getattr(entry, "model_extra", None) or {}
        self.context_length = extra.get("context_length") or extra.get("max_model_len")
        self.server_tool_grammar = extra.get("tool_grammar")  # llmworks serve says; others do not
        self._can_score: bool | None = None

    def _models(self, required: bool) -> list[Any]:
        """The server's /v1/models; when the model is named, a server that does not list them (or is not up
        yet: asked once, not retried) is fine."""
        client = self._client if required else self._client.with_options(max_retries=0)
        try:
            return list(self._call(lambda: client.models.list().data))
        except RequestFailed:
            if required:
                raise
            return []

    def chat_stream(self, messages: Sequence[Message], **options: Any) -> Iterator[ChatChunk]:
        o = GenOptions.of(**options)
        kw: dict[str, Any] = {
            "model": self.name,
            "messages": list(messages),
            "max_tokens": o.max_tokens,
            "temperature": o.temperature,
            "top_p": o.top_p,
            "seed": o.seed,
            "stop": list(o.stop) or None,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if o.tools:
            kw["tools"] = list(o.tools)
            if o.tool_choice is not None:
                kw["tool_choice"] = o.tool_choice
        if o.response_format is not None:
            kw["response_format"] = o.response_format
        extra = {k: v for k, v in (("top_k", o.top_k), ("min_p", o.min_p)) if v}
        if o.repetition_penalty != 1.0:
            extra["repetition_penalty"] = o.repetition_penalty
        if extra:
            kw["extra_body"] = extra
        stream = self._call(lambda: self._client.chat.completions.create(**kw))
        return self._chunks(stream)

    def _chunks(self, stream: Any) -> Iterator[ChatChunk]:
        calls: dict[int, dict[str, str]] = {}
        finish, usage = None, None
        try:
            for event in stream:
                if event.usage is not None:
                    usage = Usage(event.usage.prompt_tokens, event.usage.completion_tokens)
                for choice in event.choices[:1]:
                    delta = choice.delta
                    for tc in delta.tool_calls or []:
                        c = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
                        c["id"] = tc.id or c["id"]
                        if tc.function is not None:
                            c["name"] += tc.function.name or ""
                            c["arguments"] += tc.function.arguments or ""
                    if delta.content:
                        yield ChatChunk(delta.content)
                    finish = choice.finish_reason or finish
        except self._openai.APIError as e:
            raise RequestFailed(f"{self.base_url} failed mid-stream: {e}") from None
        tool_calls = [ToolCall(c["id"], c["name"], c["arguments"] or "{}") for _, c in sorted(calls.items())]
        yield ChatChunk("", tool_calls, finish or "stop", usage)

    def complete(self, prompt: str, **options: Any) -> Completion:
        o = GenOptions.of(**options)
        r = self._call(
            lambda: self._client.completions.create(
                model=self.name,
                prompt=prompt,
                max_tokens=o.max_tokens,
                temperature=o.temperature,
                top_p=o.top_p,
                stop=list(o.stop) or None,
                seed=o.seed,
            )
        )
        u = r.usage
        return Completion(
            r.choices[0].text,
            r.choices[0].finish_reason or "stop",
            Usage(u.prompt_tokens, u.completion_tokens) if u else Usage(),
        )

    def loglikelihood(self, pairs: Sequence[Pair]) -> list[float] | None:
        """/v1/completions with echo + logprobs and one generated token; the continuation's token logprobs
        summed. Requests of SCORE_BATCH prompts go `score_concurrency` at a time."""
        if self._can_score is False:
            return None
        chunks = [list(pairs[i : i + SCORE_BATCH]) for i in range(0, len(pairs), SCORE_BATCH)]
        workers = max(1, min(self.score_concurrency, len(chunks)))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(self._score, chunks))
        if any(p is None for p in parts):
            self._can_score = False
            return None
        self._can_score = True
        return [v for p in parts for v in p]  # type: ignore[union-attr]

    def _score(self, chunk: list[Pair]) -> list[float] | None:
        try:
            r = self._call(
                lambda: self._client.completions.create(
                    model=self.name,
                    prompt=[c + x for c, x in chunk],
                    max_tokens=1,
                    temperature=0.0,
                    echo=True,
                    logprobs=0,
                )
            )
        except RequestFailed as e:
            if self._can_score is None and not e.fatal:  # the server rejects echo scoring
                return None
            raise
        out = []
        for (context, continuation), choice in zip(
            chunk, sorted(r.choices, key=lambda c: c.index), strict=True
        ):
            score = _continuation_logprob(choice, context, continuation)
            if score is None:
                return None
            out.append(score)
        return out

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        kw: dict[str, Any] = {"input": list(texts)}
        kw["model"] = self.embedding_model or ""
        r = self._call(lambda: self._client.embeddings.create(**kw))
        return [d.embedding for d in sorted(r.data, key=lambda d: d.index)]

    def describe(self) -> dict[str, Any]:
        return {"model": self.name, "base_url": self.base_url}

    def close(self) -> None:
        self._client.close()

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


def _continuation_logprob(choice: Any, context: str, continuation: str) -> float | None:
    """The sum over the echoed tokens that start inside the continuation, located by text offsets: the echo
    may open with a BOS text the request did not have, and may or may not end with the generated token
    (servers differ when it is EOS), so neither end is assumed."""
    lp = choice.logprobs
    if lp is None or not lp.text_offset or lp.token_logprobs is None:
        return None
    whole = context + continuation
    start = (choice.text or "").find(whole)
    if start < 0:  # the echo is not the request's text verbatim: assume a generated token ends it
        start = lp.text_offset[-1] - len(whole)
    begin, end = start + len(context), start + len(whole)
    return sum(
        v or 0.0 for off, v in zip(lp.text_offset, lp.token_logprobs, strict=True) if begin <= off < end
    )
