"""Training throughput on the CPU: llmworks' trainer vs a plain HF Trainer + peft run with default settings.

    nice -n 19 python bench/train.py                  # demo chat data (self-cognition + sentiment)
    nice -n 19 python bench/train.py --data random    # full 256-token rows of random ids (no padding anywhere)
    nice -n 19 python bench/train.py --mode dpo       # DPO on configs/data/preferences.jsonl vs trl's DPOTrainer

SmolLM2-135M from the embedded default, LoRA r=8 all-linear, max_seq_len 256, batch 8, fp32, 2 threads.
Each variant runs in its own subprocess (clean peak RSS). Printed: one JSON line per variant and a summary
line with the speed-up, model FLOP utilisation against a measured fp32 matmul rate, and peak RSS against
`llmworks.models.estimate.estimate_memory`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SEQ, BATCH, RANK = 256, 8, 8


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=3, help="timed steps (after 1 warm-up step)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", choices=["demo", "random"], default="demo")
    p.add_argument("--mode", choices=["sft", "dpo"], default="sft", help="dpo: ours vs trl's DPOTrainer")
    p.add_argument(
        "--accept", metavar="RUN_DIR", help="evaluate a demo run (trained first if absent) vs the base"
    )
    p.add_argument("--variant", choices=["ours", "hf", "ours-dpo", "trl"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.accept:
        accept(Path(a.accept), a.threads)
        return
    if a.variant:
        print(json.dumps(run_variant(a.variant, a.steps, a.threads, a.data)))
        return
    if a.mode == "dpo":
        dpo_main(a.steps, a.threads)
        return
    rows = {v: run_subprocess(v, a.steps, a.threads, a.data) for v in ("ours", "hf")}
    gflops = matmul_gflops(a.threads)
    est = estimate_gib()
    summary = {
        "bench": "train",
        "data": a.data,
        "speedup_tokens_per_s": round(rows["ours"]["tok_s"] / rows["hf"]["tok_s"], 2),
        "speedup_wall_per_sample": round(rows["hf"]["s_per_sample"] / rows["ours"]["s_per_sample"], 2),
        "matmul_gflops_fp32": round(gflops, 1),
        "mfu_ours": round(rows["ours"]["model_gflops"] / gflops, 3),
        "mfu_hf": round(rows["hf"]["model_gflops"] / gflops, 3),
        "estimate_gib": est,
        "rss_vs_estimate_ours": round(rows["ours"]["peak_rss_gib"] / est, 2),
        "rss_vs_estimate_hf": round(rows["hf"]["peak_rss_gib"] / est, 2),
        "config": {"seq": SEQ, "batch": BATCH, "lora_rank": RANK, "threads": a.threads, "steps": a.steps},
    }
    print(json.dumps(summary))
    print(
        f"\nours {rows['ours']['tok_s']:.0f} tok/s vs HF Trainer {rows['hf']['tok_s']:.0f} tok/s "
        f"({summary['speedup_tokens_per_s']}x); MFU {summary['mfu_ours']:.0%} vs {summary['mfu_hf']:.0%} of "
        f"{gflops:.0f} GFLOPS; peak RSS {rows['ours']['peak_rss_gib']:.2f} / {rows['hf']['peak_rss_gib']:.2f} GiB "
        f"vs estimate {est:.2f} GiB"
    )


def run_variant(variant: str, steps: int, threads: int, data: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(threads)
    if variant in ("ours-dpo", "trl"):
        t = dpo_ours(steps) if variant == "ours-dpo" else dpo_trl(steps)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return {"variant": variant, "tok_s": t["tokens"] / t["seconds"], "peak_rss_gib": peak / 2**30, **t}
    samples, tok, hf_dir = load_samples(data)
    n_params = 134_515_008  # SmolLM2-135M, embeddings included (the tied LM head runs every token)
    t = train_ours(samples, hf_dir, steps) if variant == "ours" else train_hf(samples, tok, hf_dir, steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "variant": variant,
        "tok_s": t["tokens"] / t["seconds"],
        "s_per_sample": t["seconds"] / t["samples"],
        # LoRA: forward 2N + input-gradient backward 2N FLOP per token (frozen weights get no weight grads)
        "model_gflops": 4 * n_params * t["tokens"] / t["seconds"] / 1e9,
        "peak_rss_gib": round(peak / 2**30, 3),
        "losses": t["losses"],
        **{k: t[k] for k in ("tokens", "seconds", "samples")},
    }


def load_samples(data: str) -> tuple[list[Any], Any, Path]:
    from transformers import AutoTokenizer

    from llmworks.models.hf_weights import hf_dir_for
    from llmworks.models.sources import resolve
    from llmworks.models.template import template_from_tokenizer
    from llmworks.train import data as D

    hf_dir = hf_dir_for(resolve(None))
    tok = AutoTokenizer.from_pretrained(hf_dir)
    if data == "random":
        rng = random.Random(0)
        rows = [[rng.randrange(len(tok)) for _ in range(SEQ)] for _ in range(64)]
        return [D.Sample(r, [*r[1:], D.IGNORE], list(range(SEQ))) for r in rows], tok, hf_dir
    root = Path(__file__).parents[1]
    fill = {"model_name": "Aster", "model_author": "the llmworks team"}
    records = D.read_specs([str(root / "configs/data/selfcog.jsonl"), "builtin:sentiment"], 0, fill)
    samples, _ = D.encode_all(records, tok, template_from_tokenizer(tok, "bench"), SEQ, "bench")
    random.Random(0).shuffle(samples)
    return samples, tok, hf_dir


def train_ours(samples: list[Any], hf_dir: Path, steps: int) -> dict[str, Any]:
    import torch
    from rich.console import Console
    from transformers import AutoModelForCausalLM

    from llmworks.train import data as D
    from llmworks.train.config import SFTConfig
    from llmworks.train.loop import run_loop
    from llmworks.train.model import apply_method
    from llmworks.train.sft import TokenLoss

    rows = (
        D.pack(samples, SEQ)
        if samples[0].position_ids.count(0) == 1 and len(samples[0].input_ids) < SEQ
        else samples
    )
    with tempfile.TemporaryDirectory() as out:
        cfg = SFTConfig(
            data=["bench"],
            max_steps=steps + 1,
            batch_size=BATCH,
            max_seq_len=SEQ,
            output_dir=out,
            lora_rank=RANK,
            lora_alpha=16,
            warmup_ratio=0.0,
            check_after=False,
        )
        model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
        model = apply_method(model, cfg)
        res = run_loop(cfg, model, rows, [], TokenLoss(0), Path(out), Console(stderr=True, quiet=True))
    timed = [m for m in res.metrics if "tok_s" in m][1:]  # drop the warm-up step
    seconds = sum(m["tokens"] / m["tok_s"] for m in timed)
    per_row = sum(r.position_ids.count(0) for r in rows) / len(rows)
    n_samples = per_row * BATCH * steps
    return {
        "tokens": sum(m["tokens"] for m in timed),
        "seconds": seconds,
        "samples": n_samples,
        "losses": [round(m["loss"], 4) for m in res.metrics],
    }


def train_hf(samples: list[Any], tok: Any, hf_dir: Path, steps: int) -> dict[str, Any]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForSeq2Seq,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from llmworks.train.data import IGNORE

    # The usual recipe: one sample per row, prompt tokens masked with -100, dynamic padding per batch.
    ds = [{"input_ids": s.input_ids, "labels": [IGNORE, *s.targets[:-1]]} for s in samples]
    collator = DataCollatorForSeq2Seq(tok, padding=True)
    counts: list[int] = []

    def collate(features: list[dict[str, Any]]) -> dict[str, Any]:
        counts.append(sum(len(f["input_ids"]) for f in features))
        return collator(features)

    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            times.append(time.perf_counter())

        def on_step_end(self, *a: Any, **k: Any) -> None:
            times[-1] = time.perf_counter() - times[-1]

    losses: list[float] = []

    class Losses(TrainerCallback):
        def on_log(
            self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **k: Any
        ) -> None:
            if logs and "loss" in logs:
                losses.append(round(float(logs["loss"]), 4))

    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    model = get_peft_model(
        model, LoraConfig(r=RANK, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            out,
            per_device_train_batch_size=BATCH,
            max_steps=steps + 1,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            remove_unused_columns=False,
            dataloader_num_workers=0,
            seed=0,
        )
        Trainer(
            model=model, args=args, train_dataset=ds, data_collator=collate, callbacks=[Clock(), Losses()]
        ).train()
    return {
        "tokens": sum(counts[1 : steps + 1]),
        "seconds": sum(times[1:]),
        "samples": BATCH * steps,
        "losses": losses,
    }


def run_subprocess(variant: str, steps: int, threads: int, data: str = "demo") -> dict[str, Any]:
    """One variant in its own process (a clean peak RSS); its JSON line is printed and returned."""
    cmd = [sys.executable, __file__, "--variant", variant, "--steps", str(steps), "--threads", str(threads)]
    out = subprocess.run([*cmd, "--data", data], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"{variant} failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(row))
    return row


def dpo_main(steps: int, threads: int) -> None:
    rows = {v: run_subprocess(v, steps, threads) for v in ("ours-dpo", "trl")}
    ratio = rows["ours-dpo"]["tok_s"] / rows["trl"]["tok_s"]
    print(json.dumps({"bench": "train-dpo", "speedup_tokens_per_s": round(ratio, 2), "steps": steps}))


def _preference_rows() -> list[dict[str, Any]]:
    path = Path(__file__).parents[1] / "configs" / "data" / "preferences.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] * 4


def dpo_ours(steps: int) -> dict[str, Any]:
    import torch
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from llmworks.models.hf_weights import hf_dir_for
    from llmworks.models.sources import resolve
    from llmworks.models.template import template_from_tokenizer
    from llmworks.train import data as D
    from llmworks.train.config import DPOConfig
    from llmworks.train.dpo import DPOLoss, encode_pairs
    from llmworks.train.loop import run_loop
    from llmworks.train.model import apply_method

    hf_dir = hf_dir_for(resolve(None))
    tok = AutoTokenizer.from_pretrained(hf_dir)
    pairs = encode_pairs(_preference_rows(), tok, template_from_tokenizer(tok, "bench"), SEQ, D.DataStats())
    with tempfile.TemporaryDirectory() as out:
        cfg = DPOConfig(
            data=["bench"], max_steps=steps + 1, batch_size=BATCH, max_seq_len=SEQ, output_dir=out,
            lora_rank=RANK, lora_alpha=16, warmup_ratio=0.0, check_after=False, beta=0.1,
        )  # fmt: skip
        model = apply_method(AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32), cfg)
        objective = DPOLoss(cfg.beta, tok.pad_token_id or 0)
        t0 = time.perf_counter()
        objective.add_reference(model, pairs, BATCH)
        ref_s = time.perf_counter() - t0
        res = run_loop(cfg, model, pairs, [], objective, Path(out), Console(stderr=True, quiet=True))
    timed = [m for m in res.metrics if "tok_s" in m][1:]
    return {
        "tokens": sum(m["tokens"] for m in timed),
        "seconds": sum(m["tokens"] / m["tok_s"] for m in timed),
        "reference_s": round(ref_s, 1),
        "losses": [round(m["loss"], 4) for m in res.metrics],
    }


def dpo_trl(steps: int) -> dict[str, Any]:
    """trl's DPOTrainer with its defaults, the reference log-probs precomputed as ours are."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from llmworks.models.hf_weights import hf_dir_for
    from llmworks.models.sources import resolve

    hf_dir = hf_dir_for(resolve(None))
    tok = AutoTokenizer.from_pretrained(hf_dir)
    ds = Dataset.from_list(
        [
            {
                "prompt": [{"role": "user", "content": r["prompt"]}],
                "chosen": [{"role": "assistant", "content": r["chosen"]}],
                "rejected": [{"role": "assistant", "content": r["rejected"]}],
            }
            for r in _preference_rows()
        ]
    )
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    model = get_peft_model(
        model, LoraConfig(r=RANK, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    times: list[float] = []
    tokens: list[int] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            times.append(time.perf_counter())

        def on_step_end(self, *a: Any, **k: Any) -> None:
            times[-1] = time.perf_counter() - times[-1]

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **k: Any) -> None:
            if logs and "num_tokens" in logs:
                tokens.append(int(float(logs["num_tokens"])))

    with tempfile.TemporaryDirectory() as out:
        args = DPOConfig(
            out, per_device_train_batch_size=BATCH, max_steps=steps + 1, logging_steps=1, save_strategy="no",
            report_to=[], use_cpu=True, max_length=SEQ, precompute_ref_log_probs=True, beta=0.1, seed=0,
        )  # fmt: skip
        DPOTrainer(
            model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[Clock()]
        ).train()
    # num_tokens is cumulative (chosen + rejected); drop the warm-up step as for ours
    return {"tokens": tokens[steps] - tokens[0], "seconds": sum(times[1 : steps + 1])}


def accept(run_dir: Path, threads: int) -> None:
    """The demo's acceptance targets: held-out sentiment accuracy above the base model's, and "Who are
    you?" (English and Chinese) answered with the configured name and author."""
    import torch

    from llmworks.engines import load_engine
    from llmworks.models.hf_weights import hf_dir_for
    from llmworks.models.sources import resolve
    from llmworks.train import sft
    from llmworks.train.acceptance import sentiment_accuracy, who_are_you
    from llmworks.train.config import SFTConfig, load_config

    torch.set_num_threads(threads)
    root = Path(__file__).parents[1]
    if not (run_dir / "adapter_config.json").is_file():
        os.chdir(root)
        cfg = load_config(
            SFTConfig, root / "configs/demo-sft.yaml", [f"output_dir={run_dir}", f"threads={threads}"]
        )
        sft.main(cfg)
    cfg = load_config(SFTConfig, run_dir / "config.yaml", [])
    for name, model in (("base", hf_dir_for(resolve(None))), ("tuned", run_dir)):
        engine = load_engine(model, "transformers", n_threads=threads)
        row = {"bench": "train-accept", "model": name, **sentiment_accuracy(engine)}
        row["who"] = who_are_you(engine, cfg.model_name, cfg.model_author)
        print(json.dumps(row, ensure_ascii=False), flush=True)


def matmul_gflops(threads: int) -> float:
    """Best of a few fp32 matmuls shaped like the model's (2048 tokens x 576 x 1536)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 576), torch.randn(576, 1536)
    best = 0.0
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(10):
            a @ b
        best = max(best, 10 * 2 * 2048 * 576 * 1536 / (time.perf_counter() - t) / 1e9)
    return best


def estimate_gib() -> float:
    from llmworks.models.estimate import estimate_memory
    from llmworks.models.sources import resolve

    spec = resolve(None).spec
    assert spec is not None
    est = estimate_memory(
        spec, mode="lora", dtype="fp32", seq_len=SEQ, batch=BATCH, lora_rank=RANK, device="cpu"
    )
    return round(est.total / 2**30, 3)


if __name__ == "__main__":
    main()
