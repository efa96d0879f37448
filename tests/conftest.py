"""Shared fixtures: offline mode, the embedded model, and tiny random models built once and cached on disk."""

from __future__ import annotations

import os

# Before anything imports transformers/huggingface_hub: tests never touch a hub.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_var] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from llmworks.errors import UserError  # noqa: E402
from llmworks.testing import tiny  # noqa: E402


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    """The real embedded SmolLM2 GGUF. Fails (never skips): a CI run without it missed an install step."""
    try:
        return tiny.embedded_gguf()
    except UserError as e:
        pytest.fail(f"{e.problem} {e.fix}", pytrace=False)


@pytest.fixture(scope="session")
def test_cache() -> Path:
    """$LLMWORKS_TEST_CACHE or ~/.cache/llmworks/test-models: shared across sessions, keyed by build parameters."""
    return tiny.cache_root()


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(test_cache: Path, embedded_gguf: Path) -> Path:
    """SmolLM2's real tokenizer (49152 tokens, ChatML template) as an HF directory."""
    return tiny.smollm2_tokenizer_dir(test_cache)


@pytest.fixture(scope="session")
def tiny_hf_dir(test_cache: Path, tiny_tokenizer_dir: Path) -> Path:
    """A random 2-layer LlamaForCausalLM (hidden 64, fp32, tied embeddings) with that tokenizer."""
    return tiny.make_tiny_hf(test_cache, tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_gguf(tiny_hf_dir: Path) -> Path:
    """`tiny_hf_dir` as an f32 GGUF, written by llmworks.export.gguf_writer."""
    return tiny.make_tiny_gguf(tiny_hf_dir)
