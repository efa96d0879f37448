"""`llmworks rag ...`: knowledge bases over your documents. Each command fills its config in
`llmworks.rag.config` (`ARGS [--config FILE] [key=value ...] [--flags]`) and calls the rag functions;
heavy libraries load inside the commands, so `llmworks --help` stays fast.

    llmworks rag ingest docs/ manual.pdf --kb manual
    llmworks rag search "how do I decode DER?" --kb manual
    llmworks rag ask "How do I decode DER?" --kb manual
    llmworks rag eval qa.jsonl --kb manual -o out/rag-eval
    llmworks rag synth --kb manual -n 200 -o qa.jsonl
    llmworks rag calibrate in_scope.jsonl out_of_scope.jsonl --kb manual
    llmworks rag list | info NAME | rm NAME | rollback NAME --version N
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from llmworks.config_cli import ConfigFile, arguments, from_cli, option, split_args
from llmworks.console import make_console
from llmworks.errors import UserError
from llmworks.rag.config import (
    AskConfig,
    CalibrateConfig,
    IngestConfig,
    RagEvalConfig,
    SearchConfig,
    SynthConfig,
)

app = typer.Typer(
    name="rag",
    help="Knowledge bases: ingest documents, search them, answer with citations, refuse, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
out = make_console(highlight=False)
err = make_console(stderr=True, highlight=False)

KbDir = Annotated[str | None, option(IngestConfig, "kb_dir")]


@app.command()
def ingest(
    args: Annotated[list[str] | None, arguments(IngestConfig, "paths")] = None,
    config: ConfigFile = None,
    kb: Annotated[str | None, option(IngestConfig, "kb")] = None,
    kb_dir: KbDir = None,
    embedder: Annotated[str | None, option(IngestConfig, "embedder")] = None,
    store: Annotated[str | None, option(IngestConfig, "store")] = None,
    chunk_tokens: Annotated[int | None, option(IngestConfig, "chunk_tokens")] = None,
    overlap_tokens: Annotated[int | None, option(IngestConfig, "overlap_tokens")] = None,
    tag: Annotated[list[str] | None, option(IngestConfig, "tags", "--tag")] = None,
) -> None:
    """Parse, chunk, embed and index documents into a knowledge base (a new version; only changes embed)."""
    cfg = from_cli(
        IngestConfig, config, args, "paths", kb=kb, kb_dir=kb_dir, embedder=embedder, store=store,
        chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens, tags=tag,
    )  # fmt: skip
    from llmworks.rag.kb import KnowledgeBase

    base = KnowledgeBase(cfg.kb, cfg.kb_dir, cfg.embedder, cfg.store)
    report = base.ingest(cfg.paths, cfg.tags, cfg.chunk_tokens, cfg.overlap_tokens)
    for f, why in report.skipped:
        out.print(f"  [yellow]skipped[/] {escape(f)}: {escape(why)}")
    out.print(report.line(), markup=False)
    if report.new_version:
        cfg.save(base.paths.versions / f"{report.version:06d}.config.yaml", "llmworks rag ingest")


@app.command()
def search(
    args: Annotated[list[str] | None, arguments(SearchConfig, "query")] = None,
    config: ConfigFile = None,
    kb: Annotated[list[str] | None, option(SearchConfig, "kb")] = None,
    kb_dir: KbDir = None,
    k: Annotated[int | None, option(SearchConfig, "k", "-k")] = None,
    mode: Annotated[str | None, option(SearchConfig, "mode")] = None,
    rerank: Annotated[str | None, option(SearchConfig, "rerank")] = None,
    source: Annotated[list[str] | None, option(SearchConfig, "sources", "--source")] = None,
    tag: Annotated[list[str] | None, option(SearchConfig, "tags", "--tag")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per hit.")] = False,
) -> None:
    """Ranked chunks for a query: source, page, heading, and each retriever's score."""
    cfg = from_cli(
        SearchConfig, config, args, "query", kb=kb, kb_dir=kb_dir, k=k, mode=mode, rerank=rerank,
        sources=source, tags=tag,
    )  # fmt: skip
    from llmworks.rag.kb import search as run

    kbs = _open(cfg.kb, cfg.kb_dir, cfg.query)
    options = cfg.search_options().model_dump(exclude={"k"})
    hits = run(kbs, cfg.query, k=cfg.k, **options)
    if as_json:
        for h in hits:
            out.print(json.dumps(h.to_json(), ensure_ascii=False), markup=False)
        return
    if not hits:
        out.print("no chunks found")
    for n, h in enumerate(hits, 1):
        scores = " ".join(f"{name} {v:.3f}" for name, v in h.scores.items())
        out.print(f"[bold]{n}. {escape(h.where)}[/bold]  [dim]{h.kb}: score {h.score:.4f} ({scores})[/dim]")
        snippet = " ".join(h.text.split())
        out.print(f"   {snippet[:300]}{'…' if len(snippet) > 300 else ''}", markup=False)


