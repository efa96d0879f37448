"""Agents on the embedded model: the tool-use task set per loop, the planner's parallel nodes, the sandbox.

    .venv/bin/python bench/agent.py                       # everything (about an hour on 2 busy cores)
    .venv/bin/python bench/agent.py --only tasks --loops tools --constrain on --kinds arithmetic,kb
    .venv/bin/python bench/agent.py --only planner,sandbox
    .venv/bin/python bench/agent.py --only tasks --limit 2 --threads 1   # 10 tasks per loop, a busy machine

Prints JSON lines (and a table on stderr):
- `agent.tasks`, one line per (loop, constrain): success rate on bench/data/agent_tasks.jsonl (62 tasks with
  checkable answers: arithmetic, data questions for python, lookups in the shipped Quill manual, tasks
  that need no tool, two-step tasks), malformed actions per model request, mean model requests and tokens
  per task, success and failure kinds per task kind. Every task gets the same tools (calculator, python,
  kb_search over configs/agents/manual), temperature 0, seed 0.
- `agent.planner`, one line per --constrain: a fixed 4-node graph (independent sub-questions over the
  manual) run with its nodes in parallel vs one after another, same run, same client
  (`make_client(parallel=4)`): the ratio; and the batch's ceiling on this machine (decode alone, prefill
  alone: 4 requests at once vs one after another).
- `agent.sandbox`: python-tool call latency, a new interpreter (cold) and a running one (warm), against
  plain `python -I -c pass` in the same run; and the escape attempts that were stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llmworks.agent import Agent, Budget
from llmworks.agent.knowledge import FolderKB
from llmworks.agent.planner import Node, Planner
from llmworks.agent.tools.calculator import Calculator
from llmworks.agent.tools.kb import KBSearch
from llmworks.agent.tools.python import PythonTool
from llmworks.client import make_client
from llmworks.sandbox import Limits, PythonSandbox

ROOT = Path(__file__).parents[1]
TASKS = ROOT / "bench" / "data" / "agent_tasks.jsonl"
MANUAL = ROOT / "configs" / "agents" / "manual"
INSTRUCTIONS = (
    "You are a helpful assistant for arithmetic, small data questions and the Quill manual. Use calculator "
    "for arithmetic, python when the task says python, and kb_search for anything about Quill. Answer other "
    "questions directly. Keep the answer short."
)
"""The bench agent's instructions: what a config for this job would say."""
NUM = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="tasks,planner,sandbox")
    ap.add_argument("--loops", default="tools,react,plan")
    ap.add_argument("--constrain", default="on,off")
    ap.add_argument("--kinds", default="", help="Only these task kinds (comma-separated).")
    ap.add_argument("--limit", type=int, default=0, help="At most this many tasks per kind.")
    ap.add_argument("--workers", type=int, default=4, help="Tasks run at once (they share the batch).")
    ap.add_argument("--no-examples", action="store_true", help="Without the loops' worked examples.")
    ap.add_argument("--verbose", action="store_true", help="One line per task on stderr.")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="llama.cpp threads (0: all cores).",
    )
    ap.add_argument(
        "--model", default=None, help="A local model (default: the embedded one), e.g. a tuned GGUF."
    )
    args = ap.parse_args()
    only = set(args.only.split(","))
    if "sandbox" in only:
        emit(bench_sandbox())
    if "tasks" in only or "planner" in only:
        client = make_client(args.model, parallel=4, **({"n_threads": args.threads} if args.threads else {}))
        if "planner" in only:
            for c in args.constrain.split(","):
                emit(bench_planner(client, c == "on", ceiling=c == args.constrain.split(",")[-1]))
        if "tasks" in only:
            tasks = load_tasks(args.kinds, args.limit)
            for loop in args.loops.split(","):
                for c in args.constrain.split(","):
                    record = bench_tasks(
                        client, tasks, loop, c == "on", args.workers, not args.no_examples, args.verbose
                    )
                    emit({**record, "model": args.model or "embedded"})


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


# -- the task set --


def load_tasks(kinds: str, limit: int) -> list[dict]:
    tasks = [json.loads(line) for line in TASKS.read_text().splitlines() if line.strip()]
    if kinds:
        tasks = [t for t in tasks if t["kind"] in kinds.split(",")]
    if limit:
        seen: Counter[str] = Counter()
        kept = []
        for t in tasks:
            seen[t["kind"]] += 1
            if seen[t["kind"]] <= limit:
                kept.append(t)
        tasks = kept
    return tasks


def check(task: dict, answer: str) -> bool:
    """The answer holds the expected text (any of them), number, or run of numbers."""
    if task["match"] == "text":
        return any(e.lower() in answer.lower() for e in task["expect"])
    nums = [float(n.replace(",", "")) for n in NUM.findall(answer)]
    if task["match"] == "number":
        want = float(task["expect"][0])
        return any(abs(n - want) <= 1e-6 * max(1.0, abs(want)) for n in nums)
    want = [float(x) for x in task["expect"]]
    return any(nums[i : i + len(want)] == want for i in range(len(nums)))


