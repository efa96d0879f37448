"""`llmworks eval run`: answer every task's requests (cached, concurrent, batched), score, write the run.

A run directory holds config.yaml, cache.jsonl (one line per answered request, keyed by a hash of the
request: rerunning the same command resumes where an interrupted run stopped), samples/<task>.jsonl
(every prompt, raw output, extraction and metric), results.json and report.html. results.json keeps the
tasks that earlier runs of the same model wrote into the directory (`--harness lm-eval` adds the reference
harness's numbers next to ours).

Each task's entry says how it was scored: method (log-likelihood or generation), formulation and reference,
chat template on/off, shots, the exact prompt of its first sample, and every metric's standard error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from llmworks.atomic import atomic_write
from llmworks.client import ChatResult, Client, Pair, RequestFailed, make_client
from llmworks.console import make_console
from llmworks.errors import UserError
from llmworks.eval.config import EvalConfig
from llmworks.eval.judge import cached_judge, chat_text, make_judge
from llmworks.eval.rundir import Cache, save_results, shown_metrics, slug, stopped
from llmworks.eval.tasks import resolve_tasks
from llmworks.eval.tasks.base import Env, Request, Task

SCORE_CHUNK = 64
"""Log-likelihood pairs per client call: one batch on a local engine, and one cache flush."""
Scorer = Callable[[Sequence[Pair]], "list[float] | None"]


def evaluate(cfg: EvalConfig, console: Console | None = None, client: Client | None = None) -> Path:
    """Run the tasks; return the run directory (results.json and report.html inside)."""
    console = console or make_console(stderr=True)
    if cfg.harness == "lm-eval":
        from llmworks.eval.harness import run_lm_eval

        return run_lm_eval(cfg, console)
    tasks = []
    for task in resolve_tasks(cfg.tasks):
        if task.skip_reason:
            console.print(f"[yellow]skipped {task.name}: {task.skip_reason}[/yellow]", highlight=False)
        else:
            tasks.append(task)
    if not tasks:
        raise UserError("none of the tasks can run here (see above).", "Choose tasks that run offline.")
    samples = {t.name: t.samples()[: cfg.limit] for t in tasks}  # data errors before any model work
    own_client = client is None
    client = client or make_client(cfg.model, cfg.base_url, cfg.api_key, cfg.retries, **_engine_opts(cfg))
    judge_client = make_judge(cfg.judge, cfg.retries) if cfg.judge else None
    out = Path(cfg.output_dir or Path("out/eval") / slug(client.name))
    out.mkdir(parents=True, exist_ok=True)
    cfg.save(out / "config.yaml", f"llmworks eval run --config {out / 'config.yaml'}")
    cache = Cache(out / "cache.jsonl")
    started = time.time()
    score = _scorer(client, cfg)
    try:
        env = _env(cfg, client, judge_client, cache, score)
        per_task = {t.name: [t.requests(s, env) for s in samples[t.name]] for t in tasks}
        flat = [r for reqs in per_task.values() for rs in reqs for r in rs]
        answered = run_requests(client, flat, cache, cfg.concurrency, console, score)
        results: dict[str, Any] = {
            "run": {
                **client.describe(),
                "chat": cfg.chat,
                "method": cfg.method,
                "shots": cfg.shots,
                "judge": judge_client.name if judge_client else None,
                "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            },
            "tasks": {},
        }
        for task in tasks:
            entry = _score_task(task, samples[task.name], per_task[task.name], answered, env, out, client)
            results["tasks"][task.name] = entry
            console.print(f"{task.name}: {shown_metrics(entry)}", highlight=False)
        results["run"]["seconds"] = round(time.time() - started, 1)
        save_results(out, results, console)
        from llmworks.eval.report import write_report

        write_report(out)
        console.print(f"results: {out / 'results.json'}\nreport:  {out / 'report.html'}")
        return out
    except RequestFailed as e:
        raise stopped(e, cache) from None
    finally:
        cache.close()
        getattr(score, "close", lambda: None)()
        if own_client:
            client.close()
        if judge_client:
            judge_client.close()


def run_requests(
    client: Client,
    requests: list[Request],
    cache: Cache,
    concurrency: int,
    console: Console | None = None,
    score: Scorer | None = None,
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
            scores = (score or client.loglikelihood)([(r.prompt, r.continuation) for _, r in chunk])  # type: ignore[misc]
            if scores is None:
                raise UserError(
                    f"{client.name} cannot score text (no log-probs).", "Evaluate it with --method generate."
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
        if r.kind == "chat" and r.tools:
            reply = client.chat(
                r.messages, tools=r.tool_list, tool_choice=r.tool_choice, tool_grammar=r.tool_grammar, **kw
            )
            cache.put(key, answer_record(reply))
            return
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


def answer_record(reply: ChatResult) -> dict[str, Any]:
    """A reply to a request with tools, as cached and scored: content, the calls (name and arguments as the
    model wrote them) and the finish reason."""
    return {
        "content": reply.content,
        "tool_calls": [{"name": c.name, "arguments": c.arguments} for c in reply.tool_calls],
        "finish_reason": reply.finish_reason,
    }


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
    first = requests[0] if requests else []
    method = task.method or "generate"
    return {
        "kind": task.kind,
        "method": method,
        "formulation": _formulation(task, method),
        "reference": task.reference,
        "chat": _chat_used(first, env),
        "shots": env.shots,
        "harness": "llmworks",
        "n": len(samples),
        "metrics": task.aggregate(scored),
        "stderr": task.stderr(scored),
        "prompt": _first_prompt(first, env),
        "settings": task.info(),
    }


def _formulation(task: Task, method: str) -> str | None:
    if task.kind == "multiple_choice" and method == "generate":
        return "generate (options lettered, the option named in the answer)"
    return task.formulation


def _chat_used(requests: list[Request], env: Env) -> bool:
    """Whether the model saw the chat template: chat requests, or scoring under `--chat`."""
    if not requests:
        return False
    kind = requests[0].kind
    return kind == "chat" or (kind == "loglikelihood" and env.chat_scoring)


def _first_prompt(requests: list[Request], env: Env) -> dict[str, Any]:
    """The first sample's exact prompt: the text the model reads (chat: rendered by the template where it is
    visible; over HTTP the messages, which the server renders) and the continuations scored after it."""
    if not requests:
        return {}
    r = requests[0]
    if r.kind == "loglikelihood":
        contexts = list(dict.fromkeys(str(q.prompt) for q in requests))
        if len(contexts) == 1:
            return {"text": contexts[0], "continuations": [q.continuation for q in requests]}
        return {"pairs": [[q.prompt, q.continuation] for q in requests]}
    if r.kind == "chat" and r.tools:  # the client renders no tools: show what is sent
        return {"messages": r.messages, "tools": r.tool_list}
    if r.kind == "chat":
        rendered = env.render(r.messages)
        return {"text": rendered} if rendered is not None else {"messages": r.messages}
    return {"text": r.prompt}


def _scorer(client: Client, cfg: EvalConfig) -> Scorer:
    """How pairs are scored: the client's log-likelihood (over HTTP, `concurrency` scoring requests at once)."""
    from llmworks.client.http import HTTPClient

    if isinstance(client, HTTPClient):
        client.score_concurrency = cfg.concurrency
    return client.loglikelihood


def _env(cfg: EvalConfig, client: Client, judge_client: Client | None, cache: Cache, score: Scorer) -> Env:
    chat = (
        cfg.chat
        if cfg.chat is not None
        else client.render([{"role": "user", "content": "x"}]) is not None or cfg.base_url is not None
    )
    probe = [
        ("The capital of France is", " Paris")
    ]  # a server scores text if /v1/completions echoes logprobs
    if "probe" not in cache:
        cache.put("probe", score(probe) is not None)
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
        chat_scoring=cfg.chat is True,
        force=None if cfg.method == "auto" else cfg.method,
        tool_choice=cfg.tool_choice,
        # A server decides for itself (None: it does not say how).
        tool_grammar=client.server_tool_grammar if cfg.base_url is not None else cfg.tool_grammar,
    )


def _engine_opts(cfg: EvalConfig) -> dict[str, Any]:
    opts: dict[str, Any] = {"parallel": min(cfg.concurrency, 8)}  # concurrent requests share the batch
    if cfg.engine:
        opts["engine"] = cfg.engine
    if cfg.ctx:
        opts["n_ctx"] = cfg.ctx
    return opts
