"""Tokenizers for statistics: a tokenizer.json file, an HF model directory, or any model the engines load."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmworks.errors import UserError


@dataclass
class Tokenizer:
    name: str
    encode: Callable[[str], list[int]]
    vocab_size: int


def load_tokenizer(spec: str) -> Tokenizer:
    path = Path(spec)
    if path.is_file() and path.suffix == ".json":
        from tokenizers import Tokenizer as HFTokenizer

        tok = HFTokenizer.from_file(str(path))
        return Tokenizer(
            path.stem, lambda t: tok.encode(t, add_special_tokens=False).ids, tok.get_vocab_size()
        )
    if path.is_dir() and any(
        (path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
    ):
        from transformers import AutoTokenizer

        try:
            hf = AutoTokenizer.from_pretrained(str(path))
        except Exception as e:
            raise UserError(
                f"cannot load the tokenizer in {path} ({e}).", "Check the directory's tokenizer files."
            ) from e
        return Tokenizer(path.name, lambda t: hf.encode(t, add_special_tokens=False), len(hf))
    try:
        from llmworks.engines import load_engine
    except ImportError as e:
        raise UserError(
            f"'{spec}' is not a tokenizer.json file or an HF model directory, and the model engines are not available.",
            "Pass a path to tokenizer.json or to an HF model directory.",
        ) from e
    eng = load_engine(spec)
    return Tokenizer(
        getattr(eng, "name", spec), lambda t: eng.tokenize(t, special=False), int(eng.vocab_size)
    )
