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
    cfg = EvalConfig(["mmlu-smoke", "custom-smoke"], base_url=server.v1, output_dir=str(tmp_path), limit=2)
    tasks = json.loads((evaluate(cfg) / "results.json").read_text())["tasks"]
    assert tasks["mmlu-smoke"]["method"] == "generate"  # chat API: the template is the server's
    cfg = EvalConfig(["mmlu-smoke"], base_url=server.v1, output_dir=str(tmp_path / "b"), limit=2, chat=False)
    tasks = json.loads((evaluate(cfg) / "results.json").read_text())["tasks"]
    assert tasks["mmlu-smoke"]["method"] == "loglikelihood"  # /v1/completions echo + logprobs


def test_server_down_is_a_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"  # nobody listens there
    with pytest.raises(UserError, match=r"cannot reach .*Start the server"):
        evaluate(EvalConfig(["mmlu-smoke"], base_url=url, output_dir=str(tmp_path), retries=1))
    # Known model name: the run starts, then stops at its first request and keeps the cache.
    with pytest.raises(UserError, match=r"evaluation stopped: cannot reach .* rerun the same command"):
        evaluate(EvalConfig(["mmlu-smoke"], model="m", base_url=url, output_dir=str(tmp_path), retries=1))
