"""The embedded model on 32 original four-choice questions (tests/eval/data/mcq.jsonl), cloze and letters:
llmworks' scores against lm-evaluation-harness's, in process on the same HF weights and through `llmworks
serve`, and llmworks locally against llmworks over HTTP."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llmworks.eval import EvalConfig, evaluate
from llmworks.testing.server import Server, start_server, stop_server

from .test_harness import MCQ, lm_eval_tasks

pytestmark = pytest.mark.slow

OURS = [f"arc={MCQ}", f"arc:letters={MCQ}"]
PAIRS = {"arc": "lm-eval/mcq_cloze", "arc:letters": "lm-eval/mcq_letters"}
N = 32
HTTP_LIMIT = 16


def _tasks(run: Path) -> dict[str, Any]:
    return json.loads((run / "results.json").read_text())["tasks"]


def _outputs(run: Path, task: str) -> dict[str, list[float]]:
    lines = (run / "samples" / f"{task.replace(':', '_').replace('/', '_')}.jsonl").read_text().splitlines()
    return {r["id"]: [q["output"] for q in r["requests"]] for r in map(json.loads, lines)}


def _within_one_question(a: dict[str, Any], b: dict[str, Any], metrics: tuple[str, ...]) -> None:
    for m in metrics:
        assert abs(a["metrics"][m] - b["metrics"][m]) <= 1 / N + 1e-9, (m, a["metrics"], b["metrics"])


@pytest.fixture(scope="module")
def runs(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reference")
    include = str(lm_eval_tasks(root))
    out = {}
    out["hf"] = evaluate(  # lm-eval --model hf on the dequantized weights (the llmworks cache's)
        EvalConfig(
            tasks=["mcq_cloze", "mcq_letters"],
            model=str(embedded_gguf),
            harness="lm-eval",
            harness_include=include,
            output_dir=str(root / "hf"),
        )
    )
    out["transformers"] = evaluate(
        EvalConfig(tasks=OURS, model=str(embedded_gguf), engine="transformers", output_dir=str(root / "tf"))
    )
    out["llamacpp"] = evaluate(
        EvalConfig(tasks=OURS, model=str(embedded_gguf), output_dir=str(root / "local"))
    )
    return out


@pytest.fixture(scope="module")
def server(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server([str(embedded_gguf), "--parallel", "4"], tmp_path_factory.mktemp("s") / "log")
    yield s
    stop_server(s)


@pytest.fixture(scope="module")
def http_runs(
    server: Server, embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    from llmworks.models.hf_weights import hf_dir_for
    from llmworks.models.sources import resolve

    root = tmp_path_factory.mktemp("http")
    ours = evaluate(EvalConfig(tasks=OURS, base_url=server.v1, output_dir=str(root / "ours")))
    lm = evaluate(  # lm-eval --model local-completions against llmworks serve
        EvalConfig(
            tasks=["mcq_cloze", "mcq_letters"],
            base_url=server.v1,
            harness="lm-eval",
            harness_include=str(lm_eval_tasks(root)),
            harness_tokenizer=str(hf_dir_for(resolve(embedded_gguf))),  # served by path: a file-stem name
            output_dir=str(root / "lm"),
            limit=HTTP_LIMIT,  # lm-eval sends one request per option: the slowest run here
        )
    )
    return {"ours": ours, "lm-eval": lm}


def test_same_hf_weights_same_scores_as_lm_eval(runs: dict[str, Path]) -> None:
    ours, ref = _tasks(runs["transformers"]), _tasks(runs["hf"])
    for mine, theirs in PAIRS.items():
        assert ours[mine]["prompt"] == ref[theirs]["prompt"] and ours[mine]["n"] == ref[theirs]["n"] == N
        _within_one_question(ours[mine], ref[theirs], tuple(ref[theirs]["metrics"]))
        a, b = _outputs(runs["transformers"], mine), _outputs(runs["hf"], theirs)
        for k in a:
            assert a[k] == pytest.approx(b[k], abs=1e-3), k
        assert ours[mine]["stderr"]["acc"] == pytest.approx(ref[theirs]["stderr"]["acc"], abs=1e-6)


def test_llamacpp_engine_stays_near_the_fp32_reference(runs: dict[str, Path]) -> None:
    """The default engine runs the Q4_1 GGUF with llama.cpp's quantized kernels: its log-probs differ from the
    fp32 weights by up to ~0.5 nats on this model, which flips a question or two near a tie. Not a formulation
    difference (that moves a tiny model's accuracy by far more: 0.25 with letters vs 0.6 cloze here)."""
    ours, ref = _tasks(runs["llamacpp"]), _tasks(runs["hf"])
    for mine, theirs in PAIRS.items():
        assert ours[mine]["prompt"] == ref[theirs]["prompt"]
        for m in ref[theirs]["metrics"]:
            assert abs(ours[mine]["metrics"][m] - ref[theirs]["metrics"][m]) <= 3 / N + 1e-9, (mine, m)


def test_http_equals_local(runs: dict[str, Path], http_runs: dict[str, Path]) -> None:
    local, remote = _tasks(runs["llamacpp"]), _tasks(http_runs["ours"])
    for task in PAIRS:
        assert remote[task]["method"] == "loglikelihood" and remote[task]["prompt"] == local[task]["prompt"]
        _within_one_question(local[task], remote[task], tuple(local[task]["metrics"]))


def test_lm_eval_through_our_server_agrees(http_runs: dict[str, Path]) -> None:
    """lm-eval's local-completions reads the same log-probs from `llmworks serve` as llmworks does, to llama.cpp's
    batching tolerance (lm-eval sends one prompt a request, as token ids; llmworks sends 16 as text), except where
    the server leaves the generated token out of the echo (it does when that token is EOS): lm-eval then drops
    the continuation's last token (it reads 0 for a one-token option), a higher score than ours."""
    dropped = 0
    agree: dict[str, list[tuple[float, float]]] = {}
    for mine, theirs in PAIRS.items():
        a, b = _metrics(http_runs["ours"], mine), _metrics(http_runs["lm-eval"], theirs)
        assert len(b) == HTTP_LIMIT
        agree[mine] = [(a[k], b[k]) for k in b]
        x, y = _outputs(http_runs["ours"], mine), _outputs(http_runs["lm-eval"], theirs)
        for k in y:
            for mine_lp, their_lp in zip(x[k], y[k], strict=True):
                if their_lp == 0.0 or their_lp > mine_lp + BATCHING:
                    dropped += 1
                else:
                    assert mine_lp == pytest.approx(their_lp, abs=BATCHING), k
    if dropped:
        pytest.xfail(
            f"llmworks serve left the generated EOS token out of {dropped} echo replies (a serve bug)"
        )
    for task, pairs in agree.items():
        assert abs(sum(p for p, _ in pairs) - sum(q for _, q in pairs)) <= 1, task  # within one question


BATCHING = 0.6
"""How far llama.cpp's log-prob of one option moves with how the prompt is batched (Q4_1 kernels; measured up
to ~0.57 nats on this model)."""


def _metrics(run: Path, task: str) -> dict[str, float]:
    lines = (run / "samples" / f"{task.replace(':', '_').replace('/', '_')}.jsonl").read_text().splitlines()
    return {r["id"]: r["metrics"]["acc"] for r in map(json.loads, lines)}
