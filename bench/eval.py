"""Multiple-choice scoring speed: batched log-likelihood (llmworks.eval) vs one request at a time, same run.

    .venv/bin/python bench/eval.py [--questions 24] [--shots 1]

Both sides score the same MMLU-style questions (4 options each) on the embedded model through the llama.cpp
engine: the baseline calls `Engine.loglikelihood` once per (context, option) pair, ours hands all pairs to
`batched_loglikelihood`. Prints one JSON line with samples/s of each, their ratio (target >= 3x) and the
largest difference between the two sides' log-likelihoods.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llmworks.engines import load_engine
from llmworks.eval.loglik import batched_loglikelihood
from llmworks.eval.tasks import TASKS
from llmworks.eval.tasks.base import Env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=24)
    ap.add_argument("--shots", type=int, default=1)
    args = ap.parse_args()

    task = TASKS["mmlu-smoke"](None)
    base = task.samples()
    samples = [{**base[i % len(base)], "id": str(i)} for i in range(args.questions)]
    engine = load_engine(None)
    env = Env(
        True,
        False,
        engine.template.render,
        lambda t: len(engine.tokenize(t)),
        engine.context_length,
        args.shots,
    )
    pairs = [(r.prompt, r.continuation) for s in samples for r in task.requests(s, env)]
    # Each question differs by its index so nothing is shared across questions, as in a real benchmark.
    pairs = [(f"Question {i // 4 + 1}.\n{c}", x) for i, (c, x) in enumerate(pairs)]
    engine.loglikelihood(pairs[:1]), batched_loglikelihood(engine, pairs[:4])  # warm up both contexts

    t = time.perf_counter()
    one = [engine.loglikelihood([p])[0].logprob for p in pairs]
    t_one = time.perf_counter() - t
    t = time.perf_counter()
    batched = [r.logprob for r in batched_loglikelihood(engine, pairs)]
    t_batched = time.perf_counter() - t

    n = len(samples)
    print(
        json.dumps(
            {
                "bench": "eval_mc_loglikelihood",
                "model": engine.name,
                "questions": n,
                "pairs": len(pairs),
                "shots": args.shots,
                "one_at_a_time_samples_per_s": round(n / t_one, 2),
                "batched_samples_per_s": round(n / t_batched, 2),
                "ratio": round(t_one / t_batched, 2),
                "max_abs_logprob_diff": round(max(abs(a - b) for a, b in zip(one, batched, strict=True)), 6),
            }
        )
    )


if __name__ == "__main__":
    main()
