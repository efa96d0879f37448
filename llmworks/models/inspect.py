"""Read a model's shape from what is on disk: an HF `config.json` or a GGUF file's metadata -> ModelSpec.

This is what lets `llmworks models info/estimate` work on any local model, not only registry entries.
Config keys differ by family (ChatGLM says `num_layers`/`ffn_hidden_size`/`multi_query_group_num`,
Baichuan `model_max_length`, ...); the aliases below cover the families in `families.yaml`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from llmworks.errors import BadModel, UserError
from llmworks.models.registry import ModelSpec, registry

# First key present wins.
_ALIASES: dict[str, tuple[str, ...]] = {
    "layers": ("num_hidden_layers", "num_layers", "n_layer", "n_layers"),
    "hidden": ("hidden_size", "n_embd", "d_model"),
    "intermediate": ("intermediate_size", "ffn_hidden_size", "n_inner"),
    "heads": ("num_attention_heads", "n_head", "n_heads"),
    "vocab": ("padded_vocab_size", "vocab_size"),
    "context": (
        "max_position_embeddings",
        "seq_length",
        "model_max_length",
        "n_positions",
        "max_sequence_length",
    ),
    "head_dim": ("head_dim", "kv_channels"),
}

# GGUF `general.architecture` -> HF class, for display; unknown ones show as `gguf:<arch>`.
_GGUF_ARCH: dict[str, str] = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
    "gemma2": "Gemma2ForCausalLM",
    "internlm2": "InternLM2ForCausalLM",
    "chatglm": "ChatGLMModel",
    "baichuan": "BaichuanForCausalLM",
}


def _first(cfg: dict[str, Any], field: str) -> Any:
    for key in _ALIASES[field]:
        if cfg.get(key) is not None:
            return cfg[key]
    return None


def spec_from_hf_config(
    cfg: dict[str, Any],
    name: str,
    *,
    tokenizer_config: dict[str, Any] | None = None,
    generation_config: dict[str, Any] | None = None,
    has_template_file: bool = False,
) -> ModelSpec:
    """A ModelSpec from a parsed config.json (plus tokenizer/generation configs for template and stops)."""
    if isinstance(cfg.get("text_config"), dict):  # multimodal wrappers keep the LM shape here
        cfg = {**cfg, **cfg["text_config"]}
    missing = [f for f in ("layers", "hidden", "heads", "vocab") if _first(cfg, f) is None]
    if missing:
        raise BadModel(
            f"config.json of '{name}' lacks {', '.join(missing)} (looked for e.g. {_ALIASES[missing[0]][0]}).",
            "Only decoder-only transformer configs are understood.",
        )
    hidden, heads = int(_first(cfg, "hidden")), int(_first(cfg, "heads"))
    kv_heads = cfg.get("num_key_value_heads")
    if kv_heads is None and cfg.get("multi_query_attention"):
        kv_heads = cfg.get("multi_query_group_num")
    head_dim = int(_first(cfg, "head_dim") or 0)
    tok = tokenizer_config or {}
    spec = ModelSpec(
        name=name,
        family=str(cfg.get("model_type", "")),
        arch=str((cfg.get("architectures") or [""])[0]),
        params=0,
        layers=int(_first(cfg, "layers")),
        hidden=hidden,
        intermediate=int(_first(cfg, "intermediate") or 4 * hidden),
        heads=heads,
        kv_heads=int(kv_heads or heads),
        vocab=int(_first(cfg, "vocab")),
        context=int(_first(cfg, "context") or 0),
        template="tokenizer_config" if tok.get("chat_template") or has_template_file else "none",
        stop=_hf_stops(cfg, tok, generation_config or {}),
        tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        head_dim=head_dim if head_dim and head_dim * heads != hidden else 0,
    )
    return dataclasses.replace(spec, params=spec.shape_params())


def _hf_stops(cfg: dict[str, Any], tok: dict[str, Any], gen: dict[str, Any]) -> tuple[str, ...]:
    """EOS strings: tokenizer_config's eos_token plus generation_config's eos ids mapped to their text."""
    by_id = {int(k): v.get("content", "") for k, v in (tok.get("added_tokens_decoder") or {}).items()}
    out: list[str] = []
    eos = tok.get("eos_token")
    if isinstance(eos, dict):
        eos = eos.get("content")
    if eos:
        out.append(str(eos))
    ids = gen.get("eos_token_id", cfg.get("eos_token_id"))
    for i in ids if isinstance(ids, list) else [ids]:
        text = by_id.get(i) if isinstance(i, int) else None
        if text and text not in out:
            out.append(text)
    return tuple(out)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise BadModel(f"{path} is not readable JSON ({e}).", "Fix or replace the file.") from None


def spec_from_hf_dir(path: Path, name: str | None = None) -> ModelSpec:
    """A ModelSpec from an HF model directory (config.json, tokenizer_config.json, generation_config.json)."""
    cfg = _read_json(path / "config.json")
    if not cfg:
        raise BadModel(f"{path} has no config.json.", "Point at the directory that holds config.json.")
    return spec_from_hf_config(
        cfg,
        name or path.resolve().name,
        tokenizer_config=_read_json(path / "tokenizer_config.json"),
        generation_config=_read_json(path / "generation_config.json"),
        has_template_file=(path / "chat_template.jinja").is_file(),
    )


def gguf_info(path: Path) -> dict[str, Any]:
    """What `models info` shows for a GGUF file: shape keys, quantization, template, special tokens."""
    from gguf import LlamaFileType

    from llmworks.models.gguf_meta import GGUFError, read_gguf

    path = path.resolve()
    size = path.stat().st_size
    try:
        reader = read_gguf(path)  # cached: one parse serves metadata, tensors and token strings
    except GGUFError as e:
        raise BadModel(f"{path} {e}.", "Re-download or re-export the file.") from None

    def field(name: str) -> Any:
        f = reader.fields.get(name)
        if f is None:
            return None
        try:
            value = f.contents()
        except Exception:  # an exotic field type: treat as absent
            return None
        # Some architectures store per-layer arrays (e.g. head counts); the largest layer sizes memory.
        return max(value) if isinstance(value, list) and value and not name.startswith("general.") else value

    arch = str(field("general.architecture") or "")
    tokens = reader.fields.get("tokenizer.ggml.tokens")

    def token(id_key: str) -> str | None:
        i = field(id_key)
        if i is None or tokens is None:
            return None
        try:
            return str(tokens.contents(int(i)))
        except Exception:  # id out of range in a malformed file: show nothing rather than fail
            return None

    file_type = field("general.file_type")
    try:
        quant = LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_") if file_type is not None else ""
    except ValueError:
        quant = str(file_type)
    info = {
        "name": str(field("general.name") or path.stem),
        "arch": arch,
        "layers": field(f"{arch}.block_count"),
        "hidden": field(f"{arch}.embedding_length"),
        "intermediate": field(f"{arch}.feed_forward_length"),
        "heads": field(f"{arch}.attention.head_count"),
        "kv_heads": field(f"{arch}.attention.head_count_kv") or field(f"{arch}.attention.head_count"),
        "head_dim": field(f"{arch}.attention.key_length"),
        "vocab": field(f"{arch}.vocab_size") or (len(tokens.data) if tokens is not None else None),
        "context": field(f"{arch}.context_length"),
        "file_type": quant,
        "file_bytes": size,
        "params": sum(int(t.n_elements) for t in reader.tensors),
        "tied_embeddings": all(t.name != "output.weight" for t in reader.tensors),
        "chat_template": bool(field("tokenizer.chat_template")),
        "bos_token": token("tokenizer.ggml.bos_token_id"),
        "eos_token": token("tokenizer.ggml.eos_token_id"),
        "eot_token": token("tokenizer.ggml.eot_token_id"),
    }
    return info


def spec_from_gguf(path: Path, info: dict[str, Any] | None = None) -> ModelSpec:
    """A ModelSpec from a GGUF file's metadata; `params` is the exact tensor element count."""
    info = info or gguf_info(path)
    needed = ("layers", "hidden", "heads", "vocab")
    if any(not info.get(k) for k in needed):
        raise BadModel(
            f"{path}: GGUF metadata lacks the shape keys ({info['arch']}.block_count, ...).",
            "Re-export the file with a current llama.cpp convert script.",
        )
    hidden, heads = int(info["hidden"]), int(info["heads"])
    head_dim = int(info.get("head_dim") or 0)
    stops = tuple(dict.fromkeys(t for t in (info.get("eot_token"), info.get("eos_token")) if t))
    return ModelSpec(
        name=path.stem,
        family=info["arch"],
        arch=_GGUF_ARCH.get(info["arch"], f"gguf:{info['arch']}"),
        params=float(info["params"]),
        layers=int(info["layers"]),
        hidden=hidden,
        intermediate=int(info.get("intermediate") or 4 * hidden),
        heads=heads,
        kv_heads=int(info.get("kv_heads") or heads),
        vocab=int(info["vocab"]),
        context=int(info.get("context") or 0),
        template="gguf" if info.get("chat_template") else "none",
        stop=stops,
        tied_embeddings=bool(info.get("tied_embeddings")),
        head_dim=head_dim if head_dim and head_dim * heads != hidden else 0,
    )


