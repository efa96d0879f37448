"""The real embedded model (SmolLM2-135M-Instruct), through the CLI and both engines. Marked slow."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from llmworks.chat.check import check_model
from llmworks.engines import SamplingParams, load_engine

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("engine", ["llamacpp", "transformers"])
def test_capital_of_france_from_the_cli(engine: str, embedded_gguf: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "llmworks.cli",
            "generate",
            "What is the capital of France?",
            "--engine",
            engine,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "Paris" in r.stdout
    assert "finish: stop" in r.stderr  # it ended on its end-of-turn token, not at max_tokens


@pytest.fixture(scope="module")
def llama(embedded_gguf: Path):  # type: ignore[no-untyped-def]
    with load_engine(None, "llamacpp") as eng:
        yield eng


def test_models_check_passes_on_the_embedded_model(llama) -> None:  # type: ignore[no-untyped-def]
    report = check_model(llama)
    assert report.ok, [f.what for f in report.findings if not f.ok]
    assert any("end-of-turn '<|im_end|>'" in f.what for f in report.findings)


def test_multi_turn_with_system_prompt(llama) -> None:  # type: ignore[no-untyped-def]
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
        {"role": "user", "content": "What is the capital of Germany?"},
    ]
    text = "".join(d.text for d in llama.chat(messages, SamplingParams(max_tokens=40)))
    assert "Berlin" in text


def test_loglikelihood_prefers_the_right_answer(llama) -> None:  # type: ignore[no-untyped-def]
    paris, berlin = llama.loglikelihood(
        [("The capital of France is", " Paris"), ("The capital of France is", " Berlin")]
    )
    assert paris.logprob > berlin.logprob


def test_repetition_penalty_on_real_text(llama) -> None:  # type: ignore[no-untyped-def]
    """A property, not a greedy path: the penalized reply repeats fewer of its tokens."""
    messages = [{"role": "user", "content": "Write the word dog twenty times."}]

    def distinct_share(params: SamplingParams) -> float:
        ids = [t for d in llama.chat(messages, params) for t in d.token_ids]
        return len(set(ids)) / len(ids)

    plain = distinct_share(SamplingParams(max_tokens=48))
    penalized = distinct_share(SamplingParams(max_tokens=48, repetition_penalty=1.8))
    assert penalized > plain
