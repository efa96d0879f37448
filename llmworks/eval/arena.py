"""`llmworks eval arena`: the answers of several runs judged pairwise by a model; win rates and ratings.

The answers are the generations `llmworks eval run` saved per sample (samples/<task>.jsonl): every
generation task all the runs have, on the sample ids they share. Each pair of models is judged on each
sample in both orders (`judge.pairwise`); orders that disagree and replies that do not parse are ties,
and unparsed replies are counted. The arena directory holds config.json, cache.jsonl (judge replies by a
hash of the request: rerunning the same command resumes), arena.json and arena.html.
"""

from __future__ import annotations

import html
import itertools
import json
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from llmworks.atomic import atomic_write
from llmworks.client import RequestFailed
from llmworks.console import make_console
from llmworks.errors import PromptTooLong, UserError
from llmworks.eval import judge as J
from llmworks.eval.html import COLOURS, num, page
from llmworks.eval.judge import cached_judge, chat_text, make_judge
from llmworks.eval.rundir import Cache, load_run, run_names, slug, stopped


@dataclass
class ArenaConfig:
    runs: list[str]
    """Run directories of `llmworks eval run` (two or more) whose answers are compared."""
    judge: str
    """A local model (registry name, path) or the URL of an OpenAI-compatible server."""
    api_key: str | None = None
    """The judge server's API key."""
    baseline: str | None = None
    """The run the win/tie/loss table is against (default: the first)."""
    pairs: Literal["all", "baseline"] = "all"
    """Judge every pair of models, or only each model against the baseline."""
    tasks: list[str] | None = None
    """Only these tasks (default: every generation task all the runs have)."""
    limit: int | None = None
    """At most this many samples per task."""
    output_dir: str = "out/eval/arena"
    max_tokens: int = 512
    """The judge's reply budget (its explanation comes before the verdict)."""
    concurrency: int = 4
    """Judge requests in flight (a server; a local judge answers one at a time)."""
    retries: int = 4
    n_bootstrap: int = 200
    """Resamples for the ratings' 95% intervals."""

    def __post_init__(self) -> None:
        errors = []
        if len(self.runs) < 2:
            errors.append("give two or more runs")
        if len({Path(r).resolve() for r in self.runs}) < len(self.runs):
            errors.append("a run is given twice")
        if self.baseline is not None and Path(self.baseline).resolve() not in {
            Path(r).resolve() for r in self.runs
        }:
            errors.append(f"--baseline {self.baseline} is not one of the runs")
        if self.pairs not in ("all", "baseline"):
            errors.append(f"--pairs must be all or baseline (got {self.pairs})")
        for name in ("limit", "max_tokens", "concurrency", "n_bootstrap"):
            value = getattr(self, name)
            if value is not None and value < 1:
                errors.append(f"--{name.replace('_', '-')} must be >= 1 (got {value})")
        if errors:
            raise UserError("; ".join(errors) + ".", "Fix the options.")


@dataclass(frozen=True)
class Battle:
    task: str
    id: str
    question: str
    model_a: str
    model_b: str
    answer_a: str
    answer_b: str


def run_arena(cfg: ArenaConfig, console: Console | None = None, judge: J.JudgeFn | None = None) -> Path:
    """Judge the runs' answers; return the arena directory. `judge` replaces the model `cfg.judge` names
    (which then only names it in the cache and the report)."""
    console = console or make_console(stderr=True)
    names, answers = _load_answers(cfg)  # data errors before any model work
    resolved = [Path(r).resolve() for r in cfg.runs]
    baseline = names[resolved.index(Path(cfg.baseline or cfg.runs[0]).resolve())]
    battles = _battles(names, baseline, answers, cfg.pairs)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    secretless = {**asdict(cfg), "api_key": cfg.api_key and "***"}  # the key stays out of files
    atomic_write(out / "config.json", json.dumps(secretless, indent=2))
    client = None
    if judge is None:
        client = make_judge(cfg.judge, cfg.retries, cfg.api_key)
        judge = chat_text(client, cfg.max_tokens)
    name = client.name if client else cfg.judge
    cache = Cache(out / "cache.jsonl")
    started = time.time()
    try:
        outcomes = _judge_all(
            battles, _tolerant(cached_judge(judge, name, cache, cfg.max_tokens)), cfg, console
        )
    except RequestFailed as e:
        raise stopped(e, cache) from None
    finally:
        cache.close()
        if client:
            client.close()
    report = summarize(battles, outcomes, names, baseline, cfg.n_bootstrap)
    report = {
        "judge": client.describe() if client else {"model": name},
        "runs": dict(zip(names, cfg.runs, strict=True)),
        "pairs": cfg.pairs,
        "seconds": round(time.time() - started, 1),
        **report,
    }
    atomic_write(out / "arena.json", json.dumps(report, indent=2, ensure_ascii=False))
    atomic_write(out / "arena.html", render_html(report))
    console.print(
        f"{len(battles)} battles, {report['unparsed']} of {report['replies']} judge replies unparsed\n"
        f"results: {out / 'arena.json'}\nreport:  {out / 'arena.html'}"
    )
    return out


