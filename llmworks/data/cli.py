"""`llmworks data ...`: the data stage's commands. Each is a thin wrapper over a function of the same name.

Every command takes `ARGS [--config FILE] [key=value ...] [--flags]`, filling its config in
`llmworks.data.config`; a command that writes data saves that config beside its output (OUTPUT.config.yaml,
or DIR/config.yaml). Heavy libraries are imported inside the commands, so `llmworks --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmworks.config_cli import ConfigFile, arguments, from_cli, option, save_beside
from llmworks.data.config import (
    AnnotateConfig,
    CleanConfig,
    ConvertConfig,
    MixConfig,
    PairsConfig,
    ParseConfig,
    SelfcogConfig,
    SelfInstructConfig,
    StatsConfig,
    config_path,
)

app = typer.Typer(
    name="data",
    help="Data: parse documents, convert formats, clean, stats, synthesize, mix, annotate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
synth_app = typer.Typer(
    help="Synthesize training data: selfcog, self-instruct, pairs, tool-calls.", no_args_is_help=True
)
app.add_typer(synth_app, name="synth")
out = Console(highlight=False, soft_wrap=True)  # paths and file:line stay on one line


def _problems(lines: list[str], total: int) -> None:
    for line in lines:
        out.print(f"  [yellow]skipped[/] {line}")
    if total > len(lines):
        out.print(f"  ... and {total - len(lines)} more")


@app.command()
def parse(
    args: Annotated[list[str] | None, arguments(ParseConfig, "paths")] = None,
    config: ConfigFile = None,
    output: Annotated[Path | None, option(ParseConfig, "output", "-o", "--output")] = None,
    engine: Annotated[str | None, option(ParseConfig, "engine")] = None,
) -> None:
    """Parse PDF, DOCX, HTML, Markdown, TXT and record files into text records."""
    from llmworks.data.parse import parse_to_jsonl

    cfg = from_cli(ParseConfig, config, args, "paths", output=output, engine=engine)
    assert cfg.output is not None
    output = cfg.output
    r = parse_to_jsonl(cfg.paths, output, cfg.engine)  # type: ignore[arg-type]
    save_beside(cfg, config_path(output), "llmworks data parse")
    for f, reason in r.skipped:
        out.print(f"  [yellow]skipped[/] {f}: {reason}")
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(r.by_format.items()))
    out.print(
        f"parsed {r.files} files -> {r.records} records ({kinds}) in {output}; "
        f"{len(r.skipped)} skipped, {r.empty_pages} empty pages"
        + (" (no text layer: try --engine docling for OCR)" if r.empty_pages else "")
    )


@app.command()
def convert(
    args: Annotated[list[str] | None, arguments(ConvertConfig, "src")] = None,
    config: ConfigFile = None,
    output: Annotated[Path | None, option(ConvertConfig, "output", "-o", "--output")] = None,
    to: Annotated[str | None, option(ConvertConfig, "to")] = None,
    strict: Annotated[bool | None, option(ConvertConfig, "strict")] = None,
) -> None:
    """Convert between alpaca, sharegpt, messages and preference records, validating every one."""
    from llmworks.data.convert import convert as run

    cfg = from_cli(ConvertConfig, config, args, "src", output=output, to=to, strict=strict)
    assert cfg.src is not None and cfg.output is not None
    output, to = cfg.output, cfg.to
    r = run(cfg.src, output, to, cfg.strict)  # type: ignore[arg-type]
    save_beside(cfg, config_path(output), "llmworks data convert")
    _problems(r.problems, r.skipped)
    found = ", ".join(f"{k} {v}" for k, v in r.detected.most_common())
    out.print(f"wrote {r.written} {to} records to {output} (read: {found}); skipped {r.skipped} malformed")


@app.command()
def clean(
    args: Annotated[list[str] | None, arguments(CleanConfig, "src")] = None,
    config: ConfigFile = None,
    output: Annotated[Path | None, option(CleanConfig, "output", "-o", "--output")] = None,
    removed: Annotated[Path | None, option(CleanConfig, "removed")] = None,
    min_chars: Annotated[int | None, option(CleanConfig, "min_chars")] = None,
    max_chars: Annotated[int | None, option(CleanConfig, "max_chars")] = None,
    lang: Annotated[str | None, option(CleanConfig, "languages", "--lang", "--languages")] = None,
    max_repetition: Annotated[float | None, option(CleanConfig, "max_repetition")] = None,
    near_threshold: Annotated[float | None, option(CleanConfig, "near_threshold")] = None,
    pii: Annotated[bool | None, option(CleanConfig, "mask_pii", "--mask-pii/--no-pii")] = None,
    exact: Annotated[bool | None, option(CleanConfig, "exact_dedupe", "--exact/--no-exact")] = None,
    near: Annotated[bool | None, option(CleanConfig, "near_dedupe", "--near/--no-near")] = None,
    workers: Annotated[int | None, option(CleanConfig, "workers")] = None,
) -> None:
    """Dedupe (exact and MinHash near), filter by length/language/repetition, and mask PII."""
    from llmworks.data.clean import clean as run

    cfg = from_cli(
        CleanConfig, config, args, "src",
        output=output, removed=removed, min_chars=min_chars, max_chars=max_chars, languages=lang,
        max_repetition=max_repetition, near_threshold=near_threshold, mask_pii=pii, exact_dedupe=exact,
        near_dedupe=near, workers=workers,
    )  # fmt: skip
    assert cfg.src is not None and cfg.output is not None
    src, output, removed = cfg.src, cfg.output, cfg.removed
    r = run(src, output, cfg, removed)
    save_beside(cfg, config_path(output), "llmworks data clean")
    table = Table(title=f"clean {src.name}")
    for col in ("rule", "checked", "removed", "masked", "left"):
        table.add_column(col, justify="left" if col == "rule" else "right")
    left = r.records_in
    for rule, c in r.rules.items():
        if c.checked:
            left -= c.removed
            table.add_row(
                rule, str(c.checked), str(c.removed), str(c.changed) if rule == "pii" else "", str(left)
            )
    out.print(table)
    out.print(f"{r.records_in} records in, {r.records_out} out -> {output}"
              + (f"; {r.malformed} malformed lines skipped" if r.malformed else "")
              + (f"; removed records in {removed}" if removed else ""))  # fmt: skip


@app.command()
def stats(
    args: Annotated[list[str] | None, arguments(StatsConfig, "files")] = None,
    config: ConfigFile = None,
    tokenizer: Annotated[str | None, option(StatsConfig, "tokenizer")] = None,
    max_length: Annotated[int | None, option(StatsConfig, "max_length")] = None,
    plot: Annotated[Path | None, option(StatsConfig, "plot")] = None,
    compare_tokenizers: Annotated[str | None, option(StatsConfig, "compare_tokenizers")] = None,
    as_json: Annotated[bool | None, option(StatsConfig, "as_json", "--json")] = None,
) -> None:
    """Token-length statistics of a data file, or a tokenizer comparison table."""
    from llmworks.data.stats import compare_tokenizers as compare
    from llmworks.data.stats import data_stats
    from llmworks.data.tokenizers import load_tokenizer

    cfg = from_cli(
        StatsConfig, config, args, "files",
        tokenizer=tokenizer, max_length=max_length, plot=plot, compare_tokenizers=compare_tokenizers,
        as_json=as_json,
    )  # fmt: skip
    files, tokenizer, max_length, as_json = cfg.files, cfg.tokenizer, cfg.max_length, cfg.as_json
    if cfg.compare_tokenizers:
        toks = [load_tokenizer(s) for s in cfg.compare_tokenizers]
        rows = compare(toks, list(files))
        if as_json:
            out.print_json(json.dumps([r.__dict__ for r in rows]))
            return
        table = Table(title="tokenizers")
        table.add_column("tokenizer")
        table.add_column("vocab", justify="right")
        names = list(rows[0].per_file)
        for n in names:
            table.add_column(f"{n} chars/tok", justify="right")
            table.add_column(f"{n} bytes/tok", justify="right")
        for r in rows:
            cells = [f"{r.per_file[n][k]:.2f}" for n in names for k in ("chars_per_token", "bytes_per_token")]
            table.add_row(r.tokenizer, str(r.vocab_size), *cells)
        out.print(table)
        return
    assert tokenizer is not None and len(files) == 1  # checked by StatsConfig
    src = files[0]
    st = data_stats(
        src, load_tokenizer(tokenizer), max_length, cfg.plot or src.with_name(src.name + ".lengths.png")
    )
    if as_json:
        out.print_json(json.dumps(st.as_dict()))
        return
    table = Table(title=f"{src.name} ({tokenizer})")
    table.add_column("stat")
    table.add_column("value", justify="right")
    rows = [("records", st.records), ("formats", ", ".join(f"{k} {v}" for k, v in st.formats.items())),
            ("turns / record", st.turns_mean), ("tokens p50", st.tokens_p50), ("tokens p90", st.tokens_p90),
            ("tokens max", st.tokens_max), ("tokens total", st.tokens_total)]  # fmt: skip
    if max_length:
        rows.append((f"share over {max_length}", f"{100 * (st.over_max_length or 0):.1f}%"))
    if st.malformed:
        rows.append(("malformed lines", st.malformed))
    for k, v in rows:
        table.add_row(k, str(v))
    out.print(table)
    out.print(f"histogram: {st.plot}")


@app.command()
def mix(
    args: Annotated[list[str] | None, arguments(MixConfig, "specs")] = None,
    config: ConfigFile = None,
    output: Annotated[Path | None, option(MixConfig, "output", "-o", "--output")] = None,
    val: Annotated[float | None, option(MixConfig, "val")] = None,
    seed: Annotated[int | None, option(MixConfig, "seed")] = None,
) -> None:
    """Mix sources (e.g. task data with general data) into a shuffled train/val split with a manifest."""
    from llmworks.data.mix import mix as run

    cfg = from_cli(MixConfig, config, args, "specs", output=output, val=val, seed=seed)
    assert cfg.output is not None
    output = cfg.output
    r = run(cfg.specs, output, cfg.val, cfg.seed)
    save_beside(cfg, output / "config.yaml", "llmworks data mix")
    table = Table(title=f"mix -> {output}")
    for col in ("source", "available", "taken", "malformed"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for s in r.sources:
        table.add_row(s.spec, str(s.available), str(s.taken), str(s.malformed))
    out.print(table)
    out.print(f"train {r.train}, val {r.val}; manifest: {Path(output) / 'manifest.json'}")


@app.command()
def annotate(
    args: Annotated[list[str] | None, arguments(AnnotateConfig, "src")] = None,
    config: ConfigFile = None,
    output_dir: Annotated[Path | None, option(AnnotateConfig, "output_dir", "-o", "--output-dir")] = None,
    host: Annotated[str | None, option(AnnotateConfig, "host")] = None,
    port: Annotated[int | None, option(AnnotateConfig, "port")] = None,
) -> None:
    """A local web page to edit SFT records and rank responses into preference JSONL."""
    from llmworks.data.annotate.server import default_out_dir, serve
    from llmworks.data.io import check_exists

    cfg = from_cli(AnnotateConfig, config, args, "src", output_dir=output_dir, host=host, port=port)
    assert cfg.src is not None
    check_exists([cfg.src])
    cfg.output_dir = cfg.output_dir or default_out_dir(cfg.src)
    save_beside(cfg, cfg.output_dir / "config.yaml", "llmworks data annotate")
    serve(cfg.src, cfg.output_dir, cfg.host, cfg.port)


# -- synth ----------------------------------------------------------------------------------------


@synth_app.command("selfcog")
def synth_selfcog(
    overrides: Annotated[list[str] | None, arguments(SelfcogConfig)] = None,
    config: ConfigFile = None,
    name: Annotated[str | None, option(SelfcogConfig, "name")] = None,
    author: Annotated[str | None, option(SelfcogConfig, "author")] = None,
    output: Annotated[Path | None, option(SelfcogConfig, "output", "-o", "--output")] = None,
    lang: Annotated[str | None, option(SelfcogConfig, "languages", "--lang", "--languages")] = None,
    per_question: Annotated[int | None, option(SelfcogConfig, "per_question")] = None,
    seed: Annotated[int | None, option(SelfcogConfig, "seed")] = None,
) -> None:
    """Identity questions and answers ("who are you", "who made you") with the name filled in."""
    from llmworks.data.io import write_jsonl
    from llmworks.data.synth.selfcog import selfcog_records

    cfg = from_cli(
        SelfcogConfig, config, overrides,
        name=name, author=author, output=output, languages=lang, per_question=per_question, seed=seed,
    )  # fmt: skip
    assert cfg.name is not None and cfg.author is not None and cfg.output is not None
    records = selfcog_records(cfg.name, cfg.author, tuple(cfg.languages), cfg.per_question, cfg.seed)
    n = write_jsonl(cfg.output, records)
    save_beside(cfg, config_path(cfg.output), "llmworks data synth selfcog")
    out.print(f"wrote {n} self-cognition records to {cfg.output}")


@synth_app.command("self-instruct")
def synth_self_instruct(
    overrides: Annotated[list[str] | None, arguments(SelfInstructConfig)] = None,
    config: ConfigFile = None,
    seeds: Annotated[Path | None, option(SelfInstructConfig, "seeds")] = None,
    output: Annotated[Path | None, option(SelfInstructConfig, "output", "-o", "--output")] = None,
    n: Annotated[int | None, option(SelfInstructConfig, "n", "-n")] = None,
    model: Annotated[str | None, option(SelfInstructConfig, "model")] = None,
    base_url: Annotated[str | None, option(SelfInstructConfig, "base_url")] = None,
    max_rouge: Annotated[float | None, option(SelfInstructConfig, "max_rouge")] = None,
    max_attempts: Annotated[int | None, option(SelfInstructConfig, "max_attempts")] = None,
    seed: Annotated[int | None, option(SelfInstructConfig, "seed")] = None,
) -> None:
    """New instruction/response pairs from seed tasks (Self-Instruct), filtered by ROUGE-L and format checks."""
    from llmworks.client import make_client
    from llmworks.data.io import JsonlWriter
    from llmworks.data.progress import advance, progress
    from llmworks.data.synth.prompts import read_tasks
    from llmworks.data.synth.self_instruct import SelfInstructReport, self_instruct

    cfg = from_cli(
        SelfInstructConfig, config, overrides,
        seeds=seeds, output=output, n=n, model=model, base_url=base_url, max_rouge=max_rouge,
        max_attempts=max_attempts, seed=seed,
    )  # fmt: skip
    assert cfg.seeds is not None and cfg.output is not None
    output = cfg.output
    tasks = read_tasks(cfg.seeds)
    report = SelfInstructReport()
    with (
        make_client(cfg.model, cfg.base_url) as client,
        JsonlWriter(output, "new tasks") as w,
        progress("self-instruct", cfg.n, unit="items") as bar,
    ):
        w.empty_reason = "every candidate was rejected"
        for task in self_instruct(client, tasks, cfg.n, report, cfg.max_rouge, cfg.max_attempts, cfg.seed):
            w.write(task)
            advance(bar)
    save_beside(cfg, config_path(output), "llmworks data synth self-instruct")
    rejected = ", ".join(f"{k} {v}" for k, v in report.rejected.most_common()) or "none"
    out.print(
        f"wrote {report.accepted} tasks to {output} in {report.attempts} attempts; rejected: {rejected}"
    )


@synth_app.command("pairs")
def synth_pairs(
    overrides: Annotated[list[str] | None, arguments(PairsConfig)] = None,
    config: ConfigFile = None,
    prompts: Annotated[Path | None, option(PairsConfig, "prompts")] = None,
    output: Annotated[Path | None, option(PairsConfig, "output", "-o", "--output")] = None,
    k: Annotated[int | None, option(PairsConfig, "k", "-k")] = None,
    model: Annotated[str | None, option(PairsConfig, "model")] = None,
    base_url: Annotated[str | None, option(PairsConfig, "base_url")] = None,
    temperature: Annotated[float | None, option(PairsConfig, "temperature")] = None,
    max_tokens: Annotated[int | None, option(PairsConfig, "max_tokens")] = None,
    seed: Annotated[int | None, option(PairsConfig, "seed")] = None,
) -> None:
    """k sampled responses per prompt, ready to rank with `llmworks data annotate`."""
    from llmworks.client import make_client
    from llmworks.data.io import JsonlWriter
    from llmworks.data.progress import advance, progress
    from llmworks.data.synth.pairs import sample_pairs
    from llmworks.data.synth.prompts import read_prompts

    cfg = from_cli(
        PairsConfig, config, overrides,
        prompts=prompts, output=output, k=k, model=model, base_url=base_url, temperature=temperature,
        max_tokens=max_tokens, seed=seed,
    )  # fmt: skip
    assert cfg.prompts is not None and cfg.output is not None
    output, k = cfg.output, cfg.k
    with (
        make_client(cfg.model, cfg.base_url) as client,
        JsonlWriter(output, "prompts") as w,
        progress(f"pairs (k={k})", None, unit="items") as bar,
    ):
        records = sample_pairs(
            client, read_prompts(cfg.prompts), k, cfg.temperature, cfg.max_tokens, cfg.seed
        )
        for rec in records:
            w.write(rec)
            advance(bar)
    save_beside(cfg, config_path(output), "llmworks data synth pairs")
    out.print(f"wrote {w.count} prompts x {k} responses to {output}")
