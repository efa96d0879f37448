"""Reports: one self-contained HTML file per run (summary table, bar and radar charts, NIAH heatmap,
per-sample browser) and the side-by-side comparison of runs with deltas (`llmworks eval compare`)."""

from __future__ import annotations

import html
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.markup import escape

from llmworks.atomic import atomic_write
from llmworks.errors import UserError
from llmworks.eval.html import COLOURS, num, page
from llmworks.eval.rundir import load_run, run_names, slug
from llmworks.eval.stats import ALPHA, Paired, paired_test


def primary(metrics: dict[str, float]) -> tuple[str, float] | None:
    """The metric a chart shows for a task (its first), on a 0-1 scale (a judge's 1-10 is divided by 10)."""
    for name, value in metrics.items():
        if name != "judge_unparsed":
            return name, value / 10 if name == "judge" else value
    return None


def write_report(run: Path) -> Path:
    run = Path(run)
    results = load_run(run)
    samples = {}
    heatmaps = []
    for name, task in results["tasks"].items():
        f = run / "samples" / f"{slug(name)}.jsonl"
        rows = (
            [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()] if f.is_file() else []
        )
        samples[name] = rows
        if task["kind"] == "niah" and rows:
            from llmworks.eval.niah import heatmap_svg

            cells = [
                {
                    "context_len": int(r["id"].split("@")[0]),
                    "depth": _depth(r["id"]),
                    "score": r["metrics"]["score"],
                }
                for r in rows
            ]
            heatmaps.append(f"<h3>{html.escape(name)}</h3>{heatmap_svg(cells)}")
    label = results["run"]["model"]
    body = [
        f"<h1>Evaluation of {html.escape(label)}</h1>",
        f"<p class=meta>{html.escape(_run_line(results['run']))}</p>",
        "<h2>Summary</h2>",
        _summary_table(results),
        "<h3>First prompt of each task</h3>",
        _prompts(results),
        "<h2>Charts</h2><div class=charts>",
        bar_chart({label: results}),
        radar_chart({label: results}),
        "</div>",
    ]
    if heatmaps:
        body += ["<h2>Needle in a haystack</h2>", *heatmaps]
    body += ["<h2>Samples</h2>", _browser(samples)]
    path = run / "report.html"
    atomic_write(path, page(f"llmworks eval: {label}", "\n".join(body)))
    return path


def compare(runs: list[Path], out_dir: Path, console: Any = None) -> Path:
    """Runs side by side: every task metric per run, its standard error, and its delta to the first run (the
    baseline) with a paired test on the per-sample results; a delta counts as a change only when that test
    says so (p < 0.05). Tasks scored differently (method, formulation, chat, shots, harness) are flagged as
    not comparable, loudly: their delta is not a change of the model."""
    if len(runs) < 2:
        raise UserError("compare needs at least two runs.", "Pass RUN_A RUN_B [...].")
    results = [load_run(r) for r in runs]
    names = run_names([res["run"]["model"] for res in results], runs)
    loaded = dict(zip(names, results, strict=True))
    dirs = dict(zip(names, [Path(r) for r in runs], strict=True))
    base = names[0]
    rows = []
    tasks = list(dict.fromkeys(t for res in loaded.values() for t in res["tasks"]))
    for task in tasks:
        entries = {n: loaded[n]["tasks"].get(task) for n in names}
        per_sample = {n: _sample_metrics(dirs[n], task) if entries[n] else {} for n in names}
        settings = {n: _settings(e) if e else None for n, e in entries.items()}
        differs = {n: _differences(settings[base], settings[n]) for n in names[1:]}
        metrics = list(dict.fromkeys(m for e in entries.values() if e for m in e.get("metrics", {})))
        for m in metrics:
            values = {n: (e or {}).get("metrics", {}).get(m) for n, e in entries.items()}
            b = values[base]
            tests = {}
            for n in names[1:]:
                comparable = not differs[n] and values[n] is not None and b is not None
                tests[n] = _paired(per_sample[base], per_sample[n], m) if comparable else None
            rows.append(
                {
                    "task": task,
                    "metric": m,
                    "values": values,
                    "stderr": {n: (e or {}).get("stderr", {}).get(m) for n, e in entries.items()},
                    "delta": {n: None if v is None or b is None else v - b for n, v in values.items()},
                    "tests": tests,
                    "settings": settings,
                    "differs": differs,
                    "method": {n: (e or {}).get("method") for n, e in entries.items()},
                }
            )
    report = {"baseline": base, "runs": {n: str(dirs[n]) for n in names}, "alpha": ALPHA, "rows": rows}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(out_dir / "compare.json", json.dumps(report, indent=2, ensure_ascii=False))
    warnings = not_comparable(report)
    if console is not None:
        for w in warnings:
            console.print(f"[bold red]warning: {escape(w)}[/bold red]", highlight=False)
    path = out_dir / "compare.html"
    atomic_write(path, page("llmworks eval compare", _compare_body(report, loaded, warnings)))
    return path


