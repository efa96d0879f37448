"""Data-stage benchmarks; each prints one JSON line (figures, and ratios to a baseline run here).

    python bench/data.py                 # all three, full size (~10 min on 2 cores)
    python bench/data.py --only dedupe --docs 20000 --gb 0.1   # smaller, for a quick look

1. near-dedupe: 100k short generated documents with planted near-duplicates; documents/s (baseline:
   datasketch's own MinHash + MinHashLSH, as most scripts use it), and recall/precision against exact
   Jaccard computed by brute force on a 5k subset.
2. parse: pages/s on a generated 200-page PDF (baseline: a bare pypdf extract_text loop).
3. memory: peak RSS of `data convert` and `data clean` child processes on a generated 1 GB JSONL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
THRESHOLD = 0.8


# -- 1. near-dedupe -------------------------------------------------------------------------------


def make_corpus(n: int, seed: int = 0, dup_share: float = 0.2) -> tuple[list[str], list[tuple[int, int]]]:
    """Zipf-distributed words (so unrelated documents share common 3-grams, as real text does);
    a share of documents are copies of a recent one with 1-2 words changed, inserted or deleted."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(20000)]
    weights = [1 / (r + 1) for r in range(len(vocab))]
    docs: list[str] = []
    planted: list[tuple[int, int]] = []
    for i in range(n):
        if i > 10 and rng.random() < dup_share:
            src = rng.randrange(max(0, i - 2000), i)
            words = docs[src].split()
            for _ in range(rng.choice((1, 1, 2))):
                j = rng.randrange(len(words))
                op = rng.random()
                if op < 0.6:
                    words[j] = rng.choice(vocab)
                elif op < 0.8:
                    words.insert(j, rng.choice(vocab))
                elif len(words) > 10:
                    del words[j]
            docs.append(" ".join(words))
            planted.append((src, i))
        else:
            docs.append(" ".join(rng.choices(vocab, weights, k=rng.randint(60, 90))))
    return docs, planted


def exact_pairs(docs: list[str]) -> set[tuple[int, int]]:
    """All pairs with Jaccard >= THRESHOLD over the same shingles, by brute force (sparse products)."""
    from scipy.sparse import csr_matrix

    from llmworks.data.near_dedupe import shingles

    ids: dict[bytes, int] = {}
    rows, cols = [], []
    for i, d in enumerate(docs):
        for s in shingles(d):
            rows.append(i)
            cols.append(ids.setdefault(s, len(ids)))
    x = csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(docs), len(ids)))
    inter = (x @ x.T).tocoo()
    sizes = np.asarray(x.sum(axis=1)).ravel()
    jac = inter.data / (sizes[inter.row] + sizes[inter.col] - inter.data)
    keep = (inter.row < inter.col) & (jac >= THRESHOLD)
    return set(zip(inter.row[keep].tolist(), inter.col[keep].tolist(), strict=True))


def bench_dedupe(n_docs: int, subset: int = 5000) -> dict:
    from llmworks.data.near_dedupe import near_duplicates

    docs, planted = make_corpus(n_docs)
    t = time.perf_counter()
    dup_of = list(near_duplicates(docs, threshold=THRESHOLD))
    secs = time.perf_counter() - t

    # clusters from the decisions: a pair is found when both ends land in the same cluster
    parent = list(range(len(docs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, d in enumerate(dup_of):
        if d is not None:
            parent[find(i)] = find(d)
    truth = exact_pairs(docs[:subset])
    planted_in = {p for p in planted if p[1] < subset} & truth
    found = {p for p in truth if find(p[0]) == find(p[1])}
    predicted = [(d, i) for i, d in enumerate(dup_of[:subset]) if d is not None]
    correct = sum((min(p), max(p)) in truth for p in predicted)

    base_n = min(n_docs, 10000)
    base_secs = _datasketch_baseline(docs[:base_n])
    rate, base_rate = n_docs / secs, base_n / base_secs
    return {
        "bench": "near_dedupe",
        "docs": n_docs,
        "docs_per_s": round(rate),
        "baseline_datasketch_docs_per_s": round(base_rate),
        "speedup_vs_baseline": round(rate / base_rate, 2),
        "dropped": sum(d is not None for d in dup_of),
        "planted": len(planted),
        "subset": subset,
        "exact_pairs_in_subset": len(truth),
        "recall_planted": round(len({p for p in planted_in if p in found}) / max(len(planted_in), 1), 4),
        "recall_exact": round(len(found) / max(len(truth), 1), 4),
        "precision": round(correct / max(len(predicted), 1), 4),
        "threshold": THRESHOLD,
        "workers": min(2, os.cpu_count() or 1),
    }


def _datasketch_baseline(docs: list[str]) -> float:
    """The common script: a MinHash per document (sha1 hashing), MinHashLSH query then insert."""
    from datasketch import MinHash, MinHashLSH

    from llmworks.data.near_dedupe import shingles

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=128)
    t = time.perf_counter()
    for i, d in enumerate(docs):
        m = MinHash(num_perm=128)
        m.update_batch(list(shingles(d)))
        if not lsh.query(m):
            lsh.insert(str(i), m)
    return time.perf_counter() - t


# -- 2. parse -------------------------------------------------------------------------------------


def bench_parse(pages: int, tmp: Path) -> dict:
    from fpdf import FPDF
    from pypdf import PdfReader

    from llmworks.data.parse import parse_to_jsonl

    rng = random.Random(1)
    words = [
        "data",
        "model",
        "token",
        "train",
        "layer",
        "adapter",
        "corpus",
        "clean",
        "parse",
        "merge",
        "export",
        "serve",
        "evaluate",
    ]
    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for p in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 5, f"Page {p + 1}\n" + " ".join(rng.choice(words) for _ in range(450)))
    path = tmp / "bench.pdf"
    pdf.output(str(path))
    t = time.perf_counter()
    report = parse_to_jsonl([path], tmp / "parsed.jsonl")
    secs = time.perf_counter() - t
    t = time.perf_counter()
    for page in PdfReader(path).pages:
        page.extract_text()
    base = time.perf_counter() - t
    return {
        "bench": "parse_pdf",
        "pages": pages,
        "records": report.records,
        "pages_per_s": round(pages / secs, 1),
        "baseline_pypdf_pages_per_s": round(pages / base, 1),
        "ratio_vs_baseline": round(base / secs, 3),
        "pdf_mb": round(path.stat().st_size / 1e6, 2),
    }


# -- 3. memory ------------------------------------------------------------------------------------


def make_big_jsonl(path: Path, gb: float) -> int:
    """Alpaca records of ~4 KB, mostly unique, with a few exact and near copies and some PII."""
    rng = random.Random(2)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choices(letters, k=rng.randint(2, 10))) for _ in range(50000)]
    sentences = [" ".join(rng.choices(vocab, k=rng.randint(8, 20))) + "." for _ in range(20000)]
    target, n, size = int(gb * 1e9), 0, 0
    recent: list[str] = []
    with open(path, "w") as f:
        while size < target:
            roll = rng.random()
            if recent and roll < 0.03:
                line = rng.choice(recent)  # exact copy
            else:
                out = " ".join(rng.choices(sentences, k=30))
                if roll < 0.05:
                    out += f" Mail me at user{n}@example.com."
                line = (
                    json.dumps(
                        {"instruction": " ".join(rng.choices(sentences, k=3)), "input": "", "output": out}
                    )
                    + "\n"
                )
                if len(recent) < 1000:
                    recent.append(line)
            f.write(line)
            size += len(line)
            n += 1
    return n


