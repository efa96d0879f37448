"""Check the memory estimator against peak RSS measured on this CPU for the embedded model.

Each case runs in a fresh subprocess (so one case's peak does not leak into the next) and reports the
child's peak RSS (VmHWM). The estimator runs in this process for the same settings; one JSON line
per case: measured, estimated, ratio = estimated / measured.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/estimate.py [--cases infer-gguf-ctx2048,lora-fp32-b1-s256]

Training needs HF weights: the embedded GGUF is dequantized once by transformers and cached as an HF
directory under the temp dir (about 20-50 s the first time, by llmworks.models.hf_weights).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llmworks.models.registry import DEFAULT_MODEL

# Derived HF weights are cached here (LLMWORKS_HOME), not in the user's llmworks cache.
BENCH_HOME = Path(tempfile.gettempdir()) / "llmworks-bench"

# name -> settings. `seq_len` is the context (llama.cpp n_ctx) for inference.
CASES: dict[str, dict] = {
    "infer-gguf-ctx2048": {"kind": "gguf", "mode": "infer", "seq_len": 2048, "batch": 1},
    "infer-gguf-ctx8192": {"kind": "gguf", "mode": "infer", "seq_len": 8192, "batch": 1},
    "lora-fp32-b8-s256": {"kind": "lora", "mode": "lora", "seq_len": 256, "batch": 8},
    "lora-fp32-b1-s256": {"kind": "lora", "mode": "lora", "seq_len": 256, "batch": 1},
}


def gguf_path() -> Path:
    """The embedded GGUF (located via find_spec, without importing its package)."""
    from llmworks.models.sources import resolve

    return resolve(DEFAULT_MODEL).path


def hf_dir() -> Path:
    """The embedded model as an fp32 HF directory: transformers dequantizes the GGUF once, then cached."""
    from llmworks.models.hf_weights import hf_dir_for
    from llmworks.models.sources import resolve

    return hf_dir_for(resolve(DEFAULT_MODEL))


def peak_rss() -> int:
    """Peak RSS of this process in bytes: VmHWM, the high-water mark of this process image.

    Not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report at least the RSS its
    parent had when it forked.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def child_gguf(seq_len: int, batch: int) -> dict:
    from llama_cpp import Llama

    base = _rss_mb()
    llm = Llama(str(gguf_path()), n_ctx=seq_len, n_threads=2, verbose=False)
    loaded = _rss_mb()
    prompt = "Write a short story about a lighthouse keeper. " * 12
    out = llm.create_completion(prompt, max_tokens=32, temperature=0.0)
    return {"base_mb": base, "loaded_mb": loaded, "tokens": out["usage"]["total_tokens"]}


def child_lora(seq_len: int, batch: int, steps: int = 2) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    torch.manual_seed(0)
    base = _rss_mb()
    model = AutoModelForCausalLM.from_pretrained(hf_dir(), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    model.train()
    loaded = _rss_mb()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    vocab = model.config.vocab_size
    t0 = time.perf_counter()
    for _ in range(steps):
        ids = torch.randint(0, vocab, (batch, seq_len))
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return {"base_mb": base, "loaded_mb": loaded, "s_per_step": (time.perf_counter() - t0) / steps}


def run_child(name: str) -> dict:
    """Run one case in a fresh interpreter; return its JSON report (with `peak_bytes` for a case)."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", name], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"case {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("LLMWORKS_HOME", str(BENCH_HOME))  # children inherit it

    if args.child == "prepare":
        print(json.dumps({"hf_dir": str(hf_dir())}))
        return
    if args.child:
        case = CASES[args.child]
        fn = child_gguf if case["kind"] == "gguf" else child_lora
        report = fn(case["seq_len"], case["batch"])
        report["peak_bytes"] = peak_rss()
        print(json.dumps(report))
        return

    from llmworks.models.estimate import estimate_memory
    from llmworks.models.registry import get_spec

    spec = get_spec(DEFAULT_MODEL)
    names = [n.strip() for n in args.cases.split(",") if n.strip()]
    if any(CASES[n]["kind"] == "lora" for n in names):
        run_child("prepare")  # dequantize once, outside the measured children and outside this process
    for name in names:
        case = CASES[name]
        measured = run_child(name)
        if case["kind"] == "gguf":
            est = estimate_memory(
                spec, "infer", "q4_1", seq_len=case["seq_len"], batch=case["batch"], device="cpu"
            )
        else:
            est = estimate_memory(
                spec, "lora", "fp32", seq_len=case["seq_len"], batch=case["batch"], lora_rank=8, device="cpu"
            )
        line = {
            "case": name,
            "measured_gib": round(measured["peak_bytes"] / 2**30, 3),
            "estimated_gib": round(est.total / 2**30, 3),
            "ratio": round(est.total / measured["peak_bytes"], 3),
            "estimate_rows_gib": {k: round(v / 2**30, 3) for k, v in est.rows.items()},
            "child": {k: v for k, v in measured.items() if k != "peak_bytes"},
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
