"""Serving metrics on hand-made timings: TPOT, ITL, percentiles, throughputs, warnings."""

from __future__ import annotations

import pytest

from llmworks.servebench.metrics import RequestResult, stats, summarize, tpot


def test_tpot_excludes_the_first_token() -> None:
    r = RequestResult(ok=True, ttft=0.5, latency=1.5, output_tokens=11)
    assert tpot(r) == pytest.approx(0.1)  # (1.5 - 0.5) / (11 - 1)
    assert tpot(RequestResult(ok=True, ttft=0.5, latency=0.5, output_tokens=1)) is None


def test_stats_are_ms_with_linear_percentiles() -> None:
    s = stats([0.001 * v for v in range(1, 101)])  # 1..100 ms
    assert s.mean == pytest.approx(50.5)
    assert s.p50 == pytest.approx(50.5)
    assert s.p90 == pytest.approx(90.1)
    assert s.p99 == pytest.approx(99.01)
    assert stats([]).mean is None and stats([]).p99 is None
    assert stats([0.2]).p99 == pytest.approx(200.0)


def test_summarize_level() -> None:
    results = [
        # 4 tokens: first at 0.1 s, then gaps of 0.1, 0.2, 0.3 s -> latency 0.7
        RequestResult(ok=True, ttft=0.1, latency=0.7, itl=[0.1, 0.2, 0.3], output_tokens=4, prompt_tokens=10),
        # 2 tokens (short of output_len 4): one gap of 0.5 s
        RequestResult(ok=True, ttft=0.3, latency=0.8, itl=[0.5], output_tokens=2, prompt_tokens=12),
        RequestResult(ok=False, error="HTTP 500: boom"),
    ]
    level = summarize(results, concurrency=2, duration_s=2.0, input_len=10, output_len=4)
    assert (level.completed, level.failed, level.num_prompts) == (2, 1, 3)
    assert level.total_input_tokens == 22 and level.total_output_tokens == 6
    assert not level.input_tokens_estimated
    assert level.request_throughput == pytest.approx(1.0)
    assert level.output_throughput == pytest.approx(3.0)
    assert level.total_token_throughput == pytest.approx(14.0)
    assert level.ttft_ms.mean == pytest.approx(200.0)
    assert level.ttft_ms.p50 == pytest.approx(200.0)
    # TPOT per request: (0.7-0.1)/3 = 0.2, (0.8-0.3)/1 = 0.5
    assert level.tpot_ms.mean == pytest.approx(350.0)
    assert level.tpot_ms.p90 == pytest.approx(470.0)
    # ITL pools every gap: 0.1, 0.2, 0.3, 0.5
    assert level.itl_ms.mean == pytest.approx(275.0)
    assert level.itl_ms.p50 == pytest.approx(250.0)
    assert level.e2el_ms.p50 == pytest.approx(750.0)
    assert level.short_requests == 1 and level.requested_output_tokens == 12
    assert level.errors == ["HTTP 500: boom"]
    assert any("1 of 2 completed requests stopped before 4" in w for w in level.warnings)
    assert any("1 of 3 requests failed" in w for w in level.warnings)


def test_summarize_estimates_input_without_usage_and_survives_all_failed() -> None:
    ok = RequestResult(ok=True, ttft=0.1, latency=0.2, itl=[0.1], output_tokens=2)
    level = summarize([ok], concurrency=1, duration_s=0.5, input_len=64, output_len=2)
    assert level.input_tokens_estimated and level.total_input_tokens == 64
    assert level.warnings == []

    dead = summarize([RequestResult(error="x")] * 2, concurrency=1, duration_s=0.0, input_len=8, output_len=8)
    assert dead.completed == 0 and dead.failed == 2 and dead.output_throughput == 0.0
    assert dead.ttft_ms.mean is None and dead.errors == ["x"]
    assert dead.to_dict()["tpot_ms"] == {"mean": None, "p50": None, "p90": None, "p99": None}
