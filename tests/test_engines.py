"""Both engines on the tiny random model: sampling controls, stops, tokenization, log-likelihood."""

from pathlib import Path

import pytest

from llmworks.engines import SamplingParams, load_engine
from llmworks.engines.base import Engine
from llmworks.errors import PromptTooLong, UserError

PROMPT = "Once upon a time"


@pytest.fixture(scope="module", params=["llamacpp", "transformers"])
def engine(request: pytest.FixtureRequest, tiny_gguf: Path, tiny_hf_dir: Path) -> Engine:
    model = tiny_gguf if request.param == "llamacpp" else tiny_hf_dir
    eng = load_engine(model, request.param, n_ctx=256)
    yield eng
    eng.close()


def tokens(engine: Engine, prompt: str, params: SamplingParams) -> list[int]:
    return [t for d in engine.generate(prompt, params) for t in d.token_ids]


def test_greedy_is_deterministic_and_respects_max_tokens(engine: Engine) -> None:
    p = SamplingParams(max_tokens=12)
    first = tokens(engine, PROMPT, p)
    assert first == tokens(engine, PROMPT, p)
    assert 0 < len(first) <= 12


def test_seed_makes_sampling_reproducible(engine: Engine) -> None:
    p = SamplingParams(max_tokens=16, temperature=1.0, seed=7)
    a, b = tokens(engine, PROMPT, p), tokens(engine, PROMPT, p)
    assert a == b
    others = {
        tuple(tokens(engine, PROMPT, SamplingParams(max_tokens=16, temperature=1.0, seed=s)))
        for s in range(4)
    }
    assert len(others) > 1  # different seeds give different samples


def test_top_k_1_equals_greedy(engine: Engine) -> None:
    greedy = tokens(engine, PROMPT, SamplingParams(max_tokens=10))
    assert tokens(engine, PROMPT, SamplingParams(max_tokens=10, temperature=1.5, top_k=1, seed=3)) == greedy


def test_repetition_penalty_breaks_repeats(engine: Engine) -> None:
    prompt = "1 2 3 1 2 3 1 2 3"  # the tiny model repeats itself after this one
    plain = tokens(engine, prompt, SamplingParams(max_tokens=32))
    penalized = tokens(engine, prompt, SamplingParams(max_tokens=32, repetition_penalty=1.5))
    assert len(set(plain)) < len(plain)
    assert len(set(penalized)) > len(set(plain))


def test_stop_string_ends_generation_and_is_not_returned(engine: Engine) -> None:
    text, _ = engine.complete(PROMPT, SamplingParams(max_tokens=24))
    assert len(text) > 4
    stop = text[3:6]
    cut, reason = engine.complete(PROMPT, SamplingParams(max_tokens=24, stop=[stop]))
    assert reason == "stop"
    assert cut == text[: text.index(stop)]


def test_finish_reason_length(engine: Engine) -> None:
    deltas = list(engine.generate(PROMPT, SamplingParams(max_tokens=5)))
    assert deltas[-1].finish_reason in {"length", "stop"}
    assert all(d.finish_reason is None for d in deltas[:-1])


def test_tokenize_roundtrip_with_special_tokens(engine: Engine) -> None:
    text = "<|im_start|>user\nhello, 世界 🌍<|im_end|>"
    ids = engine.tokenize(text)
    assert engine.detokenize(ids) == text
    assert len(engine.tokenize("<|im_end|>")) == 1
    assert len(engine.tokenize("<|im_end|>", special=False)) > 1


def test_loglikelihood(engine: Engine) -> None:
    greedy = tokens(engine, PROMPT, SamplingParams(max_tokens=1))
    continuation = engine.detokenize(greedy)
    [hit, miss] = engine.loglikelihood([(PROMPT, continuation), (PROMPT, " zebra quantum")])
    assert hit.is_greedy and not miss.is_greedy
    assert hit.n_tokens == 1
    assert miss.logprob < hit.logprob < 0


def test_loglikelihood_agrees_across_engines(tiny_gguf: Path, tiny_hf_dir: Path) -> None:
    pairs = [(PROMPT, " there was a"), ("Question: 2+2=", " 4")]
    with load_engine(tiny_gguf, "llamacpp") as a, load_engine(tiny_hf_dir, "transformers") as b:
        for x, y in zip(a.loglikelihood(pairs), b.loglikelihood(pairs), strict=True):
            assert x.n_tokens == y.n_tokens
            assert abs(x.logprob - y.logprob) < 1e-2 * max(1.0, abs(y.logprob))


def test_chat_uses_the_model_template(engine: Engine) -> None:
    assert engine.template is not None
    rendered = engine.template.render([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])
    assert rendered.startswith("<|im_start|>system\nS<|im_end|>") and rendered.endswith(
        "<|im_start|>assistant\n"
    )
    assert engine.template.end_of_turn == "<|im_end|>"
    out = list(engine.chat([{"role": "user", "content": "hi"}], SamplingParams(max_tokens=4)))
    assert out[-1].finish_reason is not None


def test_prompt_longer_than_context(engine: Engine) -> None:
    with pytest.raises(PromptTooLong, match="context holds 256"):
        list(engine.generate("word " * 400, SamplingParams(max_tokens=4)))


def test_bad_sampling_params() -> None:
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0)


def test_engines_agree_on_greedy_tokens(tiny_gguf: Path, tiny_hf_dir: Path) -> None:
    """The same f32 weights in both engines give the same greedy tokens."""
    p = SamplingParams(max_tokens=16)
    with load_engine(tiny_gguf, "llamacpp") as a, load_engine(tiny_hf_dir, "transformers") as b:
        assert tokens(a, PROMPT, p) == tokens(b, PROMPT, p)


def test_llamacpp_needs_a_gguf(tiny_hf_dir: Path) -> None:
    with pytest.raises(UserError, match="needs a GGUF"):
        load_engine(tiny_hf_dir, "llamacpp")


def test_unknown_engine(tiny_gguf: Path) -> None:
    with pytest.raises(UserError, match="unknown engine"):
        load_engine(tiny_gguf, "onnx")
