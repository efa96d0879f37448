"""HF → GGUF: llama.cpp must see the same model and the same tokenizer as transformers."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gguf
import llama_cpp
import numpy as np
import pytest

from llmworks.errors import UserError
from llmworks.export.gguf_writer import write_gguf

TEXTS = [
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "Version 3.14 of 2024-11-23: 1,000,000 items",
    "你好，世界 😀🎉 Ünïcödé",
    "def f(x):\n    return x**2  # it's\n\n\t",
    "<|endoftext|><|im_start|>system\nBe terse.<|im_end|>",
]


@pytest.fixture(scope="module")
def hf(tiny_hf_dir: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_hf_dir, dtype=torch.float32).eval()
    return AutoTokenizer.from_pretrained(tiny_hf_dir), model


@pytest.fixture(scope="module")
def llm(tiny_gguf: Path) -> Iterator[llama_cpp.Llama]:
    # f32 KV cache: llama.cpp's default f16 cache alone moves these logits by ~0.05.
    f32 = llama_cpp.GGML_TYPE_F32
    m = llama_cpp.Llama(
        model_path=str(tiny_gguf),
        n_ctx=256,
        n_threads=2,
        logits_all=True,
        verbose=False,
        type_k=f32,
        type_v=f32,
    )
    yield m
    m.close()


def test_logits_match_transformers(hf: tuple[Any, Any], llm: llama_cpp.Llama) -> None:
    import torch

    tok, model = hf
    seqs = [tok(t).input_ids for t in TEXTS] + [list(range(3, 49152, 769))]  # 64 ids across the vocab
    for ids in seqs:
        with torch.no_grad():
            ref = model(torch.tensor([ids])).logits[0].numpy()
        llm.reset()
        llm.eval(ids)
        got = np.asarray(llm.scores[: len(ids)])
        # measured ≈ 5e-6 of the logit scale; 1e-4 leaves room for other BLAS/CPU paths
        assert np.abs(ref - got).max() < 1e-4 * np.abs(ref).max(), ids
        assert (ref.argmax(-1) == got.argmax(-1)).all()


@pytest.mark.parametrize("text", TEXTS)
def test_tokenization_matches_transformers(hf: tuple[Any, Any], llm: llama_cpp.Llama, text: str) -> None:
    tok, _ = hf
    ids = tok(text).input_ids
    assert (
        llm.tokenize(text.encode(), add_bos=True, special=True) == ids
    )  # add_bos=True: the GGUF says not to
    assert llm.detokenize(ids, special=True).decode() == text


@pytest.fixture(scope="module")
def reader(tiny_gguf: Path) -> gguf.GGUFReader:
    return gguf.GGUFReader(tiny_gguf)  # ~2 s: it parses 49152 tokens and 48900 merges


def test_metadata(reader: gguf.GGUFReader, tiny_hf_dir: Path) -> None:
    r = reader
    meta = {k: f.contents() for k, f in r.fields.items()}
    template = (tiny_hf_dir / "chat_template.jinja").read_text()
    assert meta["tokenizer.chat_template"] == template and "<|im_end|>" in template
    assert meta["tokenizer.ggml.tokens"][meta["tokenizer.ggml.eos_token_id"]] == "<|im_end|>"
    assert (meta["tokenizer.ggml.model"], meta["tokenizer.ggml.pre"]) == ("gpt2", "smollm")
    assert meta["tokenizer.ggml.add_bos_token"] is False
    assert (meta["llama.block_count"], meta["llama.embedding_length"], meta["llama.vocab_size"]) == (
        2,
        64,
        49152,
    )
    assert meta["general.file_type"] == gguf.LlamaFileType.ALL_F32
    names = {t.name for t in r.tensors}
    assert "token_embd.weight" in names and "output.weight" not in names  # tied embeddings


@pytest.mark.slow  # parses the 98 MB embedded GGUF (~2 s)
def test_tokenizer_metadata_equals_the_embedded_gguf(reader: gguf.GGUFReader, embedded_gguf: Path) -> None:
    """The writer reproduces, from the HF tokenizer, what llama.cpp's converter wrote for SmolLM2."""
    keys = ["tokens", "token_type", "merges", "pre", "bos_token_id", "eos_token_id", "padding_token_id"]

    def tok_meta(r: gguf.GGUFReader) -> dict[str, Any]:
        return {k: r.fields[f"tokenizer.ggml.{k}"].contents() for k in keys} | {
            "chat_template": r.fields["tokenizer.chat_template"].contents()
        }

    assert tok_meta(reader) == tok_meta(gguf.GGUFReader(embedded_gguf))


