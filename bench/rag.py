"""RAG benchmarks: each part prints one JSON line (figures, ratios to a baseline run in the same script, the
config), then a readable summary on stderr.

    python bench/rag.py                       # all three parts (~30-60 min on 2 shared cores)
    python bench/rag.py --part ingest         # or scale, quality
    python bench/rag.py --part scale --chunks 20000 --queries 50    # smaller, for a quick look
    python bench/rag.py --part quality --rerank-questions 10 --no-relevance   # quality in ~20 minutes

Needs Debian's documentation: `apt-get install debian-handbook developers-reference debian-policy
libtasn1-doc` (the PDFs and the handbook's HTML in 26 languages are real documents we did not write).

1. ingest: 50 files (3 PDFs, 343 pages: Debian Policy, the Developer's Reference, libtasn1's manual; and 47
   handbook sections) into a new knowledge base: chunks/s and pages/s. Then one of the 50 files changes and
   is re-ingested: the chunks embedded again (against that file's chunk count) and the time as a share of
   the first ingest (goal <= 10%).
2. scale: 100k chunks of real text (the handbook in every language it ships, the Developer's Reference,
   Debian Policy), indexed through the normal ingest. Their vectors are random unit vectors, put in the
   embedding cache beforehand: search cost does not depend on them, and embedding 100k chunks would take
   hours on two cores. Queries are embedded for real. p50/p99 latency of hybrid search (query embedding,
   dense + BM25, fusion, payloads) and of each retriever alone, peak RSS of the searching process, and
   recall@5 of the dense search against the exact nearest rows (the numpy baseline's);
   against a brute-force numpy dense search (the same query embedding, a matrix product) and rank-bm25's
   BM25Okapi on the same tokens, in the same run (each side in its own process, for its RSS).
3. quality: bench/rag_qa/debian-handbook.jsonl (75 hand-written questions, 10 in Chinese, 18 out of scope)
   over the handbook in English and Simplified Chinese: hit@5 and MRR of BM25, dense and hybrid on every
   question, and hybrid + rerank (the embedded model judging relevance of 10 chunks per question) next to
   them on the first --rerank-questions rows; refusal precision/recall/F1 of the default decision end to
   end (`rag eval` with the embedded model answering, 64 tokens), and of decisions calibrated on the set
   (5-fold cross-validated), without and (unless --no-relevance) with the model's relevance check.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from llmworks.environment import configure_environment

configure_environment()

HANDBOOK = Path("/usr/share/doc/debian-handbook/html")
PDFS = {
    "policy.pdf": Path("/usr/share/doc/debian-policy/policy.pdf.gz"),
    "developers-reference.pdf": Path("/usr/share/developers-reference/developers-reference.pdf"),
    "libtasn1.pdf": Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf"),
}
QA = Path(__file__).parent / "rag_qa" / "debian-handbook.jsonl"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def need(paths: list[Path]) -> None:
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        sys.exit(
            f"missing {', '.join(missing)}: apt-get install debian-handbook developers-reference "
            "debian-policy libtasn1-doc"
        )


# -- 1. ingest --------------------------------------------------------------------------------------


def bench_ingest(work: Path) -> dict[str, Any]:
    from llmworks.rag.kb import KnowledgeBase

    need([*PDFS.values(), HANDBOOK / "en-US"])
    corpus = work / "ingest-corpus"
    shutil.rmtree(corpus, ignore_errors=True)
    shutil.rmtree(work / "ingest-kbs", ignore_errors=True)
    corpus.mkdir(parents=True)
    for name, src in PDFS.items():
        data = gzip.decompress(src.read_bytes()) if src.suffix == ".gz" else src.read_bytes()
        (corpus / name).write_bytes(data)
    sections = sorted((HANDBOOK / "en-US").glob("sect.*.html"))[:47]
    for f in sections:
        shutil.copy(f, corpus / f.name)
    kb = KnowledgeBase("ingest-bench", work / "ingest-kbs")
    first = kb.ingest([corpus])
    changed = corpus / sections[len(sections) // 2].name
    entry = kb.paths.read_manifest(kb.current).files[str(changed.resolve())]
    html = changed.read_text(encoding="utf-8")
    at = html.index('<div class="para">') + len('<div class="para">')  # the body's first paragraph changes
    changed.write_text(
        html[:at] + "Edited by bench/rag.py to change this file. " + html[at:], encoding="utf-8"
    )
    again = kb.ingest([corpus])
    return {
        "bench": "rag_ingest",
        "files": first.files,
        "pages": first.pages,
        "chunks": first.chunks,
        "first_ingest_s": round(first.seconds, 2),
        "chunks_per_s": round(first.chunks / first.seconds, 2),
        "pages_per_s": round(first.pages / first.seconds, 2),
        "changed_file": changed.name,
        "changed_file_chunks": len(entry["chunks"]),
        "reingest_embedded": again.embedded,
        "reingest_added": again.chunks_added,
        "reingest_removed": again.chunks_removed,
        "reingest_s": round(again.seconds, 2),
        "reingest_share_of_first": round(again.seconds / first.seconds, 4),
        "goal_reingest_share": 0.10,
        "config": {
            "embedder": kb.meta.embedder,
            "chunk_tokens": kb.meta.chunk_tokens,
            "store": kb.meta.store,
        },
    }


# -- 2. scale ----------------------------------------------------------------------------------------


def scale_texts(n: int, work: Path) -> list[str]:
    """`n` chunk texts from real documents (cycled with a marker when the documents run out)."""
    from llmworks.data.parse import parse_file
    from llmworks.rag.chunk import chunk_record
    from llmworks.rag.tokens import token_counter

    cache = work / f"scale-texts-{n}.json"
    if cache.is_file():
        return json.loads(cache.read_text(encoding="utf-8"))
    counter = token_counter(None)
    texts: list[str] = []
    files = [
        *sorted(HANDBOOK.glob("*/*.html")),
        *sorted(Path("/usr/share/doc/developers-reference/docs").glob("*.html")),
    ]
    for f in files:
        for rec in parse_file(f, markdown=True):
            texts += [c.index_text for c in chunk_record(rec, counter)]
        if len(texts) >= n:
            break
    if len(texts) < n:
        base = list(texts)
        for i in range(n - len(texts)):
            texts.append(f"{base[i % len(base)]} [copy {i // len(base) + 1}]")
    texts = texts[:n]
    cache.write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    return texts


def build_scale_kb(work: Path, n: int) -> tuple[Any, float]:
    """The 100k-chunk knowledge base, through the normal ingest (records files), vectors pre-cached."""
    import numpy as np

    from llmworks.rag.chunk import content_hash
    from llmworks.rag.embed import EmbeddingCache
    from llmworks.rag.kb import KnowledgeBase
    from llmworks.rag.layout import KBPaths

    kb_dir = work / f"scale-kbs-{n}"
    kb = KnowledgeBase("scale", kb_dir)
    if kb.exists:
        return kb, float(json.loads((kb_dir / "build.json").read_text())["seconds"])
    texts = scale_texts(n, work)
    corpus = work / f"scale-corpus-{n}"
    shutil.rmtree(corpus, ignore_errors=True)
    corpus.mkdir(parents=True)
    per_file = 1000
    for i in range(0, n, per_file):
        rows = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts[i : i + per_file])
        (corpus / f"part-{i // per_file:04d}.jsonl").write_text(rows, encoding="utf-8")
    hashes = sorted({content_hash(t) for t in indexed_chunks(texts)})
    rng = np.random.default_rng(0)
    cache = EmbeddingCache(KBPaths(kb_dir, "scale").partial / "cache", "all-minilm-l6-v2", 384)
    for i in range(0, len(hashes), 10000):
        part = hashes[i : i + 10000]
        v = rng.standard_normal((len(part), 384)).astype(np.float32)
        cache.put(part, v / np.linalg.norm(v, axis=1, keepdims=True))
    started = time.perf_counter()
    report = kb.ingest([corpus])
    seconds = time.perf_counter() - started
    assert report.embedded == 0, report.line()
    (kb_dir / "build.json").write_text(json.dumps({"seconds": seconds, "chunks": report.chunks}))
    return kb, seconds


def indexed_chunks(texts: list[str]) -> list[str]:
    """What the ingest indexes for these records (their chunks' text as embedded and BM25-indexed)."""
    from llmworks.rag.chunk import chunk_record
    from llmworks.rag.tokens import token_counter

    counter = token_counter(None)
    return [c.index_text for t in texts for c in chunk_record({"text": t, "format": "records"}, counter)]


def scale_queries(count: int) -> list[str]:
    rows = [json.loads(line)["question"] for line in QA.read_text(encoding="utf-8").splitlines()]
    return [rows[i % len(rows)] + ("" if i < len(rows) else f" ({i // len(rows)})") for i in range(count)]


def child_search(work: Path, n: int, side: str, queries: int) -> dict[str, Any]:
    """Runs in its own process: latencies of one side, and that process's peak RSS."""
    import numpy as np

    qs = scale_queries(queries)
    out: dict[str, Any] = {}
    if side == "ours":
        from llmworks.rag.kb import KnowledgeBase
        from llmworks.rag.store import Filter

        kb = KnowledgeBase("scale", work / f"scale-kbs-{n}")
        for mode in ("hybrid", "dense", "bm25"):
            for q in qs[:5]:
                kb.search(q, k=5, mode=mode)  # warm up (model load, index pages)
            times = []
            for q in qs:
                t = time.perf_counter()
                kb.search(q, k=5, mode=mode)
                times.append(time.perf_counter() - t)
            out[mode] = times
        embed_times = []
        for q in qs:
            t = time.perf_counter()
            kb.embedder.embed([q])
            embed_times.append(time.perf_counter() - t)
        out["query_embedding"] = embed_times
        flt = Filter(kbs=(kb.name,), version=kb.current)
        ids = [[h.id for h in kb.search(q, k=5, mode="dense")] for q in qs]
        out["dense_top5"] = [[kb.store.fetch(i, flt)[x]["hash"] for x in i] for i in ids]
    else:
        from llmworks.rag.bm25 import tokenize
        from llmworks.rag.chunk import content_hash
        from llmworks.rag.embed import DenseEmbedder, EmbeddingCache
        from llmworks.rag.layout import KBPaths

        texts = indexed_chunks(scale_texts(n, work))
        paths = KBPaths(work / f"scale-kbs-{n}", "scale")
        cache = EmbeddingCache(paths.cache, "all-minilm-l6-v2", 384)
        matrix = cache.get([content_hash(t) for t in texts])  # the same vectors and texts as ours
        embedder = DenseEmbedder(None)
        for q in qs[:5]:
            embedder.embed([q])
        times, exact = [], []
        for q in qs:
            t = time.perf_counter()
            v = embedder.embed([q])[0]
            scores = matrix @ v
            top = np.argpartition(-scores, 5)[:5]
            top = top[np.argsort(-scores[top])]
            times.append(time.perf_counter() - t)
            exact.append([content_hash(texts[i]) for i in top])
        out["numpy_dense"] = times
        out["exact_top5"] = exact
        from rank_bm25 import BM25Okapi

        started = time.perf_counter()
        bm25 = BM25Okapi([tokenize(t) or ["_"] for t in texts])
        out["rank_bm25_build_s"] = time.perf_counter() - started
        times = []
        for q in qs:
            t = time.perf_counter()
            scores = bm25.get_scores(tokenize(q))
            np.argsort(-scores)[:5]
            times.append(time.perf_counter() - t)
        out["rank_bm25"] = times
    out["peak_rss_mb"] = peak_rss_mb()
    return out


def peak_rss_mb() -> float:
    """This process's peak RSS since its exec (VmHWM; ru_maxrss would include the parent's before exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_scale(work: Path, n: int, queries: int) -> dict[str, Any]:
    import numpy as np

    need([HANDBOOK])
    kb, build_s = build_scale_kb(work, n)
    sides = {}
    for side in ("ours", "baseline"):
        r = subprocess.run(
            [sys.executable, __file__, "--child", side, "--work", str(work), "--chunks", str(n),
             "--queries", str(queries)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        sides[side] = json.loads(r.stdout.strip().splitlines()[-1])

    def pct(xs: list[float], p: float) -> float:
        return round(float(np.percentile(np.array(xs) * 1000, p)), 2)

    ours, base = sides["ours"], sides["baseline"]
    lat = {
        name: {"p50_ms": pct(xs, 50), "p99_ms": pct(xs, 99)}
        for name, xs in [
            ("hybrid", ours["hybrid"]), ("dense", ours["dense"]), ("bm25", ours["bm25"]),
            ("query_embedding", ours["query_embedding"]), ("numpy_dense", base["numpy_dense"]),
            ("rank_bm25", base["rank_bm25"]),
        ]
    }  # fmt: skip
    # The index's price: how many of the exact 5 nearest (numpy) the IVF search finds. Random vectors are
    # its worst case (no clusters for the partitions to follow), so real embeddings do no worse.
    recall = np.mean(
        [len(set(a) & set(b)) / 5 for a, b in zip(ours["dense_top5"], base["exact_top5"], strict=True)]
    )
    return {
        "bench": "rag_scale",
        "chunks": kb.info()["chunks"],
        "queries": queries,
        "index_build_s": round(build_s, 1),
        "latency": lat,
        "goal_hybrid_p50_ms": 50,
        "hybrid_p50_vs_numpy_dense": round(lat["hybrid"]["p50_ms"] / lat["numpy_dense"]["p50_ms"], 3),
        "hybrid_p50_vs_rank_bm25": round(lat["hybrid"]["p50_ms"] / lat["rank_bm25"]["p50_ms"], 3),
        "bm25_p50_vs_rank_bm25": round(lat["bm25"]["p50_ms"] / lat["rank_bm25"]["p50_ms"], 3),
        "dense_p50_vs_numpy_dense": round(lat["dense"]["p50_ms"] / lat["numpy_dense"]["p50_ms"], 3),
        "dense_recall_at_5_vs_exact": round(float(recall), 3),
        "peak_rss_mb": {"ours": round(ours["peak_rss_mb"]), "baselines": round(base["peak_rss_mb"])},
        "rank_bm25_build_s": round(base["rank_bm25_build_s"], 1),
        "config": {"store": "lancedb (IVF_SQ from 5000 rows)", "vectors": "random unit (384-d)", "k": 5},
    }


# -- 3. quality ---------------------------------------------------------------------------------------


def bench_quality(work: Path, rerank_questions: int | None, with_relevance: bool) -> dict[str, Any]:
    from llmworks.rag.config import RagEvalConfig, SearchOptions
    from llmworks.rag.evaluate import load_qa, run_eval
    from llmworks.rag.kb import KnowledgeBase
    from llmworks.rag.refusal import fit_refusal
    from llmworks.rag.retrieve import retrieve

    need([HANDBOOK / "en-US", HANDBOOK / "zh-CN", QA])
    corpus = work / "handbook"
    for lang in ("en-US", "zh-CN"):
        if not (corpus / lang).is_dir():
            shutil.copytree(
                HANDBOOK / lang, corpus / lang, ignore=shutil.ignore_patterns("Common_Content", "images")
            )
    kb = KnowledgeBase("handbook", work / "quality-kbs")
    report = kb.ingest([corpus])
    log(report.line())
    kb.paths.refusal.unlink(missing_ok=True)  # the default decision first

    retrieval_run = run_eval(
        [kb],
        RagEvalConfig(qa=str(QA), kb=["handbook"], output_dir=str(work / "quality-eval-retrieval"),
                      answers=False),
    )  # fmt: skip
    res = json.loads((retrieval_run / "results.json").read_text())
    # hybrid + rerank: the embedded model scores 10 chunks per question (slow on two shared cores), on the
    # first `rerank_questions` rows, next to the other retrievers on the same rows.
    rerank_run = run_eval(
        [kb],
        RagEvalConfig(qa=str(QA), kb=["handbook"], output_dir=str(work / "quality-eval-rerank"),
                      rerank="llm", rerank_top=10, answers=False, limit=rerank_questions),
    )  # fmt: skip
    rr = json.loads((rerank_run / "results.json").read_text())["tasks"]
    rerank_subset = {
        t.split("/", 1)[1]: {"hit@5": round(v["metrics"]["hit@5"], 3), "mrr": round(v["metrics"]["mrr"], 3)}
        for t, v in rr.items()
        if t.startswith("retrieval/")
    }
    rerank_n = next(v["n"] for t, v in rr.items() if t.startswith("retrieval/"))
    samples = [json.loads(line) for line in (retrieval_run / "samples.jsonl").read_text().splitlines()]
    modes = {t.split("/", 1)[1]: v["metrics"] for t, v in res["tasks"].items() if t.startswith("retrieval/")}
    by_lang: dict[str, dict[str, dict[str, float]]] = {}
    for lang in ("en", "zh"):
        rows = [s for s in samples if s["id"].startswith(lang) and s["metrics"]]
        by_lang[lang] = {
            m: {
                "hit@5": sum(s["metrics"][m]["hit@5"] for s in rows) / len(rows),
                "mrr": sum(s["metrics"][m]["mrr"] for s in rows) / len(rows),
            }
            for m in modes
        }
    end_to_end = run_eval(
        [kb],
        RagEvalConfig(qa=str(QA), kb=["handbook"], output_dir=str(work / "quality-eval-answers"),
                      ablation=False, answers=True, max_tokens=64),
    )  # fmt: skip
    e2e = json.loads((end_to_end / "results.json").read_text())["tasks"]

    rows = load_qa(QA)
    signals, labels, with_rel = [], [], []
    from llmworks.client import make_client
    from llmworks.rag.answer import relevance

    with make_client(None, n_ctx=4096) as client:
        for r in rows:
            got = retrieve([kb], r.question, SearchOptions())
            s = {"dense_top": got.signals.get("dense_top", 0.0), "bm25_top": got.signals.get("bm25_top", 0.0)}
            signals.append(s)
            labels.append(r.out_of_scope)
            if with_relevance:
                rel = relevance(client, r.question, got.hits[0].text) if got.hits else -10.0
                with_rel.append({**s, "relevance": rel})
    calibrated = fit_refusal(signals, labels).metrics["cross_validated"]
    calibrated_rel = fit_refusal(with_rel, labels).metrics["cross_validated"] if with_relevance else None

    def prf(m: dict[str, float]) -> dict[str, float]:
        return {k: round(m[k], 3) for k in ("precision", "recall", "f1")}

    hybrid_wins = modes["hybrid"]["mrr"] > max(modes["bm25"]["mrr"], modes["dense"]["mrr"])
    return {
        "bench": "rag_quality",
        "corpus": "debian-handbook 11.20220922 en-US + zh-CN",
        "chunks": kb.info()["chunks"],
        "questions": len(rows),
        "in_scope": sum(not r.out_of_scope for r in rows),
        "out_of_scope": sum(r.out_of_scope for r in rows),
        "retrieval": {
            m: {"hit@5": round(v["hit@5"], 3), "mrr": round(v["mrr"], 3)} for m, v in modes.items()
        },
        "retrieval_by_language": {
            lang: {m: {k: round(x, 3) for k, x in v.items()} for m, v in ms.items()}
            for lang, ms in by_lang.items()
        },
        "hybrid_mrr_beats_both": hybrid_wins,
        "hybrid_mrr_vs_bm25": round(modes["hybrid"]["mrr"] / modes["bm25"]["mrr"], 3),
        "hybrid_mrr_vs_dense": round(modes["hybrid"]["mrr"] / modes["dense"]["mrr"], 3),
        "refusal_default_end_to_end": prf(e2e["refusal"]["metrics"]) if "refusal" in e2e else None,
        "answers_end_to_end": {k: round(v, 3) for k, v in e2e.get("answers", {}).get("metrics", {}).items()},
        "refusal_calibrated_cv": prf(calibrated),
        "refusal_calibrated_with_relevance_cv": prf(calibrated_rel) if calibrated_rel else None,
        "rerank_subset": {"in_scope_questions": rerank_n, "retrieval": rerank_subset},
        "config": {
            "k": 5,
            "rerank": f"llm (embedded SmolLM2-135M, top 10; first {rerank_questions or len(rows)} rows)",
            "model": "embedded SmolLM2-135M",
            "answer_max_tokens": 64,
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["ingest", "scale", "quality", "all"], default="all")
    ap.add_argument("--work", type=Path, default=Path.home() / ".cache" / "llmworks" / "bench-rag")
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument(
        "--rerank-questions", type=int, default=None, help="hybrid + rerank on the first N rows only (slow)."
    )
    ap.add_argument(
        "--no-relevance", action="store_true", help="Skip the refusal fit with the model's relevance check."
    )
    ap.add_argument("--child", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.child:
        print(json.dumps(child_search(args.work, args.chunks, args.child, args.queries)))
        return
    parts = ["ingest", "scale", "quality"] if args.part == "all" else [args.part]
    for part in parts:
        started = time.perf_counter()
        if part == "ingest":
            result = bench_ingest(args.work)
        elif part == "scale":
            result = bench_scale(args.work, args.chunks, args.queries)
        else:
            result = bench_quality(args.work, args.rerank_questions, not args.no_relevance)
        result["bench_seconds"] = round(time.perf_counter() - started, 1)
        result["load_average_1m"] = round(os.getloadavg()[0], 2)  # two cores shared: figures vary with it
        print(json.dumps(result, ensure_ascii=False), flush=True)
        log(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    random.seed(0)
    main()