@app.command()
def ask(
    args: Annotated[list[str] | None, arguments(AskConfig, "query")] = None,
    config: ConfigFile = None,
    kb: Annotated[list[str] | None, option(AskConfig, "kb")] = None,
    kb_dir: KbDir = None,
    k: Annotated[int | None, option(AskConfig, "k", "-k")] = None,
    model: Annotated[str | None, option(AskConfig, "model")] = None,
    base_url: Annotated[str | None, option(AskConfig, "base_url")] = None,
    api_key: Annotated[str | None, option(AskConfig, "api_key")] = None,
    max_tokens: Annotated[int | None, option(AskConfig, "max_tokens")] = None,
    rerank: Annotated[str | None, option(AskConfig, "rerank")] = None,
    refuse: Annotated[bool | None, option(AskConfig, "refuse")] = None,
    source: Annotated[list[str] | None, option(AskConfig, "sources", "--source")] = None,
) -> None:
    """A streamed answer with numbered citations that map to file and page (or the refusal)."""
    cfg = from_cli(
        AskConfig, config, args, "query", kb=kb, kb_dir=kb_dir, k=k, model=model, base_url=base_url,
        api_key=api_key, max_tokens=max_tokens, rerank=rerank, refuse=refuse, sources=source,
    )  # fmt: skip
    from llmworks.rag.answer import ask_stream, lazy_client

    kbs = _open(cfg.kb, cfg.kb_dir, cfg.query)
    answer, last = None, "\n"
    with lazy_client(cfg) as model:
        for ev in ask_stream(kbs, cfg.query, (), cfg, model):
            if ev.text:
                sys.stdout.write(ev.text)
                sys.stdout.flush()
                last = ev.text[-1]
            answer = ev.answer or answer
    if last != "\n":
        print()
    assert answer is not None
    if answer.refused:
        err.print(
            f"[dim](refused: P(out of scope) {answer.p_out_of_scope:.2f}; {_signals(answer.signals)})[/dim]"
        )
        return
    for s in answer.cited:
        out.print(f"[{s.n}] {s.hit.where}" + (" (attributed)" if s.attributed else ""), markup=False)
    if answer.dropped_citations:
        err.print(f"[yellow]{answer.dropped_citations} citation(s) named no source and were dropped[/yellow]")


