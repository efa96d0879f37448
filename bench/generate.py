"""Decode speed and time to first token of both engines vs the raw libraries, same model, same run.

    .venv/bin/python bench/generate.py [--tokens 128] [--repeats 3] [--engine llamacpp|transformers|both]

Prints one JSON line per engine: our tokens/s and TTFT next to raw llama-cpp-python
(`Llama.create_completion`, streamed) and raw HF `generate`, and the ratios. Targets: llamacpp >= 0.95x,
transformers >= 1.0x. Greedy on both sides, so both produce the same tokens. The llamacpp line names the
instruction set the installed llama-cpp-python was built for (`x86-64-v3`: the portable build `make install`
makes; `native: ...` after `make install LLAMA_CPU=native`), so its tokens/s is what that build gives here.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llmworks.engines import SamplingParams, load_engine
from llmworks.models.hf_weights import hf_dir_for
from llmworks.models.sources import resolve
from llmworks.testing.golden import llama_cpp_build

PROMPT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a long story about a dragon who learns to cook."},
]


def measure(stream) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """(ttft seconds, decode tokens/s after the first token, tokens) of an iterator of token counts."""
    start = time.perf_counter()
    first = end = 0.0
    n = 0
    for k in stream:
        if not k:
            continue
        now = time.perf_counter()
        if n == 0:
            first = now
        n += k
        end = now
    return first - start, (n - 1) / (end - first) if n > 1 else 0.0, n


def ours(engine, prompt: str | list[int], max_tokens: int):  # type: ignore[no-untyped-def]
    return measure(len(d.token_ids) for d in engine.generate(prompt, SamplingParams(max_tokens=max_tokens)))


def raw_llamacpp(llm, prompt: str, max_tokens: int):  # type: ignore[no-untyped-def]
    chunks = llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, stream=True)
    return measure(1 for c in chunks if c["choices"][0]["text"] or c["choices"][0]["finish_reason"] is None)


def raw_hf(model, tok, prompt: str, max_tokens: int):  # type: ignore[no-untyped-def]

    import torch
    from transformers.generation.streamers import BaseStreamer

    class Clock(BaseStreamer):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.prompt_seen = False

        def put(self, value: torch.Tensor) -> None:
            if not self.prompt_seen:  # generate() first puts the prompt
                self.prompt_seen = True
                return
            self.times.append(time.perf_counter())

        def end(self) -> None: ...

    ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    clock = Clock()
    start = time.perf_counter()
    with torch.inference_mode():
        model.generate(
            ids, max_new_tokens=max_tokens, do_sample=False, streamer=clock, pad_token_id=tok.eos_token_id
        )
    t = clock.times
    return t[0] - start, (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 else 0.0, len(t)


def compare(name: str, mine, raw, repeats: int) -> dict:  # type: ignore[no-untyped-def]
    mine(), raw()  # warm-up
    ours_runs, raw_runs = [], []
    for _ in range(repeats):  # interleaved, so drift in machine load hits both sides alike
        ours_runs.append(mine())
        raw_runs.append(raw())
    med = lambda runs, i: statistics.median(r[i] for r in runs)  # noqa: E731
    result = {
        "bench": "generate",
        "engine": name,
        "ours_tok_s": round(med(ours_runs, 1), 2),
        "raw_tok_s": round(med(raw_runs, 1), 2),
        "ours_ttft_ms": round(1000 * med(ours_runs, 0), 1),
        "raw_ttft_ms": round(1000 * med(raw_runs, 0), 1),
        "tokens": [ours_runs[0][2], raw_runs[0][2]],
        "repeats": repeats,
    }
    result["tok_s_ratio"] = round(result["ours_tok_s"] / result["raw_tok_s"], 3)
    result["ttft_ratio"] = round(result["ours_ttft_ms"] / result["raw_ttft_ms"], 3)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--hf-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engine", choices=["llamacpp", "transformers", "both"], default="both")
    args = ap.parse_args()
    threads = os.cpu_count() or 1
    print(f"llama-cpp-python built for {llama_cpp_build()}; {threads} threads", file=sys.stderr)

    if args.engine != "transformers":
        bench_llamacpp(args, threads)
    if args.engine != "llamacpp":
        bench_transformers(args, threads)


def bench_llamacpp(args: argparse.Namespace, threads: int) -> None:
    with load_engine(None, "llamacpp", n_threads=threads) as eng:
        from llama_cpp import Llama

        prompt = eng.template.render(PROMPT)
        raw = Llama(
            model_path=str(eng.source.path),
            n_ctx=eng.context_length,
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
        result = compare(
            "llamacpp",
            lambda: ours(eng, prompt, args.tokens),
            lambda: raw_llamacpp(raw, prompt, args.tokens),
            args.repeats,
        )
        result["llama_cpp_build"] = llama_cpp_build()
        result["threads"] = threads
        print(json.dumps(result), flush=True)
        raw.close()


def bench_transformers(args: argparse.Namespace, threads: int) -> None:
    with load_engine(None, "transformers", n_threads=threads) as eng:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        prompt = eng.template.render(PROMPT)
        ids = eng.encode_prompt(
            prompt
        )  # raw HF generate gets token ids: so does ours, for a like-for-like TTFT
        hf_dir = hf_dir_for(resolve(None))
        model = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
        tok = AutoTokenizer.from_pretrained(hf_dir)
        print(
            json.dumps(
                compare(
                    "transformers",
                    lambda: ours(eng, ids, args.hf_tokens),
                    lambda: raw_hf(model, tok, prompt, args.hf_tokens),
                    args.repeats,
                )
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
