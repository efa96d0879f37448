"""Several models in one server: a GGUF on llama.cpp, an HF dir on transformers, and a LoRA adapter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from llmworks.testing.server import Server, start_server, stop_server

MSG = [{"role": "user", "content": "Hello there"}]


@pytest.fixture(scope="module")
def adapter_dir(tiny_hf_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_hf_dir)
    # init_lora_weights=False: random A and B, so the adapter really changes the outputs.
    model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    out = tmp_path_factory.mktemp("adapter")
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def server(
    tiny_gguf: Path, tiny_hf_dir: Path, adapter_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    args = [str(tiny_gguf), str(tiny_hf_dir), "--lora", f"mylora={adapter_dir}", "--ctx", "256"]
    s = start_server(args, tmp_path_factory.mktemp("multi") / "log")
    yield s
    stop_server(s)


def test_models_are_listed_with_their_engines(server: Server) -> None:
    import httpx

    data = {m["id"]: m for m in httpx.get(server.v1 + "/models").json()["data"]}
    engines = {m["engine"] for m in data.values()}
    assert {"llamacpp", "transformers", "sentence-transformers"} <= engines
    assert data["mylora"]["engine"] == "transformers"


def test_the_model_field_picks_the_model(server: Server) -> None:
    client = openai.OpenAI(base_url=server.v1, api_key="x", max_retries=0)
    ids = [m.id for m in client.models.list().data if m.id != "all-minilm-l6-v2"]
    answers = {}
    for model in ids:
        r = client.chat.completions.create(model=model, messages=MSG, max_tokens=8, temperature=0)
        assert r.model == model
        answers[model] = r.choices[0].message.content
    gguf, hf = (m for m in ids if m != "mylora")
    assert answers[gguf] == answers[hf]  # the same f32 weights on both engines
    assert answers["mylora"] != answers[hf]  # the adapter changes the model


def test_grammars_are_a_clear_400_on_transformers_and_logprobs_work(server: Server) -> None:
    client = openai.OpenAI(base_url=server.v1, api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="mylora", messages=MSG, max_tokens=2, response_format={"type": "json_object"}
        )
    assert "not supported" in e.value.message and "llamacpp engine" in e.value.message
    r = client.chat.completions.create(
        model="mylora", messages=MSG, max_tokens=2, logprobs=True, top_logprobs=2
    )
    lp = r.choices[0].logprobs.content
    assert lp and len(lp[0].top_logprobs) == 2 and lp[0].logprob <= 0


def test_lora_spec_errors(tmp_path: Path, tiny_gguf: Path) -> None:
    import subprocess
    import sys

    for bad, needle in [("noequals", "NAME=PATH"), (f"x={tiny_gguf}", "not a LoRA adapter")]:
        r = subprocess.run(
            [sys.executable, "-m", "llmworks.cli", "serve", str(tiny_gguf), "--lora", bad],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr
