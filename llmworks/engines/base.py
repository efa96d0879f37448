"""The Engine seam: a loaded model that streams tokens and scores text. Everything above it (the client,
serve, eval, RAG, agents) reaches a model through `llmworks.client`, which sits on this.

An engine takes a prompt (text or token ids) and streams `Delta`s; chat prompts are rendered by the one
chat policy (`llmworks.models.chat_policy`) first. Every request goes through the engine's scheduler
thread (`llmworks.engines.scheduler`), so an engine is safe to call from many threads and concurrent
requests share its batch. A backend implements tokenization, `_make_scheduler` and, optionally,
`compile_constraint` (grammar-constrained output).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from llmworks.engines.scheduler import Event, GenRequest, RequestFailed, Scheduler
from llmworks.engines.types import (
    Delta,
    FinishReason,
    Grammar,
    LoglikelihoodResult,
    SamplingParams,
    SeqRequest,
    TokenLogprob,
)
from llmworks.errors import PromptTooLong, UserError
from llmworks.models.chat_policy import OutputConstraint, render_chat
from llmworks.models.template import ChatTemplate, Message

if TYPE_CHECKING:
    from llmworks.models.sources import ModelSource

DEFAULT_MAX_CTX = 8192
"""Context used when none is asked for: the model's own, capped so the KV cache stays small."""


