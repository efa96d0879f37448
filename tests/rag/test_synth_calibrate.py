"""Question synthesis (kept when the question's own chunk is retrieved back) and refusal calibration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmworks.rag.refusal import fit_refusal, refusal_metrics

pytestmark = pytest.mark.slow  # the real embedder


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory):
    from llmworks.rag.kb import KnowledgeBase

    from .conftest import write_corpus

    root = tmp_path_factory.mktemp("synth")
    base = KnowledgeBase("widget", root / "kbs")
    base.ingest([write_corpus(root / "docs")])
    return base


def test_synth_keeps_questions_whose_chunk_comes_back(kb, tmp_path: Path) -> None:
    from llmworks.rag.config import SynthConfig
    from llmworks.rag.synth import synthesize
    from llmworks.testing.fake_client import ScriptedClient

    class AboutEverything(ScriptedClient):
        """Asks about the passage it is shown (its first words), or off-topic every third time."""

        def chat_stream(self, messages, **options):  # type: ignore[no-untyped-def]
            text = messages[-1]["content"]
            if text.startswith("Answer the question"):
                self.replies = ["It is explained in the passage."]
            elif len(self.calls) % 3 == 2:
                self.replies = ["What is the airspeed velocity of an unladen swallow?"]
            else:
                passage = text.split("\n\n")[1]
                self.replies = [
                    f"Question: What does the document say about {' '.join(passage.split()[:6])}?"
                ]
            return super().chat_stream(messages, **options)

    out = tmp_path / "qa.jsonl"
    model = AboutEverything([""])
    report = synthesize(kb, SynthConfig(kb="widget", n=3, output=str(out), seed=1), lambda: model, None)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert report.kept == len(rows) == 3 and report.not_retrieved >= 1
    assert all(r["question"].startswith("What does the document say about") for r in rows)
    sft = [json.loads(line) for line in (tmp_path / "qa.sft.jsonl").read_text().splitlines()]
    assert len(sft) == 3
    msgs = sft[0]["messages"]
    assert [m["role"] for m in msgs] == ["system", "user", "assistant"]
    assert msgs[1]["content"].startswith("Sources:") and msgs[2]["content"].endswith(f"[{rows[0]['rank']}].")


def test_calibrate_fits_and_reports(kb, tmp_path: Path) -> None:
    from llmworks.rag.calibrate import calibrate
    from llmworks.rag.config import CalibrateConfig
    from llmworks.rag.refusal import RefusalModel

    inside = ["How long is the warranty?", "Can the widget run on batteries?", "How do I install the widget?",
              "Which port is the web console on?", "How often do I calibrate the humidity sensor?",
              "How do I clean the sensor grille?"]  # fmt: skip
    outside = ["What is the capital of France?", "Who wrote Hamlet?", "How do I bake sourdough bread?",
               "What is the boiling point of ethanol?", "Which team won the 2018 World Cup?",
               "How many moons does Jupiter have?"]  # fmt: skip
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"question": q}) + "\n" for q in inside))
    (tmp_path / "out.txt").write_text("\n".join(outside) + "\n")
    model = calibrate([kb], CalibrateConfig(kb=["widget"], in_scope=str(tmp_path / "in.jsonl"),
                                            out_of_scope=str(tmp_path / "out.txt")))  # fmt: skip
    assert model.calibrated and model.metrics["cross_validated"]["f1"] >= 0.8
    saved = RefusalModel.load(kb.paths.refusal)
    assert saved.calibrated and saved.threshold == model.threshold
    assert kb.info()["refusal_calibrated"]


def test_fit_on_separable_signals() -> None:
    rows = [{"dense_top": 0.7 + i / 100, "bm25_top": 0.4} for i in range(10)]
    rows += [{"dense_top": 0.1 + i / 100, "bm25_top": 0.02} for i in range(10)]
    m = fit_refusal(rows, [False] * 10 + [True] * 10)
    assert m.metrics["cross_validated"]["f1"] == 1.0
    assert (
        m.decide({"dense_top": 0.12, "bm25_top": 0.0})[0]
        and not m.decide({"dense_top": 0.75, "bm25_top": 0.5})[0]
    )
    assert refusal_metrics([True, False, True], [True, True, False]) == {
        "precision": 0.5, "recall": 0.5, "f1": 0.5, "tp": 1, "fp": 1, "fn": 1,
    }  # fmt: skip
