"""Refusal: out-of-scope questions get the configured refusal instead of an invented answer.

The decision is a logistic model over retrieval signals: the best dense cosine, the best BM25 score as a
share of the query's ceiling, and (optionally) the model's own relevance judgement of the best chunk
(log P(yes) − log P(no)). `rag calibrate` fits it on in-scope and out-of-scope questions, picks the
threshold, and reports precision, recall and F1 of refusal, cross-validated; the fit is saved with the
knowledge base. Uncalibrated, a conservative default refuses only when both scores are low.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llmworks.atomic import atomic_write

__all__ = ["RefusalModel", "fit_refusal", "refusal_metrics"]

FEATURES = ("dense_top", "bm25_top")
RELEVANCE = "relevance"


@dataclass
class RefusalModel:
    features: list[str]
    weights: list[float]
    """Per feature, on the standardized feature (x - mean) / scale."""
    bias: float
    mean: list[float]
    scale: list[float]
    threshold: float = 0.5
    """Refuse when P(out of scope) >= threshold."""
    calibrated: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)
    """Precision, recall and F1 of refusal (cross-validated) and the counts they come from."""

    def p_out(self, signals: Mapping[str, float]) -> float:
        z = self.bias
        for f, w, m, s in zip(self.features, self.weights, self.mean, self.scale, strict=True):
            z += w * (float(signals.get(f, m)) - m) / s  # a signal not measured (bm25-only search) is neutral
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))

    def decide(self, signals: Mapping[str, float]) -> tuple[bool, float]:
        p = self.p_out(signals)
        return p >= self.threshold, p

    @property
    def needs_relevance(self) -> bool:
        return RELEVANCE in self.features

    def save(self, path: Path) -> None:
        atomic_write(path, json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> RefusalModel:
        if not path.is_file():
            return default_model()
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, TypeError):
            return default_model()  # an unreadable calibration: the default decision, never a crash


def default_model() -> RefusalModel:
    """Refuse when the best chunk is far from the question by both measures (all-MiniLM-L6-v2 cosine
    below ~0.25 and under ~8% of the BM25 ceiling); calibrate on your questions to do better."""
    return RefusalModel(
        features=list(FEATURES),
        weights=[-12.0, -20.0],
        bias=0.0,
        mean=[0.25, 0.08],
        scale=[1.0, 1.0],
        threshold=0.5,
    )


def refusal_metrics(truth: Sequence[bool], refused: Sequence[bool]) -> dict[str, float]:
    """Precision, recall and F1 of refusing (positive: the question is out of scope)."""
    pairs = [(bool(t), bool(r)) for t, r in zip(truth, refused, strict=True)]
    tp = sum(t and r for t, r in pairs)
    fp = sum(r and not t for t, r in pairs)
    fn = sum(t and not r for t, r in pairs)
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": p, "recall": r, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def fit_refusal(
    rows: Sequence[Mapping[str, float]], out_of_scope: Sequence[bool], target: str = "f1"
) -> RefusalModel:
    """Logistic regression (scikit-learn, balanced classes) on the signals; the threshold maximizes F1 of
    refusal (or precision at recall >= 0.5). Metrics are 5-fold cross-validated predictions at that
    threshold, so they estimate unseen questions rather than the fitted ones."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    features = [f for f in (*FEATURES, RELEVANCE) if all(f in r for r in rows)]
    x = np.array([[float(r[f]) for f in features] for r in rows])
    y = np.array([bool(v) for v in out_of_scope], dtype=int)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    clf = LogisticRegression(class_weight="balanced")
    clf.fit(z, y)
    folds = min(5, int(y.sum()), int((1 - y).sum()))
    if folds >= 2:
        cv = StratifiedKFold(folds, shuffle=True, random_state=0)
        p_cv = cross_val_predict(
            LogisticRegression(class_weight="balanced"), z, y, cv=cv, method="predict_proba"
        )[:, 1]
    else:
        p_cv = clf.predict_proba(z)[:, 1]
    threshold = _best_threshold(p_cv, y, target)
    cv_metrics = refusal_metrics(list(y.astype(bool)), list(p_cv >= threshold))
    fit_metrics = refusal_metrics(list(y.astype(bool)), list(clf.predict_proba(z)[:, 1] >= threshold))
    return RefusalModel(
        features=features,
        weights=[float(w) for w in clf.coef_[0]],
        bias=float(clf.intercept_[0]),
        mean=[float(v) for v in mean],
        scale=[float(v) for v in scale],
        threshold=float(threshold),
        calibrated=True,
        metrics={
            "cross_validated": cv_metrics,
            "folds": folds,
            "fitted": fit_metrics,
            "n_in_scope": int((1 - y).sum()),
            "n_out_of_scope": int(y.sum()),
        },
    )


def _best_threshold(p: Any, y: Any, target: str) -> float:
    best, best_t = -1.0, 0.5
    for t in sorted({0.5, *(float(v) for v in p)}):
        m = refusal_metrics(list(y.astype(bool)), list(p >= t))
        score = m["f1"] if target == "f1" else (m["precision"] if m["recall"] >= 0.5 else -1.0)
        if score > best:
            best, best_t = score, t
    return best_t
