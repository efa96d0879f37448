"""`llmworks export merge RUN_DIR -o DIR`: base + LoRA/DoRA adapter → one standalone HF directory.

The merged weights are checked against the unmerged model on fixed prompts (the largest logit difference
goes in the report), then saved as safetensors with the run's tokenizer, chat template, training config
and a model card; the export's own config goes in export_config.yaml.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from rich.console import Console

from llmworks.atomic import atomic_dir
from llmworks.console import make_console
from llmworks.errors import BadModel, UserError
from llmworks.export.config import DIR_CONFIG, MergeConfig
from llmworks.export.files import (
    check_disk_space,
    check_target_dir,
    copy_train_files,
    model_size,
    weights_size,
)
from llmworks.export.measure import PROMPTS, measure_export
from llmworks.export.report import ExportReport, write_report
from llmworks.models.hf_weights import hf_dir_for
from llmworks.models.sources import resolve


def merge(
    run_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    evaluate: bool = True,
    n_threads: int | None = None,
    console: Console | None = None,
) -> ExportReport:
    """Merge the adapter of `run_dir` into its base and save the result as the HF directory `out`."""
    console = console or make_console(stderr=True)
    run, out = Path(run_dir), Path(out)
    cfg = MergeConfig.build({"run_dir": run, "output": out, "eval": evaluate, "threads": n_threads})
    _check_run_dir(run)
    source = resolve(run)
    base_dir = hf_dir_for(source)
    check_target_dir(out)
    check_disk_space(out.parent, weights_size(base_dir) + weights_size(run), "the merged model")

    start = time.perf_counter()
    console.print(f"merging {run} into its base {base_dir} ...")
    merged, tokenizer, diff = _merge_in_memory(base_dir, run)
    method = "dora" if json.loads((run / "adapter_config.json").read_text()).get("use_dora") else "lora"
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        copy_train_files(run, tmp)
        seconds = time.perf_counter() - start
        report = ExportReport(
            "merge", method, str(run), str(out), weights_size(tmp), model_size(source), seconds, diff
        )
        if evaluate:
            console.print("measuring the unmerged and the merged model ...")
            report.measurements = measure_export(run, tmp, out, n_threads)
        write_report(report, tmp / "report.json", tmp / "README.md", tmp)
        cfg.save(tmp / DIR_CONFIG, f"llmworks export merge --config {out / DIR_CONFIG}")
    console.print(f"merged → {out} (max |logit diff| {diff:.2e})")
    return report


def _check_run_dir(run: Path) -> None:
    if not run.is_dir():
        raise UserError(
            f"run directory {run} does not exist.", "Give the output_dir of `llmworks train sft`."
        )
    if (run / "adapter_config.json").is_file():
        return
    if (run / "config.json").is_file():
        raise UserError(
            f"{run} has no adapter to merge: it holds full weights (a full or freeze run, or a merged model).",
            f"Export it directly: llmworks export gguf {run} -o model.gguf, or llmworks export quant {run}.",
        )
    raise UserError(
        f"{run} has no adapter to merge (adapter_config.json is missing).",
        "Give the output_dir of a `llmworks train sft` run with method lora, dora or qlora.",
    )


def _merge_in_memory(base_dir: Path, run: Path) -> tuple[object, object, float]:
    """(merged model, tokenizer, max |logit| difference between the unmerged and merged model)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    try:
        model = PeftModel.from_pretrained(base, str(run)).eval()
    except (ValueError, KeyError, RuntimeError, OSError) as e:
        raise BadModel(
            f"the adapter in {run} does not fit its base {base_dir} ({e}).",
            "Check base_model_name_or_path in adapter_config.json.",
        ) from None
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        if tokenizer.chat_template
        else p
        for p in PROMPTS
    ]
    prompts = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
    with torch.inference_mode():
        before = [model(input_ids=torch.tensor([ids])).logits for ids in prompts]
        merged = model.merge_and_unload()
        diff = max(
            float((merged(input_ids=torch.tensor([ids])).logits - b).abs().max())
            for ids, b in zip(prompts, before, strict=True)
        )
    return merged, tokenizer, diff