def summarize(
    battles: list[Battle], outcomes: list[dict], names: list[str], baseline: str, n_bootstrap: int = 200
) -> dict[str, Any]:
    """Win/tie/loss of each model against the baseline, Bradley–Terry and Elo ratings, and every verdict."""
    games = []
    for b, o in zip(battles, outcomes, strict=True):
        games.append((b.model_a, b.model_b, {"A": 1.0, "B": 0.0, "tie": 0.5}[o["winner"]]))
    table = {}
    for m in names:
        if m == baseline:
            continue
        scores = [s if a == m else 1 - s for a, b, s in games if {a, b} == {m, baseline}]
        win, tie, loss = scores.count(1.0), scores.count(0.5), scores.count(0.0)
        table[m] = {
            "win": win,
            "tie": tie,
            "loss": loss,
            "win_rate": (win + tie / 2) / len(scores) if scores else None,
        }
    tasks: dict[str, int] = {}
    for b in battles:
        tasks[b.task] = tasks.get(b.task, 0) + 1
    return {
        "baseline": baseline,
        "tasks": tasks,
        "battles": len(battles),
        "replies": 2 * len(battles),
        "unparsed": sum(o["unparsed"] for o in outcomes),
        "vs_baseline": table,
        "bradley_terry": J.bradley_terry(games, n_bootstrap),
        "elo": J.elo(games, n_bootstrap=n_bootstrap),
        "verdicts": [
            {
                **asdict(b),
                "winner": {"A": b.model_a, "B": b.model_b}.get(o["winner"], "tie"),
                "verdicts": o["verdicts"],
                "raw": o["raw"],
                "unparsed": o["unparsed"],
            }
            for b, o in zip(battles, outcomes, strict=True)
        ],
    }


# -- answers and battles ------------------------------------------------------------------------------


def _load_answers(cfg: ArenaConfig) -> tuple[list[str], dict[str, dict[str, dict[str, tuple[str, str]]]]]:
    """Model names (in run order) and, per task, per sample id, per model: (question, answer)."""
    results = [load_run(Path(r)) for r in cfg.runs]
    names = run_names([res["run"]["model"] for res in results], cfg.runs)
    shared = [t for t in results[0]["tasks"] if all(t in res["tasks"] for res in results[1:])]
    if cfg.tasks:
        missing = [t for t in cfg.tasks if t not in shared]
        if missing:
            raise UserError(
                f"task(s) {', '.join(missing)} are not in every run.",
                f"Tasks all runs have: {', '.join(shared)}.",
            )
        shared = [t for t in shared if t in cfg.tasks]
    answers: dict[str, dict[str, dict[str, tuple[str, str]]]] = {}
    for task in shared:
        per_run = [_generations(Path(r), task) for r in cfg.runs]
        if any(p is None for p in per_run):
            continue  # a log-likelihood task: nothing was written to judge
        ids = [i for i in per_run[0] if all(i in p for p in per_run[1:])][: cfg.limit]  # type: ignore[union-attr]
        if ids:
            answers[task] = {i: {n: p[i] for n, p in zip(names, per_run, strict=True)} for i in ids}  # type: ignore[index]
    if not answers:
        raise UserError(
            "the runs share no generated answers to judge (same generation task, same sample ids).",
            "Evaluate every model on the same generation tasks, e.g. --tasks custom-smoke,gsm8k-smoke.",
        )
    return names, answers


