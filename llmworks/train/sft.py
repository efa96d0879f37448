"""`llmworks train sft`: supervised fine-tuning on chat data with LoRA, DoRA, QLoRA, full or freeze.

    llmworks train sft configs/demo-sft.yaml
    llmworks train sft data=my.jsonl method=dora lora_rank=16 max_steps=200 output_dir=out/my-run

The loss covers every assistant turn of each conversation, including the template's end-of-turn token
(so the fine-tuned model stops), and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console

from llmworks.console import make_console
from llmworks.errors import UserError
from llmworks.models.template import ChatTemplate, no_template_error, template_from_tokenizer
from llmworks.train import data as D
from llmworks.train import run
from llmworks.train.config import SFTConfig
from llmworks.train.loop import run_loop
from llmworks.train.loss import Scorer


def main(
    cfg: SFTConfig, console: Console | None = None, on_step: Callable[[int], None] | None = None
) -> run.RunSummary:
    console = console or make_console(stderr=True)
    out_dir = run.start(cfg, "sft", console)
    model, tokenizer, source, hf_dir = run.build_model(cfg, console)
    template = template_from_tokenizer(tokenizer, f"tokenizer of {hf_dir.name}")
    train, val, stats = build_data(cfg, tokenizer, template, console)
    objective = TokenLoss(tokenizer.pad_token_id or 0)
    before = run.guard_perplexity(cfg, model, tokenizer, objective, console, "before")
    guard_before = run.guard_eval(cfg, hf_dir, "before", console)
    result = run_loop(cfg, model, train, val, objective, out_dir, console, on_step)
    after = run.guard_perplexity(cfg, model, tokenizer, objective, console, "after")
    return run.save_outputs(
        cfg, "sft", model, tokenizer, source, hf_dir, result, stats, before, after, console, guard_before
    )


def build_data(
    cfg: SFTConfig, tokenizer: Any, template: ChatTemplate | None, console: Console
) -> tuple[list[D.Sample], list[D.Sample], D.DataStats]:
    if template is None:
        raise no_template_error(cfg.model or "the embedded default")
    fill = {"model_name": cfg.model_name, "model_author": cfg.model_author}
    records = D.read_specs(cfg.data, cfg.seed, fill)
    samples, stats = D.encode_all(records, tokenizer, template, cfg.max_seq_len, "training")
    if cfg.val_data:
        val, _ = D.encode_all(
            D.read_specs(cfg.val_data, cfg.seed, fill), tokenizer, template, cfg.max_seq_len, "val"
        )
        train = samples
    else:
        train, val = D.split_val(samples, cfg.val_ratio, cfg.seed)
    if not train:
        raise UserError(
            f"no training samples left from {', '.join(cfg.data)} ({stats.records} records, "
            f"{stats.dropped} without any assistant token after truncation to {cfg.max_seq_len}).",
            "Add records with assistant replies, or raise max_seq_len.",
        )
    if cfg.packing:
        train, val = D.pack(train, cfg.max_seq_len), D.pack(val, cfg.max_seq_len)
    run.report_data(stats, len(train), len(val), cfg, console)
    return train, val, stats


class TokenLoss:
    """Summed negative log-likelihood of the target tokens; averaged over target tokens by the loop."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def count(self, items: Sequence[D.Sample]) -> int:
        return sum(s.n_targets for s in items)

    def loss(self, score: Scorer, items: Sequence[D.Sample]) -> tuple[Any, int]:
        logp, _ = score(D.collate(list(items), self.pad_id))
        return -logp.sum(), sum(len(s.input_ids) for s in items)
