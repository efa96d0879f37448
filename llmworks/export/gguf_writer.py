"""HF → GGUF (f32/f16) for Llama-architecture checkpoints: Llama, Mistral, Qwen2, with their BPE tokenizer.

Mirrors llama.cpp's convert_hf_to_gguf.py (LlamaModel, Qwen2Model) on top of the `gguf` package: its
writer, its tensor-name maps and its SpecialVocab. Quantizing below f16 is llama-quantize's job.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import numpy as np

from llmworks.errors import UserError

log = logging.getLogger(__name__)

# HF class → (llama.cpp arch name, permute Q/K rows). llama.cpp's "llama" arch uses interleaved
# (GPT-J style) RoPE, so HF's half-split Q/K rows are permuted; "qwen2" uses NeoX RoPE as HF does.
_ARCHS: dict[str, tuple[str, bool]] = {
    "LlamaForCausalLM": ("llama", True),
    "MistralForCausalLM": ("llama", True),
    "Qwen2ForCausalLM": ("qwen2", False),
}

# Split regexes of known HF pre-tokenizers → llama.cpp's `tokenizer.ggml.pre` name.
_SPLIT_PRE = {
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "llama-bpe",
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+": "qwen2",
}
_FALLBACK_PRE = "gpt-2"

Dtype = Literal["f32", "f16"]


def write_gguf(hf_dir: Path, out: Path, dtype: Dtype = "f16") -> Path:
    """Convert the HF model directory `hf_dir` into the GGUF file `out`; nothing is left at `out` on error.

    2-D weights are stored in `dtype`; norms and biases stay f32 (as llama.cpp does).
    """
    import gguf

    hf_dir, out = Path(hf_dir), Path(out)
    if dtype not in ("f32", "f16"):
        raise UserError(f"GGUF dtype {dtype!r} is not supported.", "Use f32 or f16, then llama-quantize.")
    cfg = _read_json(hf_dir / "config.json", hf_dir)
    arch_cls = (cfg.get("architectures") or ["(none)"])[0]
    if arch_cls not in _ARCHS:
        raise UserError(
            f"{hf_dir}: architecture {arch_cls} is not supported by the GGUF writer.",
            f"Supported: {', '.join(_ARCHS)}. For others use llama.cpp's convert_hf_to_gguf.py.",
        )
    arch_name, permute_qk = _ARCHS[arch_cls]
    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == arch_name)
    _check_config(cfg, hf_dir, arch_cls)

    w = gguf.GGUFWriter(None, arch_name, use_temp_file=True)  # tensors spool to a temp file, not RAM
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(hf_dir.resolve().name)
    _add_hparams(w, cfg, dtype)
    _add_tokenizer(w, hf_dir, cfg)

    n_layers = cfg["num_hidden_layers"]
    tmap = gguf.get_tensor_name_map(arch, n_layers)
    tied = bool(cfg.get("tie_word_embeddings", False))
    seen: set[str] = set()
    for name, data in _hf_tensors(hf_dir):
        if name.endswith(".rotary_emb.inv_freq") or (tied and name == "lm_head.weight"):
            continue  # recomputed by llama.cpp / shared with token_embd
        gname = tmap.get_name(name, try_suffixes=(".weight", ".bias"))
        if gname is None:
            raise UserError(
                f"{hf_dir}: tensor {name} has no GGUF name in the {arch_name} architecture ({arch_cls}).",
                "This checkpoint has parts the GGUF writer does not know; use llama.cpp's convert_hf_to_gguf.py.",
            )
        if permute_qk and name.endswith(("q_proj.weight", "q_proj.bias")):
            data = _permute(data, cfg["num_attention_heads"])
        elif permute_qk and name.endswith(("k_proj.weight", "k_proj.bias")):
            data = _permute(data, cfg.get("num_key_value_heads") or cfg["num_attention_heads"])
        data = data.astype(np.float16 if dtype == "f16" and data.ndim == 2 else np.float32)
        w.add_tensor(gname, data)
        seen.add(gname)
    missing = {"token_embd.weight"} | (set() if tied else {"output.weight"})
    if missing - seen:
        raise UserError(
            f"{hf_dir}: the checkpoint has no {' or '.join(sorted(missing - seen))} (embedding / LM head).",
            "Save the model with save_pretrained and try again.",
        )
    _write_atomic(w, out)
    return out


def _check_config(cfg: dict[str, Any], hf_dir: Path, arch_cls: str) -> None:
    if cfg.get("quantization_config"):
        raise UserError(
            f"{hf_dir}: the {arch_cls} checkpoint is quantized ({cfg['quantization_config'].get('quant_method')}).",
            "Convert the unquantized (or dequantized) HF weights.",
        )
    rope = _rope(cfg)
    if rope.get("rope_type", "default") not in ("default", "linear"):
        raise UserError(
            f"{hf_dir}: {arch_cls} with RoPE scaling {rope['rope_type']!r} is not supported by the GGUF writer.",
            "Use llama.cpp's convert_hf_to_gguf.py for this model.",
        )
    if cfg.get("hidden_act", "silu") != "silu":
        raise UserError(
            f"{hf_dir}: {arch_cls} with activation {cfg['hidden_act']!r} is not supported (only silu).", ""
        )
    if cfg.get("use_sliding_window"):
        raise UserError(f"{hf_dir}: {arch_cls} with sliding-window attention is not supported.", "")


def _rope(cfg: dict[str, Any]) -> dict[str, Any]:
    # transformers ≥5 writes `rope_parameters`; older configs have rope_theta + rope_scaling.
    rope = dict(cfg.get("rope_parameters") or {})
    if not rope:
        rope = dict(cfg.get("rope_scaling") or {})
        rope.setdefault("rope_theta", cfg.get("rope_theta", 10000.0))
    if "type" in rope and "rope_type" not in rope:
        rope["rope_type"] = rope["type"]
    return rope


def _add_hparams(w: Any, cfg: dict[str, Any], dtype: Dtype) -> None:
    import gguf

    n_head = cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_head
    rope = _rope(cfg)
    w.add_context_length(cfg.get("max_position_embeddings", 2048))
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(n_head)
    w.add_head_count_kv(cfg.get("num_key_value_heads") or n_head)
    w.add_rope_freq_base(float(rope["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg.get("rms_norm_eps", 1e-6)))
    w.add_rope_dimension_count(head_dim)
    if head_dim != cfg["hidden_size"] // n_head:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
    if rope.get("rope_type") == "linear":
        w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        w.add_rope_scaling_factor(float(rope["factor"]))
    w.add_vocab_size(cfg["vocab_size"])
    ftype = gguf.LlamaFileType.ALL_F32 if dtype == "f32" else gguf.LlamaFileType.MOSTLY_F16
    w.add_file_type(ftype)


def _add_tokenizer(w: Any, hf_dir: Path, cfg: dict[str, Any]) -> None:
    """A byte-level BPE tokenizer.json → tokens, types, merges, specials, chat template (as llama.cpp's gpt2 path)."""
    import gguf

    tok = _read_json(hf_dir / "tokenizer.json", hf_dir, "Save the tokenizer there with save_pretrained.")
    model = tok.get("model", {})
    if (
        model.get("type") != "BPE"
        or model.get("byte_fallback")
        or (tok.get("decoder") or {}).get("type") != "ByteLevel"
    ):
        raise UserError(
            f"{hf_dir}: only byte-level BPE tokenizers (GPT-2 style) are supported by the GGUF writer; "
            f"this one is {model.get('type')} (byte_fallback={model.get('byte_fallback')}).",
            "SentencePiece-style tokenizers (Llama 2, Mistral v0.1) need llama.cpp's convert_hf_to_gguf.py.",
        )
    n_vocab = cfg["vocab_size"]
    by_id: dict[int, str] = {i: t for t, i in model["vocab"].items()}
    added = {a["id"]: a for a in tok.get("added_tokens", [])}
    by_id.update((i, a["content"]) for i, a in added.items())
    if max(by_id) >= n_vocab:
        raise UserError(
            f"{hf_dir}: the tokenizer has token id {max(by_id)} but config.json says vocab_size={n_vocab}.",
            "Resize the model's embeddings to the tokenizer (model.resize_token_embeddings).",
        )
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in by_id:  # embedding rows padded past the tokenizer
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL if added[i].get("special") else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.NORMAL)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(_pre_tokenizer_name(tok, hf_dir))
    w.add_token_list(tokens)
    w.add_token_types(types)
    special = gguf.SpecialVocab(hf_dir, load_merges=True, n_vocab=n_vocab)
    special.add_special_token.setdefault(
        "bos", False
    )  # HF adds no BOS unless its config/post-processor says so
    special.add_to_gguf(w, quiet=True)