def _generations(run: Path, task: str) -> dict[str, tuple[str, str]] | None:
    """sample id -> (question, first generated answer), or None for a log-likelihood task."""
    path = run / "samples" / f"{slug(task)}.jsonl"
    if not path.is_file():
        raise UserError(f"{path} is missing.", "Rerun `llmworks eval run` for that run directory.")
    out = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            request = json.loads(line)["requests"][0]
            if request["kind"] == "loglikelihood":
                return None
            prompt = request["prompt"]
            question = (
                prompt
                if isinstance(prompt, str)
                else next(m["content"] for m in reversed(prompt) if m["role"] == "user")
            )
            out[str(json.loads(line)["id"])] = (question, request["output"] or "")
        except (json.JSONDecodeError, KeyError, IndexError, TypeError, StopIteration):
            raise UserError(f"{path}:{n} is not a sample record.", "Rerun `llmworks eval run`.") from None
    return out


def _battles(
    names: list[str], baseline: str, answers: dict[str, dict[str, dict[str, tuple[str, str]]]], pairs: str
) -> list[Battle]:
    matchups = [(a, b) for a, b in itertools.combinations(names, 2) if pairs == "all" or baseline in (a, b)]
    battles = []
    for task, samples in answers.items():
        for sample_id, by_model in samples.items():
            question = by_model[baseline][0]  # the runs may differ in template; the baseline's is shown
            for a, b in matchups:
                battles.append(Battle(task, sample_id, question, a, b, by_model[a][1], by_model[b][1]))
    return battles


# -- judging ------------------------------------------------------------------------------------------


def _tolerant(ask: J.JudgeFn) -> J.JudgeFn:
    """A judge request the judge rejects (too long for its context, HTTP 4xx) becomes an unparsed reply;
    it is not cached, so a rerun with a larger --ctx retries it."""

    def call(messages: list[dict]) -> str:
        try:
            return ask(messages)
        except PromptTooLong as e:
            return f"(no reply: {e})"
        except RequestFailed as e:
            if e.fatal:
                raise
            return f"(no reply: {e})"

    return call


def _judge_all(battles: list[Battle], ask: J.JudgeFn, cfg: ArenaConfig, console: Console) -> list[dict]:
    results: list[dict | None] = [None] * len(battles)

    def one(i: int) -> None:
        b = battles[i]
        results[i] = J.pairwise(ask, b.question, b.answer_a, b.answer_b)

    progress = Progress(
        TextColumn("[bold]arena[/bold] judging"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        bar = progress.add_task("", total=len(battles))
        pool = ThreadPoolExecutor(max_workers=cfg.concurrency)
        try:
            futures = [pool.submit(one, i) for i in range(len(battles))]
            for f in futures:
                f.add_done_callback(lambda _: progress.advance(bar))
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for f in done:
                f.result()
        finally:  # on an interrupt or a failure nothing queued starts; finished replies are cached
            pool.shutdown(wait=True, cancel_futures=True)
    return results  # type: ignore[return-value]


# -- report -------------------------------------------------------------------------------------------


def render_html(report: dict[str, Any]) -> str:
    names = list(report["runs"])
    bt, elo = report["bradley_terry"], report["elo"]
    ranked = sorted(names, key=lambda n: -bt.get(n, {}).get("rating", float("-inf")))
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{_rating(bt.get(n))}</td><td>{_rating(elo.get(n))}</td>"
        f"<td>{bt.get(n, {}).get('games', 0)}</td></tr>"
        for n in ranked
    )
    wtl = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{r['win']}</td><td>{r['tie']}</td><td>{r['loss']}</td>"
        f"<td>{num(r['win_rate'])}</td></tr>"
        for n, r in report["vs_baseline"].items()
    )
    tasks = ", ".join(f"{html.escape(t)} ({n})" for t, n in report["tasks"].items())
    body = [
        f"<h1>Arena: {' vs '.join(html.escape(n) for n in names)}</h1>",
        f"<p class=meta>Judge: {html.escape(report['judge']['model'])}. {report['battles']} battles on {tasks}; "
        "each judged in both orders, and orders that disagree count as ties. "
        f"Unparsed judge replies (ties): {report['unparsed']} of {report['replies']}.</p>",
        "<h2>Ratings</h2><p class=meta>Elo scale, mean 1000, bootstrap 95% intervals.</p>",
        f"<table><tr><th>model</th><th>Bradley–Terry</th><th>Elo</th><th>games</th></tr>{rows}</table>",
        _interval_chart(bt, ranked),
        f"<h2>Against the baseline ({html.escape(report['baseline'])})</h2>",
        f"<table><tr><th>model</th><th>win</th><th>tie</th><th>loss</th><th>win rate</th></tr>{wtl}</table>",
        "<h2>Verdicts</h2>",
        _browser(report["verdicts"]),
    ]
    return page("llmworks eval arena", "\n".join(body))


