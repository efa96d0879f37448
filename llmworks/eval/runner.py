"""`llmworks eval run`: answer every task's requests (cached, concurrent, batched), score, write the run.

A run directory holds config.yaml, cache.jsonl (one line per answered request, keyed by a hash of the
request: rerunning the same command resumes where an interrupted run stopped), samples/<task>.jsonl
(every prompt, raw output, extraction and metric), results.json and report.html.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from llmworks.atomic import atomic_write
from llmworks.client import Client, RequestFailed, make_client
from llmworks.console import make_console
from llmworks.errors import UserError
from llmworks.eval.judge import cached_judge, chat_text, make_judge
from llmworks.eval.rundir import Cache, slug, stopped
from llmworks.eval.tasks import resolve_tasks
from llmworks.eval.tasks.base import Env, Request, Task

SCORE_CHUNK = 64
"""Log-likelihood pairs per client call: one batch on a local engine, and one cache flush."""


@dataclass
class EvalConfig:
    tasks: list[str]
    """Task names (mmlu, gsm8k, smoke, ...), NAME=PATH, or custom task YAML files."""
    model: str | None = None
    """A local model (registry name, path; None: the embedded default), or the served name with base_url."""
    base_url: str | None = None
    """An OpenAI-compatible server to evaluate instead of a local model."""
    api_key: str | None = None
    output_dir: str | None = None
    """Default: out/eval/<model>."""
    limit: int | None = None
    """At most this many samples per task."""
    concurrency: int = 4
    """Requests in flight at once (an HTTP server; a local engine answers one at a time)."""
    shots: int = 0
    chat: bool | None = None
    """Use the chat template / chat API; None: when the model has a template (always over HTTP)."""
    judge: str | None = None
    """A local model or a URL that grades tasks with the "judge" metric."""
    engine: str | None = None
    ctx: int | None = None
    retries: int = 4
    """Retries (with exponential backoff) of a request to a server that is down or answers 5xx/429."""

    def __post_init__(self) -> None:
        errors = []
        if not self.tasks:
            errors.append("no tasks given (--tasks)")
        if self.limit is not None and self.limit < 1:
            errors.append(f"--limit must be >= 1 (got {self.limit})")
        if self.concurrency < 1:
            errors.append(f"--concurrency must be >= 1 (got {self.concurrency})")
        if self.shots < 0:
            errors.append(f"--shots must be >= 0 (got {self.shots})")
        if errors:
            raise UserError("; ".join(errors) + ".", "Fix the options.")


def evaluate(cfg: EvalConfig, console: Console | None = None, client: Client | None = None) -> Path:
    """Run the tasks; return the run directory (results.json and report.html inside)."""
    console = console or make_console(stderr=True)
    tasks = resolve_tasks(cfg.tasks)
    samples = {t.name: t.samples()[: cfg.limit] for t in tasks}  # data errors before any model work
    own_client = client is None
    client = client or make_client(cfg.model, cfg.base_url, cfg.api_key, cfg.retries, **_engine_opts(cfg))
    judge_client = make_judge(cfg.judge, cfg.retries) if cfg.judge else None
    out = Path(cfg.output_dir or Path("out/eval") / slug(client.name))
    out.mkdir(parents=True, exist_ok=True)
    secretless = {**asdict(cfg), "api_key": cfg.api_key and "***"}  # the key stays out of files
    atomic_write(out / "config.json", json.dumps(secretless, indent=2))
    cache = Cache(out / "cache.jsonl")
    started = time.time()
    try:
        env = _env(cfg, client, judge_client, cache)
        per_task = {t.name: [t.requests(s, env) for s in samples[t.name]] for t in tasks}
        flat = [r for reqs in per_task.values() for rs in reqs for r in rs]
        answered = run_requests(client, flat, cache, cfg.concurrency, console)
        results: dict[str, Any] = {
            "run": {
                **client.describe(),
                "chat": env.chat,
                "shots": cfg.shots,
                "judge": judge_client.name if judge_client else None,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            },
            "tasks": {},
        }
        for task in tasks:
            results["tasks"][task.name] = _score_task(
                task, samples[task.name], per_task[task.name], answered, env, out, client
            )
            shown = ", ".join(f"{k} {v:.3f}" for k, v in results["tasks"][task.name]["metrics"].items())
            console.print(f"{task.name}: {shown}")
        results["run"]["seconds"] = round(time.time() - started, 1)
        atomic_write(out / "results.json", json.dumps(results, indent=2, ensure_ascii=False))
        from llmworks.eval.report import write_report

        write_report(out)
        console.print(f"results: {out / 'results.json'}\nreport:  {out / 'report.html'}")
        return out
    except RequestFailed as e:
        raise stopped(e, cache) from None
    finally:
        cache.close()
        if own_client:
            client.close()
        if judge_client:
            judge_client.close()


def run_requests(
    client: Client, requests: list[Request], cache: Cache, concurrency: int, console: Console | None = None
) -> dict[str, Any]:
    """Answers by request key; cached answers are reused, the rest are computed and cached one by one.

    Log-likelihoods go to the client in chunks (one batched forward pass each on a local engine); generations
    run `concurrency` at a time. A fatal failure (server down) stops the run; what was answered stays cached.
    """
    unique = {r.key(client.name): r for r in requests}
    todo = {k: r for k, r in unique.items() if k not in cache}
    if console and len(todo) < len(unique):
        console.print(
            f"resuming: {len(unique) - len(todo)} of {len(unique)} requests answered before (cache)"
        )
    scoring = [(k, r) for k, r in todo.items() if r.kind == "loglikelihood"]
    generating = [(k, r) for k, r in todo.items() if r.kind != "loglikelihood"]
    progress = Progress(
        TextColumn("[bold]eval[/bold] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=console is None,
        transient=True,
    )
    with progress:
        bar = progress.add_task(client.name, total=len(todo))
        for start in range(0, len(scoring), SCORE_CHUNK):
            chunk = scoring[start : start + SCORE_CHUNK]
            scores = client.loglikelihood([(r.prompt, r.continuation) for _, r in chunk])  # type: ignore[misc]
            if scores is None:
                raise UserError(
                    f"{client.name} cannot score text (no log-probs).", "Evaluate it with --chat."
                )
            for (k, _), v in zip(chunk, scores, strict=True):
                cache.put(k, v)
            progress.advance(bar, len(chunk))
        pool = ThreadPoolExecutor(max_workers=concurrency)
        try:
            futures = [pool.submit(_generate, client, k, r, cache) for k, r in generating]
            for f in futures:
                f.add_done_callback(lambda _: progress.advance(bar))
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for f in done:
                f.result()
        finally:  # on an interrupt or a failure, nothing queued starts; running requests finish and are cached
            pool.shutdown(wait=True, cancel_futures=True)
    return {k: cache.get(k) for k in unique}


def _generate(client: Client, key: str, r: Request, cache: Cache) -> None:
    kw = {"max_tokens": r.max_tokens, "temperature": r.temperature, "stop": r.stop, "seed": r.seed}
    try:
        if r.kind == "chat":
            text = client.chat(r.messages, **kw).content or ""
        else:
            text = client.complete(r.prompt, **kw).text  # type: ignore[arg-type]
    except RequestFailed as e:
        if e.fatal:
            raise
        cache.put(key, None, str(e))  # this request was rejected (e.g. too long): it scores as wrong
        return
    cache.put(key, text)


def _score_task(
    task: Task,
    samples: list[dict[str, Any]],
    requests: list[list[Request]],
    answered: dict[str, Any],
    env: Env,
    out: Path,
    client: Client,
) -> dict[str, Any]:
    scored, lines = [], []
    for sample, reqs in zip(samples, requests, strict=True):
        outputs = [answered[r.key(client.name)] for r in reqs]
        s = task.score(sample, outputs, env)
        scored.append(s)
        lines.append(
            {
                "id": sample["id"],
                "requests": [{**r.shown(), "output": o} for r, o in zip(reqs, outputs, strict=True)],
                "target": s.target,
                "extracted": s.extracted,
                "metrics": s.metrics,
                **s.extra,
            }
        )
    (out / "samples").mkdir(exist_ok=True)
    atomic_write(
        out / "samples" / f"{slug(task.name)}.jsonl",
        "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
    )
    return {
        "kind": task.kind,
        "method": task.method or "generate",
        "n": len(samples),
        "metrics": task.aggregate(scored),
        "settings": task.info(),
    }


def _env(cfg: EvalConfig, client: Client, judge_client: Client | None, cache: Cache) -> Env:
    chat = (
        cfg.chat
        if cfg.chat is not None
        else client.render([{"role": "user", "content": "x"}]) is not None or cfg.base_url is not None
    )
    probe = [("The capital of France is", " Paris")]
    if "probe" not in cache:
        cache.put("probe", client.loglikelihood(probe) is not None)
    can_score = cache.get("probe")
    judge = None
    if judge_client is not None:
        judge = cached_judge(chat_text(judge_client, 512), judge_client.name, cache)
    return Env(
        can_score=bool(can_score),
        chat=chat,
        render=client.render,
        count_tokens=client.count_tokens,
        context_length=client.context_length,
        shots=cfg.shots,
        judge=judge,
    )


def _engine_opts(cfg: EvalConfig) -> dict[str, Any]:
    opts: dict[str, Any] = {"parallel": min(cfg.concurrency, 8)}  # concurrent requests share the batch
    if cfg.engine:
        opts["engine"] = cfg.engine
    if cfg.ctx:
        opts["n_ctx"] = cfg.ctx
    return opts
