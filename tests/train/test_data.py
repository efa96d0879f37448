"""Data for training: label masks token by token, conversions, placeholders, packing, truncation, mixing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from llmworks.errors import UserError
from llmworks.models.template import template_from_tokenizer
from llmworks.train import data as D

from .conftest import ALPACA, CONVO, SHAREGPT, write_jsonl


@pytest.fixture(scope="module")
def tok(tiny_tokenizer_dir: Path):  # type: ignore[no-untyped-def]
    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="module")
def template(tok):  # type: ignore[no-untyped-def]
    return template_from_tokenizer(tok, "tiny")


def trained_spans(sample: D.Sample, tok) -> list[str]:  # type: ignore[no-untyped-def]
    """Decoded runs of consecutive trained tokens (targets are shifted: target i is token i+1)."""
    labels = [D.IGNORE, *sample.targets[:-1]]
    runs, cur = [], []
    for t, lab in zip(sample.input_ids, labels, strict=True):
        if lab != D.IGNORE:
            assert lab == t
            cur.append(t)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    if cur:
        runs.append(tok.decode(cur))
    return runs


def test_every_assistant_turn_and_its_end_of_turn_are_trained_and_nothing_else(tok, template) -> None:  # type: ignore[no-untyped-def]
    rec = D.fill_placeholders(CONVO, {"model_name": "Tiny", "model_author": "Tests"}, "t")
    s, cut = D.encode_chat(rec["messages"], tok, template, 512)
    assert not cut
    assert trained_spans(s, tok) == ["Hello! I am Tiny.<|im_end|>", "Tests made me.<|im_end|>"]
    text = template.render(rec["messages"], add_generation_prompt=False)
    ids = s.input_ids
    assert ids == tok(text, add_special_tokens=False)["input_ids"]
    # token by token: trained = every token after "<|im_start|>assistant\n" up to and including <|im_end|>
    im_start, im_end = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"])
    expected = [False] * len(ids)
    i = 0
    while i < len(ids):
        if ids[i] == im_start and tok.decode(ids[i + 1 : i + 4]) == "assistant\n":  # "ass" "istant" "\n"
            j = i + 4
            while ids[j] != im_end:
                expected[j] = True
                j += 1
            expected[j] = True
            i = j
        i += 1
    labels = [D.IGNORE, *s.targets[:-1]]
    assert [lab != D.IGNORE for lab in labels] == expected
    assert sum(expected) == s.n_targets > 4
    assert s.targets[-1] == D.IGNORE


def test_only_last_turn_for_preferences(tok, template) -> None:  # type: ignore[no-untyped-def]
    msgs = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
    ]
    s, _ = D.encode_chat(msgs, tok, template, 512, only_last=True)
    assert trained_spans(s, tok) == ["d<|im_end|>"]


def test_alpaca_and_sharegpt_are_converted(tmp_path: Path, tok, template) -> None:  # type: ignore[no-untyped-def]
    path = write_jsonl(tmp_path / "mixed.jsonl", [ALPACA, SHAREGPT])
    samples, stats = D.encode_all(D.read_specs([str(path)], 0, {}), tok, template, 512, "t")
    assert [trained_spans(s, tok) for s in samples] == [["5<|im_end|>"], ["yes<|im_end|>"]]
    assert stats.records == 2 and stats.truncated == 0


def test_truncation_is_counted_and_empty_samples_dropped(tok, template) -> None:  # type: ignore[no-untyped-def]
    long = {"messages": [{"role": "user", "content": "word " * 300}, {"role": "assistant", "content": "ok"}]}
    samples, stats = D.encode_all([long, ALPACA], tok, template, 64, "t")
    assert stats.truncated == 1 and stats.dropped == 1 and len(samples) == 1
    assert all(len(s.input_ids) <= 64 for s in samples)


def test_placeholders_need_name_and_author(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "sc.jsonl", [CONVO])
    with pytest.raises(UserError, match="model_name"):
        D.read_specs([str(path)], 0, {})
    [rec] = D.read_specs([str(path)], 0, {"model_name": "N", "model_author": "A"})
    assert "{{" not in json.dumps(rec)


def test_count_spec_samples_and_repeats(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"text": str(i)} for i in range(5)])
    assert len(D.read_specs([f"{path}#3"], 0, {})) == 3
    assert len(D.read_specs([f"{path}#12", str(path)], 0, {})) == 17
    assert D.read_specs([f"{path}#3"], 0, {}) == D.read_specs([f"{path}#3"], 0, {})


def test_packing_restarts_positions_and_never_crosses_samples(tok, template) -> None:  # type: ignore[no-untyped-def]
    samples, _ = D.encode_all([ALPACA, SHAREGPT, ALPACA], tok, template, 512, "t")
    rows = D.pack(samples, 512)
    assert len(rows) == 1 and rows[0].position_ids.count(0) == 3
    assert sum(s.n_targets for s in samples) == rows[0].n_targets
    batch = D.collate(rows, 0)
    assert "attention_mask" not in batch  # position ids carry the boundaries


def test_missing_and_malformed_data(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        D.read_specs([str(tmp_path / "nope.jsonl")], 0, {})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\nnot json\n')
    with pytest.raises(UserError, match=r"bad\.jsonl:2"):
        D.read_specs([str(bad)], 0, {})


def test_micro_batches_are_a_function_of_the_step() -> None:
    full = D.micro_batches(10, 3, seed=1)
    seq = [next(full) for _ in range(9)]
    resumed = D.micro_batches(10, 3, seed=1, start=5)
    assert [next(resumed) for _ in range(4)] == seq[5:]
    assert sorted(i for b in seq[:4] for i in b) == list(range(10))


def test_packed_row_gives_the_same_loss_as_separate_samples(tok, template, tiny_hf_dir: Path) -> None:  # type: ignore[no-untyped-def]
    import torch
    from transformers import AutoModelForCausalLM

    from llmworks.train.loss import target_logprobs

    model = AutoModelForCausalLM.from_pretrained(tiny_hf_dir, dtype=torch.float32).eval()
    samples, _ = D.encode_all(
        [ALPACA, SHAREGPT, CONVO | {"messages": CONVO["messages"][:3]}], tok, template, 512, "t"
    )
    with torch.no_grad():
        separate = torch.cat([target_logprobs(model, D.collate([s], 0))[0] for s in samples])
        padded = target_logprobs(model, D.collate(samples, 0))[0]
        packed = target_logprobs(model, D.collate(D.pack(samples, 512), 0))[0]
    assert torch.allclose(padded, separate, atol=1e-4)
    assert torch.allclose(packed, separate, atol=1e-4)


def test_target_logprobs_match_the_models_own_loss(tiny_hf_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from llmworks.train.loss import target_logprobs

    model = AutoModelForCausalLM.from_pretrained(tiny_hf_dir, dtype=torch.float32).eval()
    ids = torch.randint(0, 1000, (2, 12))
    labels = ids.clone()
    labels[:, :5] = D.IGNORE
    batch = {"input_ids": ids, "targets": torch.cat([labels[:, 1:], torch.full((2, 1), D.IGNORE)], 1)}
    with torch.no_grad():
        ours = -target_logprobs(model, batch)[0].mean()
        theirs = model(input_ids=ids, labels=labels).loss
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_tool_calls_are_trained_in_the_servers_format(tok, template) -> None:  # type: ignore[no-untyped-def]
    """SmolLM2's template knows no tools: calls become <tool_call> JSON (what `llmworks serve` parses back),
    tool results a <tool_response> user turn; the call and the final answer are trained, the result not."""
    from llmworks.models.chat_policy import parse_reply

    call = {"function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    record = {
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
        ],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "content": '{"temp_c": 18}'},
            {"role": "assistant", "content": "18 °C."},
        ],
    }
    ex = D.to_example(record, "t")
    s, _ = D.encode_chat(ex.messages, tok, template, 512, tools=ex.tools)
    call_span, answer = trained_spans(s, tok)
    _, calls = parse_reply(call_span.removesuffix("<|im_end|>"), "auto")
    assert calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Paris"}
    assert answer == "18 °C.<|im_end|>"
    text = tok.decode(s.input_ids)
    assert "<tool_response>" in text and "get_weather" in text.split("<|im_end|>")[0]  # tools in the system
