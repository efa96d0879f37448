"""HF weights for a GGUF model: transformers dequantizes the GGUF once, and the result is cached as an
HF directory (fp32 safetensors + tokenizer + chat template), so later loads take under a second."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from llmworks.errors import BadModel
from llmworks.models.gguf_meta import diagnose
from llmworks.models.sources import ModelSource, llmworks_home


def hf_dir_for(source: ModelSource) -> Path:
    """The HF directory of `source`, dequantizing a GGUF into the llmworks cache the first time."""
    if source.kind == "hf":
        return source.path
    gguf = source.path.resolve()
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    out = llmworks_home() / "hf" / f"{gguf.stem}-{key}"
    if (out / "config.json").is_file():
        return out
    _dequantize(gguf, out)
    return out


def _dequantize(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmworks.console import make_console

    make_console(stderr=True).print(
        f"[dim]Converting {gguf.name} to HF weights once (cached in {out.parent}); this takes ~30-60 s...[/dim]"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        try:
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(
                gguf.parent, gguf_file=gguf.name, dtype=torch.float32
            )
        except (ValueError, RuntimeError, KeyError, OSError) as e:
            raise BadModel(
                f"transformers cannot load {gguf.name} as HF weights ({diagnose(gguf) or e}).",
                "Use --engine llamacpp for this GGUF, or give the original HF directory.",
            ) from None
        # A dequantized model is a plain fp32 model: drop the GGUF quantizer so save/load treat it as one.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if model.generation_config is not None:
            model.generation_config.save_pretrained(tmp)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
