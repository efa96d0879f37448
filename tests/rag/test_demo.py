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
    # each in-scope question's first chunk is the README section that answers it
    assert "[1] README.md › llmworks > One llama.cpp build" in text
    assert "[1] README.md › llmworks > Tour > Evaluate:" in text
    results = json.loads((report.parent / "results.json").read_text())
    hybrid = results["tasks"]["retrieval/hybrid"]["metrics"]
    assert hybrid["hit@5"] >= 0.75, hybrid  # the built-in questions find their document
    assert results["tasks"]["refusal"]["metrics"]["recall"] == 1.0