@app.command("eval")
def eval_cmd(
    args: Annotated[list[str] | None, arguments(RagEvalConfig, "qa")] = None,
    config: ConfigFile = None,
    kb: Annotated[list[str] | None, option(RagEvalConfig, "kb")] = None,
    kb_dir: KbDir = None,
    output: Annotated[str | None, option(RagEvalConfig, "output_dir", "-o", "--output")] = None,
    k: Annotated[int | None, option(RagEvalConfig, "k", "-k")] = None,
    model: Annotated[str | None, option(RagEvalConfig, "model")] = None,
    base_url: Annotated[str | None, option(RagEvalConfig, "base_url")] = None,
    api_key: Annotated[str | None, option(RagEvalConfig, "api_key")] = None,
    judge: Annotated[str | None, option(RagEvalConfig, "judge")] = None,
    rerank: Annotated[str | None, option(RagEvalConfig, "rerank")] = None,
    answers: Annotated[bool | None, option(RagEvalConfig, "answers")] = None,
    limit: Annotated[int | None, option(RagEvalConfig, "limit")] = None,
) -> None:
    """Retrieval (hit@k, recall@k, MRR, nDCG@k; ablation), refusal P/R/F1 and answer metrics; HTML report."""
    cfg = from_cli(
        RagEvalConfig, config, args, "qa", kb=kb, kb_dir=kb_dir, output_dir=output, k=k, model=model,
        base_url=base_url, api_key=api_key, judge=judge, rerank=rerank, answers=answers, limit=limit,
    )  # fmt: skip
    if not cfg.qa:
        raise UserError("no QA file given.", "llmworks rag eval QA.jsonl --kb NAME.")
    from llmworks.rag.evaluate import format_summary, run_eval

    kbs = _open(cfg.kb, cfg.kb_dir, "x")
    run = run_eval(kbs, cfg, err)
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    for line in format_summary(results):
        out.print(line, markup=False)
    out.print(f"report: {run / 'report.html'}", markup=False)


@app.command()
def synth(
    args: Annotated[list[str] | None, arguments(SynthConfig)] = None,
    config: ConfigFile = None,
    kb: Annotated[str | None, option(SynthConfig, "kb")] = None,
    kb_dir: KbDir = None,
    n: Annotated[int | None, option(SynthConfig, "n", "-n")] = None,
    output: Annotated[str | None, option(SynthConfig, "output", "-o", "--output")] = None,
    model: Annotated[str | None, option(SynthConfig, "model")] = None,
    base_url: Annotated[str | None, option(SynthConfig, "base_url")] = None,
    api_key: Annotated[str | None, option(SynthConfig, "api_key")] = None,
    answers: Annotated[bool | None, option(SynthConfig, "answers")] = None,
) -> None:
    """Questions generated from chunks, kept when their chunk is retrieved back: eval set and SFT data."""
    cfg = from_cli(
        SynthConfig, config, args, None, kb=kb, kb_dir=kb_dir, n=n, output=output, model=model,
        base_url=base_url, api_key=api_key, answers=answers,
    )  # fmt: skip
    from llmworks.rag.answer import lazy_client
    from llmworks.rag.synth import synthesize

    (base,) = _open([cfg.kb] if cfg.kb else [], cfg.kb_dir, "x")
    with lazy_client(cfg) as model:
        report = synthesize(base, cfg, model, lambda line: err.print(line, markup=False))
    cfg.save(Path(cfg.output).with_name(Path(cfg.output).name + ".config.yaml"), "llmworks rag synth")
    out.print(report.line(), markup=False)


@app.command()
def calibrate(
    args: Annotated[
        list[str] | None,
        typer.Argument(
            help="IN_SCOPE OUT_OF_SCOPE question files, then key=value overrides.", metavar="ARGS"
        ),
    ] = None,
    config: ConfigFile = None,
    kb: Annotated[list[str] | None, option(CalibrateConfig, "kb")] = None,
    kb_dir: KbDir = None,
    relevance_check: Annotated[bool | None, option(CalibrateConfig, "relevance_check")] = None,
    model: Annotated[str | None, option(CalibrateConfig, "model")] = None,
    base_url: Annotated[str | None, option(CalibrateConfig, "base_url")] = None,
) -> None:
    """Fit the refusal decision on in-scope and out-of-scope questions; report refusal P/R/F1."""
    words, overrides = split_args(args)
    if len(words) not in (0, 2):
        raise UserError(f"expected IN_SCOPE OUT_OF_SCOPE files, got {len(words)} arguments.", "")
    files = {"in_scope": words[0], "out_of_scope": words[1]} if words else {}
    cfg = from_cli(
        CalibrateConfig, config, overrides, None, kb=kb, kb_dir=kb_dir, relevance_check=relevance_check,
        model=model, base_url=base_url, **files,
    )  # fmt: skip
    from llmworks.rag.answer import lazy_client
    from llmworks.rag.calibrate import calibrate as run

    kbs = _open(cfg.kb, cfg.kb_dir, "x")
    ask_cfg = AskConfig(model=cfg.model, base_url=cfg.base_url, api_key=cfg.api_key)
    with lazy_client(ask_cfg) as model:
        model_fit = run(kbs, cfg, model)
    cv = model_fit.metrics["cross_validated"]
    out.print(
        f"refusal ({model_fit.metrics['folds']}-fold cross-validated, {model_fit.metrics['n_in_scope']} in scope, "
        f"{model_fit.metrics['n_out_of_scope']} out of scope): precision {cv['precision']:.3f}, "
        f"recall {cv['recall']:.3f}, F1 {cv['f1']:.3f}; features {', '.join(model_fit.features)}; "
        f"saved to {', '.join(str(kb.paths.refusal) for kb in kbs)}",
        markup=False,
    )