def test_f16(tiny_hf_dir: Path, tiny_gguf: Path, llm: llama_cpp.Llama, tmp_path: Path) -> None:
    out = write_gguf(tiny_hf_dir, tmp_path / "m.gguf", dtype="f16")
    assert 0.5 < out.stat().st_size / tiny_gguf.stat().st_size < 0.6  # 2-D weights halve, norms stay f32
    ids = list(range(3, 49152, 1537))
    llm.reset()
    llm.eval(ids)
    ref = np.asarray(llm.scores[: len(ids)])
    half = llama_cpp.Llama(model_path=str(out), n_ctx=64, n_threads=2, logits_all=True, verbose=False)
    try:
        half.eval(ids)
        assert np.abs(np.asarray(half.scores[: len(ids)]) - ref).max() < 0.05 * np.abs(ref).max()
    finally:
        half.close()


def _variant(
    src: Path, dst: Path, edit: Callable[[dict[str, Any]], Any] | None = None, file: str = "config.json"
) -> Path:
    """A copy of `src` (weights symlinked) with one JSON file edited in place."""
    dst.mkdir()
    for f in src.iterdir():
        if f.suffix == ".safetensors":
            (dst / f.name).symlink_to(f)
        else:
            shutil.copy2(f, dst / f.name)
    if edit:
        data = json.loads((dst / file).read_text())
        edit(data)
        (dst / file).write_text(json.dumps(data))
    return dst


@pytest.mark.parametrize(
    ("edit", "file", "match"),
    [
        (
            lambda c: c.update(architectures=["GPT2LMHeadModel"]),
            "config.json",
            "GPT2LMHeadModel is not supported",
        ),
        (lambda c: c.update(quantization_config={"quant_method": "gptq"}), "config.json", "quantized"),
        (lambda c: c["rope_parameters"].update(rope_type="llama3"), "config.json", "RoPE scaling 'llama3'"),
        (lambda t: t["model"].update(byte_fallback=True), "tokenizer.json", "byte-level BPE"),
    ],
    ids=["arch", "quantized", "rope", "tokenizer"],
)
def test_unsupported_is_a_user_error(
    tiny_hf_dir: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], Any], file: str, match: str
) -> None:
    src = _variant(tiny_hf_dir, tmp_path / "hf", edit, file)
    with pytest.raises(UserError, match=match):
        write_gguf(src, tmp_path / "out" / "m.gguf")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_missing_weights(tiny_hf_dir: Path, tmp_path: Path) -> None:
    src = _variant(tiny_hf_dir, tmp_path / "hf")
    (src / "model.safetensors").unlink()
    with pytest.raises(UserError, match="no model weights"):
        write_gguf(src, tmp_path / "m.gguf")


def test_failure_leaves_no_partial_file(
    tiny_hf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "m.gguf"
    out.write_bytes(b"previous good file")

    def boom(self: gguf.GGUFWriter, **_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(gguf.GGUFWriter, "write_tensors_to_file", boom)
    with pytest.raises(OSError, match="disk full"):
        write_gguf(tiny_hf_dir, out)
    assert out.read_bytes() == b"previous good file"
    assert [p.name for p in tmp_path.iterdir()] == ["m.gguf"]


def test_qwen2_with_biases(tiny_tokenizer_dir: Path, tmp_path: Path) -> None:
    """Qwen2: q/k/v biases, NeoX RoPE (no Q/K permutation), untied head."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(
        vocab_size=49152,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        initializer_range=0.3,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):  # zero at init: make them matter
                p.normal_(0, 0.3)
    model.save_pretrained(tmp_path / "hf")
    for f in tiny_tokenizer_dir.iterdir():
        shutil.copy2(f, tmp_path / "hf" / f.name)
    out = write_gguf(tmp_path / "hf", tmp_path / "q.gguf", dtype="f32")
    ids = list(range(3, 49152, 1537))
    with torch.no_grad():
        ref = model(torch.tensor([ids])).logits[0].numpy()
    f32 = llama_cpp.GGML_TYPE_F32
    m = llama_cpp.Llama(model_path=str(out), n_ctx=64, logits_all=True, verbose=False, type_k=f32, type_v=f32)
    try:
        m.eval(ids)
        assert np.abs(np.asarray(m.scores[: len(ids)]) - ref).max() < 1e-4 * np.abs(ref).max()
    finally:
        m.close()
