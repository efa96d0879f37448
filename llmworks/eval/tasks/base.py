"""The Task seam: load samples -> build requests -> score -> aggregate.

A task never calls the model itself: it returns `Request`s (plain, hashable data), the runner answers them
(concurrently, batched, cached by a hash of the request) and hands the outputs back to `score`.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from llmworks.errors import UserError

Method = Literal["loglikelihood", "generate"]


@dataclass(frozen=True)
class Request:
    kind: Literal["chat", "complete", "loglikelihood"]
    prompt: str | tuple[tuple[tuple[str, str], ...], ...] = ""
    """Text for complete/loglikelihood (the context); for chat, messages as ((key, value), ...) tuples."""
    continuation: str = ""
    max_tokens: int = 256
    temperature: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    tools: str = ""
    """Chat with tools: the OpenAI `tools` list as a JSON text (hashable); the answer is then a dict with
    content, tool_calls and finish_reason instead of a string."""
    tool_choice: str | None = None
    tool_grammar: bool = True
    """tool_choice auto on a local llama.cpp model: calls grammar-constrained (a server decides for itself)."""

    @staticmethod
    def chat(
        messages: Sequence[dict[str, str]], tools: Sequence[dict[str, Any]] | None = None, **kw: Any
    ) -> Request:
        if tools:
            # Not key-sorted: a schema's property order is part of the request (it is the order a model
            # reads the parameters in, and the grammar writes required ones first in that order).
            kw["tools"] = json.dumps(list(tools), ensure_ascii=False)
        return Request("chat", tuple(tuple(sorted(m.items())) for m in messages), **kw)

    @property
    def messages(self) -> list[dict[str, str]]:
        return [dict(m) for m in self.prompt]  # type: ignore[arg-type, union-attr]

    @property
    def tool_list(self) -> list[dict[str, Any]] | None:
        return json.loads(self.tools) if self.tools else None

    def key(self, model: str) -> str:
        fields = asdict(self)
        if not self.tools:  # requests without tools keep the keys they had before tools existed
            del fields["tools"], fields["tool_choice"]
        if self.tool_grammar:  # as tool requests were keyed before the option existed
            del fields["tool_grammar"]
        return hashlib.sha256(json.dumps([model, fields], sort_keys=True).encode()).hexdigest()

    def shown(self) -> dict[str, Any]:
        """How the request appears in the saved samples and the report."""
        out: dict[str, Any] = {"kind": self.kind}
        out["prompt"] = self.messages if self.kind == "chat" else self.prompt
        if self.kind == "loglikelihood":
            out["continuation"] = self.continuation
        if self.tools:
            out["tools"] = self.tool_list
            if self.tool_choice is not None:
                out["tool_choice"] = self.tool_choice
        return out


@dataclass
class Env:
    """What a task may know about the model when it builds requests."""

    can_score: bool
    """Log-likelihoods are available (a local engine, or a server with /v1/completions echo+logprobs)."""
    chat: bool
    """Generation tasks use the chat template (local) or the chat API (HTTP)."""
    render: Callable[[list[dict[str, str]]], str | None]
    count_tokens: Callable[[str], int]
    context_length: int | None
    shots: int = 0
    judge: Callable[[list[dict]], str] | None = None
    chat_scoring: bool = False
    """Log-likelihood prompts go under the chat template too (only when the run asks for it: lm-eval and the
    leaderboards score plain text)."""
    force: Method | None = None
    """The method the run asks for (None: log-likelihood where it can be computed)."""
    tool_choice: str = "auto"
    """Function-calling tasks: auto (the model decides) or required (one call, grammar-constrained)."""
    tool_grammar: bool | None = True
    """Function-calling tasks, tool_choice auto: a call the model starts is grammar-constrained (local
    llama.cpp models); None over HTTP, where the server applies its own setting."""

    def method(self) -> Method:
        """Log-likelihood when it can be computed on the prompt the model would see, else generation."""
        if self.force == "generate":
            return "generate"
        visible = not self.chat_scoring or self.render([{"role": "user", "content": "x"}]) is not None
        if self.can_score and visible:
            return "loglikelihood"
        if self.force == "loglikelihood":
            why = "it cannot score text" if not self.can_score else "its chat template is not visible (HTTP)"
            raise UserError(
                f"method=loglikelihood, but {why}.",
                "Use method=auto, or a server with /v1/completions echo+logprobs (llmworks serve has it).",
            )
        return "generate"


@dataclass
class Scored:
    """One sample's result: its metrics, and what the report's sample browser shows."""

    metrics: dict[str, float]
    target: Any = None
    extracted: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class Task(ABC):
    name: str
    kind: str
    method: Method | None = None
    """Which method produced the scores (multiple choice); None for tasks that only generate."""
    formulation: str | None = None
    """How the task asks (multiple choice: letters, cloze or partial; others: generate)."""
    reference: str | None = None
    """The reference harness task whose prompt and metrics this task follows, e.g. "lm-eval gsm8k"."""
    skip_reason: str | None = None
    """Why this task cannot run here (it needs the network): the runner says so and skips it."""

    @abstractmethod
    def samples(self) -> list[dict[str, Any]]:
        """The samples, each with a unique "id"; raises UserError when the data is missing or malformed."""

    @abstractmethod
    def requests(self, sample: dict[str, Any], env: Env) -> list[Request]: ...

    @abstractmethod
    def score(self, sample: dict[str, Any], outputs: list[Any], env: Env) -> Scored:
        """Outputs are in request order: str (generation), float (log-likelihood), a dict (chat with tools:
        content, tool_calls, finish_reason) or None (failed)."""

    def aggregate(self, scored: list[Scored]) -> dict[str, float]:
        """The mean of each metric over the samples that have it (a task may score some samples on one metric
        and others on another, as self-cognition does)."""
        names = dict.fromkeys(k for s in scored for k in s.metrics)
        return {k: statistics.fmean(s.metrics[k] for s in scored if k in s.metrics) for k in names}

    def stderr(self, scored: list[Scored]) -> dict[str, float | None]:
        """The standard error of each metric's mean over the samples (lm-eval's mean_stderr)."""
        from llmworks.eval.stats import stderr

        names = dict.fromkeys(k for s in scored for k in s.metrics)
        return {k: stderr([s.metrics[k] for s in scored if k in s.metrics]) for k in names}

    def info(self) -> dict[str, Any]:
        """Settings shown next to the scores (so a score can be explained)."""
        return {}