def failure_kind(task: dict, result) -> str:
    calls = [s for s in result.steps if s.kind == "call"]
    obs = [s for s in result.steps if s.kind == "observation"]
    if result.malformed:
        return "malformed action"
    if result.stopped:
        return "stopped by the budget or a repeated call"
    if not calls and task["kind"] != "no_tool":
        return "answered without a tool"
    if obs and all(o.error for o in obs):
        return "every tool call failed"
    if calls and task["kind"] == "no_tool":
        return "used a tool it did not need, then answered wrong"
    return "wrong answer"


def bench_tasks(
    client, tasks: list[dict], loop: str, constrain: bool, workers: int, examples: bool, verbose: bool
) -> dict:
    kb = FolderKB(MANUAL)

    def one(task: dict):
        agent = Agent(
            [Calculator(), PythonTool(), KBSearch([kb])],
            client,
            loop=loop,
            constrain=constrain,
            instructions=INSTRUCTIONS,
            budget=Budget(max_steps=5, step_tokens=192),
            examples=examples,
        )
        try:
            return task, agent.run(task["task"])
        finally:
            agent.close()

    started = time.perf_counter()
    rows = []
    with ThreadPoolExecutor(workers) as pool:
        for task, r in pool.map(one, tasks):
            ok = check(task, r.answer)
            rows.append((task, r, ok))
            if verbose:
                calls = [
                    f"{s.tool}{json.dumps(s.arguments, ensure_ascii=False)[:60]}"
                    for s in r.steps
                    if s.kind == "call"
                ]
                print(
                    f"{'OK' if ok else '--'} {task['id']} {r.answer[:70]!r} {calls} mal={r.malformed}",
                    file=sys.stderr,
                )
    n = len(rows)
    requests = sum(r.requests for _, r, _ in rows)
    by_kind: dict[str, dict] = {}
    for task, _, ok in rows:
        k = by_kind.setdefault(task["kind"], {"n": 0, "success": 0})
        k["n"] += 1
        k["success"] += ok
    failures = Counter(failure_kind(t, r) for t, r, ok in rows if not ok)
    record = {
        "bench": "agent.tasks",
        "loop": loop,
        "constrain": constrain,
        "examples": examples,
        "tasks": n,
        "success": sum(ok for *_, ok in rows),
        "success_rate": round(sum(ok for *_, ok in rows) / max(1, n), 3),
        "malformed": sum(r.malformed for _, r, _ in rows),
        "malformed_per_request": round(sum(r.malformed for _, r, _ in rows) / max(1, requests), 3),
        "mean_requests": round(requests / max(1, n), 2),
        "mean_tool_calls": round(sum(r.tool_calls for _, r, _ in rows) / max(1, n), 2),
        "mean_tokens": round(sum(r.prompt_tokens + r.completion_tokens for _, r, _ in rows) / max(1, n), 1),
        "by_kind": {k: round(v["success"] / v["n"], 3) for k, v in by_kind.items()},
        "failures": dict(failures.most_common()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(
        f"{loop:6} constrain={'on ' if constrain else 'off'} success {record['success']}/{n} "
        f"malformed {record['malformed']} ({record['malformed_per_request']}/request) "
        f"requests {record['mean_requests']} tokens {record['mean_tokens']}",
        file=sys.stderr,
    )
    return record


# -- the planner --

PLANNER_NODES = [
    "How fast does the Brisk encoder encode?",
    "How fast does the Dense encoder encode?",
    "What compression ratio does Brisk reach?",
    "What compression ratio does Dense reach?",
]


def bench_planner(client, constrain: bool = True, ceiling: bool = True) -> dict:
    """`constrain`: node answers under the answer schema (a grammar), as `agent search` runs them."""
    planner = Planner(client, [FolderKB(MANUAL)], max_nodes=4, constrain=constrain)
    question = "Compare the two encoders and say which is faster."

    def graph() -> list[Node]:
        return [Node(i, q) for i, q in enumerate(PLANNER_NODES, 1)]

    def nodes_seconds(parallel: bool) -> float:
        """From the graph event to the last node's end; the final answer (one request either way) is skipped."""
        stream = iter(planner.run_stream(question, parallel=parallel, nodes=graph()))
        started, ended = 0.0, 0
        for step in stream:
            if step.kind == "graph":
                started = time.perf_counter()
            elif step.kind == "node" and step.data["status"] == "done":
                ended += 1
                if ended == len(PLANNER_NODES):
                    seconds = time.perf_counter() - started
                    stream.close()  # type: ignore[attr-defined]
                    return seconds
        raise RuntimeError("the planner ended before its nodes did")

    nodes_seconds(True)  # warm-up: prompt caches, threads
    times: dict[str, list[float]] = {"parallel": [], "sequential": []}
    for _ in range(2):
        for mode in ("sequential", "parallel"):
            times[mode].append(nodes_seconds(mode == "parallel"))
    par, seq = min(times["parallel"]), min(times["sequential"])
    limits = batch_ceiling(client, planner) if ceiling else None
    record = {
        "bench": "agent.planner",
        "nodes": len(PLANNER_NODES),
        "parallel_s": round(par, 2),
        "sequential_s": round(seq, 2),
        "speedup": round(seq / par, 2),
        "runs_s": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "constrain": constrain,
        "ceiling": limits,
        "client": "make_client(parallel=4)",
    }
    print(
        f"planner (constrain {constrain}): 4 nodes in parallel {par:.2f} s, one after another {seq:.2f} s: {seq / par:.2f}x",
        file=sys.stderr,
    )
    return record


def batch_ceiling(client, planner: Planner) -> dict:
    """What sharing the batch can give at most on this machine, same client, same run: 4 requests at once
    vs one after another, for decode alone (64 tokens each, a 5-token prompt) and for prefill alone (the
    nodes' own prompts, 1 token out). A node is both: its speedup lies between the two."""
    from llmworks.agent.tools.kb import format_hits, search_all

    prompts = [
        format_hits(search_all(planner.sources, q, planner.k), 500) + "\n\nQuestion: " + q
        for q in PLANNER_NODES
    ]

    def timed(fn, items, parallel: bool) -> float:
        t = time.perf_counter()
        if parallel:
            with ThreadPoolExecutor(len(items)) as pool:
                list(pool.map(fn, items))
        else:
            for x in items:
                fn(x)
        return time.perf_counter() - t

    decode = lambda i: client.complete(f"{i}, {i + 1}, {i + 2},", max_tokens=64, temperature=0.0, stop=[])  # noqa: E731
    prefill = lambda p: client.complete(p, max_tokens=1, temperature=0.0)  # noqa: E731
    out = {}
    for name, fn, items in (("decode", decode, [1, 20, 300, 4000]), ("prefill", prefill, prompts)):
        seq, par = timed(fn, items, False), timed(fn, items, True)
        out[f"{name}_speedup"] = round(seq / par, 2)
        out[f"{name}_s"] = {"sequential": round(seq, 2), "parallel": round(par, 2)}
    out["prompt_tokens_per_node"] = round(statistics.mean(len(client.tokenize(p)) for p in prompts))
    return out


# -- the sandbox --

ESCAPES = {
    "open a socket": "import socket\nsocket.create_connection(('10.0.0.1', 80), timeout=2)",
    "read a file outside scratch": "open('/etc/passwd').read()",
    "read the parent's environment": "import os\nopen(f'/proc/{os.getppid()}/environ').read()",
    "read the API-key variable": "import os\nos.environ['LLMWORKS_API_KEY']",
    "fork bomb": "import os\nwhile True:\n    os.fork()",
    "allocate 10 GB": "x = bytearray(10 * 2**30)",
    "print 100 MB": "print('x' * 100_000_000)",
    "loop forever": "while True:\n    pass",
    "loop forever, swallowing interrupts": "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass",
    "start a program": "import os\nos.execv('/bin/sh', ['sh', '-c', 'id'])",
    "write outside scratch": "open('/tmp/llmworks-escape', 'w').write('x')",
    "signal the parent": "import os, signal\nos.kill(os.getppid(), signal.SIGTERM)",
}


def bench_sandbox() -> dict:
    os.environ["LLMWORKS_API_KEY"] = "sk-bench-secret"
    baseline = []
    for _ in range(10):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)
        baseline.append(time.perf_counter() - t)
    cold, warm = [], []
    for _ in range(10):
        with PythonSandbox() as box:
            t = time.perf_counter()
            box.run("1 + 1")
            cold.append(time.perf_counter() - t)
            for _ in range(5):
                t = time.perf_counter()
                box.run("x = 2 * 21")
                warm.append(time.perf_counter() - t)
    stopped = {}
    with PythonSandbox(limits=Limits(seconds=2, cpu_seconds=3)) as box:
        for name, code in ESCAPES.items():
            r = box.run(code)
            leaked = (
                "sk-bench-secret" in r.text() or "root:" in r.text() or Path("/tmp/llmworks-escape").exists()
            )
            stopped[name] = (not r.ok) and not leaked and box.run("6 * 7").value == "42"
    p50 = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    record = {
        "bench": "agent.sandbox",
        "python_start_p50_ms": round(p50(baseline), 1),
        "cold_call_p50_ms": round(p50(cold), 1),
        "warm_call_p50_ms": round(p50(warm), 2),
        "cold_vs_plain_python": round(p50(cold) / p50(baseline), 2),
        "escapes_stopped": sum(stopped.values()),
        "escapes": len(stopped),
        "not_stopped": [k for k, v in stopped.items() if not v],
    }
    print(
        f"sandbox: cold call p50 {record['cold_call_p50_ms']} ms (plain python -I {record['python_start_p50_ms']} ms), "
        f"warm {record['warm_call_p50_ms']} ms; escapes stopped {record['escapes_stopped']}/{record['escapes']}",
        file=sys.stderr,
    )
    return record


if __name__ == "__main__":
    main()
