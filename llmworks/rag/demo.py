"""The demo's RAG step: a knowledge base over this project's README and docs, two questions answered with
citations, one out-of-scope question refused, and retrieval metrics on the built-in QA set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmworks.rag.builtin import README_QA

QUESTIONS = ("What is the default embedding model?", "What port does the server use?")
"""Answered from docs/faq.md: the embedded 135M model copies a short answer out of a short passage; over the
README's long sections its answers ramble (`llmworks rag ask --model` with a larger model writes them)."""
OUT_OF_SCOPE = "Who won the 2018 football World Cup?"


def rag_demo(out: Path, console: Any) -> Path | None:
    from llmworks.rag.answer import lazy_client
    from llmworks.rag.config import AskConfig, RagEvalConfig
    from llmworks.rag.evaluate import run_eval
    from llmworks.rag.kb import KnowledgeBase

    root = Path(__file__).resolve().parents[2]
    docs = [p for p in (root / "README.md", root / "docs") if p.exists()]
    if not docs:
        console.print(
            "(skipped: the README and docs/ are not next to the package; run the demo from a clone)"
        )
        return None
    kb = KnowledgeBase("llmworks-docs", out / "kbs")
    console.print(f"llmworks rag ingest {' '.join(str(d) for d in docs)} --kb llmworks-docs", markup=False)
    console.print(kb.ingest(docs).line(), markup=False)
    cfg = AskConfig(kb=["llmworks-docs"], k=2, max_tokens=80)
    with lazy_client(cfg) as model:
        for q in (*QUESTIONS, OUT_OF_SCOPE):
            _ask(console, kb, q, cfg, model)
    run = run_eval(
        [kb],
        RagEvalConfig(qa=str(README_QA), kb=["llmworks-docs"], kb_dir=str(out / "kbs"),
                      output_dir=str(out / "eval"), answers=False),
    )  # fmt: skip
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    for task, v in results["tasks"].items():
        shown = ", ".join(f"{k} {x:.2f}" for k, x in v["metrics"].items())
        console.print(f"{task} (n={v['n']}): {shown}")
    return run / "report.html"


def _ask(console: Any, kb: Any, question: str, cfg: Any, model: Any) -> None:
    """As `llmworks rag ask` prints it: the streamed answer, then each cited source and its text."""
    from llmworks.rag.answer import ask_stream

    console.print(f"[bold]Q: {question}[/bold]")
    answer = None
    for ev in ask_stream([kb], question, (), cfg, model):
        if ev.text:
            console.print(ev.text, end="", markup=False, highlight=False, soft_wrap=True)
        answer = ev.answer or answer
    console.print()
    assert answer is not None
    if answer.refused:
        console.print(f"(refused: P(out of scope) {answer.p_out_of_scope:.2f})")
    for src in answer.cited:
        text = " ".join(src.hit.text.split())[:100]
        console.print(f"  [{src.n}] {src.hit.where}: {text}", highlight=False, markup=False)
