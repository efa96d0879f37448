"""Serving metrics as `vllm bench serve` defines them, computed from per-request timings.

TTFT: request sent -> first chunk with text. TPOT: (latency - TTFT) / (output tokens - 1), per request.
ITL: time between consecutive chunks with text, pooled over all requests. E2EL: request sent -> stream end.
Throughputs divide totals by the level's wall time (first request sent -> last one finished).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["PERCENTILES", "LevelResult", "RequestResult", "Stats", "stats", "summarize", "tpot"]

PERCENTILES = (50, 90, 99)


@dataclass
class RequestResult:
    """What one streamed request measured; times in seconds from when it was sent."""

    ok: bool = False
    ttft: float = 0.0
    latency: float = 0.0
    itl: list[float] = field(default_factory=list)  # gaps between chunks with text
    output_tokens: int = 0  # usage.completion_tokens when the server sends it, else chunks with text
    prompt_tokens: int | None = None  # usage.prompt_tokens when the server sends it
    error: str = ""


@dataclass
class Stats:
    """Mean and percentiles in milliseconds; None when no request produced the quantity."""

    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None


@dataclass
class LevelResult:
    """One concurrency level: counts, throughputs, latency distributions (ms)."""

    concurrency: int
    num_prompts: int
    completed: int
    failed: int
    duration_s: float
    total_input_tokens: int
    total_output_tokens: int
    request_throughput: float  # completed requests / s
    output_throughput: float  # output tokens / s
    total_token_throughput: float  # (input + output) tokens / s
    ttft_ms: Stats
    tpot_ms: Stats
    itl_ms: Stats
    e2el_ms: Stats
    requested_output_tokens: int  # num_prompts * output_len
    short_requests: int  # completed requests that stopped before output_len tokens
    input_tokens_estimated: bool  # True when the server sent no usage and input_len stood in
    errors: list[str] = field(default_factory=list)  # distinct failure messages, first few
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stats(values_s: list[float]) -> Stats:
    """Mean and p50/p90/p99 (numpy's linear interpolation, as vLLM) of seconds, reported in ms."""
    if not values_s:
        return Stats(None, None, None, None)
    ms = np.asarray(values_s, dtype=float) * 1000.0
    p50, p90, p99 = (float(v) for v in np.percentile(ms, PERCENTILES))
    return Stats(float(ms.mean()), p50, p90, p99)


def tpot(r: RequestResult) -> float | None:
    """Time per output token after the first; undefined for a request with fewer than 2 tokens."""
    if r.output_tokens < 2:
        return None
    return (r.latency - r.ttft) / (r.output_tokens - 1)


def summarize(
    results: list[RequestResult], *, concurrency: int, duration_s: float, input_len: int, output_len: int
) -> LevelResult:
    """Fold one level's request results into its metrics and warnings."""
    done = [r for r in results if r.ok]
    estimated = any(r.prompt_tokens is None for r in done)
    total_in = sum(r.prompt_tokens if r.prompt_tokens is not None else input_len for r in done)
    total_out = sum(r.output_tokens for r in done)
    tpots = [t for t in (tpot(r) for r in done) if t is not None]
    short = sum(r.output_tokens < output_len for r in done)
    errors = list(dict.fromkeys(r.error for r in results if not r.ok))[:5]
    per_s = 1.0 / duration_s if duration_s > 0 else 0.0
    level = LevelResult(
        concurrency=concurrency,
        num_prompts=len(results),
        completed=len(done),
        failed=len(results) - len(done),
        duration_s=duration_s,
        total_input_tokens=total_in,
        total_output_tokens=total_out,
        request_throughput=len(done) * per_s,
        output_throughput=total_out * per_s,
        total_token_throughput=(total_in + total_out) * per_s,
        ttft_ms=stats([r.ttft for r in done]),
        tpot_ms=stats(tpots),
        itl_ms=stats([gap for r in done for gap in r.itl]),
        e2el_ms=stats([r.latency for r in done]),
        requested_output_tokens=len(results) * output_len,
        short_requests=short,
        input_tokens_estimated=estimated,
        errors=errors,
    )
    if short:
        level.warnings.append(
            f"{short} of {len(done)} completed requests stopped before {output_len} output tokens "
            f"({total_out} of {len(done) * output_len} requested): the server ended them early "
            "(EOS, a stop string, or it interrupted them), so tokens/s is measured on shorter outputs."
        )
    if level.failed:
        level.warnings.append(f"{level.failed} of {len(results)} requests failed: {'; '.join(errors)}")
    return level
