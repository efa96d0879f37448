"""`llmworks train dpo`: direct preference optimisation on prompt/chosen/rejected records.

    llmworks train dpo configs/dpo.yaml

The reference model is the policy before training; its log-probabilities are computed once up front,
so no second model is kept in memory, whatever the method (LoRA, full, freeze).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from rich.console import Console

from llmworks.console import make_console
from llmworks.errors import UserError
from llmworks.models.template import ChatTemplate, no_template_error, template_from_tokenizer
from llmworks.train import data as D
from llmworks.train import run
from llmworks.train.config import DPOConfig
from llmworks.train.loop import run_loop
from llmworks.train.loss import Scorer, TargetScorer, sequence_logprobs


def main(
    cfg: DPOConfig, console: Console | None = None, on_step: Callable[[int], None] | None = None
) -> run.RunSummary:
    console = console or make_console(stderr=True)
    out_dir = run.start(cfg, "dpo", console)
    model, tokenizer, source, hf_dir = run.build_model(cfg, console)
    template = template_from_tokenizer(tokenizer, f"tokenizer of {hf_dir.name}")
    train, val, stats = build_data(cfg, tokenizer, template, console)
    objective = DPOLoss(cfg.beta, tokenizer.pad_token_id or 0)
    objective.add_reference(model, [*train, *val], cfg.batch_size)
    result = run_loop(cfg, model, train, val, objective, out_dir, console, on_step)
    return run.save_outputs(cfg, "dpo", model, tokenizer, source, hf_dir, result, stats, None, None, console)


@dataclass
class Pair:
    chosen: D.Sample
    rejected: D.Sample
    ref_chosen: float = 0.0
    ref_rejected: float = 0.0


def build_data(
    cfg: DPOConfig, tokenizer: Any, template: ChatTemplate | None, console: Console
) -> tuple[list[Pair], list[Pair], D.DataStats]:
    if template is None:
        raise no_template_error(cfg.model or "the embedded default")
    fill = {"model_name": cfg.model_name, "model_author": cfg.model_author}
    stats = D.DataStats()
    pairs = encode_pairs(D.read_specs(cfg.data, cfg.seed, fill), tokenizer, template, cfg.max_seq_len, stats)
    if cfg.val_data:
        val = encode_pairs(
            D.read_specs(cfg.val_data, cfg.seed, fill), tokenizer, template, cfg.max_seq_len, D.DataStats()
        )
        train = pairs
    else:
        train, val = D.split_val(pairs, cfg.val_ratio, cfg.seed)
    if not train:
        raise UserError(
            f"no preference pairs left from {', '.join(cfg.data)} ({stats.records} records).",
            "Give records with prompt, chosen and rejected, and a max_seq_len that fits them.",
        )
    run.report_data(stats, len(train), len(val), cfg, console)
    return train, val, stats


class DPOLoss:
    """-log σ(β · ((π_c − ref_c) − (π_r − ref_r))), summed over pairs; the loop averages per pair."""

    def __init__(self, beta: float, pad_id: int) -> None:
        self.beta, self.pad_id = beta, pad_id

    def add_reference(self, model: Any, pairs: Sequence[Pair], batch_size: int) -> None:
        model.eval()
        score = TargetScorer(model)
        with torch.no_grad():
            for i in range(0, len(pairs), batch_size):
                chunk = pairs[i : i + batch_size]
                logp = self._logps(score, chunk)
                for j, p in enumerate(chunk):
                    p.ref_chosen, p.ref_rejected = logp[j].item(), logp[len(chunk) + j].item()
        model.train()

    def count(self, items: Sequence[Pair]) -> int:
        return len(items)

    def loss(self, score: Scorer, items: Sequence[Pair]) -> tuple[torch.Tensor, int]:
        logp = self._logps(score, items)
        n = len(items)
        ref = torch.tensor([p.ref_chosen - p.ref_rejected for p in items])
        margin = (logp[:n] - logp[n:]) - ref
        tokens = sum(len(p.chosen.input_ids) + len(p.rejected.input_ids) for p in items)
        return -F.logsigmoid(self.beta * margin).sum(), tokens

    def _logps(self, score: Scorer, items: Sequence[Pair]) -> torch.Tensor:
        rows = [p.chosen for p in items] + [p.rejected for p in items]
        return sequence_logprobs(score, D.collate(rows, self.pad_id))


def encode_pairs(
    records: list[dict[str, Any]], tokenizer: Any, template: ChatTemplate, max_len: int, stats: D.DataStats
) -> list[Pair]:
    out = []
    stats.records += len(records)
    for n, rec in enumerate(records):
        ex = D.to_example(rec, f"preference record {n + 1}")
        if ex.rejected is None:
            raise UserError(
                f"preference record {n + 1} has no rejected reply.", "DPO needs prompt, chosen and rejected."
            )
        rejected = [*ex.messages[:-1], {"role": "assistant", "content": ex.rejected}]
        c, cut_c = D.encode_chat(ex.messages, tokenizer, template, max_len, only_last=True, tools=ex.tools)
        r, cut_r = D.encode_chat(rejected, tokenizer, template, max_len, only_last=True, tools=ex.tools)
        stats.truncated += cut_c or cut_r
        if c.n_targets == 0 or r.n_targets == 0:
            stats.dropped += 1
            continue
        stats.tokens += len(c.input_ids) + len(r.input_ids)
        stats.target_tokens += c.n_targets + r.n_targets
        out.append(Pair(c, r))
    return out
