"""Multiple-choice scoring speed: batched log-likelihood (what `llmworks eval` does) vs one request at a
time, same run.

    .venv/bin/python bench/eval.py [--questions 24] [--shots 1]

Both sides score the same MMLU-style questions (4 options each) on the embedded model through the llama.cpp
engine. The baseline is the naive way: an engine without prefix caching, one (context, option) pair per
call, each read from scratch. Ours hands all pairs to `Engine.loglikelihood` on an engine as `llmworks eval`
loads it (prefix cache on, 4 sequence slots). Prints one JSON line with samples/s of each, their ratio
(target >= 3x) and the largest difference between the two sides' log-likelihoods.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llmworks.engines import load_engine
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
    engine = load_engine(None, parallel=4)
    naive = load_engine(None, prefix_cache=False)
    env = Env(
        True,
        False,
        engine.render_chat,
        lambda t: len(engine.tokenize(t)),
        engine.context_length,
        args.shots,
    )
    pairs = [(r.prompt, r.continuation) for s in samples for r in task.requests(s, env)]
    # Each question differs by its index so nothing is shared across questions, as in a real benchmark.
    pairs = [(f"Question {i // 4 + 1}.\n{c}", x) for i, (c, x) in enumerate(pairs)]
    naive.loglikelihood([("warm", " up")]), engine.loglikelihood([("warm", " up")])

    t = time.perf_counter()
    one = [naive.loglikelihood([p])[0].logprob for p in pairs]
    t_one = time.perf_counter() - t
    t = time.perf_counter()
    batched = [r.logprob for r in engine.loglikelihood(pairs)]
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
