"""RAG eval: our retrieval metrics equal ranx's on the same run; a whole run (retrieval ablation, refusal,
answers, judge) writes results.json that `llmworks eval compare` reads, samples and report.html."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmworks.rag.evaluate import Expected, load_qa, rank_metrics, ranking
from llmworks.rag.retrieve import Hit


def hit(source: str, page: int | None, cid: str) -> Hit:
    return Hit("t", source, page, "", 1.0, id=cid)


def test_relevance_by_source_suffix_and_page() -> None:
    e = Expected("manual.pdf", 3)
    assert e.matches(hit("/docs/manual.pdf", 3, "a")) and not e.matches(hit("/docs/manual.pdf", 4, "a"))
    assert not e.matches(hit("/docs/old-manual.pdf", 3, "a"))
    assert Expected("docs/faq.jsonl").matches(hit("/x/docs/faq.jsonl", None, "b"))


def test_metrics_equal_ranx_on_the_same_run() -> None:
    from ranx import Qrels, Run, evaluate

    k = 5
    cases = {
        "q1": (
            [hit("/d/a.pdf", 1, "c1"), hit("/d/a.pdf", 2, "c2"), hit("/d/b.md", None, "c3")],
            [Expected("a.pdf", 2)],
        ),
        "q2": ([hit("/d/x.md", None, f"n{i}") for i in range(6)], [Expected("a.pdf", 1)]),
        "q3": (
            [
                hit("/d/b.md", None, "c4"),
                hit("/d/b.md", None, "c5"),
                hit("/d/x.md", None, "c6"),
                hit("/d/a.pdf", 7, "c7"),
            ],
            [Expected("b.md"), Expected("a.pdf", 7), Expected("z.md")],
        ),
        "q4": ([hit("/d/z.md", None, "c8")], [Expected("z.md")]),
    }
    qrels, run, ours = {}, {}, {}
    for q, (hits, expected) in cases.items():
        ranked, relevant = ranking(hits, expected)
        ours[q] = rank_metrics(ranked, relevant, k)
        qrels[q] = {key: 1 for key in relevant}
        run[q] = {doc: float(len(ranked) - i) for i, doc in enumerate(ranked)}
    names = [f"hit_rate@{k}", f"recall@{k}", f"mrr@{k}", f"ndcg@{k}"]
    theirs = evaluate(Qrels(qrels), Run(run), names, make_comparable=True)
    for ours_name, ranx_name in zip([f"hit@{k}", f"recall@{k}", "mrr", f"ndcg@{k}"], names, strict=True):
        mean = sum(m[ours_name] for m in ours.values()) / len(ours)
        assert mean == pytest.approx(float(theirs[ranx_name]), abs=1e-9), ours_name


def test_bad_qa_files(tmp_path: Path) -> None:
    from llmworks.errors import UserError

    f = tmp_path / "qa.jsonl"
    f.write_text('{"question": "Where?"}\n')
    with pytest.raises(UserError, match="needs its expected sources"):
        load_qa(f)
    f.write_text('{"q": "Where?"}\n')
    with pytest.raises(UserError, match="not a QA row"):
        load_qa(f)
    f.write_text(
        '{"question": "Where?", "sources": ["a.pdf"], "pages": [1, 2]}\n{"question": "No?", "out_of_scope": true}\n'
    )
    rows = load_qa(f)
    assert [e.key for e in rows[0].expected] == ["a.pdf#1", "a.pdf#2"] and rows[1].out_of_scope


@pytest.mark.slow
def test_a_run_and_its_comparison(tmp_path: Path) -> None:
    from llmworks.eval.report import compare
    from llmworks.rag.config import RagEvalConfig
    from llmworks.rag.evaluate import _run
    from llmworks.rag.kb import KnowledgeBase
    from llmworks.testing.fake_client import ScriptedClient

    from .conftest import write_corpus

    kb = KnowledgeBase("widget", tmp_path / "kbs")
    kb.ingest([write_corpus(tmp_path / "docs")])
    qa = tmp_path / "qa.jsonl"
    rows = [
        {"question": "How long is the warranty?", "sources": ["faq.jsonl"], "answer": "Two years."},
        {"question": "How do I clean the sensor grille?", "sources": ["manual.pdf"], "pages": [2]},
        {"question": "Which port does the web console use?", "source": "guide.md"},
        {"question": "What is the capital of France?", "out_of_scope": True},
    ]
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = ScriptedClient(["It is in the sources [1]."])

    class Lazy:
        def __call__(self):
            return model

    judge = ScriptedClient(["Fine. Rating: [[8]]"], name="judge")
    import llmworks.eval.judge as judge_module

    runs = []
    for name, extra in (("a", {}), ("b", {"mode": "bm25"})):
        cfg = RagEvalConfig(qa=str(qa), kb=["widget"], kb_dir=str(tmp_path / "kbs"), output_dir=str(tmp_path / name),
                            judge="judge", **extra)  # fmt: skip
        original = judge_module.make_judge
        judge_module.make_judge = lambda *a, **k: judge  # type: ignore[assignment]
        try:
            runs.append(_run([kb], cfg, Lazy(), None))
        finally:
            judge_module.make_judge = original  # type: ignore[assignment]
    results = json.loads((runs[0] / "results.json").read_text())
    tasks = results["tasks"]
    assert set(tasks) >= {"retrieval/bm25", "retrieval/dense", "retrieval/hybrid", "refusal", "answers"}
    assert tasks["retrieval/hybrid"]["n"] == 3 and tasks["retrieval/hybrid"]["metrics"]["hit@5"] == 1.0
    assert tasks["refusal"]["metrics"]["recall"] == 1.0
    answers = tasks["answers"]["metrics"]
    assert answers["faithfulness"] == pytest.approx(0.8) and answers["correctness"] == pytest.approx(0.8)
    samples = [json.loads(line) for line in (runs[0] / "samples.jsonl").read_text().splitlines()]
    assert samples[0]["retrieved"]["hybrid"][0]["relevant"] and samples[3]["answer"]["refused"]
    assert "Retrieval (ablation)" in (runs[0] / "report.html").read_text()
    report = compare(runs, tmp_path / "cmp")  # the eval stage's comparison reads RAG runs
    assert any(
        r["task"] == "retrieval/hybrid" for r in json.loads(report.with_suffix(".json").read_text())["rows"]
    )
    n_judged, n_answered = len(judge.calls), len(model.calls)
    runs.append(_run([kb], RagEvalConfig(qa=str(qa), kb=["widget"], kb_dir=str(tmp_path / "kbs"),
                                        output_dir=str(tmp_path / "a")), Lazy(), None))  # fmt: skip
    assert len(model.calls) == n_answered and len(judge.calls) == n_judged  # the rerun reuses its cache
