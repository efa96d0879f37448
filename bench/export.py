"""What each GGUF quantization of the embedded model costs and saves, relative to its f16 export.

    nice -n 19 .venv/bin/python bench/export.py [--quants f16 q8_0 q4_k_m q4_0] [--out DIR]

Exports the embedded SmolLM2-135M (its cached HF weights) to each type with `llmworks.export.export_gguf`,
then measures every file on the llamacpp engine with the same fixed prompts and held-out text. Prints one
JSON line per type: size, perplexity, decode tokens/s and greedy agreement, and the ratios to f16 (the
first type). Decode speed on a shared 2-core machine is noisy: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from rich.console import Console

from llmworks.export import export_gguf
from llmworks.export.measure import measure


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quants", nargs="+", default=["f16", "q8_0", "q4_k_m", "q4_0"])
    ap.add_argument("--out", type=Path, help="Keep the files here (default: a temp dir, removed).")
    args = ap.parse_args()
    quiet = Console(stderr=True, quiet=True)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        exports = {
            q: export_gguf(None, out / f"smollm2.{q}.gguf", q, evaluate=False, console=quiet)
            for q in args.quants
        }
        ref = None
        for q, report in exports.items():
            m = measure(report.output, reference=ref)
            ref = ref or m
            row = {
                "bench": "export",
                "quant": q,
                "size_mb": round(report.size_bytes / 2**20, 1),
                "perplexity": round(m.perplexity, 3),
                "decode_tok_s": round(m.decode_tok_s, 1),
                "greedy_agreement": None if m.greedy_agreement is None else round(m.greedy_agreement, 4),
                "identical_outputs": m.identical_outputs,
                "export_s": round(report.seconds, 1),
                "size_ratio": round(m.size_bytes / ref.size_bytes, 3),
                "perplexity_delta": round(m.perplexity / ref.perplexity - 1, 4),
                "tok_s_ratio": round(m.decode_tok_s / ref.decode_tok_s, 3),
                "baseline": args.quants[0],
            }
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
