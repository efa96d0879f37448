"""`llmworks rag ...` as a user runs it (a subprocess each), on real files, the real embedder and the
embedded chat model: the tour of the README, and one clear line (exit 2) for each kind of bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import make_pdf, write_corpus

pytestmark = pytest.mark.slow


def rag(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmworks.cli", "rag", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"},
        timeout=timeout,
    )


class Result:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def rag_here(*args: str | Path) -> Result:
    """The same command in this process (the models stay loaded between commands), with the root CLI's
    handling of user errors; test_bad_input checks that handling on real subprocesses."""
    from typer.testing import CliRunner

    from llmworks.cli import app
    from llmworks.errors import UserError

    r = CliRunner().invoke(app, ["rag", *map(str, args)])
    if isinstance(r.exception, UserError):
        return Result(2, r.stdout, f"error: {r.exception}")
    if r.exception and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Result(r.exit_code, r.stdout, r.stderr)


def test_tour(tmp_path: Path) -> None:
    rag = rag_here
    docs = write_corpus(tmp_path / "docs")
    make_pdf(docs / "secret.pdf", ["classified"], password="pw")
    kbs = tmp_path / "kbs"
    r = rag("ingest", docs, "--kb", "widget", "--kb-dir", kbs)
    assert r.returncode == 0, r.stderr
    assert "version 1:" in r.stdout and "skipped" in r.stdout and "encrypted PDF" in r.stdout
    assert (kbs / "widget" / "versions" / "000001.config.yaml").is_file()

    r = rag(
        "search", "how do I clean the sensor grille?", "--kb", "widget", "--kb-dir", kbs, "-k", "2", "--json"
    )
    hits = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.returncode == 0 and hits[0]["source"].endswith("manual.pdf") and hits[0]["page"] == 2
    assert set(hits[0]["scores"]) >= {"dense", "bm25", "fused"}
    r = rag("search", "防火墙规则文件", "--kb", "widget", "--kb-dir", kbs, "mode=bm25")
    assert "zh.md" in r.stdout.splitlines()[0]

    r = rag("ask", "How long is the warranty?", "--kb", "widget", "--kb-dir", kbs, "--max-tokens", "40")
    assert r.returncode == 0, r.stderr
    assert "faq.jsonl" in r.stdout and "[1]" in r.stdout
    r = rag("ask", "What is the capital of France?", "--kb", "widget", "--kb-dir", kbs)
    assert r.stdout.strip() == "I can't answer that from the knowledge base." and "refused" in r.stderr

    (docs / "zh.md").unlink()
    r = rag("ingest", docs, "--kb", "widget", "--kb-dir", kbs)
    assert "version 2:" in r.stdout and "1 removed" in r.stdout and "0 embedded" in r.stdout
    r = rag("list", "--kb-dir", kbs)
    assert r.stdout.startswith("widget: version 2,")
    r = rag("info", "widget", "--kb-dir", kbs, "--json")
    info = json.loads(r.stdout)
    assert info["version"] == 2 and len(info["versions"]) == 2
    r = rag("rollback", "widget", "--version", "1", "--kb-dir", kbs)
    assert "version 3 = version 1" in r.stdout

    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        json.dumps({"question": "How long is the warranty?", "sources": ["faq.jsonl"]}) + "\n"
        + json.dumps({"question": "Who painted the Mona Lisa?", "out_of_scope": True}) + "\n"
    )  # fmt: skip
    r = rag("eval", qa, "--kb", "widget", "--kb-dir", kbs, "-o", tmp_path / "ev", "--no-answers")
    assert r.returncode == 0, r.stderr
    assert "retrieval/hybrid (n=1): hit@5 1.000" in r.stdout and (tmp_path / "ev" / "report.html").is_file()

    r = rag("rm", "widget", "--kb-dir", kbs)
    assert r.returncode == 0 and not (kbs / "widget").exists()


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    """Real subprocesses where the root CLI's handling is the point (one line, exit 2, nothing written);
    in this process for the rest (the same errors, without a Python start-up each)."""
    kbs = tmp_path / "kbs"
    docs = write_corpus(tmp_path / "docs")
    assert rag_here("ingest", docs / "guide.md", "--kb", "widget", "--kb-dir", kbs).returncode == 0
    cases = [
        (rag, ("search", "x", "--kb", "nope", "--kb-dir", kbs), "no knowledge base 'nope'", "widget"),
        (rag_here, ("ingest", tmp_path / "missing", "--kb", "w2", "--kb-dir", kbs), "no such file", ""),
        (
            rag,
            ("ingest", docs, "--kb", "w3", "--kb-dir", kbs, "--store", "mongo://x"),
            "unknown store 'mongo://x'",
            "",
        ),
        (
            rag_here,
            ("ingest", docs, "--kb", "widget", "--kb-dir", kbs, "--embedder", docs),
            "built with embedder",
            "Drop --embedder",
        ),
        (rag_here, ("search", "x", "--kb", "widget", "--kb-dir", kbs, "k=0"), "k=0 (must be >= 1)", ""),
        (
            rag_here,
            ("rollback", "widget", "--version", "7", "--kb-dir", kbs),
            "has no version 7",
            "Versions: 1",
        ),
        (rag_here, ("rm", "nope", "--kb-dir", kbs), "no knowledge base 'nope'", "widget"),
    ]
    for run, args, problem, fix in cases:
        r = run(*args)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, r.stderr)
        assert problem in lines[0] and fix in lines[0], (args, lines[0])
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "blank.md").write_text("\n")
    r = rag("ingest", empty, "--kb", "blank", "--kb-dir", kbs)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "corpus is empty" in r.stderr
    assert sorted(p.name for p in kbs.iterdir()) == [".widget.lock", "widget"]  # nothing half-written
    (kbs / "widget" / "kb.json").write_text("{")
    r = rag_here("search", "x", "--kb", "widget", "--kb-dir", kbs)
    assert r.returncode == 2 and "is corrupt" in r.stderr
