"""The demo's RAG step on this repository's README and docs, with the embedded models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

pytestmark = pytest.mark.slow


def test_rag_demo(tmp_path: Path) -> None:
    from llmworks.rag.demo import rag_demo

    console = Console(record=True, width=200)
    report = rag_demo(tmp_path, console)
    assert report is not None and report.is_file()
    text = console.export_text()
    assert "llmworks rag ingest" in text and "(refused: P(out of scope)" in text
    assert text.count("Q: ") == 3
    # the two in-scope answers are right, and cite the FAQ entry that holds them
    embedder, port = text.split("Q: ")[1:3]
    assert "all-MiniLM-L6-v2" in embedder.split("\n")[1] and "[1] faq.md" in embedder
    assert "8000" in port.split("\n")[1] and "[1] faq.md" in port
    results = json.loads((report.parent / "results.json").read_text())
    hybrid = results["tasks"]["retrieval/hybrid"]["metrics"]
    assert hybrid["hit@5"] >= 0.75, hybrid  # the built-in questions find their document
    assert results["tasks"]["refusal"]["metrics"]["recall"] == 1.0
