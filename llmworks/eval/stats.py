"""How sure a score is: standard errors (as lm-evaluation-harness reports them) and paired significance tests
between two runs on the same samples (exact McNemar for 0/1 metrics, paired bootstrap for the rest).

A benchmark of n questions measures accuracy to about ±sqrt(p(1-p)/n): on 8 questions one answer is 0.125 of
accuracy and well inside the noise. A change between two runs counts as real only when a paired test on the
per-sample results says so (p < ALPHA).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
"""A change is significant when its two-sided p-value is below this."""
BOOTSTRAP_ITERS = 10_000


def stderr(values: Sequence[float]) -> float | None:
    """The standard error of the mean: sample standard deviation (n - 1) / sqrt(n), lm-eval's `mean_stderr`;
    None below two samples."""
    n = len(values)
    if n < 2:
        return None
    mu = sum(values) / n
    return math.sqrt(sum((x - mu) ** 2 for x in values) / (n - 1)) / math.sqrt(n)


@dataclass(frozen=True)
class Paired:
    """A paired test of run B against run A on the samples both scored."""

    n: int
    """Samples in both runs."""
    delta: float
    """mean(B) - mean(A) over those samples."""
    p: float
    test: str
    """mcnemar (0/1 metrics: the exact binomial test on the samples that changed) or bootstrap."""
    changed: int
    """Samples whose score differs between the runs."""

    @property
    def significant(self) -> bool:
        return self.p < ALPHA

    def describe(self) -> str:
        verdict = "significant" if self.significant else "not significant"
        return f"p={self.p:.3g}, n={self.n}, {self.changed} changed, {self.test}: {verdict}"


def paired_test(a: Sequence[float], b: Sequence[float], seed: int = 0) -> Paired:
    """Two-sided test that B's mean differs from A's on paired samples (a[i] and b[i]: the same sample)."""
    if len(a) != len(b):
        raise ValueError("paired_test needs the same samples in both runs")
    n = len(a)
    delta = (sum(b) - sum(a)) / n if n else 0.0
    changed = sum(1 for x, y in zip(a, b, strict=True) if x != y)
    if all(v in (0.0, 1.0) for v in (*a, *b)):
        gained = sum(1 for x, y in zip(a, b, strict=True) if y > x)
        return Paired(n, delta, mcnemar(gained, changed - gained), "mcnemar", changed)
    return Paired(
        n, delta, bootstrap_p([y - x for x, y in zip(a, b, strict=True)], seed), "bootstrap", changed
    )


def mcnemar(gained: int, lost: int) -> float:
    """Exact McNemar: under "no change", each changed sample is a fair coin between gained and lost."""
    m = gained + lost
    if m == 0:
        return 1.0
    k = min(gained, lost)
    tail = sum(math.comb(m, i) for i in range(k + 1)) / 2**m
    return min(1.0, 2 * tail)


def bootstrap_p(diffs: Sequence[float], seed: int = 0, iters: int = BOOTSTRAP_ITERS) -> float:
    """Paired bootstrap: resample the per-sample differences, centred on zero (the null hypothesis), and count
    how often a resampled mean is at least as far from zero as the observed one."""
    import numpy as np

    d = np.asarray(diffs, dtype=float)
    if d.size == 0 or not np.any(d):
        return 1.0
    observed = abs(d.mean())
    rng = np.random.default_rng(seed)
    centred = d - d.mean()
    means = centred[rng.integers(0, d.size, size=(iters, d.size))].mean(axis=1)
    return float((np.sum(np.abs(means) >= observed - 1e-12) + 1) / (iters + 1))
