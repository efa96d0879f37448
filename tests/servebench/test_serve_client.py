"""`llmworks bench serve`: SSE parsing on canned streams, settings checks, and one run on a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from llmworks.errors import UserError
from llmworks.local_server import free_port, running_server
from llmworks.servebench.cli import app
from llmworks.servebench.metrics import LevelResult
from llmworks.servebench.plot import plot_results
from llmworks.servebench.serve_client import (
    ServeBenchConfig,
    _list_models,
    _request,
    parse_concurrency,
    run_benchmark,
    synthetic_prompts,
    write_results,
)
from llmworks.servebench.servers import llama_cpp_server_cmd


def _sse(*events: dict | str) -> bytes:
    lines = [": ping\n\n"]  # comments must be skipped
    lines += [f"data: {e if isinstance(e, str) else json.dumps(e)}\n\n" for e in events]
    return "".join(lines).encode()


def _chunk(text: str, finish: str | None = None) -> dict:
    return {"object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": finish}]}


def _call(handler) -> object:  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://x") as client:
            return await _request(client, "m", "prompt", 8)

    return asyncio.run(go())


def test_request_counts_text_chunks_without_usage() -> None:
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(json.loads(request.content))
        body = _sse(_chunk("a"), _chunk(""), _chunk(" b"), _chunk(" c"), _chunk("", "length"), "[DONE]")
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    r = _call(handler)
    assert r.ok and r.output_tokens == 3 and r.prompt_tokens is None
    assert len(r.itl) == 2 and r.ttft > 0 and r.latency >= r.ttft
    assert seen["stream"] is True and seen["max_tokens"] == 8 and seen["temperature"] == 0
    assert seen["stream_options"] == {"include_usage": True}


def test_request_prefers_usage() -> None:
    usage = {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}
    body = _sse(_chunk("ab"), _chunk("cd"), usage, "[DONE]")
    r = _call(lambda _: httpx.Response(200, content=body))
    assert r.ok and r.output_tokens == 4 and r.prompt_tokens == 5


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(401, json={"error": {"message": "bad key"}}), "HTTP 401: bad key"),
        (httpx.Response(200, content=_sse({"error": {"message": "engine died"}})), "engine died"),
        (httpx.Response(200, content=_sse("[DONE]")), "ended before the first token"),
    ],
)
def test_request_failures(response: httpx.Response, error: str) -> None:
    r = _call(lambda _: response)
    assert not r.ok and error in r.error


def test_settings_are_checked() -> None:
    assert parse_concurrency("1, 4,16") == [1, 4, 16]
    for bad in ("", "0", "1,x", "-2"):
        with pytest.raises(UserError, match="bad concurrency list"):
            parse_concurrency(bad)
    with pytest.raises(UserError, match=r"num_prompts must be >= 1.*output_len must be >= 1"):
        ServeBenchConfig(num_prompts=0, output_len=0)
    assert ServeBenchConfig(base_url="http://h:1/v1/").base_url == "http://h:1"


def test_synthetic_prompts_are_seeded_and_distinct() -> None:
    a = synthetic_prompts(3, 50, seed=1)
    assert a == synthetic_prompts(3, 50, seed=1) and len(set(a)) == 3
    assert all(len(p.split()) == 50 for p in a)


def test_unreachable_server_is_one_clear_error() -> None:
    cfg = ServeBenchConfig(base_url=f"http://127.0.0.1:{free_port()}", concurrency=[1], num_prompts=1)
    with pytest.raises(UserError, match=r"cannot reach the server at http://127\.0\.0\.1"):
        run_benchmark(cfg)
    result = CliRunner().invoke(app, ["serve", "--base-url", cfg.base_url, "--concurrency", "1,0"])
    assert isinstance(result.exception, UserError) and "bad concurrency list" in str(result.exception)


def test_model_list_checks() -> None:
    async def models(response: httpx.Response, required: bool) -> list[str]:
        transport = httpx.MockTransport(lambda _: response)
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            return await _list_models(client, "http://x", required)

    ok = httpx.Response(200, json={"object": "list", "data": [{"id": "a"}, {"id": "b"}]})
    assert asyncio.run(models(ok, True)) == ["a", "b"]
    assert asyncio.run(models(httpx.Response(401, json={}), False)) == []  # --model given: go on
    with pytest.raises(UserError, match="HTTP 401: no key"):
        asyncio.run(models(httpx.Response(401, json={"error": {"message": "no key"}}), True))
    with pytest.raises(UserError, match="did not answer with an OpenAI model list"):
        asyncio.run(models(httpx.Response(200, text="<html>"), True))


@pytest.fixture(scope="module")
def llama_server(embedded_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with running_server(llama_cpp_server_cmd(embedded_gguf, port, n_ctx=2048, n_threads=2), port, log) as url:
        yield url


@pytest.mark.slow
def test_cli_against_a_real_server(llama_server: str, tmp_path: Path) -> None:
    out, plot = tmp_path / "results.json", tmp_path / "plot.png"
    args = ["serve", "--base-url", llama_server, "--concurrency", "1,2", "--num-prompts", "4"]
    args += ["--input-len", "32", "--output-len", "16", "--out", str(out), "--plot", str(plot)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "output throughput (tok/s)" in result.output
    data = json.loads(out.read_text())
    assert data["config"]["concurrency"] == [1, 2]
    one, two = data["results"]
    assert one["concurrency"] == 1 and one["completed"] == 4 and one["failed"] == 0
    assert 0 < one["total_output_tokens"] <= 64 and one["output_throughput"] > 0
    assert 0 < one["ttft_ms"]["p50"] < one["e2el_ms"]["p50"]
    assert one["tpot_ms"]["mean"] > 0 and one["itl_ms"]["p99"] >= one["itl_ms"]["p50"]
    # llama_cpp.server interrupts in-flight requests under concurrency: counted, not hidden.
    assert two["completed"] + two["failed"] == 4
    assert plot.stat().st_size > 10_000


def test_json_and_plot_files(tmp_path: Path) -> None:
    from llmworks.servebench.metrics import RequestResult, summarize

    runs = [RequestResult(ok=True, ttft=0.1, latency=0.5, itl=[0.2, 0.2], output_tokens=3)]
    levels: list[LevelResult] = [
        summarize(runs, concurrency=c, duration_s=1.0, input_len=4, output_len=3) for c in (1, 8)
    ]
    cfg = ServeBenchConfig(api_key="secret", concurrency=[1, 8])
    write_results(tmp_path / "r.json", cfg, levels)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["config"]["api_key"] == "***" and [r["concurrency"] for r in data["results"]] == [1, 8]
    plot_results(tmp_path / "p.png", levels)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "r.json"]  # no temp files left