def describe_row(row: dict[str, Any], name: str, baseline: str) -> str:
    """One comparison as a line: "general-smoke contains 0.923 → 0.846 (-0.077; p=1, n=13, 1 changed,
    mcnemar: not significant)"."""
    b, v = row["values"][baseline], row["values"][name]
    head = f"{row['task']} {row['metric']} {num(b) or '-'} → {num(v) or '-'}"
    if row["differs"].get(name):
        return f"{head} (not comparable: {'; '.join(row['differs'][name])})"
    test = row["tests"].get(name)
    if b is None or v is None:
        return head
    if test is None:
        return f"{head} ({v - b:+.3f}; no per-sample results to test)"
    return (
        f"{head} ({v - b:+.3f}; {Paired(**{k: v for k, v in test.items() if k != 'significant'}).describe()})"
    )


def print_comparison(compare_json: Path, console: Any, tasks: list[str] | None = None) -> None:
    """Every compared row as `describe_row` says it (significant changes in bold)."""
    report = json.loads(Path(compare_json).read_text(encoding="utf-8"))
    names = list(report["runs"])
    for row in report["rows"]:
        if tasks is not None and row["task"] not in tasks:
            continue
        for n in names[1:]:
            line = escape(describe_row(row, n, names[0]))
            test = row["tests"].get(n)
            line = f"[bold]{line}[/bold]" if test and test["significant"] else line
            console.print(("" if len(names) == 2 else f"{n}: ") + line, highlight=False)


def not_comparable(report: dict[str, Any]) -> list[str]:
    """One line per task and run that was scored differently from the baseline."""
    seen, out = set(), []
    for row in report["rows"]:
        for n, diffs in row["differs"].items():
            if diffs and (row["task"], n) not in seen:
                seen.add((row["task"], n))
                out.append(
                    f"{row['task']}: {n} was scored differently from {report['baseline']} ({'; '.join(diffs)})"
                )
    return out


def _sample_metrics(run: Path, task: str) -> dict[str, dict[str, float]]:
    f = run / "samples" / f"{slug(task)}.jsonl"
    if not f.is_file():
        return {}
    return {
        str(r["id"]): r.get("metrics", {})
        for r in map(json.loads, f.read_text(encoding="utf-8").splitlines())
    }


def _paired(
    a: dict[str, dict[str, float]], b: dict[str, dict[str, float]], metric: str
) -> dict[str, Any] | None:
    ids = [i for i in a if i in b and metric in a[i] and metric in b[i]]
    if not ids:
        return None
    t = paired_test([a[i][metric] for i in ids], [b[i][metric] for i in ids])
    return {**asdict(t), "significant": t.significant}


SETTINGS = ("method", "formulation", "chat", "shots", "harness")
"""What has to match for two scores of a task to be compared."""


def _settings(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: entry.get(k) for k in SETTINGS if k in entry}


