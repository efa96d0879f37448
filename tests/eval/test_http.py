"""Evaluation over HTTP: our own server and the real openai client; a server that is down."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmworks.client.http import HTTPClient
from llmworks.errors import UserError
from llmworks.eval import EvalConfig, evaluate
from llmworks.local_server import free_port
from llmworks.testing.server import Server, start_server, stop_server


@pytest.fixture(scope="module")
def server(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = start_server(
        [str(tiny_gguf), "--parallel", "4", "--ctx", "1024"], tmp_path_factory.mktemp("s") / "log"
    )
    yield s
    stop_server(s)


def test_echo_loglikelihood_matches_the_local_engine(server: Server, tiny_gguf: Path) -> None:
    from llmworks.engines import load_engine

    pairs = [("Question: 2 + 2 =", " 4"), ("Question: 2 + 2 =", " five"), ("Hello", " world, again")]
    remote = HTTPClient(server.v1).loglikelihood(pairs)
    with load_engine(tiny_gguf, n_ctx=1024) as engine:
        local = [r.logprob for r in engine.loglikelihood(pairs)]
    assert remote == pytest.approx(local, abs=1e-3)


def test_run_over_http(server: Server, tmp_path: Path) -> None:
    """The runner probes /v1/completions echo+logprobs and scores by log-likelihood, as it does locally;
    method=generate forces generation (the chat API, the server's template)."""
    cfg = EvalConfig(
        tasks=["mmlu-smoke", "custom-smoke"], base_url=server.v1, output_dir=str(tmp_path), limit=2
    )
    tasks = json.loads((evaluate(cfg) / "results.json").read_text())["tasks"]
    assert tasks["mmlu-smoke"]["method"] == "loglikelihood" and tasks["mmlu-smoke"]["chat"] is False
    assert tasks["custom-smoke"]["chat"] is True  # generation tasks: the chat API
    cfg = EvalConfig(
        tasks=["mmlu-smoke"], base_url=server.v1, output_dir=str(tmp_path / "b"), limit=2, method="generate"
    )
    tasks = json.loads((evaluate(cfg) / "results.json").read_text())["tasks"]
    assert tasks["mmlu-smoke"]["method"] == "generate"
    assert tasks["mmlu-smoke"]["formulation"].startswith("generate")


def test_local_and_http_runs_agree(server: Server, tiny_gguf: Path, tmp_path: Path) -> None:
    """The same model locally and behind `llmworks serve`: the same prompts, the same scores (log-probs to a
    batching tolerance, accuracy to within one question)."""
    shipped = ["mmlu-smoke", "arc-smoke", "arc-smoke:letters"]
    local = evaluate(
        EvalConfig(tasks=shipped, model=str(tiny_gguf), ctx=1024, output_dir=str(tmp_path / "local"))
    )
    remote = evaluate(EvalConfig(tasks=shipped, base_url=server.v1, output_dir=str(tmp_path / "http")))
    a, b = (json.loads((d / "results.json").read_text())["tasks"] for d in (local, remote))
    for task in shipped:
        assert a[task]["method"] == b[task]["method"] == "loglikelihood"
        assert a[task]["prompt"] == b[task]["prompt"] and a[task]["formulation"] == b[task]["formulation"]
        assert abs(a[task]["metrics"]["acc"] - b[task]["metrics"]["acc"]) <= 1 / a[task]["n"] + 1e-9
        rows = [
            [
                json.loads(x)
                for x in (d / "samples" / f"{task.replace(':', '_')}.jsonl").read_text().splitlines()
            ]
            for d in (local, remote)
        ]
        for x, y in zip(*rows, strict=True):
            assert [r["prompt"] for r in x["requests"]] == [r["prompt"] for r in y["requests"]]
            assert [r["continuation"] for r in x["requests"]] == [r["continuation"] for r in y["requests"]]
            assert [r["output"] for r in x["requests"]] == pytest.approx(
                [r["output"] for r in y["requests"]], abs=0.02
            )


def test_server_down_is_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nobody listens there
    with pytest.raises(UserError, match=r"cannot reach .*Start the server"):
        evaluate(EvalConfig(tasks=["mmlu-smoke"], base_url=url, output_dir=str(tmp_path), retries=1))
    # Known model name: the run starts, then stops at its first request and keeps the cache.
    with pytest.raises(UserError, match=r"evaluation stopped: cannot reach .* rerun the same command"):
        evaluate(
            EvalConfig(tasks=["mmlu-smoke"], model="m", base_url=url, output_dir=str(tmp_path), retries=1)
        )
