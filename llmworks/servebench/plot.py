"""PNG of a serving benchmark: throughput and latency percentiles against concurrency."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from llmworks.servebench.metrics import LevelResult, Stats

__all__ = ["plot_results"]

_LATENCIES = (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"), ("e2el_ms", "End-to-end latency"))


def plot_results(path: Path, results: list[LevelResult], title: str = "") -> None:
    """2x2 grid: output/total tokens/s, then p50/p90/p99 of TTFT, TPOT and end-to-end latency (ms)."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and in tests
    import matplotlib.pyplot as plt

    levels = [r.concurrency for r in results]
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
    ax = axes[0][0]
    ax.plot(levels, [r.output_throughput for r in results], "o-", label="output tok/s")
    ax.plot(levels, [r.total_token_throughput for r in results], "s--", label="total tok/s")
    ax.set_title("Throughput")
    ax.set_ylabel("tokens/s")
    ax.legend()
    for ax, (key, name) in zip([axes[0][1], axes[1][0], axes[1][1]], _LATENCIES, strict=True):
        series: list[Stats] = [getattr(r, key) for r in results]
        for pct, style in (("p50", "o-"), ("p90", "s--"), ("p99", "^:")):
            ax.plot(levels, [_nan(getattr(s, pct)) for s in series], style, label=pct)
        ax.set_title(name)
        ax.set_ylabel("ms")
        ax.legend()
    for ax in axes.flat:
        ax.set_xscale("log", base=2)
        ax.set_xticks(levels, [str(c) for c in levels])
        ax.minorticks_off()
        ax.set_xlabel("concurrency")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)


def _nan(v: float | None) -> float:
    return float("nan") if v is None else v