def _differences(base: dict[str, Any] | None, other: dict[str, Any] | None) -> list[str]:
    if base is None or other is None:
        return []
    return [
        f"{k} {base[k]} vs {other[k]}" for k in SETTINGS if k in base and k in other and base[k] != other[k]
    ]


def _compare_body(report: dict[str, Any], loaded: dict[str, Any], warnings: list[str]) -> str:
    names = list(report["runs"])
    base = names[0]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names) + "".join(
        f"<th>Δ {html.escape(n)}</th>" for n in names[1:]
    )
    trs = []
    for row in report["rows"]:
        cells = "".join(f"<td>{_pm(row['values'][n], row['stderr'].get(n))}</td>" for n in names)
        for n in names[1:]:
            cells += _delta_cell(row, n)
        trs.append(
            f"<tr><td>{html.escape(row['task'])}</td><td>{html.escape(row['metric'])}</td>{cells}</tr>"
        )
    banner = ""
    if warnings:
        banner = (
            "<div class=warn><b>Not comparable:</b><ul>"
            + "".join(f"<li>{html.escape(w)}</li>" for w in warnings)
            + "</ul>A score's change between different formulations or methods says nothing about the model.</div>"
        )
    return "\n".join(
        [
            f"<h1>Comparison: {' vs '.join(html.escape(n) for n in names)}</h1>",
            banner,
            f"<p class=meta>Baseline: {html.escape(base)}. Scores ± one standard error. Each delta is a run minus "
            f"the baseline, tested on the samples both scored (exact McNemar for 0/1 metrics, paired bootstrap "
            f"otherwise); it is coloured only when p &lt; {report['alpha']} (a drop after fine-tuning is forgetting). "
            "n: samples in both runs.</p>",
            f"<table><tr><th>task</th><th>metric</th>{head}</tr>{''.join(trs)}</table>",
            "<div class=charts>",
            bar_chart(loaded),
            radar_chart(loaded),
            "</div>",
            "<h2>Runs</h2><ul>"
            + "".join(f"<li>{html.escape(n)}: {html.escape(_run_line(loaded[n]['run']))}</li>" for n in names)
            + "</ul>",
        ]
    )


def _delta_cell(row: dict[str, Any], n: str) -> str:
    d = row["delta"][n]
    if d is None:
        return "<td></td>"
    if row["differs"].get(n):
        why = "; ".join(row["differs"][n])
        return f"<td class=warn title='{html.escape(why)}'>{d:+.3f} ≠ (not comparable)</td>"
    test = row["tests"].get(n)
    if test is None:
        return f"<td>{d:+.3f} <small>(untested)</small></td>"
    cls = ("up" if d > 0 else "down") if test["significant"] else ""
    return f"<td class='{cls}'>{d:+.3f} <small>p={test['p']:.2g}, n={test['n']}</small></td>"


def _pm(value: float | None, err: float | None) -> str:
    if value is None:
        return ""
    return num(value) + (f" <small>± {err:.3f}</small>" if err is not None else "")


# -- charts (inline SVG) -------------------------------------------------------------------------------


