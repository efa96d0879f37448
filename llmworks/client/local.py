"""The in-process client: an engine in this process, under the same chat policy as `llmworks serve`.

The engine's scheduler makes it thread-safe: concurrent calls from many threads (eval's concurrency, an
agent planner's parallel nodes) share its batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from llmworks.client.base import ChatChunk, Client, Completion, GenOptions, Pair, RequestFailed, Usage
from llmworks.engines.base import Engine
from llmworks.engines.embedder import Embedder
from llmworks.engines.types import SamplingParams
from llmworks.errors import UserError
from llmworks.models.chat_policy import ChatPrompt, ReplyStream, render_chat
from llmworks.models.template import Message


def chat_request(
    engine: Engine, messages: Sequence[Message], opts: GenOptions, logprobs: int | None = None
) -> tuple[ChatPrompt, list[int], SamplingParams]:
    """A conversation as the engine runs it: the rendered prompt, its token ids and the sampling parameters
    (stop strings and the compiled output constraint included). Shared by this client and the server, so
    both send the engine the same tokens. Raises UserError for what the caller can fix."""
    prompt = render_chat(
        engine.template,
        messages,
        model=engine.name,
        default_system=engine.default_system,
        tools=opts.tools,
        tool_choice=opts.tool_choice,
        response_format=opts.response_format,
        stop=(*opts.stop, *engine.stop_strings),
        tool_grammar=opts.tool_grammar and engine.has_grammars,
    )
    ids = engine.encode_prompt(prompt.text)
    grammar = None
    if prompt.constraint is not None:
        try:
            grammar = engine.compile_constraint(prompt.constraint)
        except UserError:
            if not prompt.constraint.tagged:
                raise
            # tool_choice auto asked for no constraint: tools whose schemas make no grammar are then
            # offered unconstrained, as they would be on a server without grammars.
    return prompt, ids, sampling(opts, prompt.stop, grammar=grammar, logprobs=logprobs)


def sampling(opts: GenOptions, stop: Sequence[str], **extra: Any) -> SamplingParams:
    try:
        return SamplingParams(
            max_tokens=opts.max_tokens,
            temperature=opts.temperature,
            top_p=opts.top_p,
            top_k=opts.top_k,
            min_p=opts.min_p,
            seed=opts.seed,
            stop=tuple(stop),
            repetition_penalty=opts.repetition_penalty,
            **extra,
        )
    except ValueError as e:
        raise UserError(f"bad sampling option: {e}.", "") from None


class LocalClient(Client):
    def __init__(self, engine: Engine, embedding_model: str | None = None, owns_engine: bool = True) -> None:
        self.engine = engine
        self.name = engine.name
        self.context_length = engine.context_length
        self._embedding_model = embedding_model
        self._embedder: Embedder | None = None
        self._owns = owns_engine
        self.last_prompt_ids: list[int] | None = None
        """The token ids of the last chat prompt sent (what the model saw)."""

    def chat_stream(self, messages: Sequence[Message], **options: Any) -> Iterator[ChatChunk]:
        opts = GenOptions.of(**options)
        try:
            prompt, ids, params = chat_request(self.engine, messages, opts)
            self.engine.check_fits(len(ids), params.max_tokens)
        except UserError as e:
            raise RequestFailed(f"{e.problem} {e.fix}".strip(), fatal=False) from None
        self.last_prompt_ids = ids
        return self._stream(prompt, ids, params)

    def _stream(self, prompt: ChatPrompt, ids: list[int], params: SamplingParams) -> Iterator[ChatChunk]:
        reply, n, finish = ReplyStream(prompt), 0, "length"
        for delta in self._guard(self.engine.generate(ids, params)):
            n += len(delta.token_ids)
            shown = reply.feed(delta.text)
            if shown:
                yield ChatChunk(shown)
            finish = delta.finish_reason or finish
        rest, calls = reply.finish()
        yield ChatChunk(rest, calls, "tool_calls" if calls else finish, Usage(len(ids), n))

    def complete(self, prompt: str, **options: Any) -> Completion:
        opts = GenOptions.of(**options)
        try:
            params = sampling(opts, opts.stop)
            ids = self.engine.encode_prompt(prompt)
            self.engine.check_fits(len(ids), params.max_tokens)
        except UserError as e:
            raise RequestFailed(f"{e.problem} {e.fix}".strip(), fatal=False) from None
        text, n, finish = [], 0, "length"
        for delta in self._guard(self.engine.generate(ids, params)):
            text.append(delta.text)
            n += len(delta.token_ids)
            finish = delta.finish_reason or finish
        return Completion("".join(text), finish, Usage(len(ids), n))

    def loglikelihood(self, pairs: Sequence[Pair]) -> list[float]:
        try:
            return [r.logprob for r in self.engine.loglikelihood(pairs)]
        except UserError as e:
            raise RequestFailed(f"{e.problem} {e.fix}".strip(), fatal=False) from None
        except RuntimeError as e:
            raise RequestFailed(str(e)) from None

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self._embedder is None:
            self._embedder = Embedder(self._embedding_model)
        return self._embedder.embed(list(texts))[0]

    def render(self, messages: Sequence[Message]) -> str | None:
        if self.engine.template is None:
            return None
        return self.engine.render_chat(messages)

    def tokenize(self, text: str) -> list[int]:
        return self.engine.tokenize(text)

    def describe(self) -> dict[str, Any]:
        source = getattr(self.engine, "source", None)
        return {
            "model": self.name,
            "engine": type(self.engine).__name__,
            "path": str(getattr(source, "path", "")),
        }

    def close(self) -> None:
        if self._owns:
            self.engine.close()

    @staticmethod
    def _guard(deltas: Iterator[Any]) -> Iterator[Any]:
        """Engine errors as client errors: the request's own (UserError) or a broken engine (fatal)."""
        try:
            yield from deltas
        except UserError as e:
            raise RequestFailed(f"{e.problem} {e.fix}".strip(), fatal=False) from None
        except RuntimeError as e:
            raise RequestFailed(str(e)) from None