class Engine(ABC):
    """A loaded model. Subclass this (not a concrete engine) to add a backend."""

    name: str
    """The served/display name of the model."""
    source: ModelSource
    context_length: int
    """Tokens of one sequence: prompt plus completion."""
    vocab_size: int
    template: ChatTemplate | None
    """The model's own chat template; None for base models without one."""
    eos_ids: set[int]
    """Token ids that end generation, as the model declares them."""
    bos_id: int | None = None
    """The model's beginning-of-sequence token, if it has one."""
    add_bos: bool = False
    """Text prompts start with `bos_id` (as the model's tokenizer config asks)."""

    max_queue: int | None = None
    """Requests that may wait for a slot before `submit` raises QueueFull (None: no limit)."""

    @abstractmethod
    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Token ids of `text`, without BOS; `special` parses control tokens like <|im_end|>."""

    @abstractmethod
    def detokenize(self, ids: Sequence[int]) -> str: ...

    @abstractmethod
    def _make_scheduler(self) -> Scheduler:
        """The thread that will drive this engine (made on first use)."""

    # -- requests (thread-safe) --

    @cached_property
    def scheduler(self) -> Scheduler:
        with _SCHEDULER_LOCK:
            return self.__dict__.get("scheduler") or self._make_scheduler()

    def submit(self, requests: Sequence[GenRequest]) -> None:
        """Queue requests whose events go to their own sinks (the server's asynchronous path)."""
        self.scheduler.submit(requests)

    def generate(self, prompt: str | list[int], params: SamplingParams) -> Iterator[Delta]:
        """Stream the continuation of `prompt` (raw text: no template is applied)."""
        ids = self.encode_prompt(prompt)
        self.check_fits(len(ids), params.max_tokens)
        events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        req = GenRequest(SeqRequest(ids, params), events.put)
        return self._stream(req, events)

    def loglikelihood(self, requests: Sequence[tuple[str, str]]) -> list[LoglikelihoodResult]:
        """Score each (context, continuation) pair (multiple choice, eval). Pairs go in sorted order, so a
        pair shares the longest prefix with the one before it and reads only what differs."""
        encoded = [self.split_continuation(c, x) for c, x in requests]
        order = sorted(range(len(encoded)), key=lambda i: encoded[i][0] + encoded[i][1])
        events: queue.SimpleQueue[tuple[int, Event]] = queue.SimpleQueue()
        greedy = SamplingParams(max_tokens=1)
        reqs = []
        for i in order:
            ctx_ids, cont_ids = encoded[i]
            seq = SeqRequest(ctx_ids + cont_ids, greedy, len(ctx_ids), generate=False)
            reqs.append(GenRequest(seq, lambda ev, i=i: events.put((i, ev))))
        self.submit(reqs)
        results: list[LoglikelihoodResult | None] = [None] * len(encoded)
        for _ in reqs:
            i, ev = events.get()
            if ev.error is not None:
                raise _user_error(ev.error)
            scores = [s for s in (ev.prompt_logprobs or [])[len(encoded[i][0]) :] if s is not None]
            results[i] = LoglikelihoodResult(
                sum(s.logprob for s in scores), all(s.is_argmax for s in scores), len(scores)
            )
        return results  # type: ignore[return-value]

    def prompt_logprobs(self, ids: list[int], start: int = 1, top: int = 0) -> list[TokenLogprob | None]:
        """Each prompt token's log-probability given the ones before it, from index `start` on (None
        before); `top` likeliest alternatives at each position (perplexity, teacher-forced agreement)."""
        events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        params = SamplingParams(max_tokens=1, logprobs=top or None)
        self.submit(
            [GenRequest(SeqRequest(self.encode_prompt(ids), params, start, generate=False), events.put)]
        )
        ev = events.get()
        if ev.error is not None:
            raise _user_error(ev.error)
        return list(ev.prompt_logprobs or [])

    def _stream(self, req: GenRequest, events: queue.SimpleQueue[Event]) -> Iterator[Delta]:
        self.submit([req])
        try:
            while True:
                ev = events.get()
                if ev.error is not None:
                    raise _user_error(ev.error)
                assert ev.delta is not None
                yield ev.delta
                if ev.delta.finish_reason:
                    return
        finally:  # the caller stopped reading: free the slot at the next step
            req.cancel()

    # -- optional capabilities --

    @property
    def has_grammars(self) -> bool:
        """Whether this engine enforces output constraints (it overrides `compile_constraint`)."""
        return type(self).compile_constraint is not Engine.compile_constraint

    def compile_constraint(self, constraint: OutputConstraint) -> Grammar:
        """The constraint as this engine enforces it; UserError when it cannot be compiled or enforced."""
        raise UserError(
            f"constrained output (response_format json, forced tool calls) is not supported by the "
            f"{type(self).__name__} of '{self.name}'.",
            "Serve the model as a GGUF on the llamacpp engine.",
        )

    def close(self) -> None:
        """Stop the scheduler (failing what still waits) and free the model's memory."""
        if "scheduler" in self.__dict__:
            self.scheduler.shutdown()
        self._free()

    def _free(self) -> None:  # noqa: B027 - optional hook
        """Free the backend's memory."""

    # -- shared behaviour, built on the methods above --

    @property
    def stop_strings(self) -> tuple[str, ...]:
        """Strings that end a chat turn besides the template's end-of-turn token: the registry entry's (ChatGLM's
        <|user|> and <|observation|>, Qwen's <|endoftext|>); () for models without an entry."""
        spec = getattr(getattr(self, "source", None), "spec", None)
        return tuple(getattr(spec, "stop", ()) or ())

    @property
    def default_system(self) -> str | None:
        """The registry's system prompt for this model, or None for the template's own default."""
        spec = getattr(getattr(self, "source", None), "spec", None)
        return getattr(spec, "system", "") or None

    def encode_prompt(self, prompt: str | list[int]) -> list[int]:
        """Token ids of a whole prompt: special tokens parsed, BOS added when the model wants one. Token-id
        prompts are checked against the vocabulary; an empty prompt starts from BOS (as OpenAI's does)."""
        if isinstance(prompt, list):
            bad = [t for t in prompt if not isinstance(t, int) or not 0 <= t < self.vocab_size]
            if bad:
                raise UserError(
                    f"the prompt holds token ids outside the vocabulary [0, {self.vocab_size}): {bad[:5]}.",
                    "Send token ids of this model's tokenizer.",
                )
            ids = list(prompt)
        else:
            ids = self.tokenize(prompt)
            if self.add_bos and self.bos_id is not None and ids[:1] != [self.bos_id]:
                ids = [self.bos_id, *ids]
        if not ids:
            if self.bos_id is None:
                raise UserError("the prompt is empty.", "Send some text or token ids.")
            ids = [self.bos_id]
        return ids

    def render_chat(self, messages: Sequence[Message], **policy: object) -> str:
        """The prompt text of a conversation under the chat policy (default system prompt, tools)."""
        return render_chat(
            self.template,
            messages,
            model=self.name,
            default_system=self.default_system,
            **policy,  # type: ignore[arg-type]
        ).text

    def chat(self, messages: Sequence[Message], params: SamplingParams) -> Iterator[Delta]:
        """Stream the assistant's reply to `messages` under the chat policy (a convenience for scripts and
        tests; applications use `llmworks.client`, which also handles tools and structured output)."""
        prompt = render_chat(
            self.template,
            messages,
            model=self.name,
            default_system=self.default_system,
            stop=(*params.stop, *self.stop_strings),
        )
        stop = tuple(dict.fromkeys(prompt.stop))
        return self.generate(prompt.text, dataclasses.replace(params, stop=stop))

    def complete(self, prompt: str | list[int], params: SamplingParams) -> tuple[str, FinishReason]:
        """The whole continuation at once, and why it ended."""
        text, reason = [], "length"
        for d in self.generate(prompt, params):
            text.append(d.text)
            reason = d.finish_reason or reason
        return "".join(text), reason  # type: ignore[return-value]

    def split_continuation(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """Token ids of a (context, continuation) pair for scoring, checked to fit the context.

        The continuation gets the tokens the whole text has after the context's; if tokenization merges
        across the boundary, it is encoded on its own instead.
        """
        if not continuation:
            raise UserError("loglikelihood needs a non-empty continuation.", "")
        ctx_ids = self.encode_prompt(context)
        whole = self.encode_prompt(context + continuation)
        cont_ids = whole[len(ctx_ids) :] if whole[: len(ctx_ids)] == ctx_ids else self.tokenize(continuation)
        if not cont_ids:
            raise UserError("loglikelihood needs a non-empty continuation.", "")
        self.check_fits(len(ctx_ids) + len(cont_ids), 0)
        return ctx_ids, cont_ids

    def check_fits(self, n_prompt: int, max_tokens: int) -> None:
        """Raise PromptTooLong when the prompt leaves no room to generate."""
        if n_prompt >= self.context_length:
            raise PromptTooLong(n_prompt, self.context_length, max_tokens)

    @property
    def dead(self) -> str | None:
        """Why the engine failed for good, or None while it serves."""
        sched = self.__dict__.get("scheduler")
        return sched.dead.message if sched is not None and sched.dead is not None else None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SCHEDULER_LOCK = threading.Lock()


def _user_error(e: RequestFailed) -> Exception:
    """A failed request as the caller's exception: its own fault is a UserError, ours stays an error."""
    if e.status == 400:
        return UserError(e.message, "")
    return RuntimeError(e.message)
