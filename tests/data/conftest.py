"""Shared fixtures for the data stage's tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE with a few hundred merges, trained offline on a small English+Chinese text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = [
        "the quick brown fox jumps over the lazy dog " * 20,
        "fine tuning needs good data " * 20,
        "数据 训练 模型 " * 20,
    ]
    tok.train_from_iterator(
        text, trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    )
    path = tmp_path_factory.mktemp("tok") / "tiny.json"
    tok.save(str(path))
    return path
