"""`llmworks data ...`: the data stage's commands. Each is a thin wrapper over a function of the same name.

Heavy libraries are imported inside the commands, so `llmworks --help` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from llmworks.errors import UserError

app = typer.Typer(
    name="data",
    help="Data: parse documents, convert formats, clean, stats, synthesize, mix, annotate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
synth_app = typer.Typer(help="Synthesize training data: selfcog, self-instruct, pairs.", no_args_is_help=True)
app.add_typer(synth_app, name="synth")
out = Console(highlight=False, soft_wrap=True)  # paths and file:line stay on one line


def _problems(lines: list[str], total: int) -> None:
    for line in lines:
        out.print(f"  [yellow]skipped[/] {line}")
    if total > len(lines):
        out.print(f"  ... and {total - len(lines)} more")


@app.command()
def parse(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (searched recursively).")],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output JSONL: one record per document or page.")
    ],
    engine: Annotated[
        str,
        typer.Option(
            help="PDF parser: auto (pypdf text layer), docling or mineru (layout, tables, OCR; optional extras)."
        ),
    ] = "auto",
) -> None:
    """Parse PDF, DOCX, HTML, Markdown, TXT and record files into text records."""
    from llmworks.data.parse import parse_to_jsonl

    if engine not in ("auto", "docling", "mineru"):
        raise UserError(f"unknown --engine {engine!r}.", "Use auto, docling or mineru.")
    r = parse_to_jsonl(paths, output, engine)  # type: ignore[arg-type]
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
    src: Annotated[
        Path, typer.Argument(help="JSONL/JSON/CSV/Parquet file, or a directory saved with datasets.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL.")],
    to: Annotated[
        str, typer.Option(help="Target format: messages, alpaca, sharegpt or preference.")
    ] = "messages",
    strict: Annotated[
        bool, typer.Option(help="Stop at the first malformed record instead of skipping it.")
    ] = False,
) -> None:
    """Convert between alpaca, sharegpt, messages and preference records, validating every one."""
    from llmworks.data.convert import convert as run
    from llmworks.data.formats import FORMATS

    if to not in FORMATS:
        raise UserError(f"unknown --to {to!r}.", f"Use one of {', '.join(FORMATS)}.")
    r = run(src, output, to, strict)  # type: ignore[arg-type]
    _problems(r.problems, r.skipped)
    found = ", ".join(f"{k} {v}" for k, v in r.detected.most_common())
    out.print(f"wrote {r.written} {to} records to {output} (read: {found}); skipped {r.skipped} malformed")


@app.command()
def clean(
    src: Annotated[
        Path, typer.Argument(help="Records to clean (JSONL/JSON/CSV/Parquet or a saved dataset).")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL of the records kept.")],
    removed: Annotated[
        Path | None, typer.Option(help="Also write the removed records here, tagged by rule.")
    ] = None,
    min_chars: Annotated[
        int, typer.Option(help="Drop records shorter than this many characters (0: off).")
    ] = 10,
    max_chars: Annotated[
        int, typer.Option(help="Drop records longer than this many characters (0: off).")
    ] = 0,
    lang: Annotated[str, typer.Option(help="Keep only these languages, e.g. en,zh (empty: all).")] = "",
    max_repetition: Annotated[
        float, typer.Option(help="Drop records with a larger share of repeated 3-grams (1: off).")
    ] = 0.5,
    near_threshold: Annotated[
        float, typer.Option(help="Jaccard similarity at which records are near-duplicates.")
    ] = 0.8,
    no_pii: Annotated[
        bool, typer.Option("--no-pii", help="Do not mask e-mails, phones, ID numbers and IPs.")
    ] = False,
    no_exact: Annotated[bool, typer.Option("--no-exact", help="Skip exact deduplication.")] = False,
    no_near: Annotated[
        bool, typer.Option("--no-near", help="Skip near deduplication (MinHash LSH).")
    ] = False,
    workers: Annotated[int | None, typer.Option(help="Processes for MinHash (default: up to 2).")] = None,
) -> None:
    """Dedupe (exact and MinHash near), filter by length/language/repetition, and mask PII."""
    from llmworks.data.clean import CleanConfig
    from llmworks.data.clean import clean as run

    cfg = CleanConfig(
        mask_pii=not no_pii, min_chars=min_chars, max_chars=max_chars,
        languages=tuple(x.strip() for x in lang.split(",") if x.strip()), max_repetition=max_repetition,
        exact_dedupe=not no_exact, near_dedupe=not no_near, near_threshold=near_threshold, workers=workers,
    )  # fmt: skip
    r = run(src, output, cfg, removed)
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
    files: Annotated[
        list[Path], typer.Argument(help="A data file; or text files with --compare-tokenizers.")
    ],
    tokenizer: Annotated[
        str | None, typer.Option(help="tokenizer.json, an HF model directory, or a model name.")
    ] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Report the share of records longer than this (tokens).")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Histogram PNG path (default: <file>.lengths.png next to it).")
    ] = None,
    compare_tokenizers: Annotated[
        str | None, typer.Option(help="A,B,C: compare tokenizers on the text files.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Token-length statistics of a data file, or a tokenizer comparison table."""
    from llmworks.data.stats import compare_tokenizers as compare
    from llmworks.data.stats import data_stats
    from llmworks.data.tokenizers import load_tokenizer

    if compare_tokenizers:
        toks = [load_tokenizer(s.strip()) for s in compare_tokenizers.split(",") if s.strip()]
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
    if tokenizer is None:
        raise UserError(
            "stats needs --tokenizer (or --compare-tokenizers A,B).", "Pass a tokenizer or model."
        )
    if len(files) != 1:
        raise UserError(f"stats takes one data file, got {len(files)}.", "Run it once per file.")
    src = files[0]
    st = data_stats(
        src, load_tokenizer(tokenizer), max_length, plot or src.with_name(src.name + ".lengths.png")
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
    specs: Annotated[
        list[str], typer.Argument(help="PATH, PATH#N (N records) or PATH:W (W times the file).")
    ],
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output directory: train.jsonl, val.jsonl, manifest.json.")
    ],
    val: Annotated[float, typer.Option(help="Validation split: a share (0.05) or a count (200).")] = 0.0,
    seed: Annotated[int, typer.Option(help="Shuffle and sampling seed.")] = 42,
) -> None:
    """Mix sources (e.g. task data with general data) into a shuffled train/val split with a manifest."""
    from llmworks.data.mix import mix as run

    r = run(specs, output, val, seed)
    table = Table(title=f"mix -> {output}")
    for col in ("source", "available", "taken", "malformed"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for s in r.sources:
        table.add_row(s.spec, str(s.available), str(s.taken), str(s.malformed))
    out.print(table)
    out.print(f"train {r.train}, val {r.val}; manifest: {Path(output) / 'manifest.json'}")


@app.command()
def annotate(
    src: Annotated[
        Path, typer.Argument(help="SFT records to read and edit, or prompts with responses to rank.")
    ],
    output_dir: Annotated[
        Path | None, typer.Option("-o", "--output-dir", help="Where edits and preferences go.")
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: a free one).")] = 0,
) -> None:
    """A local web page to edit SFT records and rank responses into preference JSONL."""
    from llmworks.data.annotate.server import serve

    serve(src, output_dir, host, port)


@app.command()
def demo(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Output directory (train.jsonl, val.jsonl, manifest).")
    ],
    name: Annotated[
        str, typer.Option(help="The assistant's name for self-cognition data.")
    ] = "llmworks-demo",
    author: Annotated[str, typer.Option(help="Who made it.")] = "the llmworks team",
    tokenizer: Annotated[
        str | None, typer.Option(help="Print token stats with this tokenizer (default: skip).")
    ] = None,
    seed: Annotated[int, typer.Option()] = 42,
    distill_model: Annotated[
        str | None, typer.Option(help="Model whose own answers make the general part (default: embedded).")
    ] = None,
) -> None:
    """Build the demo training set: self-cognition, sentiment, two-turn memory and general answers, mixed."""
    from llmworks.data.builtin import build_demo_data

    build_demo_data(
        output, name, author, tokenizer=tokenizer, seed=seed, console=out, distill_model=distill_model
    )


