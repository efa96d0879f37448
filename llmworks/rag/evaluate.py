"""`llmworks rag eval`: retrieval, refusal and answer metrics of a knowledge base on a QA file.

Each row: {"question", "sources" (or "source"), "pages" (or "page"), "answer" (a reference, optional),
"out_of_scope" (optional)}. A retrieved chunk is relevant when its source ends with an expected source
(path components) and, where pages are given, it is on one of them. Retrieval is scored on the ranking of
distinct documents (expected source/page items; other chunks by id): hit@k, recall@k, MRR@k and nDCG@k
(binary relevance), the definitions ranx uses (a test checks them against ranx: ranx itself is not used
here because it compiles with numba for minutes on first use). Refusal: precision, recall and F1 of
refusing, positive = out of scope. Answers: citations that name no source (dropped), cited sources that
are expected ones, sentences no source supports, and, with a judge (any model or URL, as in
`llmworks eval`), faithfulness, citation correctness and correctness against the reference (1-10, shown
0-1). The ablation scores BM25 only, dense only, hybrid and hybrid + rerank on the same questions.

The run directory holds results.json (the eval stage's format, so `llmworks eval compare` reads two runs),
samples.jsonl (per question: retrieved chunks, answer, grades), report.html and the config; answers and
grades are cached, so a rerun resumes.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmworks.atomic import atomic_write
from llmworks.errors import UserError
from llmworks.rag.config import RagEvalConfig
from llmworks.rag.retrieve import Hit, Retrieval, retrieve

__all__ = ["Expected", "QARow", "load_qa", "rank_metrics", "run_eval"]


@dataclass(frozen=True)
class Expected:
    source: str
    page: int | None = None

    @property
    def key(self) -> str:
        return f"{self.source}#{self.page}" if self.page is not None else self.source

    def matches(self, hit: Hit) -> bool:
        src = hit.source.replace("\\", "/")
        want = self.source.replace("\\", "/").lstrip("./")
        if not (src == want or src.endswith("/" + want)):
            return False
        return self.page is None or hit.page == self.page


@dataclass
class QARow:
    id: str
    question: str
    expected: list[Expected]
    answer: str | None = None
    out_of_scope: bool = False
    lang: str | None = None


def load_qa(path: Path, limit: int | None = None) -> list[QARow]:
    from llmworks.data.io import read_records

    rows: list[QARow] = []
    for n, row in enumerate(read_records(path), 1):
        r = row.record
        if r is None or not isinstance(r.get("question"), str) or not r["question"].strip():
            raise UserError(f"{row.where}: not a QA row ({row.error or 'no question'}).", _QA_HELP)
        sources = r.get("sources") or ([r["source"]] if r.get("source") else [])
        pages = r.get("pages") or ([r["page"]] if r.get("page") is not None else [])
        expected = [Expected(str(s), int(p)) for s in sources for p in pages] or [
            Expected(str(s)) for s in sources
        ]
        oos = bool(r.get("out_of_scope"))
        if not expected and not oos:
            raise UserError(f"{row.where}: an in-scope question needs its expected sources.", _QA_HELP)
        rows.append(QARow(str(r.get("id", n)), r["question"], expected, r.get("answer"), oos, r.get("lang")))
        if limit and len(rows) >= limit:
            break
    if not rows:
        raise UserError(f"{path} has no questions.", _QA_HELP)
    return rows


_QA_HELP = (
    'Write one JSON object a line: {"question": ..., "sources": ["file.pdf"], "pages": [3]} '
    '(or {"question": ..., "out_of_scope": true}).'
)


def ranking(hits: Sequence[Hit], expected: Sequence[Expected]) -> tuple[list[str], set[str]]:
    """The ranked distinct documents of `hits` (an expected item's key, or the chunk id), and the
    expected keys."""
    out: list[str] = []
    for h in hits:
        key = next((e.key for e in expected if e.matches(h)), h.id)
        if key not in out:
            out.append(key)
    return out, {e.key for e in expected}


def rank_metrics(ranked: Sequence[str], relevant: set[str], k: int) -> dict[str, float]:
    top = list(ranked[:k])
    found = [d in relevant for d in top]
    first = next((i for i, f in enumerate(found, 1) if f), None)
    dcg = sum(1 / math.log2(i + 1) for i, f in enumerate(found, 1) if f)
    idcg = sum(1 / math.log2(i + 1) for i in range(1, min(len(relevant), k) + 1))
    return {
        f"hit@{k}": float(any(found)),
        f"recall@{k}": sum(found) / len(relevant) if relevant else 0.0,
        "mrr": 1 / first if first else 0.0,
        f"ndcg@{k}": dcg / idcg if idcg else 0.0,
    }


def run_eval(kbs: Sequence[Any], cfg: RagEvalConfig, console: Any = None) -> Path:
    """Evaluate; returns the run directory."""
    from llmworks.rag.answer import lazy_client

    with lazy_client(cfg) as client:
        return _run(kbs, cfg, client, console)


def _run(kbs: Sequence[Any], cfg: RagEvalConfig, client: Any, console: Any) -> Path:
    from llmworks.eval.judge import make_judge
    from llmworks.eval.rundir import Cache
    from llmworks.rag.answer import ask_stream
    from llmworks.rag.refusal import refusal_metrics
    from llmworks.rag.rerank import make_reranker

    started = time.time()
    rows = load_qa(Path(cfg.qa), cfg.limit)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Cache(out / "cache.jsonl")
    judge = make_judge(cfg.judge, 4, cfg.judge_api_key) if cfg.judge else None
    k = cfg.k
    base = cfg.search_options()
    main = f"{cfg.mode}+rerank" if cfg.rerank else cfg.mode
    modes: dict[str, Any] = {main: base}  # the configured retrieval: answers and refusal use it
    if cfg.ablation:
        for mode in ("bm25", "dense", "hybrid"):
            modes.setdefault(mode, base.model_copy(update={"mode": mode, "rerank": None}))
        modes = {
            m: modes[m] for m in sorted(modes, key=lambda m: (m != "bm25", m != "dense", m != "hybrid", m))
        }
    reranker = make_reranker(cfg.rerank, client)
    per_mode: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    samples: list[dict[str, Any]] = []
    truth, refused = [], []
    answer_stats: list[dict[str, float]] = []
    for n, row in enumerate(rows, 1):
        retrievals: dict[str, Retrieval] = {}
        for mode, opts in modes.items():
            retrievals[mode] = retrieve(
                kbs, row.question, opts, reranker if mode == "hybrid+rerank" else None
            )
        sample: dict[str, Any] = {
            "id": row.id,
            "question": row.question,
            "out_of_scope": row.out_of_scope,
            "expected": [e.key for e in row.expected],
            "retrieved": {m: [_brief(h, row.expected) for h in r.hits] for m, r in retrievals.items()},
            "metrics": {},
        }
        if not row.out_of_scope:
            for mode, r in retrievals.items():
                ranked, relevant = ranking(r.hits, row.expected)
                m = rank_metrics(ranked, relevant, k)
                per_mode[mode].append(m)
                sample["metrics"][mode] = m
        key = _key("answer", row.question, cfg)
        if key not in cache:
            answer = None
            use = retrievals[main]
            if cfg.answers:
                for ev in ask_stream(kbs, row.question, (), cfg, client, retrieval=use):
                    answer = ev.answer or answer
                cache.put(key, answer.to_json() if answer else None)
            else:
                from llmworks.rag.refusal import RefusalModel

                decision = RefusalModel.load(kbs[0].paths.refusal).decide(use.signals)
                cache.put(key, {"refused": decision[0] or not use.hits, "p_out_of_scope": decision[1]})
        ans = cache.get(key)
        sample["answer"] = ans
        truth.append(row.out_of_scope)
        refused.append(bool(ans and ans["refused"]))
        if cfg.answers and ans and not ans["refused"]:
            stats = _answer_checks(ans, row)
            if judge is not None:
                stats.update(_grades(judge, cfg, cache, row, ans))
            sample["grades"] = stats
            if not row.out_of_scope:
                answer_stats.append(stats)
        samples.append(sample)
        if console is not None:
            shown = sample["metrics"].get(main, {})
            console.print(
                f"[{n}/{len(rows)}] {row.question[:60]!r}"
                + (" out of scope" if row.out_of_scope else f" mrr {shown.get('mrr', 0):.2f}")
                + (" refused" if refused[-1] else ""),
                highlight=False,
                markup=False,
            )
    cache.close()
    tasks: dict[str, Any] = {}
    n_in = sum(not r.out_of_scope for r in rows)
    for mode, ms in per_mode.items():
        if ms:
            tasks[f"retrieval/{mode}"] = {
                "kind": "rag-retrieval",
                "method": mode,
                "n": len(ms),
                "metrics": {name: sum(m[name] for m in ms) / len(ms) for name in ms[0]},
            }
    if any(truth):
        rm = refusal_metrics(truth, refused)
        tasks["refusal"] = {
            "kind": "rag-refusal",
            "method": main,
            "n": len(rows),
            "metrics": {"f1": rm["f1"], "precision": rm["precision"], "recall": rm["recall"]},
        }
    if answer_stats:
        names = list(dict.fromkeys(k for s in answer_stats for k in s))
        tasks["answers"] = {
            "kind": "rag-answers",
            "method": main,
            "n": len(answer_stats),
            "metrics": {
                name: sum(s[name] for s in answer_stats if name in s)
                / max(1, sum(name in s for s in answer_stats))
                for name in names
            },
        }
    c = client() if cfg.answers else None
    name = c.name if c else "retrieval-only"
    results = {
        "run": {
            "model": name,
            **({"base_url": cfg.base_url} if cfg.base_url else {}),
            "kb": [kb.name for kb in kbs],
            "embedder": kbs[0].meta.embedder,
            "versions": {kb.name: kb.current for kb in kbs},
            "k": k,
            "questions": len(rows),
            "in_scope": n_in,
            "judge": cfg.judge,
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            "seconds": round(time.time() - started, 1),
        },
        "tasks": tasks,
    }
    atomic_write(out / "results.json", json.dumps(results, indent=2, ensure_ascii=False))
    atomic_write(out / "samples.jsonl", "".join(json.dumps(s, ensure_ascii=False) + "\n" for s in samples))
    cfg.save(out / "config.yaml", "llmworks rag eval", secret=("api_key", "judge_api_key"))
    atomic_write(out / "report.html", report_html(results, samples))
    return out


def _brief(h: Hit, expected: Sequence[Expected]) -> dict[str, Any]:
    return {
        "where": h.where,
        "score": round(h.score, 4),
        "scores": {k: round(v, 4) for k, v in h.scores.items()},
        "relevant": any(e.matches(h) for e in expected),
        "text": h.text[:400],
    }


def _answer_checks(ans: dict[str, Any], row: QARow) -> dict[str, float]:
    """Checks that need no judge: citations that named no source, cited sources that are expected ones,
    sentences some source supports."""
    cited = [s for s in ans["sources"] if s["cited"]]
    out = {
        "cited": float(bool(cited)),
        "citations_dropped": float(ans["dropped_citations"]),
        "supported": 1 - ans["unsupported"] / ans["sentences"] if ans["sentences"] else 0.0,
    }
    if cited and not row.out_of_scope:
        hits = [Hit(s["text"], s["source"], s["page"], s["heading"], 0.0) for s in cited]
        out["citation_precision"] = sum(any(e.matches(h) for e in row.expected) for h in hits) / len(hits)
    return out


_FAITHFUL = (
    "Please act as an impartial judge. Below are numbered sources and an answer written from them. Rate how "
    "faithful the answer is to the sources: 10 if every claim in it is stated in the sources, 1 if it is "
    "mostly invented. Ignore style. After a short explanation, give the rating strictly in this format: "
    '"[[rating]]", for example "Rating: [[5]]".'
)
_CITATIONS = (
    "Please act as an impartial judge. Below are numbered sources and an answer that cites them as [n]. "
    "Rate the citations: 10 if each cited source supports the sentence that cites it and no claim lacks a "
    "citation, 1 if the citations are wrong or missing. After a short explanation, give the rating strictly "
    'in this format: "[[rating]]", for example "Rating: [[5]]".'
)


def _grades(judge: Any, cfg: RagEvalConfig, cache: Any, row: QARow, ans: dict[str, Any]) -> dict[str, float]:
    from llmworks.eval.judge import grade, parse_score

    sources = "\n\n".join(f"[{s['n']}] {s['where']}\n{s['text']}" for s in ans["sources"])
    out: dict[str, float] = {}

    def ask(name: str, messages: list[dict]) -> str:
        key = _key(f"judge:{name}:{judge.name}", json.dumps(messages), cfg)
        if key not in cache:
            cache.put(key, judge.chat(messages, max_tokens=384, temperature=0.0).content or "")
        return cache.get(key)

    for name, instruction in (("faithfulness", _FAITHFUL), ("citations", _CITATIONS)):
        body = f"[Sources]\n{sources}\n\n[Question]\n{row.question}\n\n[Answer]\n{ans['answer']}"
        score = parse_score(ask(name, [{"role": "user", "content": f"{instruction}\n\n{body}"}]))
        if score is not None:
            out[name] = score / 10
    if row.answer:
        g = grade(lambda m: ask("correctness", m), row.question, ans["answer"], reference=row.answer)
        if g["score"] is not None:
            out["correctness"] = g["score"] / 10
    return out


def _key(kind: str, text: str, cfg: RagEvalConfig) -> str:
    settings = cfg.model_dump(mode="json", exclude={"output_dir", "limit", "judge", "judge_api_key", "qa"})
    return hashlib.sha256(json.dumps([kind, text, settings], sort_keys=True).encode()).hexdigest()


def report_html(results: dict[str, Any], samples: list[dict[str, Any]]) -> str:
    from llmworks.eval.html import COLOURS, num, page

    run = results["run"]
    tasks = results["tasks"]
    retrieval = {t.split("/", 1)[1]: v["metrics"] for t, v in tasks.items() if t.startswith("retrieval/")}
    names = list(dict.fromkeys(m for ms in retrieval.values() for m in ms))
    head = "".join(f"<th>{html.escape(m)}</th>" for m in names)
    best = {m: max(v.get(m, 0) for v in retrieval.values()) for m in names}
    rows = "".join(
        f"<tr><td>{html.escape(mode)}</td>"
        + "".join(
            f"<td{' class=up' if ms.get(m) == best[m] and len(retrieval) > 1 else ''}>{num(ms.get(m))}</td>"
            for m in names
        )
        + "</tr>"
        for mode, ms in retrieval.items()
    )
    bars = _bars(retrieval, names, COLOURS)
    other = "".join(
        f"<tr><td>{html.escape(t)}</td><td>{v['n']}</td><td>"
        + html.escape(", ".join(f"{m} {num(x)}" for m, x in v["metrics"].items()))
        + "</td></tr>"
        for t, v in tasks.items()
        if not t.startswith("retrieval/")
    )
    details = "".join(_sample_html(s) for s in samples)
    body = f"""<h1>RAG evaluation of {html.escape(", ".join(run["kb"]))}</h1>
<p class=meta>model {html.escape(str(run["model"]))}; embedder {html.escape(str(run["embedder"]))};
versions {html.escape(json.dumps(run["versions"]))}; k {run["k"]}; {run["questions"]} questions
({run["in_scope"]} in scope); judge {html.escape(str(run.get("judge") or "none"))}; {run["seconds"]} s</p>
<h2>Retrieval (ablation)</h2><table><tr><th>retrieval</th>{head}</tr>{rows}</table>{bars}
<h2>Refusal and answers</h2><table><tr><th>task</th><th>n</th><th>metrics</th></tr>{other}</table>
<h2>Questions</h2>{details}"""
    return page(f"llmworks rag eval: {', '.join(run['kb'])}", body)


def _bars(retrieval: dict[str, dict[str, float]], names: list[str], colours: Sequence[str]) -> str:
    modes = list(retrieval)
    group = 18 * len(modes) + 30
    w, bottom = 60 + group * len(names), 200
    parts = [f'<svg class=chart xmlns="http://www.w3.org/2000/svg" width="{w}" height="240" font-size="11">']
    for i in range(6):
        y = bottom - 180 * i / 5
        parts.append(f'<line x1="40" x2="{w}" y1="{y}" y2="{y}" stroke="#ddd"/>')
        parts.append(f'<text x="36" y="{y + 4}" text-anchor="end">{i / 5:.1f}</text>')
    for mi, metric in enumerate(names):
        x0 = 52 + mi * group
        for ri, mode in enumerate(modes):
            v = max(0.0, min(1.0, retrieval[mode].get(metric, 0.0)))
            parts.append(
                f'<rect x="{x0 + ri * 18}" y="{bottom - 180 * v}" width="16" height="{180 * v}" '
                f'fill="{colours[ri % len(colours)]}"><title>{html.escape(mode)} {metric} {v:.3f}</title></rect>'
            )
        parts.append(f'<text x="{x0}" y="{bottom + 14}">{html.escape(metric)}</text>')
    parts.append("</svg><div class=legend>")
    parts += [
        f"<span><i style='background:{colours[i % len(colours)]}'></i>{html.escape(m)}</span>"
        for i, m in enumerate(modes)
    ]
    return "".join(parts) + "</div>"


def _sample_html(s: dict[str, Any]) -> str:
    ans = s.get("answer") or {}
    flag = "out of scope" if s["out_of_scope"] else f"expected {', '.join(s['expected'])}"
    status = "refused" if ans.get("refused") else "answered"
    lists = "".join(
        f"<p><b>{html.escape(mode)}</b></p><ol>"
        + "".join(
            f"<li class='{'up' if h['relevant'] else ''}'>{html.escape(h['where'])} "
            f"<small>{html.escape(json.dumps(h['scores']))}</small></li>"
            for h in hits
        )
        + "</ol>"
        for mode, hits in s["retrieved"].items()
    )
    answer = html.escape(ans.get("answer", "")) if ans else ""
    grades = html.escape(json.dumps(s.get("grades", {})))
    return (
        f"<details><summary>{html.escape(s['id'])}: {html.escape(s['question'])} "
        f"<small>({html.escape(flag)}; {status})</small></summary>{lists}"
        f"<p><b>answer</b></p><pre>{answer}</pre><p><b>grades</b> {grades}</p></details>"
    )


def format_summary(results: dict[str, Any]) -> list[str]:
    """One line per task, for the console."""
    return [
        f"{t} (n={v['n']}): " + ", ".join(f"{m} {x:.3f}" for m, x in v["metrics"].items())
        for t, v in results["tasks"].items()
    ]