def _pre_tokenizer_name(tok: dict[str, Any], hf_dir: Path) -> str:
    """llama.cpp's pre-tokenizer name, recognised from the tokenizer.json structure.

    llama.cpp itself hashes the tokenization of a probe text; reading the structure needs no table
    of model hashes and covers SmolLM2, GPT-2, Llama 3 and Qwen2 style pre-tokenizers.
    """
    pre = tok.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if (
        kinds == ["Digits", "ByteLevel"]
        and steps[0].get("individual_digits")
        and steps[1].get("use_regex", True)
    ):
        return "smollm"
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        name = _SPLIT_PRE.get(steps[0].get("pattern", {}).get("Regex", ""))
        if name:
            return name
    log.warning(
        "%s: unrecognised pre-tokenizer %s; using llama.cpp's %r, so some text may tokenize differently than in HF",
        hf_dir,
        kinds,
        _FALLBACK_PRE,
    )
    return _FALLBACK_PRE


def _permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF half-split RoPE rows → llama.cpp's interleaved layout (convert_hf_to_gguf's LlamaModel.permute)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _hf_tensors(hf_dir: Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, float32 array) for every tensor of the checkpoint, one file at a time."""
    import torch

    for f in _checkpoint_files(hf_dir):
        if f.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(f, framework="pt") as st:
                for name in st.keys():  # noqa: SIM118 (safe_open is not a Mapping)
                    yield name, st.get_tensor(name).to(torch.float32).numpy()
        else:
            state = torch.load(f, map_location="cpu", weights_only=True, mmap=True)
            for name, t in state.items():
                yield name, t.to(torch.float32).numpy()


def _checkpoint_files(hf_dir: Path) -> list[Path]:
    for single, index in (
        ("model.safetensors", "model.safetensors.index.json"),
        ("pytorch_model.bin", "pytorch_model.bin.index.json"),
    ):
        if (hf_dir / single).is_file():
            return [hf_dir / single]
        if (hf_dir / index).is_file():
            weight_map = _read_json(hf_dir / index, hf_dir)["weight_map"]
            return [hf_dir / f for f in sorted(set(weight_map.values()))]
    raise UserError(
        f"{hf_dir}: no model weights (model.safetensors, pytorch_model.bin or a sharded index).",
        "Point at a directory written by save_pretrained.",
    )


def _read_json(
    path: Path, hf_dir: Path, fix: str = "Point at a directory written by save_pretrained."
) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{hf_dir}: {path.name} is missing.", fix) from None
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e}).", fix) from None


def _write_atomic(w: Any, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        w.write_header_to_file(path=tmp)
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        os.replace(tmp, out)
    except BaseException:
        w.close()
        tmp.unlink(missing_ok=True)
        raise
