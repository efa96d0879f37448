"""The plain data that crosses the Engine seam: sampling parameters in, deltas and scores out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

FinishReason = Literal["stop", "length"]


@dataclass
class SamplingParams:
    """How to pick tokens. temperature 0 is greedy (and deterministic)."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    """0 disables top-k."""
    seed: int | None = None
    """Makes sampling reproducible; ignored when greedy."""
    stop: Sequence[str] = field(default_factory=tuple)
    """Strings that end generation; they are not part of the output. EOS/end-of-turn always stop."""
    repetition_penalty: float = 1.0
    """>1 discourages tokens already in the prompt or output (CTRL-style, as in HF and llama.cpp)."""

    def __post_init__(self) -> None:
        errors = []
        if self.max_tokens < 1:
            errors.append(f"max_tokens must be >= 1 (got {self.max_tokens})")
        if self.temperature < 0:
            errors.append(f"temperature must be >= 0 (got {self.temperature})")
        if not 0 < self.top_p <= 1:
            errors.append(f"top_p must be in (0, 1] (got {self.top_p})")
        if self.top_k < 0:
            errors.append(f"top_k must be >= 0 (got {self.top_k})")
        if self.repetition_penalty <= 0:
            errors.append(f"repetition_penalty must be > 0 (got {self.repetition_penalty})")
        if errors:
            raise ValueError("; ".join(errors))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0 or self.top_k == 1


@dataclass
class Delta:
    """A piece of streamed output. The last delta of a stream has `finish_reason` set."""

    text: str
    token_ids: list[int]
    finish_reason: FinishReason | None = None


@dataclass(frozen=True)
class LoglikelihoodResult:
    """log P(continuation | context), summed over the continuation's tokens."""

    logprob: float
    is_greedy: bool
    """True when greedy decoding from the context would produce exactly the continuation."""
    n_tokens: int
