"""What every training mode does around its loop, in run order: start (config printed and saved), build the
model, report the data, the forgetting guard, and the outputs (weights, tokenizer, card, plot, check)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rich.console import Console

from llmworks.atomic import atomic_write
from llmworks.models.chat_policy import with_default_system
from llmworks.models.sources import ModelSource
from llmworks.train import data as D
from llmworks.train.config import TrainConfig, to_yaml
from llmworks.train.loop import LoopResult, evaluate
from llmworks.train.loss import TargetScorer
from llmworks.train.model import load_base, trainable_summary


@dataclass
class RunSummary:
    output_dir: str
    mode: str
    method: str
    steps: int
    train_loss: float
    eval_loss: float | None
    general_ppl_before: float | None = None
    general_ppl_after: float | None = None
    check_ok: bool | None = None
    check_findings: list[str] = field(default_factory=list)
    data: dict[str, int] = field(default_factory=dict)
    guard: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """Guard task scores, "task/metric" -> {"before", "after"}."""


def start(cfg: TrainConfig, mode: str, console: Console) -> Path:
    """Print and save the resolved config. Under `accelerate launch` only the main process speaks and
    writes; the others just train."""
    import torch

    out_dir = Path(cfg.output_dir)
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)
    torch.manual_seed(cfg.seed)
    if not is_main_process():
        console.quiet = True
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    saved = out_dir / "config.yaml"
    atomic_write(saved, f"# llmworks train {mode} {saved}\n{to_yaml(cfg)}")
    console.print(f"[bold]llmworks train {mode}[/bold] → {out_dir}: {_settings(cfg)}", highlight=False)
    console.print(f"full config: {saved}", highlight=False)
    return out_dir


def _settings(cfg: TrainConfig) -> str:
    """The few settings that tell runs apart (the rest is in config.yaml)."""
    method = cfg.method + (f" r={cfg.lora_rank}" if cfg.method in ("lora", "dora", "qlora") else "")
    length = f"{cfg.max_steps} steps" if cfg.max_steps else f"{cfg.epochs:g} epochs"
    batch = f"batch {cfg.batch_size}" + (f"x{cfg.grad_accum}" if cfg.grad_accum > 1 else "")
    data = ", ".join(cfg.data) or "no data"
    return (
        f"{cfg.model or 'the embedded model'}, {method}, lr {cfg.lr:g}, {length}, {batch}, "
        f"max_seq_len {cfg.max_seq_len}; data {data}"
    )


def is_main_process() -> bool:
    return dist_state().is_main_process


def dist_state() -> Any:
    """accelerate's process state. Without a GPU it must be asked for the CPU explicitly: only then do
    processes started by `accelerate launch` (torchrun) join one gloo group instead of running alone."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def build_model(cfg: TrainConfig, console: Console) -> tuple[Any, Any, ModelSource, Path]:
    model, tokenizer, source, hf_dir = load_base(cfg, console)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    system = source.spec.system if source.spec else ""
    if system and isinstance(tokenizer.chat_template, str):
        # The chat policy's default system prompt, written into the template: the data is rendered with it
        # and the tuned model (saved with this template) keeps it in every runtime.
        tokenizer.chat_template = with_default_system(tokenizer.chat_template, system)
    console.print(f"model {source.name} ({hf_dir}), method {cfg.method}: {trainable_summary(model)}")
    return model, tokenizer, source, hf_dir


def report_data(stats: D.DataStats, n_train: int, n_val: int, cfg: TrainConfig, console: Console) -> None:
    line = (
        f"data: {stats.records} records → {n_train} train / {n_val} val rows"
        f"{' (packed)' if cfg.packing else ''}; {stats.tokens:,} tokens, {stats.target_tokens:,} trained"
    )
    if stats.truncated:
        line += f"; [yellow]{stats.truncated} truncated to max_seq_len={cfg.max_seq_len}[/yellow]"
    if stats.dropped:
        line += f"; {stats.dropped} dropped (no target token left)"
    console.print(line)


def guard_perplexity(
    cfg: TrainConfig, model: Any, tokenizer: Any, objective: Any, console: Console, when: str
) -> float | None:
    """Forgetting guard: perplexity on held-out general text (None when eval_before_after is off)."""
    if not cfg.eval_before_after or not is_main_process():
        return None
    path = cfg.general_text or str(resources.files("llmworks.train").joinpath("general.txt"))
    samples = [D.encode_text(t, tokenizer, cfg.max_seq_len)[0] for t in D.read_text(path)]
    ppl = math.exp(evaluate(TargetScorer(model), samples, objective, cfg.batch_size))
    console.print(f"general-text perplexity {when} training: {ppl:.3f} ({len(samples)} paragraphs)")
    return ppl


