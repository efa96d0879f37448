"""The report every export writes (report.json) and the model card that shows it (README.md, or FILE.gguf.md
next to a GGUF file): base model, method, data manifest, hyperparameters, training results, measurements,
how to run it, intended use and limits."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llmworks.atomic import atomic_write
from llmworks.export.files import TRAIN_FILES, gib
from llmworks.export.measure import MAX_TOKENS, PROMPTS, Measurement

HYPERPARAMETERS = (
    "method",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "target_modules",
    "lr",
    "batch_size",
    "grad_accum",
    "max_steps",
    "epochs",
    "max_seq_len",
    "packing",
    "warmup_ratio",
    "seed",
)
_PEFT_ONLY = {"lora_rank", "lora_alpha", "lora_dropout", "target_modules"}


@dataclass
class ExportReport:
    kind: str
    """merge | gguf | quant"""
    method: str
    """What was done: the adapter type merged (lora, dora), the GGUF type (f16, q8_0, ...), int8 or int4."""
    source: str
    output: str
    size_bytes: int
    source_size_bytes: int
    seconds: float
    """Wall time of the export itself, measurements excluded."""
    max_abs_logit_diff: float | None = None
    """merge: largest |merged - unmerged| logit over the fixed prompts."""
    measurements: list[Measurement] = field(default_factory=list)
    """[source, export] when the export was evaluated."""

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self) | {"measurements": [m.to_json() for m in self.measurements]}
        d["size_ratio"] = round(self.size_bytes / self.source_size_bytes, 4)
        if len(self.measurements) == 2:
            src, out = self.measurements
            d["perplexity_delta"] = round(out.perplexity / src.perplexity - 1, 4)
            d["decode_speedup"] = round(out.decode_tok_s / src.decode_tok_s, 3) if src.decode_tok_s else None
        return d


def write_report(report: ExportReport, json_path: Path, card_path: Path, provenance: Path | None) -> None:
    """report.json and the model card; `provenance` is the directory holding the training config/summary."""
    atomic_write(json_path, json.dumps(report.to_json(), indent=2) + "\n")
    atomic_write(card_path, model_card(report, provenance))


def model_card(r: ExportReport, provenance: Path | None) -> str:
    cfg, summary = training_info(provenance) if provenance else ({}, {})
    out = Path(r.output)
    lines = [f"# {out.name}", "", f"{_what(r)} Made by `llmworks export {r.kind}` from `{r.source}`.", ""]
    lines += ["## Model", ""]
    base = cfg.get("model") or ("the embedded default model" if cfg else r.source)
    lines.append(f"- Base model: {base}")
    if cfg:
        lines.append(f"- Fine-tuning: `llmworks train` with method {cfg.get('method')}")
        peft = cfg.get("method") in ("lora", "dora", "qlora")
        hp = [
            f"{k}={cfg[k]}"
            for k in HYPERPARAMETERS
            if k in cfg and k != "method" and (peft or k not in _PEFT_ONLY)
        ]
        lines.append(f"- Hyperparameters: {', '.join(hp)}")
        lines.append("- Data:")
        lines += [f"  - {_manifest_line(spec)}" for spec in cfg.get("data", [])]
        lines += [f"  - validation: {_manifest_line(spec)}" for spec in cfg.get("val_data", [])]
        stats = summary.get("data") or {}
        if stats:
            lines.append(
                f"  - {stats.get('records', 0)} records, {stats.get('tokens', 0):,} tokens, "
                f"{stats.get('target_tokens', 0):,} trained on, {stats.get('truncated', 0)} truncated"
            )
    else:
        lines.append("- Fine-tuning: none recorded (no llmworks training config next to the source)")
    if summary:
        lines.append(f"- Training results: {_training_results(summary)}")
    lines += ["", "## Export report", "", *_report_lines(r), ""]
    lines += ["## Use", "", *_usage(r), ""]
    lines += [
        "## Intended use and limits",
        "",
        "- Intended for local experiments and applications close to the fine-tuning data above; "
        "check it on your own task before relying on it.",
        "- It keeps the base model's limits and biases, can state false things fluently, and has had "
        "no safety evaluation beyond what is listed here.",
        "- Quantization trades quality for size and speed: compare the perplexity and agreement above "
        "with the source before choosing a type.",
        "",
    ]
    return "\n".join(lines)


def training_info(d: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The training config and summary found in `d` (a run directory or an earlier export), or empty dicts."""
    cfg: dict[str, Any] = {}
    for name in (TRAIN_FILES["config.yaml"], "config.yaml"):
        if (d / name).is_file():
            loaded = yaml.safe_load((d / name).read_text(encoding="utf-8"))
            if isinstance(loaded, dict) and "method" in loaded:
                cfg = loaded
                break
    summary: dict[str, Any] = {}
    for name in (TRAIN_FILES["summary.json"], "summary.json"):
        if (d / name).is_file():
            summary = json.loads((d / name).read_text(encoding="utf-8"))
            break
    return cfg, summary


