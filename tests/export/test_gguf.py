"""GGUF export: llama.cpp quantization, its report and card, the CLI, and bad input that leaves nothing behind."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple
from pathlib import Path

import httpx
import llama_cpp
import pytest
from rich.console import Console

from llmworks.engines import load_engine
from llmworks.errors import UserError
from llmworks.export import export_gguf
from llmworks.testing.server import start_server, stop_server

from .conftest import assert_one_line_error, cli

QUIET = Console(stderr=True, quiet=True)


def test_q4_0_report_card_and_engine(merged: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.q4_0.gguf"
    export_gguf(merged, out, "q4_0", console=QUIET)
    assert [p.name for p in sorted(tmp_path.iterdir())] == [
        "m.q4_0.gguf",
        "m.q4_0.gguf.config.yaml",
        "m.q4_0.gguf.md",
        "m.q4_0.gguf.report.json",
    ]
    meta = llama_cpp.Llama(model_path=str(out), vocab_only=True, verbose=False).metadata
    assert meta["general.file_type"] == str(llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0)
    assert "<|im_start|>" in meta["tokenizer.chat_template"]
    saved = json.loads(Path(f"{out}.report.json").read_text())
    assert saved["method"] == "q4_0" and 0.2 < saved["size_ratio"] < 0.5
    src, got = saved["measurements"]
    assert (src["engine"], got["engine"]) == ("transformers", "llamacpp")
    assert 0 <= got["greedy_agreement"] <= 1 and "perplexity_delta" in saved
    card = Path(f"{out}.md").read_text()
    assert "GGUF model (q4_0)" in card and "method lora" in card and f"llmworks serve {out}" in card
    with load_engine(out) as eng:
        assert type(eng).__name__ == "LlamaCppEngine" and eng.template is not None


def test_serve_and_chat_use_the_file(merged: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.gguf"
    assert cli("export", "gguf", str(merged), "-o", str(out), "--quant", "q8_0", "--no-eval").returncode == 0
    r = cli("chat", str(out), "-n", "6", stdin="hello\n/exit\n")
    assert r.returncode == 0 and r.stderr.count("finish:") == 1, r.stderr
    server = start_server([str(out)], tmp_path / "serve.log")
    try:
        models = httpx.get(f"{server.v1}/models").json()["data"]
        body = {"model": models[0]["id"], "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}
        reply = httpx.post(f"{server.v1}/chat/completions", json=body, timeout=60).json()
        assert reply["choices"][0]["message"]["content"] and reply["usage"]["completion_tokens"] > 0
    finally:
        stop_server(server)


def test_unknown_quant_type(merged: Path, tmp_path: Path) -> None:
    r = cli("export", "gguf", str(merged), "-o", str(tmp_path / "m.gguf"), "--quant", "q9_x")
    assert_one_line_error(r, "quant='q9_x'", "q4_k_m")
    assert not any(tmp_path.iterdir())


def test_unsupported_architecture(tiny_hf_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "gpt2"
    shutil.copytree(tiny_hf_dir, src)
    cfg = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps(cfg | {"architectures": ["GPT2LMHeadModel"]}))
    (tmp_path / "out").mkdir()
    with pytest.raises(UserError, match="GPT2LMHeadModel is not supported"):
        export_gguf(src, tmp_path / "out" / "m.gguf", "q8_0", console=QUIET)
    assert not any((tmp_path / "out").iterdir())


def test_adapter_needs_merging_first(lora_run: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="Merge it first: llmworks export merge"):
        export_gguf(lora_run, tmp_path / "m.gguf", console=QUIET)


def test_too_little_disk_space(merged: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 2**20, 2**20))
    with pytest.raises(UserError, match=r"not enough disk space .* 1.0 MiB is free"):
        export_gguf(merged, tmp_path / "m.gguf", "q4_k_m", console=QUIET)
    assert not any(tmp_path.iterdir())


def test_quantizer_failure_leaves_no_file(
    merged: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "m.gguf"
    out.write_bytes(b"previous good file")
    monkeypatch.setattr(llama_cpp, "llama_model_quantize", lambda *_: 1)
    with pytest.raises(UserError, match="could not quantize"):
        export_gguf(merged, out, "q8_0", console=QUIET)
    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"] and out.read_bytes() == b"previous good file"
