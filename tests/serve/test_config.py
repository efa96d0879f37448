"""`llmworks serve --config serve.yaml`: YAML, key=value and flags fill one ServeConfig; the server logs it at
start (api key masked); a bad key is one clear error before any model loads."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from llmworks.errors import UserError
from llmworks.serve.config import ServeConfig
from llmworks.testing.server import start_server, stop_server


def test_live_server_from_a_config_file(tiny_gguf: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(f"models: [{tiny_gguf}]\nparallel: 2\nctx: 256\nmax_queue: 8\napi_key: s3cret\n")
    # key=value beats the YAML, a flag beats both (start_server adds --port last)
    server = start_server(
        ["--config", str(cfg), "ctx=1024", "max_queue=4", "--max-queue", "3"], tmp_path / "log"
    )
    try:
        assert httpx.get(server.v1 + "/models").status_code == 401  # the YAML's key guards /v1
        headers = {"Authorization": "Bearer s3cret"}
        model = httpx.get(server.v1 + "/models", headers=headers).json()["data"][0]
        assert model["engine"] == "llamacpp" and model["context_length"] <= 1024
        body = {"model": model["id"], "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
        reply = httpx.post(server.v1 + "/chat/completions", json=body, headers=headers, timeout=60)
        assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] > 0
    finally:
        stop_server(server)
    log = server.log.read_text()
    (line,) = [x for x in log.splitlines() if "llmworks.serve: serve config:" in x]
    assert f"models={tiny_gguf} engine=auto host=127.0.0.1 port=" in line
    assert "parallel=2 ctx=1024 max_queue=3 api_key=*** log_level=info" in line
    assert "s3cret" not in log


def test_a_bad_key_in_the_yaml_is_one_line_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "serve.yaml"
    cfg.write_text("prot: 9000\nparallel: 0\nlog_level: loud\n")
    r = subprocess.run(
        [sys.executable, "-m", "llmworks.cli", "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=120,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: bad ServeConfig config: "), r.stderr
    for needle in (
        "unknown key 'prot'",
        "parallel=0 (must be >= 1)",
        "log_level='loud'",
        "Known keys: models",
    ):
        assert needle in lines[0], lines[0]


def test_cross_checks() -> None:
    assert ServeConfig.build({"log_level": "DEBUG", "engine": "LlamaCpp"}).log_level == "debug"
    with pytest.raises(UserError) as e:
        ServeConfig.build({"ctx": 8, "max_queue": -1, "port": 70000, "lora": ["nopath"], "engine": "tgi"})
    for needle in ("ctx=8", "max_queue=-1", "port=70000", "lora='nopath'", "engine='tgi'"):
        assert needle in e.value.problem, needle
    with pytest.raises(UserError, match="engine=vllm does not take lora, parallel"):
        ServeConfig.build({"engine": "vllm", "parallel": 4, "lora": ["a=b"], "ctx": 4096})
    assert ServeConfig.build({"engine": "vllm", "ctx": 4096}).ctx == 4096  # its own settings are fine