def guard_eval(cfg: TrainConfig, model_dir: Path, when: str, console: Console) -> Path | None:
    """Forgetting guard, behaviour half: the eval stage's `guard_tasks` on a saved model (the base before
    training, the run directory after); returns the eval run directory. Perplexity misses a model that
    answers every question with its new identity; these answers do not."""
    if not cfg.eval_before_after or not cfg.guard_tasks or not is_main_process():
        return None
    from llmworks.eval import EvalConfig, evaluate

    out = Path(cfg.output_dir) / "guard" / when
    console.print(
        f"forgetting guard: llmworks eval run --tasks {','.join(cfg.guard_tasks)} --model {model_dir} "
        f"-o {out} ({when} training)",
        highlight=False,
    )
    quiet = Console(stderr=True, quiet=True)
    ecfg = EvalConfig(
        tasks=list(cfg.guard_tasks), model=str(model_dir), engine="transformers", output_dir=str(out)
    )
    return evaluate(ecfg, quiet)


def _guard_report(cfg: TrainConfig, before: Path, summary: RunSummary, console: Console) -> None:
    """Before vs after on the guard tasks. A drop is forgetting only when the paired test on the per-sample
    results (eval compare's: exact McNemar, or a paired bootstrap) finds it significant and it is larger than
    `forgetting_threshold`; a larger drop the test cannot tell from noise is reported as such."""
    from llmworks.eval import compare
    from llmworks.eval.report import describe_row

    after = guard_eval(cfg, Path(cfg.output_dir), "after", console)
    assert after is not None
    report = compare([before, after], Path(cfg.output_dir) / "guard", console)
    data = json.loads((report.parent / "compare.json").read_text())
    base, tuned = list(data["runs"])
    for row in data["rows"]:
        b, a = row["values"][base], row["values"][tuned]
        if b is None or a is None:
            continue
        test = row["tests"].get(tuned)
        summary.guard[f"{row['task']}/{row['metric']}"] = {
            "before": b,
            "after": a,
            "p": test["p"] if test else None,
            "n": test["n"] if test else None,
        }
        line = describe_row(row, tuned, base).replace("[", "\\[")
        if b - a > cfg.forgetting_threshold and test is not None and test["significant"]:
            line = (
                f"[yellow]warning: {line}, a significant drop of more than {cfg.forgetting_threshold:.2f}: "
                "the model is losing general ability. Mix general data in (data: \\[task.jsonl, general.jsonl#500] "
                "or builtin:general), lower lr or train fewer steps.[/yellow]"
            )
        elif b - a > cfg.forgetting_threshold:
            line = (
                f"forgetting guard: {line}: a drop the test cannot tell from noise at this n (not a warning)"
            )
        else:
            line = f"forgetting guard: {line}"
        console.print(line, highlight=False)
    console.print(f"forgetting report: {report}")


