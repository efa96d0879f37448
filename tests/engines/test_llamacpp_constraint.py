"""JSON constraints on llama.cpp: strings in the grammar cannot hold raw control characters (a raw newline
inside a JSON string does not parse, so a constrained output would not either)."""

from __future__ import annotations

import json
from pathlib import Path

from llmworks.engines import load_engine
from llmworks.models.chat_policy import OutputConstraint


def test_json_strings_exclude_control_characters(tiny_gguf: Path) -> None:
    with load_engine(tiny_gguf, n_ctx=256) as engine:
        gbnf = engine.compile_constraint(
            OutputConstraint({"type": "object", "properties": {"s": {"type": "string"}}})
        ).gbnf
    char = next(line for line in gbnf.splitlines() if line.startswith("char ::="))
    assert r"\x00-\x1F" in char and r"\x7F" in char
    json.loads('{"s": "a\\nb"}')  # the escaped form stays allowed: "\\" then n
    assert '"\\\\" (["\\\\/bfnrt]' in char
