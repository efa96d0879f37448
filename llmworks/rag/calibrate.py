"""`llmworks rag calibrate`: fit the refusal decision on in-scope and out-of-scope questions."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmworks.errors import UserError
from llmworks.rag.config import CalibrateConfig, SearchOptions
from llmworks.rag.refusal import RefusalModel, fit_refusal
from llmworks.rag.retrieve import retrieve

if TYPE_CHECKING:
    from llmworks.client import Client
    from llmworks.rag.kb import KnowledgeBase

__all__ = ["calibrate", "read_questions"]


def read_questions(path: Path) -> list[str]:
    """Questions from a JSONL file ({"question": ...} a line) or a text file (one a line)."""
    if not path.is_file():
        raise UserError(f"no such file: {path}.", 'Give a JSONL file of {"question": ...} or a text file.')
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                q = json.loads(line).get("question")
            except (ValueError, AttributeError):
                q = None
            if not isinstance(q, str) or not q.strip():
                raise UserError(f'{path}:{n}: no "question" string.', 'Write {"question": "..."} a line.')
            out.append(q.strip())
        else:
            out.append(line)
    if not out:
        raise UserError(f"{path} has no questions.", "")
    return out


def calibrate(
    kbs: Sequence[KnowledgeBase], cfg: CalibrateConfig, client: Callable[[], Client] | None = None
) -> RefusalModel:
    """Signals of every question, a fitted decision saved with each knowledge base, and its metrics."""
    from llmworks.rag.answer import relevance

    inside = read_questions(Path(cfg.in_scope))
    outside = read_questions(Path(cfg.out_of_scope))
    if len(inside) < 2 or len(outside) < 2:
        raise UserError(
            "calibrate needs at least two questions of each kind.", "Add questions to both files."
        )
    rows = []
    for q in [*inside, *outside]:
        r = retrieve(kbs, q, SearchOptions())
        signals = {"dense_top": r.signals.get("dense_top", 0.0), "bm25_top": r.signals.get("bm25_top", 0.0)}
        if cfg.relevance_check and client is not None:
            signals["relevance"] = relevance(client(), q, r.hits[0].text) if r.hits else -10.0
        rows.append(signals)
    model = fit_refusal(rows, [False] * len(inside) + [True] * len(outside), cfg.target)
    model.metrics["kbs"] = [kb.name for kb in kbs]
    for kb in kbs:
        model.save(kb.paths.refusal)
    return model
