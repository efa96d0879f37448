"""The Engine seam: everything above the engines (chat, serve, eval, RAG, agents) talks to a model here.

An engine takes a prompt (text or token ids) and streams `Delta`s. Chat goes through the model's own
chat template (`llmworks.models.template`), rendered here, so every backend formats turns the same way.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence

from llmworks.engines.types import Delta, FinishReason, LoglikelihoodResult, SamplingParams
from llmworks.errors import PromptTooLong, UserError
from llmworks.models.template import ChatTemplate, Message, no_template_error

DEFAULT_MAX_CTX = 8192
"""Context used when none is asked for: the model's own, capped so the KV cache stays small."""


class Engine(ABC):
    """A loaded model. Subclass this (not a concrete engine) to add a backend."""

    name: str
    """The served/display name of the model."""
    context_length: int
    vocab_size: int
    template: ChatTemplate | None
    """The model's own chat template; None for base models without one."""
    eos_ids: set[int]
    """Token ids that end generation, as the model declares them."""

    @abstractmethod
    def generate(self, prompt: str | list[int], params: SamplingParams) -> Iterator[Delta]:
        """Stream the continuation of `prompt` (raw text: no template is applied)."""

    @abstractmethod
    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Token ids of `text`, without BOS; `special` parses control tokens like <|im_end|>."""

    @abstractmethod
    def detokenize(self, ids: Sequence[int]) -> str: ...

    @abstractmethod
    def encode_prompt(self, prompt: str | list[int]) -> list[int]:
        """Token ids of a whole prompt: special tokens parsed, BOS added when the model wants one."""

    @abstractmethod
    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[LoglikelihoodResult]:
        """Score each (context, continuation) pair; used by multiple-choice evaluation."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the model's memory."""

    # -- shared behaviour, built on the abstract methods above --

    def chat(self, messages: Sequence[Message], params: SamplingParams) -> Iterator[Delta]:
        """Stream the assistant's reply to `messages`, formatted by the model's own chat template.

        The template's end-of-turn token also stops generation as text, in case the model's EOS
        settings leave it out (`llmworks models check` reports that mismatch).
        """
        if self.template is None:
            raise no_template_error(self.name)
        eot = self.template.end_of_turn
        if eot and eot not in params.stop:
            params = dataclasses.replace(params, stop=(*params.stop, eot))
        return self.generate(self.template.render(messages, add_generation_prompt=True), params)

    def complete(self, prompt: str | list[int], params: SamplingParams) -> tuple[str, FinishReason]:
        """The whole continuation at once, and why it ended."""
        text, reason = [], "length"
        for d in self.generate(prompt, params):
            text.append(d.text)
            reason = d.finish_reason or reason
        return "".join(text), reason  # type: ignore[return-value]

    def default_system(self) -> str | None:
        """The registry's system prompt for this model (chat, serve), or None for the template's own."""
        spec = getattr(getattr(self, "source", None), "spec", None)
        return getattr(spec, "system", "") or None

    def split_continuation(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of a (context, continuation) pair for scoring, checked to fit the context.

        The continuation gets the tokens the whole text has after the context's; if tokenization merges
        across the boundary, it is encoded on its own instead.
        """
        ctx_ids = self.encode_prompt(context)
        whole = self.encode_prompt(context + continuation)
        cont_ids = whole[len(ctx_ids) :] if whole[: len(ctx_ids)] == ctx_ids else self.tokenize(continuation)
        if not ctx_ids or not cont_ids:
            raise UserError("loglikelihood needs a non-empty context and continuation.", "")
        self.check_fits(len(ctx_ids) + len(cont_ids), 0)
        return ctx_ids, cont_ids

    def check_fits(self, n_prompt: int, max_tokens: int) -> None:
        """Raise PromptTooLong when the prompt leaves no room to generate."""
        if n_prompt >= self.context_length:
            raise PromptTooLong(n_prompt, self.context_length, max_tokens)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
