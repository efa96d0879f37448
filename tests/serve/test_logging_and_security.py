"""The server's request log line, metrics labelled by route (never by raw path), API-key checks, and the
warning for a public bind without a key."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import openai

from llmworks.testing.server import Server, start_server, stop_server


def test_request_log_line(tiny_server: Server) -> None:
    client = openai.OpenAI(base_url=tiny_server.v1, api_key="unused")
    client.chat.completions.create(
        model=client.models.list().data[0].id, messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    line = next(
        line for line in tiny_server.log.read_text().splitlines() if "route=/v1/chat/completions" in line
    )
    assert re.search(
        r"INFO llmworks\.serve: request [0-9a-f]{12} model=\S+ route=/v1/chat/completions status=200 "
        r"prompt_tokens=\d+ completion_tokens=[1-3] ttft=[\d.]+s duration=[\d.]+s",
        line,
    ), line


def test_metrics_label_routes_not_raw_paths(tiny_server: Server) -> None:
    for i in range(3):
        assert httpx.get(f"{tiny_server.v1}/scan-{i}").status_code == 404
    metrics = httpx.get(tiny_server.base + "/metrics").text
    assert "scan-" not in metrics
    assert re.search(r'llmworks_requests_total\{endpoint="other",status="404"\} 3\.0', metrics), metrics


def test_api_key_and_public_bind(tiny_gguf: Path, tmp_path: Path) -> None:
    log = tmp_path / "open.log"
    s = start_server([str(tiny_gguf), "--host", "0.0.0.0", "--ctx", "256"], log)
    try:
        assert "without --api-key" in log.read_text()
    finally:
        stop_server(s)
    guarded: Server = start_server(
        [str(tiny_gguf), "--ctx", "256", "--api-key", "s3cret"], tmp_path / "key.log"
    )
    try:
        assert httpx.get(guarded.v1 + "/models").status_code == 401
        assert httpx.get(guarded.v1 + "/models", headers={"Authorization": "Bearer s3cre"}).status_code == 401
        ok = httpx.get(guarded.v1 + "/models", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "without --api-key" not in (tmp_path / "key.log").read_text()
    finally:
        stop_server(guarded)
