"""`--engine vllm`: a clear error without the extra; a real run only where vLLM is installed (GPU hosts)."""

import importlib.util
import os
import subprocess
import sys

import pytest

from llmworks.serve.vllm import vllm_command


def test_command_line_is_vllm_serve() -> None:
    cmd = vllm_command("/models/qwen", "qwen", 9000, 4096)
    assert (
        cmd[-9:]
        == [
            "serve",
            "/models/qwen",
            "--host",
            "127.0.0.1",
            "--port",
            "9000",
            "--served-model-name",
            "qwen",
            "--max-model-len",
            "4096",
        ][-9:]
    )


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed")
def test_without_vllm_the_error_names_the_extra() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "llmworks.cli", "serve", "--engine", "vllm"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "pip install 'llmworks[vllm]'" in r.stderr


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmworks.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )


def test_our_options_that_vllm_has_not_are_refused() -> None:
    r = run("serve", "--engine", "vllm", "--lora", "a=b", "--parallel", "4")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--lora, --parallel" in r.stderr and "vLLM schedules and batches by itself" in r.stderr


def test_vllm_is_a_server_not_an_in_process_engine() -> None:
    r = run("generate", "--engine", "vllm", "hi")
    assert r.returncode == 2 and "llmworks serve MODEL --engine vllm" in r.stderr and "--base-url" in r.stderr


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None, reason="vllm is not installed (optional extra, GPU)"
)
def test_vllm_serves_behind_our_api(tiny_hf_dir, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import openai

    from llmworks.testing.server import start_server, stop_server

    server = start_server(
        [str(tiny_hf_dir), "--engine", "vllm", "--ctx", "512"], tmp_path / "log", timeout=900
    )
    try:
        client = openai.OpenAI(base_url=server.v1, api_key="x")
        r = client.chat.completions.create(
            model=client.models.list().data[0].id, messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
        assert r.usage.completion_tokens >= 1
    finally:
        stop_server(server)
