"""`llmworks serve` vs `python -m llama_cpp.server` on the embedded GGUF, same client, same run.

    .venv/bin/python bench/serve.py [--num-prompts 16] [--input-len 128] [--output-len 128]

Starts each server in turn on a free loopback port (never both at once: the machine has 2 cores),
runs `llmworks bench serve` at concurrency 1 and 8 against it, stops it, and prints one JSON line with
both results and the ratios ours / llama_cpp.server, plus a readable table on stderr. Targets:
single-stream output tokens/s >= 0.9x, p50 TTFT at concurrency 1 <= 1.2x, aggregate output tokens/s at
concurrency 8 >= 2x. llama_cpp.server runs with its defaults (n_ctx and n_threads aside), as a user would
run it: that includes interrupting in-flight requests when a new one arrives.

The same run also measures what the engine itself can give, through llama.cpp's low-level API with no
server, no scheduler and no Python per token beyond the loop: one sequence alone, and 8 sequences decoded
together (one `llama_decode` per step over all of them), each reading a prompt of the same length first.
Targets for our server: single-stream decode speed (from TPOT) >= 0.95x the engine's, aggregate output
tokens/s at concurrency 8 >= 0.75x the engine's 8 sequences on the same work (prompt reading included:
on a CPU it takes a large share of the time). The decode-only ratio is printed too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llmworks.errors import UserError
from llmworks.local_server import free_port, running_server
from llmworks.models.sources import resolve
from llmworks.servebench.metrics import LevelResult
from llmworks.servebench.serve_client import ServeBenchConfig, run_benchmark
from llmworks.servebench.servers import llama_cpp_server_cmd, llmworks_serve_cmd

LEVELS = [1, 8]
TARGETS = {
    "single_stream_output_tps": ">= 0.9",
    "ttft_p50_c1": "<= 1.2",
    "aggregate_output_tps_c8": ">= 2.0",
    "single_stream_decode_vs_engine": ">= 0.95",
    "aggregate_c8_vs_engine_batched": ">= 0.75",
}


def decode_limits(gguf: Path, n_threads: int, prompt_len: int, steps: int) -> dict[str, float]:
    """What llama.cpp's low-level API gives on the benchmark's work, greedy, no server: 1 sequence, and 8
    decoded together. `decode`: output tokens/s while decoding; `e2e`: output tokens over the whole time,
    prompt reading included (what a server's output tokens/s is measured on)."""
    import logging
    import time

    import llama_cpp as C
    from llama_cpp._internals import LlamaModel

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    model = LlamaModel(path_model=str(gguf), params=C.llama_model_default_params(), verbose=False)
    prompt = model.tokenize(("The quick brown fox jumps over the lazy dog. " * 40).encode(), True, False)
    prompt = prompt[:prompt_len]
    out = {}
    for n_seq in (1, 8):
        p = C.llama_context_default_params()
        p.n_ctx = n_seq * (prompt_len + steps + 16)
        p.n_batch = p.n_ubatch = max(512, n_seq)
        p.n_seq_max = n_seq
        p.kv_unified = False
        p.n_threads = p.n_threads_batch = n_threads
        p.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED  # as the engine runs
        ctx = C.llama_init_from_model(model.model, p)
        batch = C.llama_batch_init(max(512, n_seq), 0, 1)
        start = time.perf_counter()
        last = []
        for seq in range(n_seq):
            _decode(ctx, batch, [(t, pos, seq) for pos, t in enumerate(prompt)])
            last.append(_argmax(ctx, len(prompt) - 1, model.n_vocab()))
        decoding = time.perf_counter()
        for step in range(steps):
            _decode(ctx, batch, [(last[seq], len(prompt) + step, seq) for seq in range(n_seq)])
            last = [_argmax(ctx, seq, model.n_vocab()) for seq in range(n_seq)]
        end = time.perf_counter()
        out[f"engine_decode_tps_{n_seq}"] = round(n_seq * steps / (end - decoding), 1)
        out[f"engine_e2e_tps_{n_seq}"] = round(n_seq * steps / (end - start), 1)
        C.llama_batch_free(batch)
        C.llama_free(ctx)
    model.close()
    return out


def _decode(ctx: Any, batch: Any, entries: list[tuple[int, int, int]]) -> None:
    import llama_cpp as C

    batch.n_tokens = len(entries)
    for i, (tok, pos, seq) in enumerate(entries):
        batch.token[i], batch.pos[i], batch.n_seq_id[i] = tok, pos, 1
        batch.seq_id[i][0], batch.logits[i] = seq, True
    assert C.llama_decode(ctx, batch) == 0


def _argmax(ctx: Any, i: int, n_vocab: int) -> int:
    import llama_cpp as C
    import numpy as np

    return int(np.ctypeslib.as_array(C.llama_get_logits_ith(ctx, i), shape=(n_vocab,)).argmax())


def bench(name: str, cmd: list[str], port: int, args: argparse.Namespace, logs: Path) -> list[LevelResult]:
    log = logs / f"{name}.log"
    print(f"[{name}] starting: {' '.join(cmd)}  (log: {log})", file=sys.stderr, flush=True)
    with running_server(cmd, port, log, timeout=300) as url:
        config = ServeBenchConfig(
            base_url=url,
            concurrency=LEVELS,
            num_prompts=args.num_prompts,
            input_len=args.input_len,
            output_len=args.output_len,
            seed=args.seed,
        )

        def progress(level: int, done: int) -> None:
            if done == args.num_prompts:
                print(
                    f"[{name}] concurrency {LEVELS[level]}: {done} requests done", file=sys.stderr, flush=True
                )

        results = run_benchmark(config, progress)
    print(f"[{name}] stopped", file=sys.stderr, flush=True)
    return results


def ratios(ours: list[LevelResult], base: list[LevelResult]) -> dict[str, float | None]:
    o, b = {r.concurrency: r for r in ours}, {r.concurrency: r for r in base}
    return {
        "single_stream_output_tps": _ratio(o[1].output_throughput, b[1].output_throughput),
        "ttft_p50_c1": _ratio(o[1].ttft_ms.p50, b[1].ttft_ms.p50),
        "aggregate_output_tps_c8": _ratio(o[8].output_throughput, b[8].output_throughput),
    }


def limit_ratios(ours: list[LevelResult], limits: dict[str, float]) -> dict[str, float | None]:
    """Our server against the engine on the same work: decode speed of one stream (from TPOT), and
    output tokens/s at concurrency 8 against 8 sequences decoded together (prompt reading included)."""
    o = {r.concurrency: r for r in ours}
    tpot = o[1].tpot_ms.mean
    return {
        "single_stream_decode_vs_engine": _ratio(
            1000 / tpot if tpot else None, limits["engine_decode_tps_1"]
        ),
        "single_stream_output_vs_engine": _ratio(o[1].output_throughput, limits["engine_e2e_tps_1"]),
        "aggregate_c8_vs_engine_batched": _ratio(o[8].output_throughput, limits["engine_e2e_tps_8"]),
        "aggregate_c8_vs_decode_only_limit": _ratio(o[8].output_throughput, limits["engine_decode_tps_8"]),
    }


def table(runs: dict[str, list[LevelResult]]) -> str:
    rows = [
        f"{'server':<20}{'c':>3}{'ok/fail':>9}{'out tok/s':>11}{'TTFT p50':>10}{'TPOT p50':>10}{'short':>7}"
    ]
    for name, results in runs.items():
        for r in results:
            rows.append(
                f"{name:<20}{r.concurrency:>3}{f'{r.completed}/{r.failed}':>9}{r.output_throughput:>11.1f}"
                f"{_ms(r.ttft_ms.p50):>10}{_ms(r.tpot_ms.p50):>10}{r.short_requests:>7}"
            )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--num-prompts", type=int, default=16, help="requests per concurrency level")
    ap.add_argument("--input-len", type=int, default=128, help="prompt tokens (approximate)")
    ap.add_argument("--output-len", type=int, default=128, help="max_tokens per request")
    ap.add_argument("--n-ctx", type=int, default=2048, help="llama_cpp.server context size")
    ap.add_argument("--threads", type=int, default=2, help="llama_cpp.server n_threads")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    gguf = resolve().path
    logs = Path(tempfile.mkdtemp(prefix="llmworks-bench-serve-"))
    runs: dict[str, list[LevelResult]] = {}
    limits = decode_limits(gguf, args.threads, args.input_len, args.output_len)
    print(f"[engine] low-level decode: {limits}", file=sys.stderr, flush=True)

    port = free_port()
    cmd = llama_cpp_server_cmd(gguf, port, n_ctx=args.n_ctx, n_threads=args.threads)
    runs["llama_cpp.server"] = bench("llama_cpp.server", cmd, port, args, logs)

    port = free_port()
    runs["llmworks serve"] = bench("llmworks serve", llmworks_serve_cmd(port), port, args, logs)

    result: dict[str, Any] = {
        "bench": "serve",
        "model": gguf.name,
        "config": {**vars(args), "concurrency": LEVELS},
        "llama_cpp_server": [r.to_dict() for r in runs["llama_cpp.server"]],
        "llmworks_serve": [r.to_dict() for r in runs["llmworks serve"]],
        "engine_limits": limits,
        "ratios": {
            **ratios(runs["llmworks serve"], runs["llama_cpp.server"]),
            **limit_ratios(runs["llmworks serve"], limits),
        },
        "targets": TARGETS,
        "logs": str(logs),
    }
    print(table(runs), file=sys.stderr)
    for name, results in runs.items():
        for r in results:
            for w in r.warnings:
                print(f"warning [{name}, c={r.concurrency}]: {w}", file=sys.stderr)
    print(json.dumps(result), flush=True)


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


if __name__ == "__main__":
    try:
        main()
    except UserError as e:  # servers are already stopped by their context managers
        sys.exit(f"error: {e.problem} {e.fix}".strip())