# -- synth ----------------------------------------------------------------------------------------


@synth_app.command("selfcog")
def synth_selfcog(
    name: Annotated[str, typer.Option(help="The assistant's name.")],
    author: Annotated[str, typer.Option(help="Who made it.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL (messages).")],
    lang: Annotated[str, typer.Option(help="Languages: en, zh.")] = "en,zh",
    per_question: Annotated[int, typer.Option(help="Answer variants per question.")] = 1,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Identity questions and answers ("who are you", "who made you") with the name filled in."""
    from llmworks.data.io import write_jsonl
    from llmworks.data.synth.selfcog import selfcog_records

    langs = tuple(x.strip() for x in lang.split(",") if x.strip())
    n = write_jsonl(output, selfcog_records(name, author, langs, per_question, seed))
    out.print(f"wrote {n} self-cognition records to {output}")


@synth_app.command("self-instruct")
def synth_self_instruct(
    seeds: Annotated[
        Path, typer.Option(help="Seed tasks: alpaca/chat records, or one instruction per line.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL (instruction/input/output).")],
    n: Annotated[int, typer.Option("-n", help="New tasks to make.")] = 100,
    model: Annotated[
        str | None, typer.Option(help="Model for the in-process engine, or the name at --base-url.")
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="Any OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1.")
    ] = None,
    max_rouge: Annotated[
        float, typer.Option(help="Drop candidates with ROUGE-L above this against the pool.")
    ] = 0.7,
    max_attempts: Annotated[
        int | None, typer.Option(help="Give up after this many model calls (default 10n).")
    ] = None,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """New instruction/response pairs from seed tasks (Self-Instruct), filtered by ROUGE-L and format checks."""
    from llmworks.client import make_client
    from llmworks.data.io import JsonlWriter
    from llmworks.data.progress import advance, progress
    from llmworks.data.synth.prompts import read_tasks
    from llmworks.data.synth.self_instruct import SelfInstructReport, self_instruct

    tasks = read_tasks(seeds)
    report = SelfInstructReport()
    with (
        make_client(model, base_url) as client,
        JsonlWriter(output, "new tasks") as w,
        progress("self-instruct", n, unit="items") as bar,
    ):
        w.empty_reason = "every candidate was rejected"
        for task in self_instruct(client, tasks, n, report, max_rouge, max_attempts, seed):
            w.write(task)
            advance(bar)
    rejected = ", ".join(f"{k} {v}" for k, v in report.rejected.most_common()) or "none"
    out.print(
        f"wrote {report.accepted} tasks to {output} in {report.attempts} attempts; rejected: {rejected}"
    )


@synth_app.command("pairs")
def synth_pairs(
    prompts: Annotated[
        Path, typer.Option(help="Prompts: records with a prompt or messages, or one per line.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL: {prompt, responses}.")],
    k: Annotated[int, typer.Option("-k", help="Responses per prompt.")] = 2,
    model: Annotated[
        str | None, typer.Option(help="Model for the in-process engine, or the name at --base-url.")
    ] = None,
    base_url: Annotated[str | None, typer.Option(help="Any OpenAI-compatible server.")] = None,
    temperature: Annotated[float, typer.Option()] = 0.8,
    max_tokens: Annotated[int, typer.Option()] = 256,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """k sampled responses per prompt, ready to rank with `llmworks data annotate`."""
    from llmworks.client import make_client
    from llmworks.data.io import JsonlWriter
    from llmworks.data.progress import advance, progress
    from llmworks.data.synth.pairs import sample_pairs
    from llmworks.data.synth.prompts import read_prompts

    if k < 2:
        raise UserError(f"-k must be at least 2 to rank responses (got {k}).", "Use -k 2 or more.")
    with (
        make_client(model, base_url) as client,
        JsonlWriter(output, "prompts") as w,
        progress(f"pairs (k={k})", None, unit="items") as bar,
    ):
        for rec in sample_pairs(client, read_prompts(prompts), k, temperature, max_tokens, seed):
            w.write(rec)
            advance(bar)
    n = w.count
    out.print(f"wrote {n} prompts x {k} responses to {output}")
