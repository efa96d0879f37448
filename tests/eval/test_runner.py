"""Runs on the tiny model: results, per-sample records, report, resume after an interrupt, compare."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmworks.client.local import LocalClient
from llmworks.errors import UserError
from llmworks.eval import EvalConfig, compare, evaluate


def test_batched_loglikelihood_equals_one_at_a_time(tiny_gguf: Path, tiny_hf_dir: Path) -> None:
    """Pairs scored together (sorted, prefix and logits reused, several slots) score as each alone does."""
    from llmworks.engines import load_engine

    q = "Question: What is the capital of France?\nA. Berlin\nB. Paris\nAnswer:"
    pairs = [(q, " A"), (q, " B"), (q.replace("France", "Italy"), " A"), ("Hello", " there, my friend")]
    # Options of different lengths, and questions sharing a prefix but not their ends.
    pairs += [("Hello", " there"), ("Hi. Is that", " nope maybe so"), ("Hi. Is that", " true or really not")]
    pairs += [("Hi. Cats are good.\n", " yes"), ("Hi. Dogs are bad.", " yes")]
    for model in (tiny_gguf, tiny_hf_dir):
        with (
            load_engine(model, n_ctx=512, prefix_cache=False) as naive,
            load_engine(model, n_ctx=512, parallel=3) as engine,
        ):
            one = [naive.loglikelihood([p])[0].logprob for p in pairs]
            batched = [r.logprob for r in engine.loglikelihood(pairs)]
            again = [r.logprob for r in engine.loglikelihood(pairs[::-1])][::-1]  # caches reused
            assert batched == pytest.approx(one, abs=1e-3), model
            assert again == pytest.approx(one, abs=1e-3), model


@pytest.fixture(scope="module")
def tiny_run(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = EvalConfig(
        tasks=["mmlu-smoke", "ceval-smoke", "gsm8k-smoke", "custom-smoke", "niah-smoke", "humaneval-smoke"],
        model=str(tiny_gguf),
        output_dir=str(out),
        limit=2,
        ctx=1024,
    )
    return evaluate(cfg)


def test_run_writes_results_samples_and_report(tiny_run: Path) -> None:
    results = json.loads((tiny_run / "results.json").read_text())
    tasks = results["tasks"]
    assert tasks["mmlu-smoke"]["method"] == "loglikelihood" and tasks["mmlu-smoke"]["n"] == 2
    assert set(tasks["gsm8k-smoke"]["metrics"]) == {"strict_match", "flexible_extract"}
    assert set(tasks["custom-smoke"]["metrics"]) == {"exact_match", "contains", "f1", "rouge_l", "bleu"}
    assert "pass@1" in tasks["humaneval-smoke"]["metrics"]
    assert tasks["niah-smoke"]["n"] == 2
    line = json.loads((tiny_run / "samples" / "gsm8k-smoke.jsonl").read_text().splitlines()[0])
    assert line["requests"][0]["prompt"] and isinstance(line["requests"][0]["output"], str)
    assert line["target"] == "7" and set(line["extracted"]) == {"strict", "flexible"}
    html = (tiny_run / "report.html").read_text()
    assert (
        "<svg" in html
        and "Needle in a haystack" in html
        and 'id="samples"' in html.replace("id=samples", 'id="samples"')
    )
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained


def test_interrupted_run_resumes_with_same_results(tiny_gguf: Path, tmp_path: Path) -> None:
    args = [sys.executable, "-m", "llmworks.cli", "eval", "run", "--model", str(tiny_gguf), "--ctx", "1024"]
    args += ["--tasks", "gsm8k-smoke,custom-smoke,mmlu-smoke", "--concurrency", "1"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONFAULTHANDLER": "1"}
    ref = tmp_path / "ref"
    subprocess.run([*args, "-o", str(ref)], check=True, env=env, capture_output=True)

    run = tmp_path / "run"
    cache = run / "cache.jsonl"
    # SIGINT back to its default in the child: a suite started in the background by a shell without job
    # control inherits SIGINT ignored, and the run would then never see the interrupt
    proc = subprocess.Popen(
        [*args, "-o", str(run)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not cache.exists() or len(cache.read_text().splitlines()) < 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 130, proc.stderr.read() if proc.stderr else ""
    assert not (run / "results.json").exists()
    partial = len(cache.read_text().splitlines())

    done = subprocess.run([*args, "-o", str(run)], check=True, env=env, capture_output=True, text=True)
    assert f"resuming: {partial - 1} of" in done.stderr  # the first line is the capability probe
    keys = [json.loads(line)["k"] for line in cache.read_text().splitlines()]
    assert len(keys) == len(set(keys))  # nothing answered twice
    got, want = (json.loads((d / "results.json").read_text())["tasks"] for d in (run, ref))
    assert got == want
    for name in ("gsm8k-smoke", "custom-smoke"):
        assert (run / "samples" / f"{name}.jsonl").read_text() == (
            ref / "samples" / f"{name}.jsonl"
        ).read_text()


def test_compare_reports_deltas(tiny_run: Path, tiny_gguf: Path, tmp_path: Path) -> None:
    from llmworks.engines import load_engine

    with load_engine(tiny_gguf, n_ctx=1024) as engine:
        other = evaluate(
            EvalConfig(
                tasks=["mmlu-smoke", "custom-smoke"], output_dir=str(tmp_path / "b"), limit=2, chat=False
            ),
            client=LocalClient(engine),
        )
    html = compare([tiny_run, other], tmp_path / "cmp")
    report = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    base = json.loads((tiny_run / "results.json").read_text())["tasks"]
    new = json.loads((other / "results.json").read_text())["tasks"]
    row = next(r for r in report["rows"] if r["task"] == "custom-smoke" and r["metric"] == "f1")
    _, name_b = list(report["runs"])
    assert row["delta"][name_b] == pytest.approx(
        new["custom-smoke"]["metrics"]["f1"] - base["custom-smoke"]["metrics"]["f1"]
    )
    assert any(r["task"] == "niah-smoke" and r["values"][name_b] is None for r in report["rows"])
    assert "Δ" in html.read_text()
    with pytest.raises(UserError, match="not an eval run"):
        compare([tiny_run, tmp_path], tmp_path / "cmp2")
