"""Log-probabilities of the target tokens only. The LM head runs on the positions that carry a target,
in chunks under activation checkpointing, so the full batch x seq x vocab fp32 logits (8 x 256 x 49152 =
400 MB for SmolLM2) never exist; on chat data most positions are prompt and need no logits at all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from llmworks.train.data import IGNORE

CHUNK = 1024
"""Target positions per LM-head chunk: 1024 x 49152 fp32 = 200 MB of transient logits."""


def target_logprobs(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p of each target token, the batch row it belongs to), over the positions with a target."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    body = getattr(base, base.base_model_prefix)
    head = base.get_output_embeddings()
    kwargs = {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "position_ids")}
    hidden = body(**kwargs, use_cache=False).last_hidden_state
    cap = getattr(base.config, "final_logit_softcapping", None)  # Gemma 2/3 soft-cap their logits
    targets = batch["targets"]
    where = (targets != IGNORE).nonzero(as_tuple=True)
    h, t = hidden[where], targets[where]
    parts = []
    for i in range(0, len(t), CHUNK):
        hc, tc = h[i : i + CHUNK], t[i : i + CHUNK]
        if torch.is_grad_enabled():
            parts.append(checkpoint(_logprobs, head, hc, tc, cap, use_reentrant=False))
        else:
            parts.append(_logprobs(head, hc, tc, cap))
    logp = torch.cat(parts) if parts else hidden.new_zeros(0)
    return logp, where[0]


def _logprobs(head: Any, h: torch.Tensor, t: torch.Tensor, cap: float | None) -> torch.Tensor:
    logits = head(h).float()
    if cap:
        logits = cap * torch.tanh(logits / cap)
    return -F.cross_entropy(logits, t, reduction="none")


class TargetScorer(torch.nn.Module):
    """`target_logprobs` as a module, so accelerate can wrap it (DDP, FSDP, DeepSpeed): their gradient
    sync hooks run in the wrapper's forward, which calling the model's body and head directly would skip."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return target_logprobs(self.model, batch)


Scorer = Callable[[dict[str, torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]
"""A batch -> (target log-probs, their rows) function: a TargetScorer, bare or wrapped by accelerate."""


def sequence_logprobs(score: Scorer, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed target log-probability per batch row (DPO)."""
    logp, rows = score(batch)
    return torch.zeros(batch["input_ids"].shape[0], dtype=logp.dtype).index_add(0, rows, logp)
