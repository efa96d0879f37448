"""`llmworks export gguf MODEL -o FILE.gguf --quant TYPE`: HF → GGUF, then llama.cpp's own quantizer.

`gguf_writer` (on the `gguf` package) writes f32 and f16 itself. For any other type it writes an f32 GGUF
first, so the quantizer starts from the exact source weights, and `llama_model_quantize` (llama-cpp-python)
writes the requested type with llama.cpp's per-tensor choices (e.g. q4_k_m keeps some tensors at q6_k). Next to FILE.gguf go
FILE.gguf.md (the model card), FILE.gguf.report.json and FILE.gguf.config.yaml (the export's config), so several
exports can share a directory.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import time
from pathlib import Path

from rich.console import Console

from llmworks.atomic import temp_path
from llmworks.console import make_console
from llmworks.errors import UserError
from llmworks.export.config import GGUFConfig, gguf_config_path
from llmworks.export.files import check_disk_space, gib, model_size
from llmworks.export.gguf_writer import write_gguf
from llmworks.export.measure import measure
from llmworks.export.report import ExportReport, write_report
from llmworks.models.hf_weights import hf_dir_for
from llmworks.models.sources import resolve

# Types offered, with llama.cpp's average bits per weight (for the disk-space estimate). The i-quants below
# 4 bits are left out: llama.cpp refuses them without an importance matrix.
GGUF_TYPES: dict[str, float] = {
    "f32": 32,
    "f16": 16,
    "bf16": 16,
    "q8_0": 8.5,
    "q6_k": 6.6,
    "q5_k_m": 5.7,
    "q5_k_s": 5.5,
    "q5_1": 6,
    "q5_0": 5.5,
    "q4_k_m": 4.9,
    "q4_k_s": 4.6,
    "q4_1": 5,
    "q4_0": 4.5,
    "iq4_nl": 4.5,
    "iq4_xs": 4.3,
    "q3_k_l": 4.3,
    "q3_k_m": 3.9,
    "q3_k_s": 3.5,
    "q2_k": 3.4,
}


def export_gguf(
    model: str | os.PathLike[str] | None,
    out: str | os.PathLike[str],
    quant: str = "f16",
    evaluate: bool = True,
    n_threads: int | None = None,
    console: Console | None = None,
) -> ExportReport:
    """Write `model` (HF dir, merged or full run dir, GGUF, registry name) as the GGUF file `out` of type `quant`."""
    console = console or make_console(stderr=True)
    out = Path(out)
    cfg = GGUFConfig.build(
        {
            "model": None if model is None else str(model),
            "output": out,
            "quant": quant,
            "eval": evaluate,
            "threads": n_threads,
        }
    )
    quant = cfg.quant
    ftype = llama_ftype(quant)
    if out.is_dir():
        raise UserError(f"output {out} is a directory.", "Give -o NAME.gguf.")
    source = resolve(model)
    if source.adapter is not None:
        raise UserError(
            f"{source.adapter} is a LoRA/DoRA adapter; a GGUF needs the merged weights.",
            f"Merge it first: llmworks export merge {source.adapter} -o merged, then export merged.",
        )
    hf_dir = hf_dir_for(source)
    n_params = _n_params(hf_dir)
    direct = quant in ("f32", "f16")  # the writer's own types; the others start from an f32 GGUF
    need = n_params * GGUF_TYPES[quant] / 8 + (0 if direct else n_params * 4)
    check_disk_space(
        out.parent, int(need * 1.05) + 64 * 2**20, f"a {quant} GGUF of {n_params / 1e6:.0f}M weights"
    )

    start = time.perf_counter()
    console.print(f"writing {hf_dir} as an {quant if direct else 'f32'} GGUF ...")
    if direct:
        write_gguf(hf_dir, out, dtype=quant)  # type: ignore[arg-type]
    else:
        f32, result = temp_path(out, "f32"), temp_path(out, quant)
        try:
            write_gguf(hf_dir, f32, dtype="f32")
            console.print(f"quantizing to {quant} with llama.cpp ...")
            quantize_gguf(f32, result, ftype, n_threads)
            os.replace(result, out)
        finally:
            f32.unlink(missing_ok=True)
            result.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    console.print(f"wrote {out} ({gib(out.stat().st_size)}, {seconds:.1f} s)")

    label = model if model is not None else source.name
    report = ExportReport(
        "gguf", quant, str(label), str(out), out.stat().st_size, model_size(source), seconds
    )
    if evaluate:
        console.print("measuring the source and the GGUF ...")
        ref = measure(source.path, n_threads=n_threads)
        report.measurements = [ref, measure(out, "llamacpp", reference=ref, n_threads=n_threads)]
    provenance = source.path if source.kind == "hf" else None
    write_report(report, Path(f"{out}.report.json"), Path(f"{out}.md"), provenance)
    cfg.save(gguf_config_path(out), f"llmworks export gguf --config {gguf_config_path(out)}")
    return report


def llama_ftype(quant: str) -> int:
    """llama.cpp's file-type number for `quant`, or a UserError listing the types on offer."""
    import llama_cpp

    name = "LLAMA_FTYPE_ALL_F32" if quant == "f32" else f"LLAMA_FTYPE_MOSTLY_{quant.upper()}"
    if quant not in GGUF_TYPES or not hasattr(llama_cpp, name):
        raise UserError(
            f"unknown GGUF quantization type {quant!r}.", f"Choose one of: {', '.join(GGUF_TYPES)}."
        )
    return int(getattr(llama_cpp, name))


def quantize_gguf(src: Path, dst: Path, ftype: int, n_threads: int | None = None) -> None:
    """llama.cpp's quantizer (what `llama-quantize` runs) from the GGUF `src` to `dst`."""
    import llama_cpp

    # llama-cpp-python's log callback prints a line per tensor unless its logger is above INFO.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = n_threads or os.cpu_count() or 1
    if llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params)) != 0:
        name = (llama_cpp.llama_ftype_name(ftype) or b"?").decode()
        raise UserError(
            f"llama.cpp could not quantize {src.name} to {name}.",
            "Try another --quant (q8_0, q4_k_m and q4_0 work for every supported architecture).",
        )


def _n_params(hf_dir: Path) -> int:
    """Weights in the checkpoint, read from the safetensors headers (or the file sizes, for .bin)."""
    from safetensors import safe_open

    n = 0
    for f in hf_dir.iterdir():
        if f.suffix == ".safetensors":
            with safe_open(f, framework="pt") as st:
                for name in st.keys():  # noqa: SIM118 (safe_open is not a Mapping)
                    n += math.prod(st.get_slice(name).get_shape())
        elif f.suffix == ".bin":
            n += f.stat().st_size // 2  # as if f16: an over-estimate for f32 files, which is the safe side
    return n
