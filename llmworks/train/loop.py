"""The training loop shared by sft, dpo and pretrain: AdamW + warm-up/cosine, gradient accumulation,
progress bar, metrics JSONL, checkpoints (atomic), exact resume, and a checkpoint on Ctrl-C.

A step's data is a pure function of (seed, step) and the RNG state is checkpointed, so a resumed run
reproduces the uninterrupted loss curve.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from llmworks.train.config import TrainConfig
from llmworks.train.data import micro_batches


class Objective(Protocol):
    def count(self, items: Sequence[Any]) -> int:
        """What the loss is averaged over (target tokens, pairs)."""

    def loss(self, model: Any, items: Sequence[Any]) -> tuple[torch.Tensor, int]:
        """(summed loss, input tokens processed)."""


@dataclass
class LoopResult:
    steps: int
    metrics: list[dict[str, Any]] = field(default_factory=list)
    train_loss: float = math.nan
    eval_loss: float | None = None


def total_steps(cfg: TrainConfig, n_items: int) -> int:
    if cfg.max_steps:
        return cfg.max_steps
    per_step = cfg.batch_size * cfg.grad_accum
    return max(1, math.ceil(cfg.epochs * n_items / per_step))


def run_loop(
    cfg: TrainConfig,
    model: Any,
    train: Sequence[Any],
    val: Sequence[Any],
    objective: Objective,
    out_dir: Path,
    console: Console,
    on_step: Callable[[int], None] | None = None,
) -> LoopResult:
    from transformers import get_cosine_schedule_with_warmup

    steps = total_steps(cfg, len(train))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(cfg.warmup_ratio * steps), steps)
    result = LoopResult(steps)
    start = 0
    if cfg.resume:
        start, result.metrics = load_checkpoint(out_dir, model, optimizer, scheduler, console)
    batches = micro_batches(len(train), cfg.batch_size, cfg.seed, start=start * cfg.grad_accum)

    stop = _StopFlag()
    model.train()
    with stop, _progress(console) as bar:
        task = bar.add_task("train", total=steps, completed=start, loss=math.nan, lr=0.0, tps=0.0)
        for step in range(start + 1, steps + 1):
            t0 = time.perf_counter()
            micro = [[train[i] for i in next(batches)] for _ in range(cfg.grad_accum)]
            denom = max(1, sum(objective.count(m) for m in micro))
            loss_sum, tokens = 0.0, 0
            for m in micro:
                loss, n_tok = objective.loss(model, m)
                (loss / denom).backward()
                loss_sum += loss.item()
                tokens += n_tok
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            dt = time.perf_counter() - t0
            row = {"step": step, "loss": loss_sum / denom, "lr": lr, "tokens": tokens, "tok_s": tokens / dt}
            result.train_loss = row["loss"]
            bar.update(task, completed=step, loss=row["loss"], lr=lr, tps=row["tok_s"])
            if cfg.eval_steps and step % cfg.eval_steps == 0 and val and step != steps:
                row["eval_loss"] = evaluate(model, val, objective, cfg.batch_size)
            if step % cfg.logging_steps == 0 or step == steps or "eval_loss" in row:
                result.metrics.append(row)
                write_metrics(out_dir, result.metrics)
            if on_step is not None:
                on_step(step)
            if (cfg.save_steps and step % cfg.save_steps == 0) or stop.requested:
                save_checkpoint(out_dir, step, model, optimizer, scheduler, result.metrics)
            if stop.requested:
                console.print(f"interrupted: checkpoint saved at step {step}; continue with resume=true")
                raise KeyboardInterrupt
    if val:
        result.eval_loss = evaluate(model, val, objective, cfg.batch_size)
        result.metrics.append({"step": steps, "eval_loss": result.eval_loss})
        write_metrics(out_dir, result.metrics)
    return result


def evaluate(model: Any, items: Sequence[Any], objective: Objective, batch_size: int) -> float:
    """Mean loss over `items` (no dropout, no gradients)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(items), batch_size):
            chunk = items[i : i + batch_size]
            total += objective.loss(model, chunk)[0].item()
            count += objective.count(chunk)
    model.train(was_training)
    return total / max(count, 1)


# -- checkpoints -------------------------------------------------------------------------------------


def save_checkpoint(
    out_dir: Path, step: int, model: Any, optimizer: Any, scheduler: Any, metrics: list[dict[str, Any]]
) -> Path:
    """checkpoints/step-N/state.pt: trainable weights, optimizer, schedule, RNG states; written atomically."""
    state = {
        "step": step,
        "trainable": {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()},
        "metrics": metrics,
    }
    root = out_dir / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    torch.save(state, tmp / "state.pt")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in sorted(root.glob("step-*"))[:-2]:  # keep the newest two
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(
    out_dir: Path, model: Any, optimizer: Any, scheduler: Any, console: Console
) -> tuple[int, list[dict[str, Any]]]:
    found = sorted((out_dir / "checkpoints").glob("step-*"))
    if not found:
        console.print(
            f"[yellow]resume=true but no checkpoint in {out_dir}/checkpoints: starting fresh[/yellow]"
        )
        return 0, []
    state = torch.load(found[-1] / "state.pt", weights_only=False)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    np.random.set_state(state["rng"]["numpy"])
    console.print(f"resuming from {found[-1].name}")
    return int(state["step"]), list(state["metrics"])


def write_metrics(out_dir: Path, metrics: list[dict[str, Any]]) -> None:
    atomic_write(out_dir / "metrics.jsonl", "".join(json.dumps(m) + "\n" for m in metrics))


def atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


# -- helpers -----------------------------------------------------------------------------------------


class _StopFlag:
    """The first Ctrl-C asks the loop to checkpoint and stop after the current step; a second one kills."""

    requested = False

    def __enter__(self) -> _StopFlag:
        self._old = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGINT, self._old)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  lr {task.fields[lr]:.2e}  {task.fields[tps]:.0f} tok/s"),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )
