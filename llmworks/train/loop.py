"""The training loop shared by sft, dpo and pretrain: AdamW + warm-up/cosine, gradient accumulation,
progress bar, metrics JSONL, checkpoints (atomic), exact resume, and a checkpoint on Ctrl-C.

A step's data is a pure function of (seed, step) and the RNG state is checkpointed, so a resumed run
reproduces the uninterrupted loss curve.
"""

from __future__ import annotations

import contextlib
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

from llmworks.atomic import atomic_write
from llmworks.errors import UserError
from llmworks.train.allocator import keep_freed_memory
from llmworks.train.config import TrainConfig
from llmworks.train.data import micro_batches
from llmworks.train.loss import Scorer, TargetScorer


class Objective(Protocol):
    def count(self, items: Sequence[Any]) -> int:
        """What the loss is averaged over (target tokens, pairs)."""

    def loss(self, score: Scorer, items: Sequence[Any]) -> tuple[torch.Tensor, int]:
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
    """Train `model` in place. Under `accelerate launch` every process runs this with the same global batch
    schedule and works on its share of each micro-batch, so the loss curve does not depend on the number of
    processes; only the main process logs and checkpoints."""
    from accelerate import Accelerator
    from transformers import get_cosine_schedule_with_warmup

    keep_freed_memory()
    acc = Accelerator(cpu=not torch.cuda.is_available())  # see run.dist_state
    world, rank = acc.num_processes, acc.process_index
    asked = [k for k in ("FSDP", "DEEPSPEED") if os.environ.get(f"ACCELERATE_USE_{k}") == "true"]
    if asked and acc.distributed_type.value == "MULTI_CPU":
        console.print(
            f"[yellow]warning: {asked[0]} needs GPUs; on this CPU the {world} processes run plain "
            "data-parallel (DDP over gloo) instead.[/yellow]"
        )
    steps = total_steps(cfg, len(train))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, round(cfg.warmup_ratio * steps), steps)
    if world > cfg.batch_size:
        raise UserError(
            f"batch_size={cfg.batch_size} is smaller than the {world} processes sharing each micro-batch.",
            f"Set batch_size to at least {world}.",
        )
    # The loss is averaged over the whole step; DeepSpeed divides by its accumulation steps once more.
    scale = float(world)
    if acc.state.deepspeed_plugin is not None:
        ds = acc.state.deepspeed_plugin.deepspeed_config  # "auto" values need a dataloader we do not use
        ds["train_micro_batch_size_per_gpu"] = max(1, cfg.batch_size // world)
        ds["gradient_accumulation_steps"] = cfg.grad_accum
        scale *= cfg.grad_accum
    # The scheduler stays outside prepare(): accelerate would step it once per process.
    scorer, optimizer = acc.prepare(TargetScorer(model), optimizer)
    result = LoopResult(steps)
    start = 0
    if cfg.resume:
        start, result.metrics = load_checkpoint(out_dir, model, optimizer, scheduler, console)
    batches = micro_batches(len(train), cfg.batch_size, cfg.seed, start=start * cfg.grad_accum)

    stop = _StopFlag()
    scorer.train()
    with stop, _progress(console) as bar:
        task = bar.add_task("train", total=steps, completed=start, loss=math.nan, lr=0.0, tps=0.0)
        started = time.perf_counter()
        for step in range(start + 1, steps + 1):
            t0 = time.perf_counter()
            micro = [[train[i] for i in next(batches)] for _ in range(cfg.grad_accum)]
            denom = max(1, sum(objective.count(m) for m in micro))
            loss_sum, tokens = 0.0, 0
            for k, m in enumerate(micro):
                mine = m[rank::world]
                # Gradients sync once per step (on the last micro-batch); DDP averages them over processes,
                # hence the factor `world`, which makes the update equal to the single-process one.
                sync = contextlib.nullcontext() if k == len(micro) - 1 else acc.no_sync(scorer)
                with sync:
                    loss, n_tok = objective.loss(scorer, mine)
                    acc.backward(loss * scale / denom)
                loss_sum += loss.item()
                tokens += n_tok
            if world > 1:
                loss_sum, tokens = (float(x) for x in acc.reduce(torch.tensor([loss_sum, tokens]), "sum"))
            if cfg.max_grad_norm > 0:
                acc.clip_grad_norm_(params, cfg.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            dt = time.perf_counter() - t0
            row = {"step": step, "loss": loss_sum / denom, "lr": lr, "tokens": tokens, "tok_s": tokens / dt}
            result.train_loss = row["loss"]
            bar.update(task, completed=step, loss=row["loss"], lr=lr, tps=row["tok_s"])
            if not console.is_terminal:  # a log gets a line now and then instead of a live bar
                _log_line(console, step, start, steps, row, time.perf_counter() - started)
            if cfg.eval_steps and step % cfg.eval_steps == 0 and val and step != steps:
                row["eval_loss"] = evaluate(scorer, val, objective, cfg.batch_size)
            if acc.is_main_process and (step % cfg.logging_steps == 0 or step == steps or "eval_loss" in row):
                result.metrics.append(row)
                write_metrics(out_dir, result.metrics)
            if on_step is not None:
                on_step(step)
            stopping = stop.requested
            if world > 1:  # every process must stop at the same step
                stopping = bool(acc.reduce(torch.tensor(int(stopping)), "sum").item())
            if acc.is_main_process and ((cfg.save_steps and step % cfg.save_steps == 0) or stopping):
                save_checkpoint(out_dir, step, model, optimizer, scheduler, result.metrics)
            if stopping:
                acc.wait_for_everyone()
                console.print(f"interrupted: checkpoint saved at step {step}; continue with resume=true")
                raise KeyboardInterrupt
    if val:
        result.eval_loss = evaluate(scorer, val, objective, cfg.batch_size)
        result.metrics.append({"step": steps, "eval_loss": result.eval_loss})
        if acc.is_main_process:
            write_metrics(out_dir, result.metrics)
    acc.wait_for_everyone()
    return result


def evaluate(score: Any, items: Sequence[Any], objective: Objective, batch_size: int) -> float:
    """Mean loss over `items` (no dropout, no gradients); every process computes all of it."""
    was_training = score.training
    score.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(items), batch_size):
            chunk = items[i : i + batch_size]
            total += objective.loss(score, chunk)[0].item()
            count += objective.count(chunk)
    score.train(was_training)
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


def _log_line(
    console: Console, step: int, start: int, steps: int, row: dict[str, Any], elapsed: float
) -> None:
    """About ten lines per run: step, loss, speed and time left."""
    if step != steps and step % max(1, steps // 10):
        return
    left = elapsed / (step - start) * (steps - step)
    console.print(
        f"train step {step}/{steps}: loss {row['loss']:.4f}, lr {row['lr']:.2e}, {row['tok_s']:.0f} tok/s, "
        f"{left:.0f} s left",
        highlight=False,
    )


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
