"""The plain data that crosses the Engine seam: sampling parameters in, deltas and scores out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

FinishReason = Literal["stop", "length"]

MAX_SEED = 2**64 - 1


@dataclass(frozen=True)
class Grammar:
    """An output constraint compiled for one engine (`Engine.compile_constraint`); llama.cpp: GBNF text."""

    gbnf: str


@dataclass
class SamplingParams:
    """How to pick tokens. temperature 0 is greedy (and deterministic)."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    """0 disables top-k."""
    min_p: float = 0.0
    """Drop tokens less likely than min_p times the likeliest one; 0 disables it."""
    seed: int | None = None
    """Makes sampling reproducible; ignored when greedy."""
    stop: Sequence[str] = field(default_factory=tuple)
    """Strings that end generation; they are not part of the output. EOS/end-of-turn always stop."""
    repetition_penalty: float = 1.0
    """>1 discourages tokens already in the prompt or output (CTRL-style, as in HF and llama.cpp)."""
    logprobs: int | None = None
    """None: no log-probabilities; n >= 0: each generated token's, with its n likeliest alternatives."""
    grammar: Grammar | None = None
    """Constrains the output (structured output, forced tool calls); engines without grammars refuse it."""

    def __post_init__(self) -> None:
        errors = []
        if self.max_tokens < 1:
            errors.append(f"max_tokens must be >= 1 (got {self.max_tokens})")
        if not self.temperature >= 0:
            errors.append(f"temperature must be >= 0 (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            errors.append(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.top_k < 0:
            errors.append(f"top_k must be >= 0 (got {self.top_k})")
        if not 0 <= self.min_p <= 1:
            errors.append(f"min_p must be in [0, 1] (got {self.min_p})")
        if not self.repetition_penalty > 0:
            errors.append(f"repetition_penalty must be > 0 (got {self.repetition_penalty})")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            errors.append(f"seed must be in [0, 2^64) (got {self.seed})")
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            errors.append(f"logprobs must be in [0, 20] (got {self.logprobs})")
        if any(not isinstance(s, str) for s in self.stop):
            errors.append("stop must be strings")
        if errors:
            raise ValueError("; ".join(errors))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


@dataclass
class SeqRequest:
    """What the runner needs for one sequence."""

    prompt: list[int]
    params: SamplingParams
    prompt_logprobs_from: int | None = None
    """Report the log-probability of every prompt token from this index on (echo, scoring); >= 1."""
    generate: bool = True
    """False: only score the prompt; the sequence ends once its prompt is read."""


@dataclass
class TokenLogprob:
    """A token's log-probability under the model (raw logits, before sampling settings), and the likeliest
    alternatives at that position."""

    token: int
    logprob: float
    top: list[tuple[int, float]] = field(default_factory=list)
    is_argmax: bool = False
    """The token is the model's likeliest at that position (greedy decoding would pick it)."""


@dataclass
class Delta:
    """A piece of streamed output. The last delta of a stream has `finish_reason` set."""

    text: str
    token_ids: list[int]
    finish_reason: FinishReason | None = None
    logprob: TokenLogprob | None = None
    """The generated token's log-probability, when `SamplingParams.logprobs` asked for it (on the last delta
    too when the token was EOS, which `token_ids` leaves out)."""


@dataclass(frozen=True)
class LoglikelihoodResult:
    """log P(continuation | context), summed over the continuation's tokens."""

    logprob: float
    is_greedy: bool
    """True when greedy decoding from the context would produce exactly the continuation."""
    n_tokens: int


def shared_prefix(a: list[int], b: list[int]) -> int:
    """How many leading tokens `a` and `b` have in common."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