def _rating(r: dict | None) -> str:
    return "" if r is None else f"{r['rating']:.0f} ({r['ci_low']:.0f} – {r['ci_high']:.0f})"


def _interval_chart(ratings: dict[str, dict], names: list[str]) -> str:
    """Each model's rating as a dot on its 95% interval."""
    shown = [n for n in names if n in ratings]
    if not shown:
        return ""
    lo = min(ratings[n]["ci_low"] for n in shown) - 20
    hi = max(ratings[n]["ci_high"] for n in shown) + 20
    w, left, row = 520, 160, 26

    def x(v: float) -> float:
        return left + (w - left - 20) * (v - lo) / (hi - lo)

    parts = [
        f'<svg class=chart xmlns="http://www.w3.org/2000/svg" width="{w}" height="{row * len(shown) + 30}" '
        'font-size="11">'
    ]
    for tick in range(int(lo // 50 + 1) * 50, int(hi) + 1, 50):
        parts.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="0" y2="{row * len(shown)}" stroke="#ddd"/>'
            f'<text x="{x(tick):.1f}" y="{row * len(shown) + 14}" text-anchor="middle">{tick}</text>'
        )
    for i, n in enumerate(shown):
        r, y, c = ratings[n], row * i + row / 2, COLOURS[names.index(n) % len(COLOURS)]
        parts.append(
            f'<text x="{left - 8}" y="{y + 4}" text-anchor="end">{html.escape(n)}</text>'
            f'<line x1="{x(r["ci_low"]):.1f}" x2="{x(r["ci_high"]):.1f}" y1="{y}" y2="{y}" stroke="{c}" '
            f'stroke-width="3"/><circle cx="{x(r["rating"]):.1f}" cy="{y}" r="5" fill="{c}"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _browser(verdicts: list[dict]) -> str:
    data = json.dumps(verdicts, ensure_ascii=False).replace("</", "<\\/")
    return f"""<div id=browser><span id=count></span>
<div class=split><ol id=list></ol><div id=detail>Pick a battle.</div></div></div>
<script type="application/json" id=verdicts>{data}</script>
<script>{_BROWSER_JS}</script>"""


_BROWSER_JS = """
const V = JSON.parse(document.getElementById('verdicts').textContent);
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>]/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;'}[c]));
$('count').textContent = V.length + ' battles';
V.forEach((v) => {
  const li = document.createElement('li');
  li.className = 'sample ' + (v.unparsed ? 'bad' : 'ok');
  li.textContent = v.task + ' ' + v.id + ': ' + v.model_a + ' vs ' + v.model_b + ' → ' + v.winner;
  li.onclick = () => {
    document.querySelectorAll('#list li').forEach((x) => x.classList.remove('sel'));
    li.classList.add('sel');
    let h = '<h3>' + esc(v.task + ' ' + v.id) + '</h3><p><b>winner</b> ' + esc(v.winner) + '</p>';
    h += '<b>question</b><pre class=prompt>' + esc(v.question) + '</pre>';
    h += '<b>A: ' + esc(v.model_a) + '</b><pre>' + esc(v.answer_a) + '</pre>';
    h += '<b>B: ' + esc(v.model_b) + '</b><pre>' + esc(v.answer_b) + '</pre>';
    ['A shown first', 'B shown first, reply letters swapped'].forEach((order, i) => {
      h += '<b>judge, ' + order + ' (verdict ' + esc(v.verdicts[i] ?? 'unparsed') + ')</b><pre>' + esc(v.raw[i]) + '</pre>';
    });
    $('detail').innerHTML = h;
  };
  $('list').appendChild(li);
});
"""


__all__ = ["ArenaConfig", "Battle", "render_html", "run_arena", "summarize"]