@app.command("list")
def list_cmd(kb_dir: KbDir = None) -> None:
    """The knowledge bases, with their version and size."""
    from llmworks.rag.kb import KnowledgeBase, list_knowledge_bases

    names = list_knowledge_bases(kb_dir)
    if not names:
        out.print("no knowledge bases yet: llmworks rag ingest PATH --kb NAME")
    for name in names:
        i = KnowledgeBase(name, kb_dir).info()
        out.print(
            f"{name}: version {i['version']}, {i['files']} files, {i['chunks']} chunks, store {i['store']}, "
            f"embedder {i['embedder']}"
        )


@app.command()
def info(
    name: Annotated[str, typer.Argument(help="The knowledge base.")],
    kb_dir: KbDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Everything, as JSON.")] = False,
) -> None:
    """A knowledge base's settings, versions and sources."""
    from llmworks.rag.kb import KnowledgeBase

    i = KnowledgeBase(name, kb_dir).info()
    if as_json:
        out.print(json.dumps(i, indent=2, ensure_ascii=False))
        return
    out.print(f"[bold]{i['name']}[/bold] ({escape(i['dir'])})")
    for key in ("embedder", "dim", "store", "chunk_tokens", "overlap_tokens", "files", "chunks", "pages"):
        out.print(f"  {key}: {i[key]}", markup=False)
    out.print(f"  disk: {i['disk_bytes'] / 2**20:.1f} MiB; refusal calibrated: {i['refusal_calibrated']}")
    out.print("  versions:")
    for v in i["versions"]:
        mark = "*" if v["current"] else " "
        out.print(
            f"   {mark}{v['version']:>3}  {v['created']}  {v['files']} files, {v['chunks']} chunks  {v['note']}",
            markup=False,
        )


@app.command()
def rm(
    name: Annotated[str, typer.Argument(help="The knowledge base to delete.")],
    kb_dir: KbDir = None,
) -> None:
    """Delete a knowledge base (its directory and its store's data)."""
    from llmworks.rag.kb import KnowledgeBase

    KnowledgeBase(name, kb_dir).remove()
    out.print(f"removed {name}")


@app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="The knowledge base.")],
    version: Annotated[int, typer.Option("--version", help="The version to return to.")],
    kb_dir: KbDir = None,
) -> None:
    """Return to an earlier version (as a new version: history is kept)."""
    from llmworks.rag.kb import KnowledgeBase

    report = KnowledgeBase(name, kb_dir).rollback(version)
    out.print(f"{name}: version {report.version} = version {version} ({report.chunks} chunks)")


def _open(names: list[str], kb_dir: str | None, query: str) -> list[Any]:
    from llmworks.rag.kb import KnowledgeBase

    if not names:
        raise UserError("no knowledge base given.", "Name one with --kb NAME (repeat it for several).")
    if not query.strip():
        raise UserError("no query given.", 'Put the question in quotes: llmworks rag ask "..." --kb NAME.')
    kbs = [KnowledgeBase(n, kb_dir) for n in names]
    for kb in kbs:
        kb.meta  # noqa: B018 - a missing or corrupt knowledge base is an error now, with the list of those that exist
    return kbs


def _signals(signals: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in signals.items())
