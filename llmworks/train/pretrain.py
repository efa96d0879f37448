"""`llmworks train pretrain`: continued pre-training on plain text; every token is a target.

    llmworks train pretrain configs/pretrain.yaml

Data: .txt files (paragraphs split by blank lines) or record files with a `text` field. With packing
(the default) all documents form one EOS-separated stream cut into rows of max_seq_len.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console

from llmworks.console import make_console
from llmworks.errors import UserError
from llmworks.train import data as D
from llmworks.train import run
from llmworks.train.config import PretrainConfig
from llmworks.train.loop import run_loop
from llmworks.train.sft import TokenLoss


def main(
    cfg: PretrainConfig, console: Console | None = None, on_step: Callable[[int], None] | None = None
) -> run.RunSummary:
    console = console or make_console(stderr=True)
    out_dir = run.start(cfg, "pretrain", console)
    model, tokenizer, source, hf_dir = run.build_model(cfg, console)
    train, val, stats = build_data(cfg, tokenizer, console)
    objective = TokenLoss(tokenizer.pad_token_id or 0)
    before = run.guard_perplexity(cfg, model, tokenizer, objective, console, "before")
    guard_before = run.guard_eval(cfg, hf_dir, "before", console)
    result = run_loop(cfg, model, train, val, objective, out_dir, console, on_step)
    after = run.guard_perplexity(cfg, model, tokenizer, objective, console, "after")
    return run.save_outputs(
        cfg, "pretrain", model, tokenizer, source, hf_dir, result, stats, before, after, console, guard_before
    )


def build_data(
    cfg: PretrainConfig, tokenizer: Any, console: Console
) -> tuple[list[D.Sample], list[D.Sample], D.DataStats]:
    docs = _texts(
        D.read_specs(cfg.data, cfg.seed, {"model_name": cfg.model_name, "model_author": cfg.model_author})
    )
    if not docs:
        raise UserError(
            f"no text found in {', '.join(cfg.data)}.", "Give .txt files or records with a text field."
        )
    stats = D.DataStats(records=len(docs))
    # With packing, documents are cut into rows below, so only the unpacked path truncates.
    limit = 10**9 if cfg.packing else cfg.max_seq_len
    samples = []
    for t in docs:
        s, cut = D.encode_text(t, tokenizer, limit)
        stats.truncated += cut
        stats.tokens += len(s.input_ids)
        stats.target_tokens += s.n_targets
        samples.append(s)
    if cfg.val_data:
        val = [
            D.encode_text(t, tokenizer, limit)[0] for t in _texts(D.read_specs(cfg.val_data, cfg.seed, {}))
        ]
        train = samples
    else:
        train, val = D.split_val(samples, cfg.val_ratio, cfg.seed)
    if cfg.packing:
        train, val = D.chunk_stream(train, cfg.max_seq_len), D.chunk_stream(val, cfg.max_seq_len)
    run.report_data(stats, len(train), len(val), cfg, console)
    return train, val, stats


def _texts(records: list[dict[str, Any]]) -> list[str]:
    out = []
    for n, rec in enumerate(records):
        text = rec.get("text")
        if not isinstance(text, str):
            raise UserError(
                f"text record {n + 1} has no `text` string.", "Pretraining records need a text field."
            )
        if text.strip():
            out.append(text)
    return out
