"""JSON constraints on llama.cpp: strings in the grammar cannot hold raw control characters (a raw newline
inside a JSON string does not parse, so a constrained output would not either)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmworks.engines import load_engine
from llmworks.engines.types import Grammar, SamplingParams
from llmworks.engines.utf8_guard import Utf8Guard, advance
from llmworks.errors import UserError
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


def test_constrained_output_stays_valid_utf8(tiny_gguf: Path) -> None:
    """U+D000-U+DFFF is Hangul up to U+D7FF, then surrogates (ED A0-BF ..: not text). llama.cpp's grammar
    counts either as one character, so random weights picking byte tokens wrote surrogates (11 of 20 seeds
    before the guard); each of those decodes to three replacement characters, which is how a maxLength
    string broke its schema on CI."""
    grammar = Grammar('root ::= [\\uD000-\\uDFFF]{6} "."\n')
    with load_engine(tiny_gguf, n_ctx=256) as engine:
        for seed in range(20):
            params = SamplingParams(max_tokens=40, temperature=1.0, seed=seed, grammar=grammar)
            text, _ = engine.complete("Name:", params)
            assert len(text) == 7 and "\ufffd" not in text, (seed, text)
        only_surrogates = Grammar('root ::= [\\uD800-\\uDFFF] "."\n')
        with pytest.raises(UserError, match="no valid UTF-8"):
            engine.complete("Name:", SamplingParams(max_tokens=8, grammar=only_surrogates))
        assert engine.complete("Name:", SamplingParams(max_tokens=8, grammar=grammar))[0]  # still serving


def test_utf8_guard_agrees_with_pythons_decoder() -> None:
    """The guard lets a 1-3 byte string through exactly when some continuation bytes complete it to text
    that Python decodes strictly."""
    import itertools

    def completes(piece: bytes) -> bool:
        for tail in (bytes([c]) * k for k in range(4) for c in (0x80, 0x90, 0xA0)):
            try:
                (piece + tail).decode("utf-8")
                return True
            except UnicodeDecodeError:
                pass
        return False

    samples = [0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xE1, 0xED]
    samples += [0xEE, 0xF0, 0xF1, 0xF4, 0xF5, 0xFF]
    for n in (1, 2, 3):
        for piece in map(bytes, itertools.product(samples, repeat=n)):
            assert (advance(0, piece) is not None) == completes(piece), piece
    guard = Utf8Guard([b"a", "中".encode()[:1], "中".encode()[1:], b"\xa0", b""])
    assert guard.allowed[0].tolist() == [True, True, False, False, True]
    after_lead = guard.next_state[0, 1]
    assert guard.allowed[after_lead].tolist() == [False, False, True, True, False]
    assert guard.next_state[after_lead, 2] == 0
    surrogate_lead = advance(0, b"\xed")
    assert surrogate_lead is not None and not guard.allowed[surrogate_lead, 3]  # ED A0: a surrogate


def _accepts(engine: object, gbnf: str, text: str) -> bool:
    """Whether llama.cpp's grammar sampler lets `text` through token by token, and may then end."""
    import ctypes

    import llama_cpp as C
    import numpy as np

    runner = engine.runner  # type: ignore[attr-defined]
    g = C.llama_sampler_init_grammar(runner._vocab, gbnf.encode(), b"root")
    data = np.zeros(1, dtype=[("id", np.int32), ("logit", np.float32), ("p", np.float32)])

    def allowed(tok: int) -> bool:
        data["id"], data["logit"] = tok, 0.0
        cur = C.llama_token_data_array(data.ctypes.data_as(C.llama_token_data_p), 1, -1, False)
        C.llama_sampler_apply(g, ctypes.byref(cur))
        return bool(np.isfinite(data["logit"][0]))

    try:
        for tok in engine.tokenize(text, special=False):  # type: ignore[attr-defined]
            if not allowed(tok):
                return False
            C.llama_sampler_accept(g, tok)
        return allowed(C.llama_vocab_eos(runner._vocab))
    finally:
        C.llama_sampler_free(g)


def test_tool_choice_auto_grammar_lets_text_or_valid_calls_through(tiny_gguf: Path) -> None:
    """tool_choice auto, constrained: prose (even with "<"), or `<tool_call>` blocks whose JSON is a call
    of an offered tool with arguments of its schema; a call with a wrong name or arguments cannot be written."""
    from llmworks.models.chat_policy import tool_call_constraint

    weather = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    call = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    with load_engine(tiny_gguf, n_ctx=256) as engine:
        gbnf = engine.compile_constraint(tool_call_constraint([weather], "required", tagged=True)).gbnf
        for ok in ("Hello there.", "x < 3, so no.", "", call, call + "\n" + call, "Let me check." + call):
            assert _accepts(engine, gbnf, ok), ok
        for bad in (
            '<tool_call>\n{"name": "get_time", "arguments": {}}\n</tool_call>',  # not offered
            '<tool_call>\n{"name": "get_weather", "arguments": {}}\n</tool_call>',  # city missing
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": 3}}\n</tool_call>',
            '<tool_call>\n{"name": "get_weather"',  # cut off: may not end here
            call + " and some words after it",
        ):
            assert not _accepts(engine, gbnf, bad), bad


def test_greedy_constrained_tries_the_best_token_first_and_picks_the_same(tiny_gguf: Path) -> None:
    """Greedy decoding under a grammar checks the best token alone before filtering the whole vocabulary;
    its output is the one full filtering gives (top_k=1 sampling runs the grammar over every token)."""
    from llmworks.models.chat_policy import tool_call_constraint

    tool = {
        "type": "function",
        "function": {"name": "f", "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}}},
    }
    with load_engine(tiny_gguf, n_ctx=256) as engine:
        grammars = [  # mostly free text (the best token passes), and a schema (it mostly does not)
            engine.compile_constraint(tool_call_constraint([tool], "required", tagged=True)),
            engine.compile_constraint(
                OutputConstraint({"type": "object", "properties": {"s": {"type": "string"}}})
            ),
        ]
        for grammar in grammars:
            for prompt in ("Name:", "The weather", "{"):
                greedy, _ = engine.complete(prompt, SamplingParams(max_tokens=24, grammar=grammar))
                full, _ = engine.complete(
                    prompt, SamplingParams(max_tokens=24, temperature=1.0, top_k=1, seed=1, grammar=grammar)
                )
                assert greedy == full, (prompt, greedy, full)
