"""The demo's RAG step: a knowledge base over this project's README and docs, the chunks two questions
retrieve, one out-of-scope question refused, and retrieval metrics on the built-in QA set."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from llmworks.rag.builtin import README_QA

QUESTIONS = (
    "How do I build llama.cpp for this machine's own CPU?",
    "How do I compare two evaluation runs side by side?",
)
OUT_OF_SCOPE = "Who won the 2018 football World Cup?"


def rag_demo(out: Path, console: Any) -> Path | None:
    from llmworks.rag.answer import ask_stream, lazy_client
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
    # Retrieval is what the demo shows for in-scope questions: the 135M model's answers over real documents
    # ramble (`llmworks rag ask --model` with a larger model writes them), its refusal is reliable.
    for q in QUESTIONS:
        console.print(f"[bold]Q: {q}[/bold]")
        for n, hit in enumerate(kb.search(q, k=2), 1):
            line = " ".join(hit.text.split())[:110]
            console.print(
                f"  [{n}] {hit.where} (score {hit.score:.3f}): {line} ...", highlight=False, markup=False
            )
    cfg = AskConfig(kb=["llmworks-docs"], k=3, max_tokens=80)
    with lazy_client(cfg) as model:
        console.print(f"[bold]Q: {OUT_OF_SCOPE}[/bold]")
        answer = None
        for ev in ask_stream([kb], OUT_OF_SCOPE, (), cfg, model):
            if ev.text:
                sys.stdout.write(ev.text)
                sys.stdout.flush()
            answer = ev.answer or answer
        print()
        assert answer is not None
        if answer.refused:
            console.print(f"(refused: P(out of scope) {answer.p_out_of_scope:.2f})")
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