# The child reports its own high-water mark (VmHWM) as it exits. ru_maxrss from wait4 would not do:
# Linux carries the pre-exec RSS of the forked parent into it.
_CHILD = """import os, sys
try:
    from llmworks.data.cli import app
    app(sys.argv[1:])
finally:
    with open(os.environ["LLMWORKS_BENCH_HWM"], "w") as f:
        f.write(open("/proc/self/status").read())
"""


def peak_rss(args: list[str], tmp: Path) -> tuple[float, float, float]:
    """(seconds, peak RSS of the child in MB, peak of the child plus its worker processes in MB, sampled).

    Workers are forked from the child and share its pages, so the second figure over-counts."""
    import psutil

    hwm_file = tmp / "hwm.txt"
    env = {**os.environ, "LLMWORKS_BENCH_HWM": str(hwm_file)}
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, *args], stdout=subprocess.DEVNULL, env=env)
    tree_peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal tree_peak
        try:
            p = psutil.Process(proc.pid)
            while not done.is_set():
                rss = p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
                tree_peak = max(tree_peak, rss)
                time.sleep(0.2)
        except psutil.Error:
            pass

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    code = proc.wait()
    done.set()
    th.join()
    if code != 0:
        raise SystemExit(f"{args[0]} failed with exit code {code}")
    hwm_kb = next(
        int(line.split()[1]) for line in hwm_file.read_text().splitlines() if line.startswith("VmHWM:")
    )
    return time.perf_counter() - t, hwm_kb / 1024, tree_peak / 2**20


def bench_memory(gb: float, tmp: Path) -> list[dict]:
    src = tmp / "big.jsonl"
    t = time.perf_counter()
    n = make_big_jsonl(src, gb)
    gen = time.perf_counter() - t
    size_mb = src.stat().st_size / 2**20
    out = []
    for cmd in (
        ["convert", str(src), "-o", str(tmp / "conv.jsonl")],
        ["clean", str(src), "-o", str(tmp / "clean.jsonl")],
    ):
        secs, child, tree = peak_rss(cmd, tmp)
        out.append({
            "bench": f"rss_{cmd[0]}",
            "input_mb": round(size_mb), "records": n,
            "seconds": round(secs, 1), "mb_per_s": round(size_mb / secs, 1),
            "peak_rss_mb": round(child), "peak_rss_with_workers_mb": round(tree),
            "under_1gb": child < 1024, "generate_seconds": round(gen, 1),
        })  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["dedupe", "parse", "memory"])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--pages", type=int, default=200)
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--tmp", default=None, help="Scratch directory (needs ~2.5x --gb free).")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        results = []
        if a.only in (None, "dedupe"):
            results.append(bench_dedupe(a.docs))
            print(json.dumps(results[-1]), flush=True)
        if a.only in (None, "parse"):
            results.append(bench_parse(a.pages, Path(tmp)))
            print(json.dumps(results[-1]), flush=True)
        if a.only in (None, "memory"):
            for r in bench_memory(a.gb, Path(tmp)):
                results.append(r)
                print(json.dumps(r), flush=True)
    for r in results:  # the readable table
        print(" | ".join(f"{k}={v}" for k, v in r.items()), file=sys.stderr)


if __name__ == "__main__":
    main()