def spec_for(model: str) -> tuple[ModelSpec, Path | None]:
    """The spec of a registry name, local path or HF cache id, and the local file/dir if there is one.

    Registry names answer from the registry even when the weights are absent (estimates need no weights).
    """
    path = Path(model).expanduser()
    if path.is_file() and path.suffix.lower() == ".gguf":
        return spec_from_gguf(path), path  # read once here; sources.resolve would parse it again
    if path.exists():
        from llmworks.models.sources import resolve

        src = resolve(path)
        if src.kind == "gguf":
            return spec_from_gguf(src.path), src.path
        return spec_from_hf_dir(src.path), src.path
    spec = registry().get(model.lower())
    if spec is not None:
        return spec, None
    if "/" in model and not model.startswith((".", "/", "~")):
        from llmworks.models.sources import hf_cache_dir

        cached = hf_cache_dir(model)
        if cached is not None:
            return spec_from_hf_dir(cached, name=model), cached
        known = next((s for s in registry().values() if s.hf_repo.lower() == model.lower()), None)
        if known is not None:
            return known, None  # not on disk, but the registry knows its shape
        raise UserError(
            f"'{model}' is neither a local path, a registry name, nor in the local HF cache.",
            "Give a local .gguf file or HF directory, or a name from `llmworks models list` (nothing is downloaded).",
        )
    from llmworks.models.registry import get_spec

    return get_spec(model), None  # raises the registry's "unknown name, did you mean" error


__all__ = ["gguf_info", "spec_for", "spec_from_gguf", "spec_from_hf_config", "spec_from_hf_dir"]