def save_outputs(
    cfg: TrainConfig,
    mode: str,
    model: Any,
    tokenizer: Any,
    source: ModelSource,
    hf_dir: Path,
    result: LoopResult,
    stats: D.DataStats,
    before: float | None,
    after: float | None,
    console: Console,
    guard_before: Path | None = None,
) -> RunSummary:
    """Weights (adapter or full), tokenizer + chat template, loss.png, README.md, summary.json; then the
    stop-token check on the saved model, so the summary says whether it stops. Main process only."""
    out_dir = Path(cfg.output_dir)
    if not is_main_process():
        return RunSummary(str(out_dir), mode, cfg.method, result.steps, result.train_loss, result.eval_loss)
    tmp = Path(tempfile.mkdtemp(dir=out_dir, prefix=".save-"))
    try:
        if cfg.uses_peft:
            # An absolute HF dir: `resolve()` finds it again, so `llmworks chat RUN_DIR` loads base + adapter.
            model.peft_config["default"].base_model_name_or_path = str(hf_dir.resolve())
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for f in tmp.iterdir():
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = RunSummary(
        str(out_dir),
        mode,
        cfg.method,
        result.steps,
        result.train_loss,
        result.eval_loss,
        before,
        after,
        data={k: v for k, v in dataclasses.asdict(stats).items()},
    )
    if before is not None and after is not None:
        rise = after / before - 1
        console.print(f"forgetting guard: general-text perplexity {before:.3f} → {after:.3f} ({rise:+.1%})")
        if rise > cfg.forgetting_threshold:
            console.print(
                f"[yellow]warning: general-text perplexity rose {rise:.1%} (> {cfg.forgetting_threshold:.0%}): "
                "the model is forgetting. Mix general data in (data: \\[task.jsonl, general.jsonl#500]), "
                "lower lr or train fewer steps.[/yellow]"
            )
    plot_loss(result.metrics, out_dir / "loss.png")
    if guard_before is not None:
        _guard_report(cfg, guard_before, summary, console)
    if cfg.check_after:
        _check(out_dir, cfg, summary, console)
    atomic_write(out_dir / "README.md", model_card(cfg, mode, source, summary))
    atomic_write(out_dir / "summary.json", json.dumps(dataclasses.asdict(summary), indent=2) + "\n")
    console.print(
        f"done: {result.steps} steps, train loss {result.train_loss:.4f}"
        + (f", eval loss {result.eval_loss:.4f}" if result.eval_loss is not None else "")
        + (f", stop check {'OK' if summary.check_ok else 'FAILED'}" if summary.check_ok is not None else "")
        + f" → {out_dir}"
    )
    return summary


def plot_loss(metrics: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    train = [(m["step"], m["loss"]) for m in metrics if "loss" in m]
    evals = [(m["step"], m["eval_loss"]) for m in metrics if "eval_loss" in m]
    if train:
        ax.plot(*zip(*train, strict=True), label="train")
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def model_card(cfg: TrainConfig, mode: str, source: ModelSource, s: RunSummary) -> str:
    hp = ", ".join(
        f"{k}={getattr(cfg, k)}"
        for k in ("lr", "batch_size", "grad_accum", "max_seq_len", "packing", "warmup_ratio", "seed")
    )
    if cfg.uses_peft:
        hp = f"rank={cfg.lora_rank}, alpha={cfg.lora_alpha}, dropout={cfg.lora_dropout}, " + hp
        hp = f"targets={','.join(cfg.target_modules)}, " + hp
    lines = [
        f"# {Path(cfg.output_dir).name}",
        "",
        f"Fine-tuned with `llmworks train {mode}` (config: `config.yaml`).",
        "",
        f"- Base model: {source.name} ({source.path})",
        f"- Method: {cfg.method}",
        f"- Data: {', '.join(cfg.data)}"
        + (f"; validation: {', '.join(cfg.val_data)}" if cfg.val_data else ""),
        f"- Samples: {s.data.get('records', 0)} records, {s.data.get('truncated', 0)} truncated",
        f"- Hyperparameters: {hp}",
        f"- Steps: {s.steps}; final train loss {s.train_loss:.4f}"
        + (f"; eval loss {s.eval_loss:.4f}" if s.eval_loss is not None else ""),
    ]
    if s.general_ppl_before is not None and s.general_ppl_after is not None:
        lines.append(f"- General-text perplexity: {s.general_ppl_before:.3f} → {s.general_ppl_after:.3f}")
    for name, v in s.guard.items():
        p = f" (paired test p={v['p']:.2g}, n={v['n']})" if v.get("p") is not None else ""
        lines.append(f"- Forgetting guard, {name}: {v['before']:.3f} → {v['after']:.3f}{p}")
    if s.check_ok is not None:
        lines.append(f"- Stop-token check: {'OK' if s.check_ok else 'FAILED'}")
        lines += [f"  - {f}" for f in s.check_findings]
    lines += ["", "Use it: `llmworks chat " + cfg.output_dir + "`", ""]
    return "\n".join(lines)


def _check(out_dir: Path, cfg: TrainConfig, summary: RunSummary, console: Console) -> None:
    from llmworks.chat.check import check_model
    from llmworks.engines import load_engine

    engine = load_engine(out_dir, "transformers", n_threads=cfg.threads or None)
    report = check_model(engine, max_tokens=48)
    summary.check_ok = report.ok
    summary.check_findings = [f"{f.label}: {f.what}" for f in report.findings]
    for f in summary.check_findings:
        console.print(f"  check {f}")