def bar_chart(runs: dict[str, dict[str, Any]]) -> str:
    """Grouped bars: each task's primary metric (0-1), one bar per run."""
    tasks = list(dict.fromkeys(t for r in runs.values() for t in r["tasks"]))
    n = len(runs)
    group = 16 * n + 24
    w, h, left, bottom = max(320, 60 + group * len(tasks)), 260, 40, 200
    parts = [f'<svg class=chart xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-size="11">']
    for i in range(6):  # gridlines at 0, 0.2, ... 1
        y = bottom - 180 * i / 5
        parts.append(
            f'<line x1="{left}" x2="{w}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{left - 4}" y="{y + 4}" text-anchor="end">{i / 5:.1f}</text>'
        )
    for ti, task in enumerate(tasks):
        x0 = left + 12 + ti * group
        for ri, (name, r) in enumerate(runs.items()):
            p = primary(r["tasks"].get(task, {}).get("metrics", {}))
            if p is None:
                continue
            bh = 180 * max(0.0, min(1.0, p[1]))
            parts.append(
                f'<rect x="{x0 + ri * 16}" y="{bottom - bh}" width="14" height="{bh}" fill="{COLOURS[ri % len(COLOURS)]}">'
                f"<title>{html.escape(name)} {html.escape(task)} {p[0]} {p[1]:.3f}</title></rect>"
            )
        parts.append(
            f'<text x="{x0 + 8 * n}" y="{bottom + 12}" text-anchor="end" transform="rotate(-35 {x0 + 8 * n} {bottom + 12})">{html.escape(task)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts) + _legend(runs)


def radar_chart(runs: dict[str, dict[str, Any]]) -> str:
    """One polygon per run over the tasks' primary metrics (needs three tasks or more)."""
    tasks = list(dict.fromkeys(t for r in runs.values() for t in r["tasks"]))
    if len(tasks) < 3:
        return ""
    cx = cy = 150
    radius = 100
    k = len(tasks)

    def point(i: int, v: float) -> tuple[float, float]:
        a = -math.pi / 2 + 2 * math.pi * i / k
        return cx + radius * v * math.cos(a), cy + radius * v * math.sin(a)

    parts = ['<svg class=chart xmlns="http://www.w3.org/2000/svg" width="340" height="300" font-size="10">']
    for ring in (0.25, 0.5, 0.75, 1.0):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, ring) for i in range(k)))
        parts.append(f'<polygon points="{pts}" fill="none" stroke="#ddd"/>')
    for i, task in enumerate(tasks):
        x, y = point(i, 1.18)
        parts.append(f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle">{html.escape(task)}</text>')
    for ri, r in enumerate(runs.values()):
        vals = [primary(r["tasks"].get(t, {}).get("metrics", {})) for t in tasks]
        pts = " ".join(
            f"{x:.1f},{y:.1f}"
            for x, y in (point(i, max(0.0, min(1.0, v[1] if v else 0.0))) for i, v in enumerate(vals))
        )
        c = COLOURS[ri % len(COLOURS)]
        parts.append(f'<polygon points="{pts}" fill="{c}" fill-opacity="0.2" stroke="{c}" stroke-width="2"/>')
    parts.append("</svg>")
    return "".join(parts)


def _legend(runs: dict[str, Any]) -> str:
    return (
        "<div class=legend>"
        + "".join(
            f"<span><i style='background:{COLOURS[i % len(COLOURS)]}'></i>{html.escape(n)}</span>"
            for i, n in enumerate(runs)
        )
        + "</div>"
    )


# -- page parts --------------------------------------------------------------------------------------


def _summary_table(results: dict[str, Any]) -> str:
    """Per task: how it was scored (method, formulation and its reference, chat template, shots, harness),
    n, and every metric ± its standard error."""
    rows = []
    for name, t in results["tasks"].items():
        errs = t.get("stderr", {})
        metrics = ", ".join(
            f"{k} {num(v)}" + (f" ± {errs[k]:.3f}" if errs.get(k) is not None else "")
            for k, v in t["metrics"].items()
        )
        how = t.get("formulation") or ""
        if t.get("reference"):
            how += f" ({t['reference']})"
        chat = {True: "on", False: "off"}.get(t.get("chat"), "")
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{t.get('method') or 'generate'}</td><td>{html.escape(how)}</td>"
            f"<td>{chat}</td><td>{t.get('shots', '')}</td><td>{html.escape(t.get('harness') or '')}</td>"
            f"<td>{t['n']}</td><td>{html.escape(metrics)}</td></tr>"
        )
    return (
        "<table><tr><th>task</th><th>method</th><th>formulation (reference)</th><th>chat template</th>"
        "<th>shots</th><th>harness</th><th>n</th><th>metrics ± standard error</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _prompts(results: dict[str, Any]) -> str:
    """The exact prompt of each task's first sample, and the continuations scored after it."""
    parts = []
    for name, t in results["tasks"].items():
        p = t.get("prompt") or {}
        if not p:
            continue
        if "pairs" in p:
            body = "\n\n".join(f"{c}⟨{x}⟩" for c, x in p["pairs"])
        elif "messages" in p:
            body = (
                json.dumps(p["messages"], indent=2, ensure_ascii=False)
                + "\n(the server applies its template)"
            )
        else:
            body = p["text"]
        conts = "".join(f"<code>{html.escape(repr(c))}</code> " for c in p.get("continuations", []))
        parts.append(
            f"<details><summary>{html.escape(name)}</summary><pre class=prompt>{html.escape(body)}</pre>"
            + (f"<p>scored continuations: {conts}</p>" if conts else "")
            + "</details>"
        )
    return "".join(parts)


def _browser(samples: dict[str, list[dict[str, Any]]]) -> str:
    data = json.dumps(samples, ensure_ascii=False).replace("</", "<\\/")
    options = "".join(f"<option>{html.escape(t)}</option>" for t in samples)
    return f"""<div id=browser>
<label>task <select id=task>{options}</select></label>
<label><input type=checkbox id=wrong> only imperfect samples</label> <span id=count></span>
<div class=split><ol id=list></ol><div id=detail>Pick a sample.</div></div></div>
<script type="application/json" id=samples>{data}</script>
<script>{_BROWSER_JS}</script>"""


_BROWSER_JS = """
const SAMPLES = JSON.parse(document.getElementById('samples').textContent);
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;'}[c]));
const show = (v) => typeof v === 'string' ? v : JSON.stringify(v, null, 2);
const perfect = (s) => Object.entries(s.metrics).every(([k, v]) => k === 'judge_unparsed' ? v === 0 : k === 'judge' || v >= 1);
function render() {
  const rows = (SAMPLES[$('task').value] || []).filter((s) => !$('wrong').checked || !perfect(s));
  $('count').textContent = rows.length + ' samples';
  $('list').innerHTML = '';
  rows.forEach((s) => {
    const li = document.createElement('li');
    li.className = 'sample ' + (perfect(s) ? 'ok' : 'bad');
    li.textContent = s.id;
    li.onclick = () => detail(s, li);
    $('list').appendChild(li);
  });
}
function detail(s, li) {
  document.querySelectorAll('#list li').forEach((x) => x.classList.remove('sel'));
  li.classList.add('sel');
  let h = '<h3>' + esc(s.id) + '</h3><p><b>metrics</b> ' + esc(JSON.stringify(s.metrics)) + '</p>';
  h += '<p><b>target</b> ' + esc(show(s.target)) + '</p><p><b>extracted</b> ' + esc(show(s.extracted)) + '</p>';
  s.requests.forEach((r, i) => {
    h += '<div class=req><b>request ' + (i + 1) + ' (' + r.kind + ')</b><pre class=prompt>' + esc(show(r.prompt)) + '</pre>';
    if (r.continuation !== undefined) h += '<p>continuation <code>' + esc(r.continuation) + '</code></p>';
    h += '<b>output</b><pre class=output>' + esc(show(r.output)) + '</pre></div>';
  });
  if (s.judge) h += '<b>judge</b><pre>' + esc(show(s.judge)) + '</pre>';
  $('detail').innerHTML = h;
}
$('task').onchange = render; $('wrong').onchange = render; render();
"""


def _run_line(run: dict[str, Any]) -> str:
    keys = ("engine", "base_url", "path", "chat", "shots", "judge", "started", "seconds")
    return "; ".join(f"{k} {run[k]}" for k in keys if run.get(k) not in (None, ""))


def _depth(sample_id: str) -> float:
    return float(sample_id.split("@")[1].rstrip("%")) / 100
