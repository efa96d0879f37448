"""`llmworks export quant MODEL --method int8|int4 -o DIR`: weight-only quantization for the transformers engine.

What runs on this CPU (checked with torchao 0.18 and bitsandbytes 0.50):
- int8: torchao's Int8WeightOnlyConfig, per-channel int8 Linear weights, saved as safetensors.
- int4: bitsandbytes NF4 with double quantization. torchao's int4 layouts need a GPU, bf16 or the
  optional mslk kernels; on the CPU its only int4 form keeps one byte per weight, as large as int8.
Embeddings and norms stay fp32 in both. The saved directory reloads with `from_pretrained` and runs on
`llmworks chat DIR --engine transformers`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from llmworks.atomic import atomic_dir
from llmworks.console import make_console
from llmworks.errors import MissingExtra, UserError
from llmworks.export.config import DIR_CONFIG, QuantConfig
from llmworks.export.files import (
    check_disk_space,
    check_target_dir,
    copy_train_files,
    weights_size,
)
from llmworks.export.measure import measure_export
from llmworks.export.report import ExportReport, write_report
from llmworks.models.hf_weights import hf_dir_for
from llmworks.models.sources import resolve


def quantize(
    model: str | os.PathLike[str] | None,
    method: str,
    out: str | os.PathLike[str],
    evaluate: bool = True,
    n_threads: int | None = None,
    console: Console | None = None,
) -> ExportReport:
    """Quantize `model`'s Linear weights to `method` and save the result as the HF directory `out`."""
    console = console or make_console(stderr=True)
    out = Path(out)
    cfg = QuantConfig.build(
        {"model": _str(model), "method": method, "output": out, "eval": evaluate, "threads": n_threads}
    )
    source = resolve(model)
    if source.adapter is not None:
        raise UserError(
            f"{source.adapter} is a LoRA/DoRA adapter; quantization needs the merged weights.",
            f"Merge it first: llmworks export merge {source.adapter} -o merged, then quantize merged.",
        )
    hf_dir = hf_dir_for(source)
    quantized = json.loads((hf_dir / "config.json").read_text()).get("quantization_config")
    if quantized:
        raise UserError(
            f"{hf_dir} is already quantized ({quantized.get('quant_method')}).",
            "Quantize the unquantized (fp32/bf16/f16) model.",
        )
    check_target_dir(out)
    # Quantized Linear weights never outweigh the source's, so its size bounds the output.
    check_disk_space(out.parent, weights_size(hf_dir), f"the {method} model")

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    console.print(f"quantizing {hf_dir} to {method} ...")
    q = AutoModelForCausalLM.from_pretrained(
        hf_dir, dtype=torch.float32, quantization_config=_config(method), device_map="cpu"
    )
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    with atomic_dir(out) as tmp:
        q.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        copy_train_files(hf_dir, tmp)
        seconds = time.perf_counter() - start
        del q
        report = ExportReport(
            "quant",
            method,
            str(model or source.name),
            str(out),
            weights_size(tmp),
            weights_size(hf_dir),
            seconds,
        )
        if evaluate:
            console.print("measuring the source and the quantized model ...")
            report.measurements = measure_export(hf_dir, tmp, out, n_threads)
        write_report(report, tmp / "report.json", tmp / "README.md", tmp)
        cfg.save(tmp / DIR_CONFIG, f"llmworks export quant --config {out / DIR_CONFIG}")
    console.print(f"wrote {out} ({report.size_bytes / report.source_size_bytes:.0%} of the source's weights)")
    return report


def _str(model: str | os.PathLike[str] | None) -> str | None:
    return None if model is None else str(model)


def _config(method: str) -> Any:
    import torch

    if method == "int8":
        from torchao.quantization import Int8WeightOnlyConfig
        from transformers import TorchAoConfig

        return TorchAoConfig(Int8WeightOnlyConfig())
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MissingExtra("bitsandbytes (for int4)", "qlora")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,  # bf16 matmuls crawl on this kind of CPU
    )