def _what(r: ExportReport) -> str:
    if r.kind == "merge":
        return f"A standalone HF model: the base with its {r.method.upper()} adapter merged into the weights."
    if r.kind == "gguf":
        return f"A GGUF model ({r.method}) for llama.cpp, Ollama, LM Studio and `llmworks`."
    backend = "torchao" if r.method == "int8" else "bitsandbytes NF4"
    return f"An {r.method} weight-only quantized HF model ({backend}) for transformers."


def _manifest_line(spec: str) -> str:
    path = Path(spec.split("#")[0])
    if not path.is_file():
        return f"`{spec}`"
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"`{spec}` ({path.stat().st_size:,} bytes, sha256 {digest}…)"


def _training_results(s: dict[str, Any]) -> str:
    parts = [f"{s.get('steps')} steps, train loss {s.get('train_loss', float('nan')):.4f}"]
    if s.get("eval_loss") is not None:
        parts.append(f"eval loss {s['eval_loss']:.4f}")
    if s.get("general_ppl_before") is not None and s.get("general_ppl_after") is not None:
        parts.append(f"general-text perplexity {s['general_ppl_before']:.3f} → {s['general_ppl_after']:.3f}")
    if s.get("check_ok") is not None:
        parts.append(f"stop-token check {'OK' if s['check_ok'] else 'FAILED'}")
    return "; ".join(parts)


def _report_lines(r: ExportReport) -> list[str]:
    lines = [
        f"- Size on disk: {gib(r.size_bytes)} ({r.size_bytes / r.source_size_bytes:.1%} of the source's "
        f"{gib(r.source_size_bytes)})",
        f"- Export time: {r.seconds:.1f} s",
    ]
    if r.max_abs_logit_diff is not None:
        lines.append(
            f"- Max |logit difference| merged vs unmerged on {len(PROMPTS)} prompts: {r.max_abs_logit_diff:.2e}"
        )
    if not r.measurements:
        return [*lines, "- Not evaluated (exported with evaluation off)."]
    lines += [
        "",
        "| model | engine | size | perplexity | decode tok/s | greedy agreement | identical answers |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in r.measurements:
        agree = "reference" if m.greedy_agreement is None else f"{m.greedy_agreement:.1%}"
        lines.append(
            f"| `{Path(m.model).name}` | {m.engine} | {gib(m.size_bytes)} | {m.perplexity:.3f} | "
            f"{m.decode_tok_s:.1f} | {agree} | {m.identical_outputs or '-'} |"
        )
    lines += [
        "",
        f"Perplexity on held-out general text; {len(PROMPTS)} fixed chat prompts, {MAX_TOKENS} greedy tokens "
        "each. Greedy agreement: share of the source's greedy tokens that the export also ranks first, "
        "teacher-forced along the source's answers. Decode speed is measured on this machine and is noisy.",
    ]
    return lines


def _usage(r: ExportReport) -> list[str]:
    out = r.output
    if r.kind == "gguf":
        return [
            f"- `llmworks chat {out}` or `llmworks serve {out}` (OpenAI-compatible API)",
            f"- llama.cpp: `llama-cli -m {out}`; Ollama: a Modelfile with `FROM {out}`; LM Studio: import the file",
        ]
    if r.kind == "quant":
        return [
            f"- `llmworks chat {out} --engine transformers`",
            f"- transformers: `AutoModelForCausalLM.from_pretrained('{out}')` (needs "
            + ("torchao" if r.method == "int8" else "bitsandbytes")
            + ")",
        ]
    return [
        f"- `llmworks chat {out}`, or `llmworks export gguf {out} -o model.gguf --quant q4_k_m` for llama.cpp",
        f"- transformers: `AutoModelForCausalLM.from_pretrained('{out}')`",
    ]
